"""Qwen2-VL processor parity fixtures (data/tests/fixtures/processor_qwen2_vl/), made with HF's
`Qwen2VLProcessor` and the PIL `Qwen2VLImageProcessorPil`; called by make_processor_fixtures.py
(`--only qwen2_vl`).

What it writes:

* <config>.hub/ and <config>.v5/: the processor folder in the hub's layout (preprocessor_config.json
  with `min_pixels`/`max_pixels`, processor_config.json, chat_template.json, config.json) and as
  transformers 5 saves it (processor_config.json with the nested image processor, `size` bounds,
  chat_template.jinja). Configs: `small` (784..3136 pixels: at most 16 patches, every pixel
  compared) and `default` (HF's 3136..12845056: statistics and every 37th value compared);
* images/: the LLaVA fixtures' synthetic images (odd sizes, RGBA, L, P, a JPEG) and one whose
  sides round half to even;
* pixels/<image>.<config>[.sample].safetensors: HF's pixel_values [patches, C*T*P*P] (f32);
* cases.json: per case the folder, messages, HF's rendered prompt, input_ids, image_grid_thw, the
  pixel files and, for training cases, the labels (answer and `<|im_end|>` learned, derived from
  HF's tokenizer offsets).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.numpy import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

import make_processor_fixtures as base

# Qwen2-VL-Instruct's chat template (the hub's chat_template.json).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: "
    "{% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
CONFIGS = {  # name: (min_pixels, max_pixels, every pixel saved)
    "small": (28 * 28, 28 * 28 * 4, True),
    "default": (56 * 56, 28 * 28 * 1280, False),
}
PIXEL_SAMPLE_STRIDE = 37


def build_tokenizer() -> Tokenizer:
    """A small byte-level BPE (Qwen2's kind of tokenizer) trained here, with Qwen2-VL's special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=1024, min_frequency=2, special_tokens=SPECIAL[:3],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(base.corpus(), trainer)
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL[3:]])
    return tok


def without_video_processor() -> None:
    """Lets `Qwen2VLProcessor` be built, saved and loaded without its video processor (whose
    class needs torchvision, which the tools venv does not have; images never touch it)."""
    from transformers import Qwen2VLProcessor

    attributes = Qwen2VLProcessor.get_attributes.__func__
    if getattr(attributes, "image_only", False):
        return

    def image_only(cls):
        return [a for a in attributes(cls) if a != "video_processor"]

    image_only.image_only = True
    Qwen2VLProcessor.get_attributes = classmethod(image_only)


def make_processor(tokenizer, config: str):
    from transformers import Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    without_video_processor()
    min_pixels, max_pixels, _ = CONFIGS[config]
    image_processor = Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)
    return Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def save_layouts(proc, out: Path, config: str, model_config: dict) -> list[str]:
    """`<config>.v5/` as transformers saves it, and `<config>.hub/` rewritten in the hub's layout."""
    v5 = out / f"{config}.v5"
    proc.save_pretrained(str(v5))
    write = base.write_json
    write(v5 / "config.json", model_config)
    hub = out / f"{config}.hub"
    hub.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        shutil.copy(v5 / name, hub / name)
    processor_config = json.loads((v5 / "processor_config.json").read_text())
    image_config = dict(processor_config.pop("image_processor"), processor_class="Qwen2VLProcessor")
    min_pixels, max_pixels, _ = CONFIGS[config]
    image_config.pop("size", None)
    image_config.update(min_pixels=min_pixels, max_pixels=max_pixels, image_processor_type="Qwen2VLImageProcessor")
    processor_config.pop("video_processor", None)
    write(hub / "preprocessor_config.json", image_config)
    write(hub / "processor_config.json", processor_config)
    write(hub / "chat_template.json", {"chat_template": (v5 / "chat_template.jinja").read_text()})
    return [hub.name, v5.name]


def prompts() -> list[tuple[str, list[dict], int]]:
    user, text, image = base.user, base.text, base.IMAGE
    return [
        ("image_first", [user(image, text("Is this scene safe for a child?"))], 1),
        ("system_text_first", [{"role": "system", "content": [text("You are a careful safety assistant.")]},
                               user(text("Describe any hazards in this picture:"), image)], 1),
        ("two_images", [user(image, image, text("Which of these two images shows a risk?"))], 2),
    ]


