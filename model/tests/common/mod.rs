//! Helpers shared by the integration tests: the CPU backend, fixture discovery and reading,
//! tiny random configs, and tensor comparisons.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use safeaware_model::{Idefics3Config, VlmInput};
use safetensors::tensor::{Dtype, SafeTensors};
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

/// A tensor read from a safetensors file: shape and values (floats as f32, ints as i64).
pub enum Read {
    /// Float data.
    F32(Vec<usize>, Vec<f32>),
    /// Integer data.
    I64(Vec<usize>, Vec<i64>),
}

/// Reads tensor `name` of `path`, failing with a message naming both.
pub fn read_tensor(path: &Path, name: &str) -> Result<Read, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format!("{}: {e:?}", path.display()))?;
    let view = st
        .tensor(name)
        .map_err(|e| format!("{}: tensor `{name}`: {e:?}", path.display()))?;
    let shape = view.shape().to_vec();
    let data = view.data();
    match view.dtype() {
        Dtype::F32 => Ok(Read::F32(
            shape,
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
        )),
        Dtype::I64 => Ok(Read::I64(
            shape,
            data.chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                .collect(),
        )),
        other => Err(format!(
            "{}: tensor `{name}` has unexpected dtype {other:?}",
            path.display()
        )),
    }
}

/// Reads a float tensor.
pub fn read_f32(path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
    match read_tensor(path, name)? {
        Read::F32(shape, values) => Ok((shape, values)),
        Read::I64(..) => Err(format!("{}: `{name}` should be f32", path.display())),
    }
}

/// Reads an integer tensor.
pub fn read_i64(path: &Path, name: &str) -> Result<(Vec<usize>, Vec<i64>), String> {
    match read_tensor(path, name)? {
        Read::I64(shape, values) => Ok((shape, values)),
        Read::F32(..) => Err(format!("{}: `{name}` should be i64", path.display())),
    }
}

/// A fixture's inputs as a model batch. Tiles are flattened in batch order; all-zero tiles
/// (HF's padding images) are dropped as HF drops them.
pub fn fixture_input(folder: &Path, device: &Device) -> Result<VlmInput<Cpu>, String> {
    let path = folder.join("inputs.safetensors");
    let (id_shape, ids) = read_i64(&path, "input_ids")?;
    let (mask_shape, mask) = read_i64(&path, "attention_mask")?;
    let (pix_shape, pixels) = read_f32(&path, "pixel_values")?;
    if id_shape.len() != 2
        || mask_shape != id_shape
        || pix_shape.len() != 5
        || pix_shape[0] != id_shape[0]
    {
        return Err(format!(
            "{}: inconsistent shapes {id_shape:?} {mask_shape:?} {pix_shape:?}",
            path.display()
        ));
    }
    let tile: usize = pix_shape[2..].iter().product();
    let kept: Vec<f32> = pixels
        .chunks(tile)
        .filter(|t| t.iter().any(|&v| v != 0.0))
        .flatten()
        .copied()
        .collect();
    let tiles = kept.len() / tile;
    let shape = [id_shape[0], id_shape[1]];
    Ok(VlmInput {
        input_ids: Tensor::<Cpu, 2, Int>::from_data(TensorData::new(ids, shape), device),
        attention_mask: Some(Tensor::<Cpu, 2, Int>::from_data(
            TensorData::new(mask, shape),
            device,
        )),
        pixel_values: (tiles > 0).then(|| {
            Tensor::from_data(
                TensorData::new(kept, [tiles, pix_shape[2], pix_shape[3], pix_shape[4]]),
                device,
            )
        }),
    })
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
    let n = tiles * 3 * 16 * 16;
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [tiles, 3, 16, 16]), device)
}

/// Row-major f32 values of a tensor.
pub fn values<const D: usize>(t: Tensor<Cpu, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The rows of an int tensor `[B, T]`.
pub fn int_rows(t: &Tensor<Cpu, 2, Int>) -> Vec<Vec<i64>> {
    let [_, seq] = t.dims();
    let flat = t.to_data().convert::<i64>().to_vec::<i64>().unwrap();
    flat.chunks(seq.max(1)).map(<[i64]>::to_vec).collect()
}
