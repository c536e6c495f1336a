//! One arm on one benchmark, in `<out>/evals/<benchmark>/<arm>/`: an ordinary evaluation run
//! (resumable item by item) plus its image ablation, marked finished by `finished.json`, which
//! records the settings; a rerun with the same settings reuses it without loading the model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use safeaware_common::fsio::write_atomic;
use safeaware_data::benchmark::Benchmark;
use safeaware_eval::ablation::{self, ImageAblation};
use safeaware_eval::decoding::{DecodingMode, DecodingSettings};
use safeaware_eval::prompt::PromptStrategy;
use safeaware_eval::runner::{RunConfig, RESULTS_FILE};
use safeaware_eval::source::local::LocalSettings;
use safeaware_eval::source::responses::ResponsesFile;
use serde::Serialize;

use super::models::Model;
use super::spec::{Arm, EvalSettings};
use crate::backend::run_on;
use crate::commands::client::ClientArgs;
use crate::folder_eval::FolderEval;
use safeaware_runtime::device::DeviceSpec;

/// Marks a finished arm evaluation; holds its [`Settings`].
pub const FINISHED_FILE: &str = "finished.json";

/// Everything that decides an arm's results on a benchmark.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    pub model: String,
    pub prompt: String,
    pub decoding: DecodingMode,
    pub max_tokens: usize,
    pub batch_size: usize,
    pub benchmark: String,
    pub limit: Option<usize>,
    pub image_ablation: Option<ImageAblation>,
}

/// One arm × benchmark to evaluate.
pub struct ArmEval<'a> {
    pub arm: &'a Arm,
    pub model: &'a Model,
    pub benchmark: &'a Benchmark,
    pub limit: Option<usize>,
    pub ablation: Option<ImageAblation>,
    pub eval: &'a EvalSettings,
    pub device: DeviceSpec,
    pub dir: PathBuf,
}

impl ArmEval<'_> {
    /// The settings recorded when it finishes.
    pub fn settings(&self) -> Settings {
        Settings {
            model: self.model.identity(),
            prompt: self.arm.prompt.clone(),
            decoding: self.arm.decoding,
            max_tokens: self.eval.max_tokens,
            batch_size: self.eval.batch_size,
            benchmark: self.benchmark.spec.clone(),
            limit: self.limit,
            image_ablation: self.ablation,
        }
    }

    /// Whether a finished evaluation with these settings is in the folder.
    pub fn finished(&self) -> bool {
        let want = serde_json::to_string_pretty(&self.settings()).unwrap_or_default();
        self.dir.join(RESULTS_FILE).is_file()
            && std::fs::read_to_string(self.dir.join(FINISHED_FILE)).is_ok_and(|t| t == want)
    }

    /// Evaluates (resuming what a killed run left), then marks the folder finished.
    pub fn run(&self) -> Result<()> {
        let decoding = DecodingSettings {
            mode: self.arm.decoding,
            max_tokens: self.eval.max_tokens,
            ..DecodingSettings::default()
        };
        let config = RunConfig {
            prompt: PromptStrategy::parse(&self.arm.prompt)?,
            decoding: decoding.clone(),
            ..RunConfig::new(&self.dir)
        };
        let results = match self.model {
            Model::Folder(folder) => run_on(
                self.device,
                FolderEval {
                    folder: folder.clone(),
                    base: None,
                    name: folder.display().to_string(),
                    benchmark: self.benchmark,
                    config: &config,
                    settings: LocalSettings {
                        max_new_tokens: self.eval.max_tokens,
                        batch_size: self.eval.batch_size,
                        decoding,
                    },
                    ablation: self.ablation,
                },
            )?,
            Model::Endpoint { url, model } => {
                let client = ClientArgs {
                    concurrency: self.eval.concurrency,
                    timeout: self.eval.timeout_s,
                    retries: self.eval.retries,
                };
                let source = client.endpoint(url, model, &decoding)?;
                ablation::run(self.benchmark, &source, &config, self.ablation)?
            }
            Model::Responses(path) => {
                let source = ResponsesFile::load(path, self.benchmark)
                    .with_context(|| format!("reading responses {}", path.display()))?;
                ablation::run(self.benchmark, &source, &config, None)?
            }
        };
        if results.complete {
            let text = serde_json::to_string_pretty(&self.settings())?;
            write_atomic(&self.dir.join(FINISHED_FILE), text.as_bytes())
                .with_context(|| format!("writing {}", self.dir.join(FINISHED_FILE).display()))?;
        }
        Ok(())
    }
}

/// The folder of `arm` on `benchmark` inside the experiment's output folder.
pub fn eval_dir(out: &Path, benchmark: &str, arm: &str) -> PathBuf {
    out.join("evals").join(benchmark).join(arm)
}
