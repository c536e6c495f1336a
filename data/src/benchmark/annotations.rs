//! Per-item annotations that override or add a benchmark's `subset`, `scenario` and `gold`.
//!
//! A JSONL file, one object per line: `id` (number or string) and any of `subset`, `scenario`,
//! `gold`; other fields (e.g. `harm_category`) are ignored. A `null` scenario leaves the item's
//! scenario as it is. An id the benchmark does not have is an error naming the line.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{Benchmark, BenchmarkError, Subset, Verdict};
use crate::fileio::{self, RawId};

#[derive(Deserialize)]
struct RawAnnotation {
    id: RawId,
    #[serde(default)]
    subset: Option<String>,
    #[serde(default)]
    scenario: Option<String>,
    #[serde(default)]
    gold: Option<String>,
}

/// Applies the annotations file at `path` to `benchmark`.
pub fn apply(benchmark: &mut Benchmark, path: &Path) -> Result<(), BenchmarkError> {
    let text = crate::fileio::read_text(path).map_err(|source| BenchmarkError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let index: HashMap<String, usize> = benchmark
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| (item.id.clone(), i))
        .collect();
    for (line, json) in fileio::json_lines(&text) {
        let err = |message| BenchmarkError::Line {
            path: path.to_path_buf(),
            line,
            message,
        };
        let raw: RawAnnotation =
            serde_json::from_str(json).map_err(|e| err(format!("bad annotation: {e}")))?;
        let id = raw.id.into_string();
        let &i = index
            .get(&id)
            .ok_or_else(|| err(format!("id {id} is not in {}", benchmark.spec)))?;
        let item = &mut benchmark.items[i];
        if let Some(s) = raw.subset {
            item.subset = Subset::from_name(&s)
                .ok_or_else(|| err(format!("id {id}: unknown subset `{s}`")))?;
        }
        if let Some(g) = raw.gold {
            item.gold = Verdict::from_gold(&g)
                .ok_or_else(|| err(format!("id {id}: unknown gold `{g}`")))?;
        }
        if raw.scenario.is_some() {
            item.scenario = raw.scenario;
        }
    }
    Ok(())
}
