//! Helpers shared by the integration tests: the CPU backend, fixture discovery and reading,
//! tiny random configs, and tensor comparisons.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Int, Tensor, TensorData};
use safeaware_model::registry::Family;
use safeaware_model::safetensors_io::{write_safetensors, OutTensor};
use safeaware_model::text_decoder::{self, TextDecoder};
use safeaware_model::{FloatDtype, Idefics3Config, LlavaConfig, VlmInput};
use serde_json::json;

/// The CPU backend the tests run on.
pub type Cpu = burn::backend::Flex;

/// Its device.
pub type Device = burn::backend::flex::FlexDevice;

/// The fixture root of this crate.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// Sorted sub-folders of `dir` (empty when `dir` does not exist).
pub fn sub_folders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// Parity fixture folders: the committed ones plus `SAFEAWARE_PARITY_FIXTURES` (colon-separated).
pub fn parity_fixtures() -> Vec<PathBuf> {
    let mut folders = sub_folders(&fixtures_dir().join("parity"));
    if let Ok(extra) = std::env::var("SAFEAWARE_PARITY_FIXTURES") {
        folders.extend(
            extra
                .split(':')
                .filter(|s| !s.trim().is_empty())
                .map(PathBuf::from),
        );
    }
    folders
}

#[allow(unused_imports)]
pub use safeaware_model::parity::{max_abs_diff, read_f32};

/// The family of a parity fixture's model, or of a config-only folder.
pub fn family_of(folder: &Path) -> Family {
    let dir = if folder.join("model").is_dir() {
        folder.join("model")
    } else {
        folder.to_owned()
    };
    Family::of_folder(&dir).expect("a config.json of a registered family")
}

/// The parity fixtures of the Idefics3 / SmolVLM family.
pub fn idefics3_fixtures() -> Vec<PathBuf> {
    let folders = parity_fixtures().into_iter();
    folders
        .filter(|f| family_of(f) == Family::Idefics3)
        .collect()
}

/// The parity fixtures of the LLaVA family.
pub fn llava_fixtures() -> Vec<PathBuf> {
    let folders = parity_fixtures().into_iter();
    folders.filter(|f| family_of(f) == Family::Llava).collect()
}

/// A tiny LLaVA config: CLIP 28 px / patch 14 (4 image tokens per image, `default`), three
/// CLIP layers read at -2, a GQA text model, image token id 60.
pub fn tiny_llava_config(tied: bool) -> LlavaConfig {
    LlavaConfig::from_value(json!({
        "model_type": "llava",
        "image_token_index": 60,
        "tie_word_embeddings": tied,
        "vision_config": {"model_type": "clip_vision_model", "hidden_size": 16, "intermediate_size": 32,
                          "num_hidden_layers": 3, "num_attention_heads": 2, "image_size": 28, "patch_size": 14},
        "text_config": {"model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
                        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                        "rms_norm_eps": 1e-5, "pad_token_id": 0, "eos_token_id": 2}
    }))
    .expect("valid tiny LLaVA config")
}

/// [`tiny_input`]'s token rows (each with a four-token image span) and two 28-px images.
pub fn tiny_llava_input(device: &Device) -> VlmInput<Cpu> {
    let input = tiny_input(device);
    VlmInput::new(input.input_ids, Some(pixels(2, 28, 1, device)))
}

/// A fixture's inputs as a CPU batch ([`safeaware_model::parity::fixture_input`]).
pub fn fixture_input(folder: &Path, device: &Device) -> Result<VlmInput<Cpu>, String> {
    safeaware_model::parity::fixture_input(folder, device).map_err(|e| e.to_string())
}

/// A tiny config: GQA text model, 2×2 image tokens per 16-px tile, image token id 60.
pub fn tiny_config(tied: bool) -> Idefics3Config {
    Idefics3Config::from_value(json!({
        "model_type": "idefics3",
        "image_token_id": 60,
        "scale_factor": 2,
        "tie_word_embeddings": tied,
        "vision_config": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
                          "num_attention_heads": 2, "image_size": 16, "patch_size": 4},
        "text_config": {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
                        "rope_theta": 10000.0, "pad_token_id": 0, "eos_token_id": 2}
    }))
    .expect("valid tiny config")
}

/// Deterministic pseudo-random pixels in [-1, 1) for `tiles` 16-px tiles.
pub fn tiny_pixels(tiles: usize, seed: u32, device: &Device) -> Tensor<Cpu, 4> {
    pixels(tiles, 16, seed, device)
}

/// Deterministic pseudo-random pixels in [-1, 1) for `count` images of `size`² pixels.
pub fn pixels(count: usize, size: usize, seed: u32, device: &Device) -> Tensor<Cpu, 4> {
    let n = count * 3 * size * size;
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [count, 3, size, size]), device)
}

/// Row-major f32 values of a tensor.
pub fn values<const D: usize>(t: Tensor<Cpu, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// The rows of an int tensor `[B, T]`.
pub fn int_rows(t: &Tensor<Cpu, 2, Int>) -> Vec<Vec<i64>> {
    let [_, seq] = t.dims();
    let flat = t.to_data().convert::<i64>().to_vec::<i64>().unwrap();
    flat.chunks(seq.max(1)).map(<[i64]>::to_vec).collect()
}

/// Two rows of eight token ids, each with a four-token image span, and two tiles of pixels.
pub fn tiny_input(device: &Device) -> VlmInput<Cpu> {
    let ids: Vec<i64> = [
        [1, 5, 60, 60, 60, 60, 7, 9],
        [1, 60, 60, 60, 60, 11, 12, 13],
    ]
    .concat();
    VlmInput::new(
        Tensor::<Cpu, 2, Int>::from_data(TensorData::new(ids, [2, 8]), device),
        Some(tiny_pixels(2, 1, device)),
    )
}

/// The model's logits for `input`, flattened.
pub fn logits<M: TextDecoder<Cpu>>(model: &M, input: &VlmInput<Cpu>) -> Vec<f32> {
    values(text_decoder::forward(model, input).unwrap())
}

/// The Python of the tools venv (`tools/.venv`, made by `tools/setup_venv.sh`, see
/// tools/README.md); a missing or broken venv fails the calling test.
pub fn venv_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/.venv/bin/python");
    let ready = python.is_file()
        && std::process::Command::new(&python)
            .args(["-c", "import torch, transformers, peft"])
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        ready,
        "{} is missing or lacks torch/transformers/peft: run tools/setup_venv.sh (tools/test.sh \
         does); the interop tests fail rather than skip without it",
        python.display()
    );
    python
}

/// Writes `pixels` to `path` as the safetensors tensor `pixel_values`, as the venv scripts read it.
pub fn write_pixels(path: &Path, pixels: &Tensor<Cpu, 4>) {
    let shape = pixels.dims().to_vec();
    write_safetensors(
        path,
        &[("pixel_values".into(), shape.clone())],
        FloatDtype::F32,
        |_| OutTensor {
            name: "pixel_values".into(),
            shape: shape.clone(),
            values: values(pixels.clone()),
        },
    )
    .unwrap();
}

/// Runs `script` in the venv's Python with `args` and then `out`, and returns the `logits` it
/// saved to `out`; `who` names the reference in the failure message.
pub fn venv_logits(
    python: &Path,
    script: &str,
    args: &[String],
    out: &Path,
    who: &str,
) -> Vec<f32> {
    let run = Command::new(python)
        .args(["-c", script])
        .args(args)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{who} failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    read_f32(out, "logits").unwrap().1
}
