#!/usr/bin/env python3
"""Build the processor parity fixtures in data/tests/fixtures/processor/ with HF's Idefics3Processor.

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
"""

from __future__ import annotations

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
OUT = ROOT / "data" / "tests" / "fixtures" / "processor"

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


if __name__ == "__main__":
    main()
