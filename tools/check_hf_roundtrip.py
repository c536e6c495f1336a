#!/usr/bin/env python3
"""Check that a model folder saved by safeaware loads in HF transformers and reproduces a fixture.

    tools/.venv/bin/python tools/check_hf_roundtrip.py <saved-folder> <fixture-folder> [--tol 1e-4] [--generate]

<saved-folder>   an HF-style folder written by safeaware (config.json + model.safetensors [+ shards])
<fixture-folder> one of model/tests/fixtures/parity/<name>/ (inputs.safetensors, expected.safetensors,
                 hf_param_counts.json), of any family (Idefics3/SmolVLM, LLaVA, Qwen2-VL); logits are
                 compared at real (attention mask 1) positions only

Loads the folder with the class named in its config.json "architectures" (float32, eager attention),
reports missing/unexpected/mismatched checkpoint keys, compares parameter counts with the fixture's
hf_param_counts.json, runs the fixture inputs and prints the max abs logit difference against the
fixture's expected logits. With --generate it also runs greedy generation (KV cache on) and compares
the tokens with the fixture's `generated`.

Exit status: 0 = all checks pass; 1 = a check failed (logit diff > tol, key problems, count mismatch,
generation mismatch); 2 = bad arguments / unreadable folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def param_counts(model) -> dict:
    inner = model.model
    if model.config.model_type == "llava":
        vision_tower, projector, text_model = inner.vision_tower, inner.multi_modal_projector, inner.language_model
    elif model.config.model_type in ("qwen2_vl", "qwen2_5_vl"):
        projector, text_model = inner.visual.merger, inner.language_model
        vision_tower = [p for n, p in inner.visual.named_parameters() if not n.startswith("merger.")]
    else:
        vision_tower, projector, text_model = inner.vision_model, inner.connector, inner.text_model
    vision_params = vision_tower if isinstance(vision_tower, list) else vision_tower.parameters()
    vision = sum(p.numel() for p in vision_params)
    connector = sum(p.numel() for p in projector.parameters())
    text = sum(p.numel() for p in text_model.parameters())
    tied = model.lm_head.weight is text_model.get_input_embeddings().weight
    lm_head = 0 if tied else sum(p.numel() for p in model.lm_head.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {"vision": vision, "connector": connector, "text": text, "lm_head": lm_head, "total": total}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("saved", type=Path, help="folder saved by safeaware")
    ap.add_argument("fixture", type=Path, help="parity fixture folder")
    ap.add_argument("--tol", type=float, default=1e-4, help="max allowed abs logit diff (default 1e-4)")
    ap.add_argument("--generate", action="store_true", help="also compare greedy generation")
    args = ap.parse_args()

    cfg_path = args.saved / "config.json"
    if not cfg_path.is_file():
        print(f"error: {cfg_path} not found", file=sys.stderr)
        return 2
    for name in ("inputs.safetensors", "expected.safetensors"):
        if not (args.fixture / name).is_file():
            print(f"error: {args.fixture / name} not found", file=sys.stderr)
            return 2

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    config = json.loads(cfg_path.read_text())
    arch = (config.get("architectures") or ["Idefics3ForConditionalGeneration"])[0]
    model_cls = getattr(transformers, arch, None)
    if model_cls is None:
        print(f"error: transformers {transformers.__version__} has no class {arch!r}", file=sys.stderr)
        return 2

    failed = False
    model, info = model_cls.from_pretrained(
        args.saved, attn_implementation="eager", dtype=torch.float32, output_loading_info=True
    )
    model.eval()
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        items = list(info.get(kind) or [])
        if items:
            failed = True
            print(f"FAIL {kind}: {items}")
    print(f"loaded {arch} from {args.saved} (transformers {transformers.__version__}, torch {torch.__version__})")

    counts_path = args.fixture / "hf_param_counts.json"
    if counts_path.is_file():
        want = json.loads(counts_path.read_text())
        got = param_counts(model)
        if got != want:
            failed = True
            print(f"FAIL param counts: saved model {got} != fixture {want}")
        else:
            print(f"param counts match: {got}")

    inputs = load_file(str(args.fixture / "inputs.safetensors"))
    expected = load_file(str(args.fixture / "expected.safetensors"))
    mask = inputs["attention_mask"]
    # Qwen2-VL's image grids and token types go in as they are (it computes its own M-RoPE
    # positions); left-padded rows of the other families get generate's position ids. Padding
    # positions are not compared.
    extra = {k: inputs[k] for k in ("image_grid_thw", "mm_token_type_ids") if k in inputs}
    if bool((mask == 0).any()) and not extra:
        extra["position_ids"] = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    with torch.no_grad():
        out = model(input_ids=inputs["input_ids"], attention_mask=mask,
                    pixel_values=inputs["pixel_values"], use_cache=False, **extra)
    logits = out.logits.float() * mask[..., None].float()
    if logits.shape != expected["logits"].shape:
        print(f"FAIL logits shape {tuple(logits.shape)} != expected {tuple(expected['logits'].shape)}")
        return 1
    diff = float((logits - expected["logits"]).abs().max())
    ok = diff <= args.tol
    failed |= not ok
    print(f"{'ok  ' if ok else 'FAIL'} max abs logit diff {diff:.3e} (tol {args.tol:.1e})")

    if args.generate:
        want = expected["generated"]
        gcfg = transformers.GenerationConfig(
            max_new_tokens=want.shape[1], do_sample=False, num_beams=1, use_cache=True,
            eos_token_id=None, pad_token_id=0,
        )
        extra.pop("position_ids", None)
        if hasattr(model, "model") and hasattr(model.model, "rope_deltas"):
            model.model.rope_deltas = None
        with torch.no_grad():
            seq = model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                 pixel_values=inputs["pixel_values"], generation_config=gcfg, **extra)
        got = seq[:, inputs["input_ids"].shape[1]:]
        same = got.shape == want.shape and bool(torch.equal(got, want))
        failed |= not same
        print(f"{'ok  ' if same else 'FAIL'} greedy generation {'matches' if same else 'differs'}: "
              f"got {got.tolist()} expected {want.tolist()}")

    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
