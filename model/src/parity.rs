//! Parity fixtures: an HF `save_pretrained` folder (`model/`) with inputs
//! (`inputs.safetensors`) and HF transformers' outputs (`expected.safetensors`: logits and a
//! KV-cached greedy generation), made by `tools/make_parity_fixtures.py`.
//!
//! Fixtures of any registered family: the model folder loads as a [`Vlm`], which dispatches on
//! its config.json's `model_type`.
//!
//! [`run_fixture`] runs one on any backend and reports the largest logit difference and whether
//! the greedy tokens match. The parity tests, the GPU test suites and `safeaware doctor` all
//! check fixtures through it, so "parity" means the same thing everywhere.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors};

use crate::error::{ModelError, Result};
use crate::generation::GenerationConfig;
use crate::registry::Vlm;
use crate::sampling::TokenSampling;
use crate::vision_language_model::{int_values, VlmInput};
use crate::vlm::VisionLanguageModel;

/// The inputs file of a fixture.
pub const INPUTS_FILE: &str = "inputs.safetensors";
/// HF's outputs for those inputs.
pub const EXPECTED_FILE: &str = "expected.safetensors";
/// The model folder inside a fixture.
pub const MODEL_DIR: &str = "model";

/// How one fixture compares with HF.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParityOutcome {
    /// Largest |logit − HF logit| over every real (unpadded) position of the `[B, T, V]` output
    /// (NaN if any logit is NaN).
    pub max_abs_logit_diff: f32,
    /// Whether every row's greedy tokens equal HF's.
    pub generated_match: bool,
}

impl ParityOutcome {
    /// Within `tolerance` (false for NaN) and the same generation.
    pub fn passes(&self, tolerance: f32) -> bool {
        self.max_abs_logit_diff <= tolerance && self.generated_match
    }
}

/// The fixture folders directly under `root` (those holding an [`EXPECTED_FILE`]), sorted; empty
/// when `root` does not exist.
pub fn fixture_folders(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(EXPECTED_FILE).is_file())
        .collect();
    out.sort();
    out
}

/// The fixture's name: its folder's name.
pub fn fixture_name(folder: &Path) -> String {
    folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| folder.display().to_string())
}

/// Loads the fixture's model on `device` (the family its `config.json`'s `model_type` names),
/// runs the forward pass and greedy generation, and compares both with HF's outputs: logits at
/// real (unpadded) positions only, since a padding position's logits depend on how a query
/// that sees no real key is masked.
pub fn run_fixture<B: Backend>(folder: &Path, device: &B::Device) -> Result<ParityOutcome> {
    if !folder.is_dir() {
        return Err(fixture_error(folder, "the fixture folder does not exist"));
    }
    let model = Vlm::<B>::load(&folder.join(MODEL_DIR), device)?;
    let input = fixture_input::<B>(folder, device)?;
    let expected = folder.join(EXPECTED_FILE);
    let (logit_shape, expected_logits) = read_f32(&expected, "logits")?;

    let logits = model.forward(&input)?;
    if logits.dims().to_vec() != logit_shape {
        return Err(fixture_error(
            &expected,
            format!(
                "logits {:?}, but the model gives {:?}",
                logit_shape,
                logits.dims()
            ),
        ));
    }
    let ours = logits
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| fixture_error(&expected, format!("reading the logits back: {e:?}")))?;
    let real = real_positions(&input);
    let vocab = logit_shape[2];
    let pick = |values: &[f32]| -> Vec<f32> {
        values
            .chunks(vocab)
            .zip(&real)
            .filter(|(_, &r)| r)
            .flat_map(|(row, _)| row.iter().copied())
            .collect()
    };
    let max_abs_logit_diff = max_abs_diff(&pick(&ours), &pick(&expected_logits));

    let generated_match = generation_matches(&model, &input, &expected)?;
    Ok(ParityOutcome {
        max_abs_logit_diff,
        generated_match,
    })
}

/// Whether `model`'s greedy generation on `input` gives the `generated` tokens of `expected`.
fn generation_matches<B: Backend>(
    model: &Vlm<B>,
    input: &VlmInput<B>,
    expected: &Path,
) -> Result<bool> {
    let (gen_shape, expected_generated) = read_i64(expected, "generated")?;
    let [batch, new_tokens] = match gen_shape[..] {
        [b, n] => [b, n],
        _ => {
            return Err(fixture_error(
                expected,
                "`generated` must be [batch, new_tokens]",
            ))
        }
    };
    let config = GenerationConfig {
        max_new_tokens: new_tokens,
        eos_token_ids: Vec::new(),
        sampling: TokenSampling::Greedy,
    };
    let generated = model.generate(input, &config, |_, _| false)?;
    let generated_match = generated.len() == batch
        && generated.iter().enumerate().all(|(row, seq)| {
            let want = &expected_generated[row * new_tokens..(row + 1) * new_tokens];
            seq.tokens
                .iter()
                .map(|&t| t as i64)
                .eq(want.iter().copied())
        });
    Ok(generated_match)
}

/// Per position of `[B, T]`, row-major: whether it is a real token (attention mask 1).
fn real_positions<B: Backend>(input: &VlmInput<B>) -> Vec<bool> {
    let [batch, seq] = input.input_ids.dims();
    match &input.attention_mask {
        Some(mask) => int_values(mask).into_iter().map(|m| m == 1).collect(),
        None => vec![true; batch * seq],
    }
}