def labels(proc, messages, images, ids) -> list[int]:
    """Training labels from HF's offsets: a token is learned iff it starts inside the answer,
    which runs from the end of the generation prompt through its `<|im_end|>`."""
    full = proc.apply_chat_template(messages, add_generation_prompt=False)
    prompt = proc.apply_chat_template(messages[:-1], add_generation_prompt=True)
    grids = proc.image_processor(images, return_tensors="np")["image_grid_thw"] if images else []
    counts = iter(int(np.prod(g)) // proc.image_processor.merge_size ** 2 for g in grids)
    pieces = full.split("<|image_pad|>")
    expanded = pieces[0] + "".join("<|image_pad|>" * next(counts) + p for p in pieces[1:])
    enc = proc.tokenizer(expanded, return_offsets_mapping=True)
    assert enc["input_ids"] == ids
    start = len(expanded) - (len(full) - len(prompt))
    end = expanded.rindex("<|im_end|>") + len("<|im_end|>")
    return [t if start <= b < end else -100 for t, (b, _) in zip(ids, enc["offset_mapping"])]


def save_pixels(proc, config, names, paths, out: Path) -> dict[str, np.ndarray]:
    full = CONFIGS[config][2]
    pixels = {}
    for name in names:
        res = proc.image_processor([Image.open(paths[name])], return_tensors="np")
        pv = np.ascontiguousarray(np.asarray(res["pixel_values"], dtype=np.float32))
        pixels[name] = pv
        stem = out / "pixels" / f"{name}.{config}"
        if full:
            save_file({"pixel_values": pv}, f"{stem}.safetensors")
        else:
            save_file({"pixel_values": np.ascontiguousarray(pv.reshape(-1)[::PIXEL_SAMPLE_STRIDE])},
                      f"{stem}.sample.safetensors")
    return pixels


def cases_for(proc, config, folders, paths, out: Path) -> list[dict]:
    full = CONFIGS[config][2]
    names = list(paths) if full else ["landscape_odd", "large_rgb", "half_even"]
    pixels = save_pixels(proc, config, names, paths, out)
    cases = []

    def add(case_name, messages, imgs, generation, folder):
        loaded = [Image.open(paths[n]) for n in imgs]
        prompt = proc.apply_chat_template(messages, add_generation_prompt=generation)
        res = proc(text=prompt, images=loaded or None, return_tensors="np")
        ids = [int(i) for i in res["input_ids"][0]]
        case = {"name": case_name, "folder": folder, "config": config, "messages": messages,
                "add_generation_prompt": generation, "images": [f"images/{paths[n].name}" for n in imgs],
                "prompt": prompt, "input_ids": ids}
        if imgs:
            pv = np.asarray(res["pixel_values"], dtype=np.float32)
            assert np.array_equal(pv, np.concatenate([pixels[n] for n in imgs])), case_name
            case["image_grid_thw"] = [[int(x) for x in g] for g in res["image_grid_thw"]]
            case["pixel_shape"] = list(pv.shape)
            if full:
                case["pixels"] = [f"pixels/{n}.{config}.safetensors" for n in imgs]
            else:
                case["pixel_stats"] = [base.pixel_stats(pixels[n]) for n in imgs]
                case["pixel_samples"] = [f"pixels/{n}.{config}.sample.safetensors" for n in imgs]
                case["pixel_sample_stride"] = PIXEL_SAMPLE_STRIDE
        if not generation:
            case["labels"] = labels(proc, messages, loaded, ids)
        cases.append(case)

    for folder in folders:
        for p_name, messages, n_images in prompts():
            for k, name in enumerate(names):
                if n_images == 2 and k % 2:
                    continue
                imgs = [names[(k + j) % len(names)] for j in range(n_images)]
                add(f"{folder}/{p_name}/{name}", messages, imgs, True, folder)
        add(f"{folder}/text_only", [base.user(base.text("What makes a kitchen safe?"))], [], True, folder)
        msgs = [base.user(base.IMAGE, base.text("Is this scene safe for a child?")),
                {"role": "assistant", "content": [base.text(base.ANSWER)]}]
        add(f"{folder}/train/{names[0]}", msgs, [names[0]], False, folder)
    return cases


def make_qwen2_vl(out: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=build_tokenizer(), eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", unk_token=None)
    paths = base.make_llava_images(out / "images")
    # Sides at odd multiples of 14 (70 / 28 = 2.5, 98 / 28 = 3.5): Python rounds them half to even.
    paths["half_even"] = out / "images" / "half_even.png"
    Image.fromarray(base.smooth_rgb(70, 98, 41), "RGB").save(paths["half_even"], optimize=False)
    (out / "pixels").mkdir()
    model_config = {"model_type": "qwen2_vl", "image_token_id": tokenizer.convert_tokens_to_ids("<|image_pad|>")}
    cases = []
    for config in CONFIGS:
        proc = make_processor(tokenizer, config)
        folders = save_layouts(proc, out, config, model_config)
        base.check_loads_back(proc, out, folders)
        cases += cases_for(proc, config, folders, paths, out)
    base.write_json(out / "cases.json", cases)
    base.write_json(out / "versions.json", base.versions())
    too_big = [p for p in out.rglob("*") if p.is_file() and p.stat().st_size >= 1 << 20]
    assert not too_big, f"fixture files over 1 MiB: {too_big}"
    print(f"wrote {len(cases)} Qwen2-VL cases to {out}")
