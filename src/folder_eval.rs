//! Evaluating a saved model folder (an HF folder, a checkpoint, a run's final model) on the
//! chosen backend: the one task behind `safeaware eval --model/--checkpoint` and the evaluation
//! that ends `safeaware train`; [`load_folder`] is also how `safeaware serve` loads its model.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::backend::{AutodiffBackend, Backend};
use safeaware_data::benchmark::Benchmark;
use safeaware_data::processor::Processor;
use safeaware_eval::results::Results;
use safeaware_eval::runner::{self, RunConfig};
use safeaware_eval::source::local::{LocalModelSource, LocalSettings};
use safeaware_model::Idefics3;

use crate::backend::BackendTask;

/// Loads the model and processor in `folder`, then runs the evaluator on `benchmark` with the
/// model answering.
pub struct FolderEval<'a> {
    pub folder: PathBuf,
    /// The answer source's name in results and reports.
    pub name: String,
    pub benchmark: &'a Benchmark,
    pub config: &'a RunConfig,
    pub settings: LocalSettings,
}

impl BackendTask for FolderEval<'_> {
    type Output = Results;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<Results> {
        let (model, processor) = load_folder::<B::InnerBackend>(&self.folder, &device)?;
        let source = LocalModelSource::new(&model, &processor, self.name, self.settings);
        Ok(runner::run(self.benchmark, &source, self.config)?)
    }
}

/// The model and processor saved in `folder`, the model on `device`.
pub fn load_folder<B: Backend>(
    folder: &Path,
    device: &B::Device,
) -> anyhow::Result<(Idefics3<B>, Processor)> {
    let model = Idefics3::<B>::load(folder, device)
        .with_context(|| format!("loading the model in {}", folder.display()))?;
    let processor = Processor::from_folder(folder)
        .with_context(|| format!("loading the processor in {}", folder.display()))?;
    Ok((model, processor))
}
