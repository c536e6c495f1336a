//! Opening a saved model folder for inference: an HF folder, or a PEFT adapter folder applied
//! to its base (`base_model_name_or_path` in `adapter_config.json`, or the `--base` given) and
//! merged, so that generation runs at the base model's speed. A folder (and an adapter's base)
//! carrying manifest.json is verified against it first, as `train --resume` verifies a
//! checkpoint, so weights changed since they were written are refused, naming the file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;
use safeaware_data::processor::Processor;
use safeaware_model::{is_adapter_folder, AdapterConfig, VisionLanguageModel, Vlm};
use safeaware_trainer::manifest::verify_model_folder;

/// The base folder of adapter folder `adapter`: `base` when given, else its config's.
pub fn adapter_base(adapter: &Path, base: Option<&Path>) -> Result<PathBuf> {
    if let Some(base) = base {
        return Ok(base.to_owned());
    }
    let config = AdapterConfig::read(adapter)?;
    if config.base_model_name_or_path.is_empty() {
        bail!(
            "{} names no base_model_name_or_path: give the base model folder with --base",
            adapter.display()
        );
    }
    Ok(PathBuf::from(config.base_model_name_or_path))
}

/// The model (adapters merged) and processor of `folder`; `base` overrides an adapter folder's
/// base.
pub fn open_model_folder<B: Backend>(
    folder: &Path,
    base: Option<&Path>,
    device: &B::Device,
) -> Result<(Vlm<B>, Processor)> {
    verify_model_folder(folder)?;
    if !is_adapter_folder(folder) {
        let model = Vlm::<B>::load(folder, device)
            .with_context(|| format!("loading the model in {}", folder.display()))?;
        return Ok((model, load_processor(folder)?));
    }
    let base = adapter_base(folder, base)?;
    verify_model_folder(&base)?;
    let model = Vlm::<B>::load(&base, device)
        .with_context(|| {
            format!(
                "loading the base model {} of {}",
                base.display(),
                folder.display()
            )
        })?
        .load_adapter(folder)
        .with_context(|| format!("applying the adapter {}", folder.display()))?
        .merge_lora();
    // A run's adapter folders hold the processor; one from elsewhere may not.
    let processor = load_processor(folder).or_else(|_| load_processor(&base))?;
    Ok((model, processor))
}

fn load_processor(folder: &Path) -> Result<Processor> {
    Processor::from_folder(folder)
        .with_context(|| format!("loading the processor in {}", folder.display()))
}
