//! The comparison an experiment ends with (`safeaware experiment run`): every arm (a model
//! source × prompt × decoding) on every benchmark, with its difference to its baseline arm and
//! the exact McNemar p-value on the paired items, its image reliance, and quoted reference rows
//! beside them. An arm whose evaluation failed (nothing scored, or more failed items than
//! `--max-error-rate` allows) is marked so, with the reason, and gets no test against its
//! baseline, nor does an arm whose baseline failed or that shares no scored item with it.
//! Written as `comparison.json` ([`Comparison`], the machine-readable rows),
//! `comparison.md` and a self-contained `comparison.html` ([`render`], built from the tables of
//! [`tables`]). Accuracies are the strict parser's.

pub mod references;
pub mod render;
pub mod tables;

use std::path::Path;

use safeaware_common::fsio::write_atomic;
use safeaware_data::benchmark::Subset;
use serde::{Deserialize, Serialize};

use crate::compare::{mcnemar, McNemar, Run};
use crate::metrics::{Accuracy, ParserMetrics, Z95};
use crate::verdict::Parser;
use crate::EvalError;
pub use references::{Reference, References};

/// File names inside an experiment's output folder.
pub const COMPARISON_JSON: &str = "comparison.json";
pub const COMPARISON_MD: &str = "comparison.md";
pub const COMPARISON_HTML: &str = "comparison.html";

/// One arm evaluated on one benchmark.
#[derive(Debug, Clone)]
pub struct ArmRun {
    pub name: String,
    /// The arm it is compared with; `None` for a baseline.
    pub baseline: Option<String>,
    /// The benchmark's name in the experiment.
    pub benchmark: String,
    /// One line on what the arm is (model source, prompt, decoding).
    pub description: String,
    pub run: Run,
    /// Why the evaluation failed, if it did ([`crate::outcome::RunFailure::short`]).
    pub failed: Option<String>,
}

/// An arm that was not evaluated, and why (e.g. VCD asked of an endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// One row of comparison.json: accuracies in [0, 1] (strict parser), `unsafe` the mean of
/// Typical and Attack (the paper's Table 3), `p_value` the exact two-sided McNemar test against
/// the baseline arm on the paired items (null for a baseline, and where either arm failed or
/// no item was paired), `image_reliance` the share of verdicts that changed with the image
/// replaced (null where not measured), `failed` why the arm's evaluation failed (only present
/// when it did).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmRow {
    pub name: String,
    pub baseline: Option<String>,
    pub benchmark: String,
    pub typical: Option<f64>,
    pub attack: Option<f64>,
    pub over_safety: Option<f64>,
    pub total: Option<f64>,
    #[serde(rename = "unsafe")]
    pub unsafe_: Option<f64>,
    pub p_value: Option<f64>,
    pub image_reliance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// The whole of comparison.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub arms: Vec<ArmRow>,
}

impl Comparison {
    /// One row per arm run, in the order given.
    pub fn build(arms: &[ArmRun]) -> Comparison {
        Comparison {
            arms: arms.iter().map(|a| row(a, arms)).collect(),
        }
    }
}

fn row(arm: &ArmRun, all: &[ArmRun]) -> ArmRow {
    let m = &arm.run.results.strict;
    ArmRow {
        name: arm.name.clone(),
        baseline: arm.baseline.clone(),
        benchmark: arm.benchmark.clone(),
        typical: m.typical.accuracy,
        attack: m.attack.accuracy,
        over_safety: m.over_safety.accuracy,
        total: m.total,
        unsafe_: unsafe_accuracy(m),
        p_value: against_baseline(arm, all).map(|t| t.p_value),
        image_reliance: arm
            .run
            .results
            .image_reliance
            .as_ref()
            .and_then(|ir| ir.change_rate),
        failed: arm.failed.clone(),
    }
}

/// The paper's Unsafe (Table 3): the mean of the Typical and Attack accuracies (of those with
/// items).
pub fn unsafe_accuracy(m: &ParserMetrics) -> Option<f64> {
    mean(&[m.typical.accuracy, m.attack.accuracy])
}

fn mean(values: &[Option<f64>]) -> Option<f64> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64)
}

/// A 95% interval for the unweighted mean of independent subset accuracies (Total, Unsafe):
/// mean ± z·√(Σ p̃(1−p̃)/(n+z²)) / k with the Agresti–Coull p̃ = (correct + z²/2)/(n + z²), so an
/// all-right or all-wrong subset still adds its uncertainty; clipped to [0, 1].
pub fn mean_interval(parts: &[&Accuracy]) -> Option<[f64; 2]> {
    let parts: Vec<&&Accuracy> = parts.iter().filter(|a| a.n > 0).collect();
    if parts.is_empty() {
        return None;
    }
    let (k, z2) = (parts.len() as f64, Z95 * Z95);
    let centre = parts.iter().filter_map(|a| a.accuracy).sum::<f64>() / k;
    let variance: f64 = parts
        .iter()
        .map(|a| {
            let n = a.n as f64 + z2;
            let p = (a.correct as f64 + z2 / 2.0) / n;
            p * (1.0 - p) / n
        })
        .sum();
    let half = Z95 * variance.sqrt() / k;
    Some([(centre - half).max(0.0), (centre + half).min(1.0)])
}

/// The arm's baseline run on the same benchmark, if it has one and it was evaluated.
pub fn baseline_of<'a>(arm: &ArmRun, all: &'a [ArmRun]) -> Option<&'a ArmRun> {
    let name = arm.baseline.as_deref()?;
    all.iter()
        .find(|a| a.name == name && a.benchmark == arm.benchmark)
}

/// The paired McNemar test of the arm against its baseline (strict parser); none when either
/// failed or they share no scored item (a p-value over nothing).
pub fn against_baseline(arm: &ArmRun, all: &[ArmRun]) -> Option<McNemar> {
    let base = baseline_of(arm, all)?;
    if arm.failed.is_some() || base.failed.is_some() {
        return None;
    }
    Some(mcnemar(&base.run, &arm.run, Parser::Strict)).filter(|t| t.shared > 0)
}

/// Why an arm with a baseline has no test against it, if it has none.
pub fn untested(arm: &ArmRun, all: &[ArmRun]) -> Option<&'static str> {
    arm.baseline.as_ref()?;
    if against_baseline(arm, all).is_some() {
        return None;
    }
    Some(match baseline_of(arm, all) {
        _ if arm.failed.is_some() => "arm failed",
        None => "baseline not evaluated",
        Some(base) if base.failed.is_some() => "baseline failed",
        Some(_) => "no paired items",
    })
}

/// The subsets' accuracies of an arm (strict).
pub fn subsets(m: &ParserMetrics) -> [&Accuracy; 3] {
    Subset::ALL.map(|s| m.subset(s))
}

/// Writes comparison.json, comparison.md and comparison.html into `out`, atomically.
pub fn write(
    out: &Path,
    title: &str,
    arms: &[ArmRun],
    skipped: &[Skipped],
    references: Option<&References>,
) -> Result<Comparison, EvalError> {
    let comparison = Comparison::build(arms);
    let mut json = serde_json::to_string_pretty(&comparison).expect("rows always serialise");
    json.push('\n');
    let page = render::Page {
        title,
        arms,
        skipped,
        references,
    };
    for (name, text) in [
        (COMPARISON_JSON, json),
        (COMPARISON_MD, render::markdown(&page)),
        (COMPARISON_HTML, render::html(&page)),
    ] {
        let path = out.join(name);
        write_atomic(&path, text.as_bytes()).map_err(EvalError::io(&path))?;
    }
    Ok(comparison)
}

#[cfg(test)]
mod tests;
