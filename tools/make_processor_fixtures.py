#!/usr/bin/env python3
"""Build the processor parity fixtures with HF's processors: data/tests/fixtures/processor/
(SmolVLM, `Idefics3Processor`), data/tests/fixtures/processor_llava/ (LLaVA-1.5,
`LlavaProcessor`; see `make_llava`'s docstring) and data/tests/fixtures/processor_qwen2_vl/
(Qwen2-VL, `Qwen2VLProcessor`; see qwen2_vl_fixtures.py's docstring).

What it writes (all small, deterministic for a given Python / tokenizers / Pillow / transformers):

* a SmolVLM-style processor folder: tokenizer.json (a ~2k byte-level BPE trained here on Python's
  own docstrings, plus SmolLM2's and SmolVLM's added tokens), tokenizer_config.json,
  chat_template.json (SmolVLM's template), processor_config.json, preprocessor_config.json
  (image splitting on) and nosplit_preprocessor_config.json (splitting off);
* images/: synthetic inputs of several sizes and PIL modes (RGBA, L, P, RGB PNGs; RGB and
  CMYK JPEGs);
* pixels/<image>.<config>.safetensors: HF's pixel_values for that image alone, f32 [N,3,H,W];
* cases.json: per case the messages, HF's rendered prompt, input_ids, rows/cols per image, the
  pixel files of its images and, for training cases, the expected labels;
* resample/: one source PNG and Pillow's resizes of it with every filter (exact-parity check of
  the Rust resampler);
* versions.json: the package versions that made them.

The pixel values come from the PIL backend (`Idefics3ImageProcessorPil`, i.e. Pillow resampling),
which is the semantics safeaware-data reproduces. Run: tools/.venv/bin/python tools/make_processor_fixtures.py
[--out DIR] [--only smolvlm|llava|qwen2_vl] (DIR defaults to data/tests/fixtures; a scratch DIR plus
`diff -r` checks that a rerun reproduces the committed files).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.numpy import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, Idefics3Processor
from transformers.models.idefics3.image_processing_pil_idefics3 import (
    Idefics3ImageProcessorPil,
    get_resize_output_image_size,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "data" / "tests" / "fixtures"
OUT = FIXTURES / "processor"

# SmolVLM(-Instruct)'s chat template (as in the HF hub folders; string content tolerated).
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'] is string %}{{': ' + message['content']}}{% else %}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

BASE_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SMOLVLM_ADDED = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"] + [
    f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)
]

MAX_IMAGE_SIZE = 64
LONGEST_EDGE = 192
IMAGE_SEQ_LEN = 16  # (image_size / patch_size)^2 / scale_factor^2 = (64 / 8)^2 / 2^2

PREPROCESSOR = {
    "image_processor_type": "Idefics3ImageProcessor",
    "processor_class": "Idefics3Processor",
    "do_convert_rgb": True,
    "do_resize": True,
    "size": {"longest_edge": LONGEST_EDGE},
    "resample": 1,
    "do_image_splitting": True,
    "max_image_size": {"longest_edge": MAX_IMAGE_SIZE},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "do_pad": True,
}
NOSPLIT = dict(PREPROCESSOR, do_image_splitting=False)

CORPUS_MODULES = [
    "json", "textwrap", "string", "random", "collections", "itertools", "functools", "pathlib",
    "re", "os", "math", "statistics", "datetime", "argparse", "logging", "shutil", "tempfile",
    "csv", "sqlite3", "threading", "subprocess", "unittest", "heapq", "bisect", "enum", "dataclasses",
]
EXTRA_TEXT = [
    "Is this scene safe for a child? The knife is within reach of the toddler.",
    "Describe any hazards in this picture: a wet floor, an open window, a hot stove.",
    "Which of these two images shows a risk? The second one: the ladder stands on a table.",
    "You are a careful safety assistant. Answer briefly and explain the risk.",
    "Safe. Nothing in the picture is dangerous. Unsafe: medication left open on the counter.",
]


def corpus() -> list[str]:
    lines = list(EXTRA_TEXT)
    for name in CORPUS_MODULES:
        module = importlib.import_module(name)
        for _, obj in sorted(vars(module).items()):
            doc = inspect.getdoc(obj) if (inspect.isfunction(obj) or inspect.isclass(obj)) else None
            if doc:
                lines.extend(doc.splitlines())
    return lines


def build_tokenizer(folder: Path) -> None:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=2048,
        min_frequency=2,
        special_tokens=BASE_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SMOLVLM_ADDED])
    tok.save(str(folder / "tokenizer.json"), pretty=False)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|im_start|>",
        "eos_token": "<end_of_utterance>",
        "pad_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "additional_special_tokens": ["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 8192,
    }
    write_json(folder / "tokenizer_config.json", config)


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def smooth_rgb(width: int, height: int, seed: int) -> np.ndarray:
    """A deterministic picture with gradients, a few hard edges and some noise (uint8 HxWx3)."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 127 + 120 * np.sin(x / max(width, 1) * 6.3 + seed)
    g = 127 + 120 * np.cos(y / max(height, 1) * 4.1 - seed)
    b = ((x // 7 + y // 5) % 2) * 200 + 20
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, size=(height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_images(folder: Path) -> dict[str, Path]:
    """Input images: (name, width, height, PIL mode)."""
    specs = [
        ("tiny_rgba", 20, 30, "RGBA"),  # tiny, alpha composited on white
        ("portrait_gray", 90, 160, "L"),  # portrait, grayscale
        ("landscape_exact", 192, 128, "RGB"),  # already the resize target: tiles are exact crops
        ("large_rgb", 300, 220, "RGB"),  # larger than longest_edge: downscaled, 3x3 grid
        ("strip_palette", 400, 40, "P"),  # extreme aspect, palette image, 1 row
        ("photo_jpeg", 160, 60, "JPEG"),  # baseline 4:2:0 JPEG: decoder differences show here
        ("cmyk_jpeg", 60, 20, "CMYK"),  # CMYK JPEG (Adobe, inverted), converted to RGB
    ]
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for seed, (name, w, h, mode) in enumerate(specs, start=1):
        rgb = smooth_rgb(w, h, seed)
        if mode == "RGBA":
            yy, xx = np.mgrid[0:h, 0:w]
            alpha = np.clip((xx * 13 + yy * 7) % 256, 0, 255).astype(np.uint8)
            alpha[: h // 3, :] = 255
            alpha[-2:, :] = 0
            img = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
        elif mode == "L":
            img = Image.fromarray(rgb, "RGB").convert("L")
        elif mode == "P":
            img = Image.fromarray(rgb, "RGB").quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=0)
        elif mode == "CMYK":
            img = Image.fromarray(rgb, "RGB").convert("CMYK")
        else:
            img = Image.fromarray(rgb, "RGB")
        if mode in ("JPEG", "CMYK"):
            path = folder / f"{name}.jpg"
            img.save(path, format="JPEG", quality=90)
        else:
            path = folder / f"{name}.png"
            img.save(path, optimize=False)
        paths[name] = path
    return paths


def exact_tiles(image_processor, path: Path, rows: int, cols: int) -> int:
    """How many leading tiles are plain crops: both resizes of the split path are identities."""
    if rows == 0:
        return 0
    arr = np.moveaxis(np.array(Image.open(path).convert("RGB")), -1, 0)
    target = get_resize_output_image_size(arr, resolution_max_side=image_processor.size["longest_edge"])
    if tuple(target) != arr.shape[1:]:
        return 0
    resized = image_processor.resize_for_vision_encoder(arr, image_processor.max_image_size["longest_edge"])
    return rows * cols if resized.shape == arr.shape else 0


def make_processor(folder: Path, preprocessor: dict) -> Idefics3Processor:
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    kwargs = {k: v for k, v in preprocessor.items() if k not in ("image_processor_type", "processor_class")}
    image_processor = Idefics3ImageProcessorPil(**kwargs)
    return Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=IMAGE_SEQ_LEN, chat_template=CHAT_TEMPLATE
    )


def user(*parts) -> dict:
    return {"role": "user", "content": list(parts)}


def text(t: str) -> dict:
    return {"type": "text", "text": t}


IMAGE = {"type": "image"}


def prompts() -> list[tuple[str, list[dict], int]]:
    """(name, messages, number of images)."""
    return [
        ("image_first", [user(IMAGE, text("Is this scene safe for a child?"))], 1),
        (
            "system_text_first",
            [
                {"role": "system", "content": [text("You are a careful safety assistant.")]},
                user(text("Describe any hazards in this picture (2024, café ☕):"), IMAGE),
            ],
            1,
        ),
        ("two_images", [user(IMAGE, IMAGE, text("Which of these two images shows a risk?"))], 2),
    ]


ANSWER = "Unsafe: the knife is within reach of the toddler."


def run_case(proc, messages, images, add_generation_prompt):
    prompt = proc.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)
    kwargs = {"text": prompt, "return_tensors": "np", "return_row_col_info": True}
    if images:
        kwargs["images"] = [images]
    out = proc(**kwargs)
    return prompt, out


def main() -> None:
    global OUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help="fixtures root (default: %(default)s)")
    parser.add_argument("--only", choices=["smolvlm", "llava", "qwen2_vl"], help="build one family's fixtures")
    args = parser.parse_args()
    OUT = args.out / "processor"
    if args.only in (None, "smolvlm"):
        make_smolvlm()
    if args.only in (None, "llava"):
        make_llava(args.out / "processor_llava")
    if args.only in (None, "qwen2_vl"):
        from qwen2_vl_fixtures import make_qwen2_vl

        make_qwen2_vl(args.out / "processor_qwen2_vl")


