//! `safeaware export --merge <adapter-folder> --out <dir>`: folds a PEFT LoRA adapter into its
//! base model and writes the merged HF folder (weights, config, processor files), whose logits
//! are those of base + adapter — what PEFT's `merge_and_unload()` then `save_pretrained` give.
//! The output folder is claimed as `train` claims its run folder (`OutputDir`: locked, a
//! foreign non-empty folder refused without `--overwrite`) and may never be an input.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::backend::AutodiffBackend;
use safeaware_common::output_dir::{refuse_input, OutputDir};
use safeaware_model::safetensors_io::stored_dtype;
use safeaware_model::{FloatDtype, VisionLanguageModel};

use crate::backend::run_on;
use crate::model_folder::{adapter_base, open_model_folder};
use crate::output::outln;
use safeaware_runtime::device::DeviceSpec;
use safeaware_runtime::task::BackendTask;

/// Arguments of `safeaware export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The adapter folder to merge (adapter_config.json + adapter_model.safetensors).
    #[arg(long, value_name = "ADAPTER_DIR")]
    pub merge: PathBuf,
    /// Where to write the merged HF folder (a non-empty folder safeaware did not make is
    /// refused without --overwrite; the adapter or base folder always).
    #[arg(long)]
    pub out: PathBuf,
    /// Write into an --out folder safeaware did not make (its files of the same names are
    /// replaced).
    #[arg(long)]
    pub overwrite: bool,
    /// The base model folder (default: the adapter's base_model_name_or_path).
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// On-disk type: f32, bf16 or f16 (default: the base folder's).
    #[arg(long)]
    pub dtype: Option<String>,
}

/// Runs `safeaware export`.
pub fn run(args: ExportArgs) -> Result<()> {
    let base = adapter_base(&args.merge, args.base.as_deref())?;
    refuse_input(
        "--out",
        &args.out,
        &[
            ("--merge", args.merge.as_path()),
            ("the base", base.as_path()),
        ],
    )?;
    let dtype = match &args.dtype {
        Some(name) => FloatDtype::parse(name)
            .with_context(|| format!("--dtype {name:?}: expected f32, bf16 or f16"))?,
        None => stored_dtype(&base)
            .with_context(|| format!("reading the weight headers of {}", base.display()))?
            .unwrap_or(FloatDtype::F32),
    };
    // Held until the folder is written: a second process on it fails at once, naming this pid.
    let _claim = OutputDir::claim(&args.out, "export", args.overwrite)?;
    run_on(DeviceSpec::Cpu, Merge { args, base, dtype })?;
    Ok(())
}

struct Merge {
    args: ExportArgs,
    base: PathBuf,
    dtype: FloatDtype,
}

impl BackendTask for Merge {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<()> {
        let (adapter, out) = (&self.args.merge, &self.args.out);
        let (model, processor) =
            open_model_folder::<B::InnerBackend>(adapter, Some(&self.base), &device)?;
        model
            .save(out, self.dtype)
            .with_context(|| format!("writing the merged model to {}", out.display()))?;
        processor
            .save(out)
            .with_context(|| format!("writing the processor to {}", out.display()))?;
        outln!(
            "merged {} into {} ({}): {}",
            adapter.display(),
            self.base.display(),
            self.dtype.name(),
            out.display()
        )?;
        Ok(())
    }
}