/// Largest absolute difference of two equally long slices (NaN if either holds a NaN).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::NAN;
    }
    a.iter().zip(b).fold(0.0f32, |worst, (x, y)| {
        let d = (x - y).abs();
        if d.is_nan() || worst.is_nan() {
            f32::NAN
        } else {
            worst.max(d)
        }
    })
}

/// The fixture's inputs as a model batch. Idefics3's per-row tiles `[B, N, C, H, W]` are
/// flattened in batch order, all-zero tiles (HF's padding images) dropped as HF drops them;
/// LLaVA's images `[N, C, H, W]` are taken as they are; Qwen2-VL's patches `[N, C·T·P·P]`
/// become `[N, 1, 1, C·T·P·P]` next to their `image_grid_thw` `[images, 3]`.
pub fn fixture_input<B: Backend>(folder: &Path, device: &B::Device) -> Result<VlmInput<B>> {
    let path = folder.join(INPUTS_FILE);
    let (id_shape, ids) = read_i64(&path, "input_ids")?;
    let (mask_shape, mask) = read_i64(&path, "attention_mask")?;
    if id_shape.len() != 2 || mask_shape != id_shape {
        return Err(fixture_error(
            &path,
            format!("inconsistent shapes: input_ids {id_shape:?}, attention_mask {mask_shape:?}"),
        ));
    }
    let grids = read_grids(&path)?;
    let pixel_values = fixture_pixels(&path, id_shape[0], grids.is_some(), device)?;
    let shape = [id_shape[0], id_shape[1]];
    let int =
        |values: Vec<i64>| Tensor::<B, 2, Int>::from_data(TensorData::new(values, shape), device);
    Ok(VlmInput {
        input_ids: int(ids),
        attention_mask: Some(int(mask)),
        pixel_values,
        image_grid_thw: grids,
    })
}

/// `image_grid_thw` `[images, 3]` when the inputs hold it (Qwen2-VL).
fn read_grids(path: &Path) -> Result<Option<Vec<[usize; 3]>>> {
    let bytes = std::fs::read(path).map_err(ModelError::io("reading", path))?;
    let has_grids = SafeTensors::deserialize(&bytes)
        .map(|st| st.names().iter().any(|n| n.as_str() == "image_grid_thw"))
        .unwrap_or(false);
    if !has_grids {
        return Ok(None);
    }
    let (shape, values) = read_i64(path, "image_grid_thw")?;
    if shape.len() != 2 || shape[1] != 3 || values.iter().any(|&v| v < 0) {
        return Err(fixture_error(
            path,
            format!("image_grid_thw must be [images, 3] of non-negative sizes, found {shape:?}"),
        ));
    }
    let grids = values
        .chunks(3)
        .map(|g| [g[0] as usize, g[1] as usize, g[2] as usize])
        .collect();
    Ok(Some(grids))
}

/// The fixture's `pixel_values` as the model takes them (see [`fixture_input`]); `None` when
/// no image remains.
fn fixture_pixels<B: Backend>(
    path: &Path,
    batch: usize,
    patches: bool,
    device: &B::Device,
) -> Result<Option<Tensor<B, 4>>> {
    let (pix_shape, pixels) = read_f32(path, "pixel_values")?;
    let per_row = pix_shape.len() == 5 && pix_shape[0] == batch;
    let image_dims: Vec<usize> = match (patches, pix_shape.len()) {
        (true, 2) => vec![1, 1, pix_shape[1]],
        (false, 4) | (false, 5) if per_row || pix_shape.len() == 4 => {
            pix_shape[pix_shape.len() - 3..].to_vec()
        }
        _ => {
            return Err(fixture_error(
                path,
                format!(
                    "pixel_values {pix_shape:?} fits neither per-row tiles, images nor patches"
                ),
            ))
        }
    };
    let tile: usize = image_dims.iter().product();
    let kept: Vec<f32> = pixels
        .chunks(tile.max(1))
        .filter(|t| !per_row || t.iter().any(|&v| v != 0.0))
        .flatten()
        .copied()
        .collect();
    let tiles = kept.len() / tile.max(1);
    Ok((tiles > 0).then(|| {
        let tile_shape = [tiles, image_dims[0], image_dims[1], image_dims[2]];
        Tensor::from_data(TensorData::new(kept, tile_shape), device)
    }))
}

/// Reads float tensor `name` of `path` (f32 on disk).
pub fn read_f32(path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let (shape, bytes) = read_raw(path, name, Dtype::F32)?;
    let values = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((shape, values))
}

/// Reads integer tensor `name` of `path` (i64 on disk).
pub fn read_i64(path: &Path, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
    let (shape, bytes) = read_raw(path, name, Dtype::I64)?;
    let values = bytes
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("chunks of 8")))
        .collect();
    Ok((shape, values))
}

/// Shape and little-endian bytes of tensor `name`, which must have `dtype`.
fn read_raw(path: &Path, name: &str, dtype: Dtype) -> Result<(Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(ModelError::io("reading", path))?;
    let corrupt = |message: String| ModelError::Safetensors {
        path: path.to_path_buf(),
        message,
    };
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| corrupt(format!("corrupt or truncated: {e:?}")))?;
    let view = st
        .tensor(name)
        .map_err(|e| corrupt(format!("tensor `{name}`: {e:?}")))?;
    if view.dtype() != dtype {
        return Err(corrupt(format!(
            "tensor `{name}` is {:?}, expected {dtype:?}",
            view.dtype()
        )));
    }
    Ok((view.shape().to_vec(), view.data().to_vec()))
}

fn fixture_error(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Fixture {
        path: path.to_path_buf(),
        message: message.into(),
    }
}