def make_smolvlm() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    build_tokenizer(OUT)
    write_json(OUT / "chat_template.json", {"chat_template": CHAT_TEMPLATE})
    write_json(OUT / "processor_config.json", {"image_seq_len": IMAGE_SEQ_LEN, "processor_class": "Idefics3Processor"})
    write_json(OUT / "preprocessor_config.json", PREPROCESSOR)
    write_json(OUT / "nosplit_preprocessor_config.json", NOSPLIT)
    image_paths = make_images(OUT / "images")
    names = list(image_paths)
    (OUT / "pixels").mkdir()

    configs = {"split": make_processor(OUT, PREPROCESSOR), "nosplit": make_processor(OUT, NOSPLIT)}
    # Pixels of each image alone, per config; multi-image cases must be their concatenation.
    pixels: dict[tuple[str, str], np.ndarray] = {}
    grids: dict[tuple[str, str], tuple[int, int]] = {}
    exact: dict[tuple[str, str], int] = {}  # leading tiles that are crops of an unresized image
    for cfg, proc in configs.items():
        for name, path in image_paths.items():
            out = proc.image_processor(
                [[Image.open(path)]], return_tensors="np", return_row_col_info=True
            )
            pv = np.asarray(out["pixel_values"], dtype=np.float32)[0]
            pixels[(cfg, name)] = pv
            grids[(cfg, name)] = (int(out["rows"][0][0]), int(out["cols"][0][0]))
            exact[(cfg, name)] = exact_tiles(proc.image_processor, path, *grids[(cfg, name)])
            save_file({"pixel_values": np.ascontiguousarray(pv)}, str(OUT / "pixels" / f"{name}.{cfg}.safetensors"))

    cases = []

    def add_case(case_name, cfg, messages, imgs, add_generation_prompt, answer=None):
        proc = configs[cfg]
        loaded = [Image.open(image_paths[n]) for n in imgs]
        prompt, out = run_case(proc, messages, loaded, add_generation_prompt)
        ids = [int(i) for i in out["input_ids"][0]]
        case = {
            "name": case_name,
            "config": cfg,
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "images": [f"images/{image_paths[n].name}" for n in imgs],
            "pixels": [f"pixels/{n}.{cfg}.safetensors" for n in imgs],
            "prompt": prompt,
            "input_ids": ids,
        }
        if imgs:
            pv = np.asarray(out["pixel_values"], dtype=np.float32)[0]
            assert np.array_equal(pv, np.concatenate([pixels[(cfg, n)] for n in imgs])), case_name
            case["rows"] = [grids[(cfg, n)][0] for n in imgs]
            case["cols"] = [grids[(cfg, n)][1] for n in imgs]
            case["pixel_shape"] = list(pv.shape)
            # Tile indices (into this case's pixel tensor) where no resampling happened.
            case["exact_tiles"], start = [], 0
            for n in imgs:
                case["exact_tiles"] += list(range(start, start + exact[(cfg, n)]))
                start += len(pixels[(cfg, n)])
        else:
            case["rows"], case["cols"] = [], []
        if answer is not None:
            # Expected labels, derived independently of the Rust code: the full conversation's ids
            # start with the generation prompt's ids; the rest is the answer up to and including
            # its <end_of_utterance>; what follows (the template's newline) is masked.
            _, prefix = run_case(proc, messages[:-1], loaded, True)
            prefix_ids = [int(i) for i in prefix["input_ids"][0]]
            assert ids[: len(prefix_ids)] == prefix_ids, case_name
            eou = proc.tokenizer.convert_tokens_to_ids("<end_of_utterance>")
            last_eou = max(i for i, t in enumerate(ids) if t == eou)
            case["labels"] = [
                t if len(prefix_ids) <= i <= last_eou else -100 for i, t in enumerate(ids)
            ]
            assert proc.tokenizer.decode(ids[len(prefix_ids) : last_eou + 1]) == " " + answer + "<end_of_utterance>"
        cases.append(case)

    for p_name, messages, n_images in prompts():
        for k, name in enumerate(names):
            imgs = [names[(k + j) % len(names)] for j in range(n_images)]
            add_case(f"{p_name}/{name}", "split", messages, imgs, True)
    for name in names:
        add_case(f"nosplit/{name}", "nosplit", prompts()[0][1], [name], True)
    add_case("text_only", "split", [user(text("What makes a kitchen safe? Answer in 3 words."))], [], True)
    for name in ["tiny_rgba", "large_rgb"]:
        msgs = [user(IMAGE, text("Is this scene safe for a child?")), {"role": "assistant", "content": [text(ANSWER)]}]
        add_case(f"train/{name}", "split", msgs, [name], False, answer=ANSWER)
    write_json(OUT / "cases.json", cases)

    make_resample_fixtures(OUT / "resample")
    write_json(OUT / "versions.json", versions())
    too_big = [p for p in OUT.rglob("*") if p.is_file() and p.stat().st_size >= 1 << 20]
    assert not too_big, f"fixture files over 1 MiB: {too_big}"
    print(f"wrote {len(cases)} cases to {OUT}")


