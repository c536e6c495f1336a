//! The benchmark guard at training setup: a run refuses to start when its training file shares
//! an image or a prompt with the benchmark it is evaluated on (`eval.benchmark`, else the
//! held-out benchmark of its data), listing the offending ids, unless `data.allow_overlap`.
//! The check is `safeaware_data::overlap` (also `safeaware data overlap`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use safeaware_data::overlap::{self, OverlapOptions};

use crate::recipe::Recipe;
use crate::train_data::DataFiles;

/// Overlaps listed in the refusal (the count is always complete).
const LIST_LIMIT: usize = 50;

/// The benchmark a run is evaluated on: `eval.benchmark`, else the data's held-out benchmark
/// file (`data_benchmark`) as a `jsonl:` spec.
pub fn evaluation_benchmark(recipe: &Recipe, data_benchmark: Option<&Path>) -> Option<String> {
    recipe
        .eval
        .benchmark
        .clone()
        .or_else(|| data_benchmark.map(|f| format!("jsonl:{}", f.display())))
}

/// Fails, listing the overlaps, when the training file overlaps the evaluation benchmark and
/// the recipe does not allow it. Says on stderr what it checked or why it did not.
pub fn refuse_benchmark_overlap(recipe: &Recipe, files: &DataFiles) -> Result<()> {
    let Some(spec) = evaluation_benchmark(recipe, files.benchmark.as_deref()) else {
        return Ok(());
    };
    let train = &files.train;
    if recipe.data.allow_overlap {
        eprintln!(
            "data.allow_overlap = true: {} is not checked against the benchmark {spec}",
            train.display()
        );
        return Ok(());
    }
    let report = overlap::check(train, &spec, &OverlapOptions::default())
        .with_context(|| format!("checking {} against the benchmark {spec}", train.display()))?;
    if report.is_empty() {
        eprintln!(
            "benchmark guard: {} shares no image or prompt with {spec}",
            train.display()
        );
        return Ok(());
    }
    let listed: Vec<String> = report
        .lines(LIST_LIMIT)
        .iter()
        .map(|l| format!("  {l}"))
        .collect();
    bail!(
        "{} training item(s) of {} share an image or a prompt with the evaluation benchmark \
         {spec}, so its numbers would mean nothing:\n{}\nremove them (the full list: safeaware \
         data overlap {} --benchmark {spec} --json) or set data.allow_overlap = true",
        report.ids().len(),
        train.display(),
        listed.join("\n"),
        train.display(),
    )
}
