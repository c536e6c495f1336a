//! Evaluation inside a training run: teacher-forced validation loss, and the evaluator's
//! generation-based safety metrics (Total, unsafe miss rate, over-sensitivity) on the
//! validation split, logged beside the training loss.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use burn::tensor::ElementConversion;
use safeaware_data::benchmark::{Benchmark, BenchmarkItem};
use safeaware_data::processor::Processor;
use safeaware_eval::runner::{self, RunConfig};
use safeaware_eval::source::local::{LocalModelSource, LocalSettings};
use safeaware_model::VisionLanguageModel;

use crate::batching::collate;
use crate::train_data::Example;

/// How much generation an evaluation may do.
#[derive(Debug, Clone)]
pub struct EvalPlan {
    pub max_new_tokens: usize,
    pub batch_size: usize,
    /// Evaluate only the first N items.
    pub limit: Option<usize>,
}

impl EvalPlan {
    /// How the local model answers under this plan: its token budget and batch size, greedy.
    pub fn local_settings(&self) -> LocalSettings {
        LocalSettings {
            max_new_tokens: self.max_new_tokens,
            batch_size: self.batch_size,
            ..Default::default()
        }
    }

    /// The evaluator's settings for a run written into `out` (the token budget recorded).
    pub fn run_config(&self, out: &Path) -> RunConfig {
        let mut config = RunConfig::new(out);
        config.decoding.max_tokens = self.max_new_tokens;
        config
    }
}

/// Mean per-token loss over `examples` (empty when there are none), as `{"val_loss": …}`.
pub fn validation_loss<B: Backend, M: VisionLanguageModel<B>>(
    model: &M,
    examples: &[Example],
    pad_id: u32,
    batch_size: usize,
    device: &B::Device,
) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    if examples.is_empty() {
        return Ok(out);
    }
    let (mut sum, mut count) = (0.0f64, 0usize);
    for chunk in examples.chunks(batch_size.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = collate::<B>(&refs, pad_id, device);
        let loss = model
            .forward_loss(&batch.input, &batch.labels)
            .context("validation forward")?;
        sum += loss.sum.into_scalar().elem::<f64>();
        count += loss.count;
    }
    out.insert("val_loss".to_string(), sum / count.max(1) as f64);
    Ok(out)
}

/// Generates answers for `items` with `model`, scores them with the evaluator (results in
/// `out`) and returns the strict parser's headline metrics.
pub fn generation_metrics<B: Backend, M: VisionLanguageModel<B>>(
    model: &M,
    processor: &Processor,
    items: &[BenchmarkItem],
    out: &Path,
    plan: &EvalPlan,
) -> Result<BTreeMap<String, f64>> {
    let items: Vec<BenchmarkItem> = items
        .iter()
        .take(plan.limit.unwrap_or(usize::MAX))
        .cloned()
        .collect();
    let benchmark = Benchmark {
        spec: "validation split".to_string(),
        items,
        missing_images: Vec::new(),
    };
    let results = evaluate(model, processor, &benchmark, out, plan)?;
    let strict = &results.strict;
    let mut metrics = BTreeMap::new();
    for (name, value) in [
        ("total", strict.total),
        ("unsafe_miss_rate", strict.unsafe_miss_rate),
        ("over_sensitivity_rate", strict.over_sensitivity_rate),
    ] {
        if let Some(value) = value {
            metrics.insert(name.to_string(), value);
        }
    }
    Ok(metrics)
}

/// Runs the evaluator on `benchmark` with `model` answering, greedy, writing into `out`.
pub fn evaluate<B: Backend, M: VisionLanguageModel<B>>(
    model: &M,
    processor: &Processor,
    benchmark: &Benchmark,
    out: &Path,
    plan: &EvalPlan,
) -> Result<safeaware_eval::results::Results> {
    let source = LocalModelSource::new(model, processor, "training run", plan.local_settings());
    runner::run(benchmark, &source, &plan.run_config(out))
        .with_context(|| format!("evaluating into {}", out.display()))
}