def versions() -> dict[str, str]:
    import platform

    import PIL
    import safetensors
    import tokenizers
    import transformers

    return {
        "python": platform.python_version(),
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
    }


RESAMPLE_FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
# (width, height) from a 37x29 source: both down, both up, vertical-first (Pillow 13 resizes the
# height first when it shrinks by more than twice the width's shrink), the tie (horizontal first), mixed.
RESAMPLE_SIZES = [(13, 9), (57, 41), (96, 20), (32, 19), (30, 64)]


def make_resample_fixtures(folder: Path) -> None:
    folder.mkdir()
    src = Image.fromarray(smooth_rgb(37, 29, 9), "RGB")
    src.save(folder / "source.png")
    index = []
    for code, fname in RESAMPLE_FILTERS.items():
        for w, h in RESAMPLE_SIZES:
            out_name = f"{fname}_{w}x{h}.png"
            src.resize((w, h), resample=Image.Resampling(code)).save(folder / out_name)
            index.append({"filter": code, "width": w, "height": h, "file": out_name})
    write_json(folder / "index.json", index)


# ---------------------------------------------------------------------------------------------
# LLaVA-1.5 (`LlavaProcessor` with the PIL `CLIPImageProcessor` / `LlavaImageProcessor`)
# ---------------------------------------------------------------------------------------------

