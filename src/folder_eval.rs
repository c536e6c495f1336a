//! Evaluating a saved model folder (an HF folder, a checkpoint, a run's final model, a PEFT
//! adapter folder) on the chosen backend: the one task behind `safeaware eval
//! --model/--checkpoint`, the evaluation that ends `safeaware train` and the local arms of
//! `safeaware experiment run`. `safeaware serve` opens its folder the same way
//! (`model_folder.rs`).

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use safeaware_data::benchmark::Benchmark;
use safeaware_eval::ablation::{self, ImageAblation};
use safeaware_eval::results::Results;
use safeaware_eval::runner::RunConfig;
use safeaware_eval::source::local::{LocalModelSource, LocalSettings};

use crate::model_folder::open_model_folder;
use safeaware_runtime::task::BackendTask;

/// Loads the model and processor in `folder`, then runs the evaluator on `benchmark` with the
/// model answering (and the image ablation, when one is asked for).
pub struct FolderEval<'a> {
    pub folder: PathBuf,
    /// The base model of an adapter folder, overriding its `adapter_config.json`.
    pub base: Option<PathBuf>,
    /// The answer source's name in results and reports.
    pub name: String,
    pub benchmark: &'a Benchmark,
    pub config: &'a RunConfig,
    pub settings: LocalSettings,
    pub ablation: Option<ImageAblation>,
}

impl BackendTask for FolderEval<'_> {
    type Output = Results;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<Results> {
        let (model, processor) =
            open_model_folder::<B::InnerBackend>(&self.folder, self.base.as_deref(), &device)?;
        let source = LocalModelSource::new(&model, &processor, self.name, self.settings);
        Ok(ablation::run(
            self.benchmark,
            &source,
            self.config,
            self.ablation,
        )?)
    }
}
