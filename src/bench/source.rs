//! Where a benchmarked model comes from: an HF folder with weights, or a seeded random
//! initialisation of a config-only folder or a preset.

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;
use safeaware_model::{ModelConfig, VisionLanguageModel, Vlm};
use safeaware_trainer::preset;

use super::PRESET_IMAGE_SIZE;

/// Where the model comes from.
pub enum ModelSource {
    /// HF folder with weights.
    Weights(std::path::PathBuf),
    /// Random init (seeded) of a config: a config-only folder or a preset.
    Random(Box<ModelConfig>, String),
}

impl ModelSource {
    /// Resolves `--model`: a folder with config.json (weights if it has any), else a preset name.
    pub fn resolve(model: &str, seed: u64) -> Result<Self> {
        let path = Path::new(model);
        if path.join("config.json").is_file() {
            if has_weights(path) {
                return Ok(Self::Weights(path.to_path_buf()));
            }
            let config = ModelConfig::from_file(&path.join("config.json"))
                .with_context(|| format!("reading {}/config.json", path.display()))?;
            return Ok(Self::Random(
                Box::new(config),
                format!("random(seed={seed})"),
            ));
        }
        if preset::PRESETS.contains(&model) {
            let built = preset::build(model, PRESET_IMAGE_SIZE)?;
            return Ok(Self::Random(
                Box::new(built.config),
                format!("preset {model}, random(seed={seed})"),
            ));
        }
        if path.exists() {
            bail!("--model {model}: {} has no config.json", path.display());
        }
        bail!(
            "--model {model}: neither a model folder (with config.json) nor a preset ({})",
            preset::PRESETS.join(", ")
        )
    }

    pub(super) fn build<B: Backend>(&self, seed: u64, device: &B::Device) -> Result<Vlm<B>> {
        match self {
            Self::Weights(dir) => {
                Vlm::load(dir, device).with_context(|| format!("loading {}", dir.display()))
            }
            Self::Random(config, _) => Ok(Vlm::init_random(config, seed, device)),
        }
    }

    pub(super) fn describe(&self) -> String {
        match self {
            Self::Weights(_) => "safetensors".into(),
            Self::Random(_, what) => what.clone(),
        }
    }
}

fn has_weights(dir: &Path) -> bool {
    dir.join("model.safetensors.index.json").is_file()
        || std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
            })
            .unwrap_or(false)
}