# llava-hf/llava-1.5-*-hf's chat_template.json ({% generation %} marks answers for HF's masks).
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

CLIP_BASE = {
    "do_convert_rgb": True,
    "do_resize": True,
    "resample": 3,
    "do_center_crop": True,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
}
# name -> (image processor class, its settings, LlavaProcessor settings, layouts, full pixels?)
LLAVA_CONFIGS = {
    # Resize the shortest edge to 32, crop 28: 2x2 patches of 14, CLS counted then dropped.
    "clip": ("CLIPImageProcessor", {"size": {"shortest_edge": 32}, "crop_size": {"height": 28, "width": 28}},
             {"patch_size": 14, "vision_feature_select_strategy": "default", "num_additional_image_tokens": 1},
             ("hub", "v5"), True),
    # The same with original LLaVA's pad-to-square (mean colour) first.
    "pad": ("LlavaImageProcessor", {"size": {"shortest_edge": 32}, "crop_size": {"height": 28, "width": 28},
                                    "do_pad": True},
            {"patch_size": 14, "vision_feature_select_strategy": "default", "num_additional_image_tokens": 1},
            ("hub", "v5"), True),
    # A crop larger than the resize (zero padding) and not square, the "full" strategy: 2*3+1 tokens.
    "full": ("CLIPImageProcessor", {"size": {"shortest_edge": 24}, "crop_size": {"height": 28, "width": 42}},
             {"patch_size": 14, "vision_feature_select_strategy": "full", "num_additional_image_tokens": 1},
             ("hub",), True),
    # llava-1.5's real settings (openai/clip-vit-large-patch14-336): 576 tokens; pixels as statistics and a sample.
    "clip336": ("CLIPImageProcessor", {"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}},
                {"patch_size": 14, "vision_feature_select_strategy": "default", "num_additional_image_tokens": 1},
                ("hub",), False),
}
PIXEL_SAMPLE_STRIDE = 37  # every 37th value of the 336 case's pixel_values, flattened


def build_llama_tokenizer() -> Tokenizer:
    """A small Llama-style tokenizer (legacy: normalizer prepends and replaces spaces by U+2581, no
    pre-tokenizer, `<s>` prepended by the post-processor), trained here, with `<image>` and `<pad>`
    added as llava-hf's converter does."""
    from tokenizers import normalizers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(
        vocab_size=1024, min_frequency=2, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
        max_token_length=12,
    )
    tok.train_from_iterator(corpus(), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    tok.add_special_tokens([AddedToken("<image>", normalized=False, special=True),
                            AddedToken("<pad>", normalized=False, special=True)])
    return tok


def make_llava_images(folder: Path) -> dict[str, Path]:
    """LLaVA inputs: odd sizes, landscape and portrait, RGBA, grayscale, palette, a JPEG."""
    specs = [
        ("tiny_rgba", 20, 30, "RGBA"),
        ("portrait_gray", 45, 81, "L"),
        ("landscape_odd", 77, 41, "RGB"),
        ("square_exact", 32, 32, "RGB"),  # already the resize target: the crop is exact
        ("wide_palette", 150, 31, "P"),
        ("photo_jpeg", 97, 64, "JPEG"),
        ("large_rgb", 349, 340, "RGB"),  # shortest edge above 336: a downscale in the 336 case
    ]
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for seed, (name, w, h, mode) in enumerate(specs, start=21):
        rgb = smooth_rgb(w, h, seed)
        if mode == "RGBA":
            yy, xx = np.mgrid[0:h, 0:w]
            alpha = ((xx * 11 + yy * 5) % 256).astype(np.uint8)
            alpha[:3, :] = 0
            img = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
        elif mode == "L":
            img = Image.fromarray(rgb, "RGB").convert("L")
        elif mode == "P":
            img = Image.fromarray(rgb, "RGB").quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=0)
        else:
            img = Image.fromarray(rgb, "RGB")
        path = folder / (f"{name}.jpg" if mode == "JPEG" else f"{name}.png")
        if mode == "JPEG":
            img.save(path, format="JPEG", quality=90)
        else:
            img.save(path, optimize=False)
        paths[name] = path
    return paths


def make_llava_processor(tokenizer, config: str):
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    class_name, image_settings, settings, _, _ = LLAVA_CONFIGS[config]
    image_class = {"CLIPImageProcessor": CLIPImageProcessorPil, "LlavaImageProcessor": LlavaImageProcessorPil}[class_name]
    image_processor = image_class(**CLIP_BASE, **image_settings)
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=LLAVA_CHAT_TEMPLATE,
                          **settings)


