#!/usr/bin/env python3
"""PyTorch + HF transformers side of the safeaware speed benchmark.

Times one Idefics3/SmolVLM model with HF transformers, using the same shapes and thread count
as `safeaware bench`. Both print the same JSON schema (see tools/README.md, "Benchmarks").

    tools/.venv/bin/python tools/torch_reference.py train    --model DIR [--batch 1] [--seq 256] [--steps 10] [--warmup 2]
    tools/.venv/bin/python tools/torch_reference.py generate --model DIR [--batch 1] [--seq 256] [--new-tokens 64]
        common: [--threads N] [--device cpu|cuda|cuda:N] [--dtype f32|bf16] [--attn sdpa|eager] [--seed 0] [--json]

The model is built from DIR/config.json. The class comes from `model_type`: idefics3 gives
Idefics3ForConditionalGeneration, smolvlm gives SmolVLMForConditionalGeneration. If DIR holds
*.safetensors, the weights are loaded. Otherwise the model gets HF's own random init, seeded with
--seed. The weights do not change the timings.

Inputs, identical for every sample and every step:
  per sample, T = --seq tokens: [bos] [image_token_id x image_seq_len] [random text ids ...]
  pixel_values [B, 1, 3, S, S] ~ N(0, 1), S = vision_config.image_size (one tile per sample)
  labels = input_ids with the image span set to -100
  image_seq_len = (image_size / patch_size)^2 / scale_factor^2  (64 for SmolVLM-256M)

train:    AdamW(lr 1e-4, weight_decay 0.01, default betas/eps) over all parameters. One timed step is
          forward + loss + backward + clip_grad_norm_(1.0) + step + zero_grad. The clock stops after a
          cuda.synchronize on GPU. tokens/s = B*T / median step time.
generate: greedy decoding with the KV cache. max_new_tokens = min_new_tokens = K, so EOS cannot stop
          a call early. The output length is checked. new tokens/s = B*K / median call time. The
          prefill is timed as well, as max_new_tokens=1 calls; disable that with --no-prefill.

Exit status: 0 ok, 1 runtime failure, 2 bad arguments or model folder.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers  # noqa: E402

transformers.utils.logging.disable_progress_bar()

# Dense peak throughput used for MFU (H100 SXM datasheet numbers, no sparsity). Override with --peak-tflops.
# f32 assumes torch's default of no TF32 (see --tf32), so true FP32 on the CUDA cores.
PEAK_FLOPS = {"bf16": 989e12, "f32": 67e12, "tf32": 494.7e12}


def die(msg: str, code: int = 2):
    print(f"torch_reference: error: {msg}", file=sys.stderr)
    sys.exit(code)


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["train", "generate"])
    p.add_argument("--model", required=True, help="folder holding config.json (and optionally *.safetensors)")
    p.add_argument("--batch", type=int, default=1, help="B samples (default 1)")
    p.add_argument("--seq", type=int, default=256, help="T prompt/sequence length in tokens, image span included (default 256)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (train) or calls (generate) (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps/calls first (default 2)")
    p.add_argument("--new-tokens", type=int, default=64, help="K new tokens per generate call (default 64)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: all cores available)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32", help="parameter/activation dtype (default f32)")
    p.add_argument("--bf16-mode", choices=["pure", "autocast"], default="pure",
                   help="with --dtype bf16: 'pure' = bf16 weights, grads and AdamW states (default); "
                        "'autocast' = f32 weights under torch.autocast(bfloat16)")
    p.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa",
                   help="HF attention implementation (default sdpa, what users get by default)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls for f32 on GPU (torch default: off)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="peak dense TFLOP/s for MFU (default: H100 SXM, 989 bf16 / 67 f32 / 494.7 tf32)")
    p.add_argument("--no-prefill", action="store_true", help="generate: skip the separate prefill timing")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights and inputs (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    a = p.parse_args(argv)
    if a.batch < 1 or a.seq < 1 or a.steps < 1 or a.warmup < 0 or a.new_tokens < 1:
        p.error("--batch, --seq, --steps, --new-tokens must be >= 1 and --warmup >= 0")
    if a.threads is None:
        a.threads = default_threads()
    if a.threads < 1:
        p.error("--threads must be >= 1")
    if not (a.device == "cpu" or a.device == "cuda" or a.device.startswith("cuda:")):
        p.error(f"--device {a.device!r}: expected cpu, cuda or cuda:N")
    return a


# ------------------------------------------------------------------------------------------ model
def model_classes(model_type: str):
    if model_type == "idefics3":
        return transformers.Idefics3Config, transformers.Idefics3ForConditionalGeneration
    if model_type == "smolvlm":
        if not hasattr(transformers, "SmolVLMForConditionalGeneration"):
            die("this transformers has no SmolVLMForConditionalGeneration (needs >= 4.50)")
        return transformers.SmolVLMConfig, transformers.SmolVLMForConditionalGeneration
    die(f"unsupported model_type {model_type!r} (expected idefics3 or smolvlm)")


def has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or (folder / "model.safetensors.index.json").exists()


def build_model(args, device: torch.device, param_dtype: torch.dtype):
    folder = Path(args.model)
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        die(f"{cfg_file} not found (--model must be a folder with config.json)")
    model_type = json.loads(cfg_file.read_text()).get("model_type")
    config_cls, model_cls = model_classes(model_type)
    if has_weights(folder):
        model = model_cls.from_pretrained(folder, dtype=param_dtype, attn_implementation=args.attn)
        source = "safetensors"
    else:
        config = config_cls.from_pretrained(folder)
        torch.manual_seed(args.seed)
        # Random init directly on the target device: much faster on GPU, the same on CPU.
        with torch.device(device):
            model = model_cls._from_config(config, dtype=param_dtype, attn_implementation=args.attn)
        source = f"random(seed={args.seed})"
    model.to(device)
    return model, model_cls.__name__, source


def image_seq_len(config) -> int:
    v = config.vision_config
    grid = v.image_size // v.patch_size
    return (grid // config.scale_factor) ** 2


def build_inputs(args, config, device, pixel_dtype):
    """input_ids/attention_mask/labels [B,T], pixel_values [B,1,3,S,S]; see the module docstring."""
    B, T = args.batch, args.seq
    L = image_seq_len(config)
    if T < L + 2:
        die(f"--seq {T} is too short: the image span alone is {L} tokens (need seq >= {L + 2})")
    text = config.text_config
    vocab = text.vocab_size
    img_id = config.image_token_id
    bos = getattr(text, "bos_token_id", None)
    bos = 1 if bos is None else bos
    g = torch.Generator().manual_seed(args.seed + 1)
    # Text ids avoid 0..2 (pad/bos/eos in the SmolVLM tokenizer) and the image token.
    ids = torch.randint(3, vocab, (B, T), generator=g)
    ids[ids == img_id] = 3
    ids[:, 0] = bos
    ids[:, 1:1 + L] = img_id
    labels = ids.clone()
    labels[:, 1:1 + L] = -100
    size = config.vision_config.image_size
    pixels = torch.randn((B, 1, 3, size, size), generator=g)
    assert int((ids == img_id).sum()) == B * L
    return dict(
        input_ids=ids.to(device),
        attention_mask=torch.ones_like(ids).to(device),
        labels=labels.to(device),
        pixel_values=pixels.to(device=device, dtype=pixel_dtype),
    )


# ----------------------------------------------------------------------------------------- timing
def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def quantile(xs, q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def timed(fn, steps: int, warmup: int, device):
    times = []
    out = None
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    return times, out


def peak_mem_mib(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is KiB on Linux, bytes on macOS. It is the peak of the whole process, model building included.
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(device) -> dict:
    v = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_cuda": torch.version.cuda,
        "cpu": cpu_name(),
    }
    if device.type == "cuda":
        v["gpu"] = torch.cuda.get_device_name(device)
        v["cudnn"] = torch.backends.cudnn.version()
    return v


# ------------------------------------------------------------------------------------------ modes
def run_train(model, inputs, args, device, autocast_ctx):
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    losses = []

    def step():
        with autocast_ctx():
            loss = model(**inputs, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        return None

    times, _ = timed(step, args.steps, args.warmup, device)
    last = float(losses[-1].float())
    if not math.isfinite(last):
        die(f"training loss is not finite ({last})", 1)
    return times, {"loss_first": float(losses[0].float()), "loss_last": last}


def run_generate(model, inputs, args, device, autocast_ctx):
    model.eval()
    B, T, K = args.batch, args.seq, args.new_tokens
    gen_inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "pixel_values")}
    pad = model.generation_config.pad_token_id
    if pad is None:
        pad = getattr(model.config.text_config, "pad_token_id", None) or 0

    def call(n):
        def f():
            with torch.inference_mode(), autocast_ctx():
                out = model.generate(**gen_inputs, do_sample=False, num_beams=1, use_cache=True,
                                     max_new_tokens=n, min_new_tokens=n, pad_token_id=pad)
            if tuple(out.shape) != (B, T + n):
                die(f"generate returned shape {tuple(out.shape)}, expected {(B, T + n)}", 1)
            return out
        return f

    times, _ = timed(call(K), args.steps, args.warmup, device)
    extra = {}
    if not args.no_prefill:
        pre, _ = timed(call(1), args.steps, max(1, args.warmup), device)
        extra["prefill_median_s"] = statistics.median(pre)
        decode = statistics.median(times) - extra["prefill_median_s"]
        # K-1 decode steps follow the prefill (which already yields the first token).
        extra["decode_tokens_per_s"] = B * (K - 1) / decode if K > 1 and decode > 0 else None
    return times, extra


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        die("--device cuda but torch.cuda.is_available() is False")
    torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32

    amp = args.dtype == "bf16" and args.bf16_mode == "autocast"
    param_dtype = torch.bfloat16 if (args.dtype == "bf16" and not amp) else torch.float32
    if amp:
        def autocast_ctx():
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    else:
        import contextlib
        autocast_ctx = contextlib.nullcontext

    model, cls_name, source = build_model(args, device, param_dtype)
    params = sum(p.numel() for p in model.parameters())  # unique (a tied lm_head counts once)
    inputs = build_inputs(args, model.config, device, param_dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    if args.mode == "train":
        times, extra = run_train(model, inputs, args, device, autocast_ctx)
    else:
        times, extra = run_generate(model, inputs, args, device, autocast_ctx)

    med = statistics.median(times)
    B, T, K = args.batch, args.seq, args.new_tokens
    tokens = B * T if args.mode == "train" else B * K
    tokens_per_s = tokens / med
    mfu = None
    peak = None
    if device.type == "cuda" and args.mode == "train":
        key = "bf16" if args.dtype == "bf16" else ("tf32" if args.tf32 else "f32")
        peak = args.peak_tflops * 1e12 if args.peak_tflops else PEAK_FLOPS[key]
        mfu = 6.0 * params * tokens_per_s / peak

    res = {
        "impl": "torch",
        "mode": args.mode,
        "model": args.model,
        "params": params,
        "batch": B,
        "seq": T,
        "new_tokens": K if args.mode == "generate" else None,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "device": device.type,
        "dtype": args.dtype,
        "median_s": med,
        "p10_s": quantile(times, 0.10),
        "p90_s": quantile(times, 0.90),
        "tokens_per_s": tokens_per_s,
        "images_per_s": B / med,
        "peak_mem_mib": peak_mem_mib(device),
        "mfu": mfu,
        "versions": versions(device),
        # Optional extras (not in the shared schema's required set).
        "mfu_peak_flops": peak,
        "attn": args.attn,
        "bf16_mode": args.bf16_mode if args.dtype == "bf16" else None,
        "tf32": args.tf32 if device.type == "cuda" else None,
        "model_class": cls_name,
        "weights": source,
        "image_seq_len": image_seq_len(model.config),
        "times_s": times,
        **extra,
    }
    if args.json:
        print(json.dumps(res))
    else:
        print_summary(res)
    return 0


def print_summary(r: dict) -> None:
    unit = "tokens/s" if r["mode"] == "train" else "new tokens/s"
    lines = [
        f"torch {r['mode']}: {r['model']} ({r['model_class']}, {r['params'] / 1e6:.1f}M params, weights {r['weights']})",
        f"  batch {r['batch']}, seq {r['seq']}" + (f", new tokens {r['new_tokens']}" if r["new_tokens"] else "")
        + f", {r['steps']} timed after {r['warmup']} warm-up, {r['threads']} threads, {r['device']} {r['dtype']}, attn {r['attn']}",
        f"  median {r['median_s']:.4f} s (p10 {r['p10_s']:.4f}, p90 {r['p90_s']:.4f})",
        f"  {r['tokens_per_s']:.1f} {unit}, {r['images_per_s']:.3f} images/s, peak mem {r['peak_mem_mib']:.0f} MiB",
    ]
    if r["mode"] == "train":
        lines.append(f"  loss {r['loss_first']:.4f} -> {r['loss_last']:.4f}")
    if r.get("prefill_median_s") is not None:
        d = r.get("decode_tokens_per_s")
        lines.append(f"  prefill (max_new_tokens=1) median {r['prefill_median_s']:.4f} s"
                     + (f", decode ~{d:.1f} tokens/s" if d else ""))
    if r["mfu"] is not None:
        lines.append(f"  MFU {100 * r['mfu']:.1f}% (6*params*tokens/s over peak {r['mfu_peak_flops'] / 1e12:.1f} TFLOP/s)")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
