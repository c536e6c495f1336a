//! `results.json`: what was run (benchmark, source, prompt strategy, decoding, version), the
//! counts, both parsers' metrics, where and why the parsers disagree, the per-scenario table,
//! the ids that were missing or failed, and the image reliance when it was measured. It is rewritten atomically as a run goes, so it is
//! always a valid file.

use std::collections::BTreeMap;
use std::path::Path;

use safeaware_common::fsio::write_atomic;
use safeaware_data::benchmark::Benchmark;
use serde::{Deserialize, Serialize};

use crate::ablation::ImageReliance;
use crate::decoding::DecodingSettings;
use crate::disagreement::ParserDisagreement;
use crate::metrics::{compute, Metrics, ParserMetrics, ScenarioMetrics};
use crate::prompt::PromptInfo;
use crate::samples::{SampleRecord, Status};
use crate::source::SourceInfo;
use crate::verdict::Parser;
use crate::EvalError;

/// The benchmark a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkInfo {
    pub spec: String,
    pub items: usize,
    pub missing_images: usize,
}

/// How many items ended how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Items in the benchmark.
    pub items: usize,
    /// Items answered and scored.
    pub scored: usize,
    /// Items with no response (left out of every denominator).
    pub missing_response: usize,
    /// Items that failed (unreadable or corrupt image, endpoint error, unreadable response
    /// line).
    pub errors: usize,
    /// Items the benchmark has no image for, which a generating source cannot ask (absent in
    /// older files).
    #[serde(default)]
    pub skipped: usize,
    /// Items not asked yet (non-zero only in a run that is still going or was stopped).
    pub pending: usize,
    /// Counts the source adds, e.g. `unknown_ids` for a responses file.
    #[serde(flatten)]
    pub source: BTreeMap<String, usize>,
}

/// One failed item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemError {
    pub id: String,
    pub error: String,
}

/// The whole of results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub safeaware_version: String,
    /// Whether every item that can be asked was scored: nothing pending, failed or without a
    /// response (items the benchmark has no image for are skipped and do not count).
    pub complete: bool,
    pub benchmark: BenchmarkInfo,
    pub source: SourceInfo,
    pub prompt: PromptInfo,
    pub decoding: DecodingSettings,
    pub counts: Counts,
    pub strict: ParserMetrics,
    pub paper: ParserMetrics,
    /// The items the two parsers read differently, with causes (absent in older files).
    #[serde(default)]
    pub parser_disagreement: ParserDisagreement,
    pub scenarios: Vec<ScenarioMetrics>,
    pub missing_response_ids: Vec<String>,
    pub errors: Vec<ItemError>,
    /// How often the verdict changes when the image is replaced (`eval --image-ablation`);
    /// absent when not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_reliance: Option<ImageReliance>,
}

impl Results {
    /// Builds the results of `benchmark` from the records so far (at most one per item, in
    /// any order; records of ids not in the benchmark are ignored).
    pub fn build(
        benchmark: &Benchmark,
        source: SourceInfo,
        prompt: PromptInfo,
        decoding: DecodingSettings,
        records: &BTreeMap<String, SampleRecord>,
    ) -> Results {
        let in_order: Vec<&SampleRecord> = benchmark
            .items
            .iter()
            .filter_map(|i| records.get(&i.id))
            .collect();
        let with = |s: Status| in_order.iter().filter(move |r| r.status == s);
        let missing_response_ids: Vec<String> = with(Status::MissingResponse)
            .map(|r| r.id.clone())
            .collect();
        let errors: Vec<ItemError> = with(Status::Error)
            .map(|r| ItemError {
                id: r.id.clone(),
                error: r.error.clone().unwrap_or_default(),
            })
            .collect();
        let counts = Counts {
            items: benchmark.items.len(),
            scored: with(Status::Scored).count(),
            missing_response: missing_response_ids.len(),
            errors: errors.len(),
            skipped: with(Status::Skipped).count(),
            pending: benchmark.items.len() - in_order.len(),
            source: source.counts.clone(),
        };
        let Metrics {
            strict,
            paper,
            scenarios,
        } = compute(&in_order);
        Results {
            safeaware_version: crate::VERSION.to_string(),
            complete: counts.pending == 0 && counts.errors == 0 && counts.missing_response == 0,
            benchmark: BenchmarkInfo {
                spec: benchmark.spec.clone(),
                items: benchmark.items.len(),
                missing_images: benchmark.missing_images.len(),
            },
            source,
            prompt,
            decoding,
            counts,
            strict,
            paper,
            parser_disagreement: ParserDisagreement::compute(&in_order),
            scenarios,
            missing_response_ids,
            errors,
            image_reliance: None,
        }
    }

    /// The failed items counted by cause (the error without the item's own file or line),
    /// most frequent first.
    pub fn failure_causes(&self) -> Vec<(String, usize)> {
        let mut by_cause: BTreeMap<String, usize> = BTreeMap::new();
        for e in &self.errors {
            *by_cause.entry(cause_of(&e.error)).or_default() += 1;
        }
        let mut causes: Vec<(String, usize)> = by_cause.into_iter().collect();
        causes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        causes
    }

    /// The metrics of `parser`.
    pub fn parser(&self, parser: Parser) -> &ParserMetrics {
        match parser {
            Parser::Strict => &self.strict,
            Parser::Paper => &self.paper,
        }
    }

    /// Reads a results.json.
    pub fn read(path: &Path) -> Result<Results, EvalError> {
        let text = std::fs::read_to_string(path).map_err(EvalError::io(path))?;
        serde_json::from_str(&text).map_err(|e| EvalError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Writes this as pretty JSON to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<(), EvalError> {
        let mut text = serde_json::to_string_pretty(self).expect("results always serialise");
        text.push('\n');
        write_atomic(path, text.as_bytes()).map_err(EvalError::io(path))
    }
}
/// An item's error with what names the item (an image path, a responses-file line) left out,
/// so that items failing the same way are counted together.
fn cause_of(error: &str) -> String {
    if let Some((head, _)) = error.split_once(": ") {
        // The prompt's own length is left out: items too long for the context count together.
        if head.starts_with("prompt too long") {
            return head.to_string();
        }
    }
    for (prefix, label) in [
        ("image ", "image"),
        ("responses file line ", "responses file"),
    ] {
        if let Some((head, reason)) = error.split_once(": ") {
            if head.starts_with(prefix) {
                return format!("{label}: {reason}");
            }
        }
    }
    error.to_string()
}

#[cfg(test)]
mod cause_tests {
    use super::cause_of;

    #[test]
    fn causes_leave_out_what_names_the_item() {
        assert_eq!(cause_of("image /d/7.jpg: truncated"), "image: truncated");
        assert_eq!(
            cause_of("responses file line 3: invalid JSON"),
            "responses file: invalid JSON"
        );
        assert_eq!(
            cause_of("prompt too long for the model's context of 2048 tokens (max_position_embeddings): the prompt is 4000 tokens"),
            "prompt too long for the model's context of 2048 tokens (max_position_embeddings)"
        );
        assert_eq!(
            cause_of("endpoint: HTTP 500 (after 4 attempt(s))"),
            "endpoint: HTTP 500 (after 4 attempt(s))"
        );
    }
}