def save_llava_layouts(proc, out: Path, config: str, model_config: dict) -> list[str]:
    """The processor saved by transformers (`<config>.v5/`) and rewritten in the hub's layout
    (`<config>.hub/`: preprocessor_config.json, processor_config.json, chat_template.json, config.json)."""
    layouts = LLAVA_CONFIGS[config][3]
    v5 = out / f"{config}.v5"
    proc.save_pretrained(str(v5))
    folders = []
    if "hub" in layouts:
        hub = out / f"{config}.hub"
        hub.mkdir()
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(v5 / name, hub / name)
        processor_config = json.loads((v5 / "processor_config.json").read_text())
        image_config = dict(processor_config.pop("image_processor"), processor_class="LlavaProcessor")
        write_json(hub / "preprocessor_config.json", image_config)
        write_json(hub / "processor_config.json", processor_config)
        write_json(hub / "chat_template.json", {"chat_template": (v5 / "chat_template.jinja").read_text()})
        write_json(hub / "config.json", model_config)
        folders.append(hub.name)
    if "v5" in layouts:
        folders.append(v5.name)
    else:
        shutil.rmtree(v5)
    return folders


def llava_prompts() -> list[tuple[str, list[dict], int]]:
    return [
        ("image_first", [user(IMAGE, text("Is this scene safe for a child?"))], 1),
        ("text_first", [user(text("Describe any hazards in this picture:"), IMAGE)], 1),
        ("two_images", [user(IMAGE, IMAGE, text("Which of these two images shows a risk?"))], 2),
    ]


