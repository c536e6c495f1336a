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
use crate::outcome::{count_causes, Tally};
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
        count_causes(self.errors.iter().map(|e| e.error.as_str()))
    }

    /// How the items that can be asked ended, for [`crate::outcome::ErrorBudget::judge`]:
    /// scored, failed (by cause), and without a response.
    pub fn tally(&self) -> Tally<'static> {
        let c = &self.counts;
        let mut causes = self.failure_causes();
        if c.missing_response > 0 {
            causes.push(("no response".to_string(), c.missing_response));
        }
        Tally {
            asked: c.items - c.skipped,
            succeeded: c.scored,
            failed: c.errors,
            causes,
            noun: "item",
            verb: "scored",
        }
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
