//! How a run writes its model: a full HF folder, or (with `[lora]`) a PEFT adapter folder
//! whose `base_model_name_or_path` is the base model's folder — in the weights' own type for
//! step checkpoints (so that a resume is exact) and in `train.save_dtype` for `<run>/final`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use safeaware_data::processor::Processor;
use safeaware_model::{AdapterSpec, FloatDtype, VisionLanguageModel};

/// Sub-folder of a LoRA run holding the base model when it was built from a preset (the
/// adapter folders name it as their base).
pub const BASE_DIR: &str = "base";

/// What a run's model folders hold.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelFormat {
    /// The whole model as an HF folder.
    Full,
    /// The adapters (and the parts trained in full) as a PEFT folder.
    Adapter(AdapterSpec),
}

/// How a run saves its model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutput {
    pub format: ModelFormat,
    /// On-disk type of step checkpoints: the weights' own.
    pub checkpoint_dtype: FloatDtype,
    /// On-disk type of `<run>/final`.
    pub final_dtype: FloatDtype,
}

impl ModelOutput {
    /// The base model folder adapters apply to, when the run trains adapters.
    pub fn adapter_base(&self) -> Option<&PathBuf> {
        match &self.format {
            ModelFormat::Adapter(spec) => Some(&spec.base),
            ModelFormat::Full => None,
        }
    }

    /// Writes `model` (and the processor's files) into `dir` as a checkpoint (`final_model`
    /// false) or as the final model.
    pub fn save<B: Backend, M: VisionLanguageModel<B>>(
        &self,
        model: &M,
        processor: &Processor,
        dir: &Path,
        final_model: bool,
    ) -> Result<()> {
        let dtype = if final_model {
            self.final_dtype
        } else {
            self.checkpoint_dtype
        };
        match &self.format {
            ModelFormat::Full => model.save(dir, dtype),
            ModelFormat::Adapter(spec) => model.save_adapter(dir, spec, dtype),
        }
        .with_context(|| format!("saving the model to {}", dir.display()))?;
        processor
            .save(dir)
            .with_context(|| format!("saving the processor to {}", dir.display()))
    }
}