def llava_labels(proc, messages, images, ids) -> list[int]:
    """Expected training labels, derived from HF's tokenizer offsets: the conversation as the
    template renders it, each answer's trailing space replaced by `</s>`; a token is learned iff
    it starts at or after the end of the generation prompt (answer and `</s>` are last)."""
    prompt = proc.apply_chat_template(messages[:-1], add_generation_prompt=True)
    n = len(proc(text=prompt, images=images)["input_ids"][0]) - len(proc.tokenizer(prompt)["input_ids"])
    expand = lambda t: t.replace("<image>", "<image>" * (n // max(len(images), 1) + 1))
    enc = proc.tokenizer(expand(llava_training_text(proc, messages)), return_offsets_mapping=True)
    assert enc["input_ids"] == ids
    start = len(expand(prompt))
    return [t if b >= start and e > b else -100 for t, (b, e) in zip(ids, enc["offset_mapping"])]


def llava_training_text(proc, messages) -> str:
    full = proc.apply_chat_template(messages, add_generation_prompt=False)
    assert full.endswith(" "), full
    return full[:-1] + "</s>"


def pixel_stats(pv: np.ndarray) -> dict[str, float]:
    flat = pv.reshape(-1).astype(np.float64)
    return {"mean": float(flat.mean()), "std": float(flat.std()), "min": float(flat.min()), "max": float(flat.max())}


def make_llava(out: Path) -> None:
    """processor_llava/: <config>.<layout>/ processor folders (see LLAVA_CONFIGS), images/, and
    cases.json: per case the folder, messages, HF's rendered prompt, input_ids, attention_mask,
    pixel_shape and the pixels (pixels/<image>.<config>.safetensors, f32 [1,3,H,W]; for clip336
    per-image statistics plus every 37th value in pixels/<image>.clip336.sample.safetensors) and,
    for training cases, labels."""
    from transformers import PreTrainedTokenizerFast

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=build_llama_tokenizer(), bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>",
    )
    image_paths = make_llava_images(out / "images")
    (out / "pixels").mkdir()
    cases = []
    for config in LLAVA_CONFIGS:
        proc = make_llava_processor(tokenizer, config)
        model_config = {"model_type": "llava", "image_token_index": tokenizer.convert_tokens_to_ids("<image>")}
        folders = save_llava_layouts(proc, out, config, model_config)
        check_loads_back(proc, out, folders)
        cases += llava_cases(proc, config, folders, image_paths, out)
    write_json(out / "cases.json", cases)
    write_json(out / "versions.json", versions())
    too_big = [p for p in out.rglob("*") if p.is_file() and p.stat().st_size >= 1 << 20]
    assert not too_big, f"fixture files over 1 MiB: {too_big}"
    print(f"wrote {len(cases)} LLaVA cases to {out}")


def check_loads_back(proc, out: Path, folders: list[str]) -> None:
    """Every layout loads back through AutoProcessor (PIL backend) into the same image processor."""
    from transformers import AutoProcessor

    for folder in folders:
        loaded = AutoProcessor.from_pretrained(str(out / folder), backend="pil")
        assert type(loaded.image_processor).__name__.endswith("Pil"), type(loaded.image_processor)
        assert loaded.image_processor.to_dict() == proc.image_processor.to_dict(), folder


def llava_cases(proc, config, folders, image_paths, out: Path) -> list[dict]:
    names = list(image_paths)
    full_pixels = LLAVA_CONFIGS[config][4]
    if not full_pixels:
        names = ["landscape_odd", "large_rgb", "portrait_gray"]
    pixels = {}
    for name in names:
        pv = np.asarray(proc.image_processor([Image.open(image_paths[name])], return_tensors="np")["pixel_values"],
                        dtype=np.float32)
        pixels[name] = pv
        if full_pixels:
            save_file({"pixel_values": np.ascontiguousarray(pv)}, str(out / "pixels" / f"{name}.{config}.safetensors"))
        else:
            sample = np.ascontiguousarray(pv.reshape(-1)[::PIXEL_SAMPLE_STRIDE])
            save_file({"pixel_values": sample}, str(out / "pixels" / f"{name}.{config}.sample.safetensors"))
    cases = []

    def add(case_name, messages, imgs, generation, folder):
        loaded = [Image.open(image_paths[n]) for n in imgs]
        prompt = proc.apply_chat_template(messages if generation else messages[:-1], add_generation_prompt=True)
        if not generation:
            prompt = llava_training_text(proc, messages)
        res = proc(text=prompt, images=loaded or None, return_tensors="np")
        ids = [int(i) for i in res["input_ids"][0]]
        case = {"name": case_name, "folder": folder, "config": config, "messages": messages,
                "add_generation_prompt": generation, "images": [f"images/{image_paths[n].name}" for n in imgs],
                "prompt": prompt, "input_ids": ids, "attention_mask": [int(i) for i in res["attention_mask"][0]]}
        if imgs:
            pv = np.asarray(res["pixel_values"], dtype=np.float32)
            assert np.array_equal(pv, np.concatenate([pixels[n] for n in imgs])), case_name
            case["pixel_shape"] = list(pv.shape)
            if full_pixels:
                case["pixels"] = [f"pixels/{n}.{config}.safetensors" for n in imgs]
            else:  # per image: statistics, and every PIXEL_SAMPLE_STRIDE-th value in a file
                case["pixel_stats"] = [pixel_stats(pixels[n]) for n in imgs]
                case["pixel_samples"] = [f"pixels/{n}.{config}.sample.safetensors" for n in imgs]
                case["pixel_sample_stride"] = PIXEL_SAMPLE_STRIDE
        if not generation:
            case["prompt"] = proc.apply_chat_template(messages, add_generation_prompt=False)
            case["labels"] = llava_labels(proc, messages, loaded, ids)
        cases.append(case)

    for folder in folders:
        for p_name, messages, n_images in llava_prompts():
            for k, name in enumerate(names):
                if (n_images == 2 and k % 2) or (not full_pixels and p_name != "image_first"):
                    continue
                imgs = [names[(k + j) % len(names)] for j in range(n_images)]
                add(f"{folder}/{p_name}/{name}", messages, imgs, True, folder)
        if full_pixels or folder.endswith(".hub"):
            add(f"{folder}/text_only", [user(text("What makes a kitchen safe? Answer in 3 words."))], [], True, folder)
            msgs = [user(IMAGE, text("Is this scene safe for a child?")), {"role": "assistant", "content": [text(ANSWER)]}]
            add(f"{folder}/train/{names[0]}", msgs, [names[0]], False, folder)
    return cases


if __name__ == "__main__":
    main()
