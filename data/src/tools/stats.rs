//! `data stats`: item counts per subset, scenario and verdict, and the ids of missing images.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::source::Loaded;

/// The key used for items without a subset or scenario label.
pub const UNLABELLED: &str = "unlabelled";

/// A summary of a training file or benchmark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// The path or spec summarised.
    pub source: String,
    pub items: usize,
    /// Subset → count (benchmarks list all three subsets, empty ones as 0).
    pub subsets: BTreeMap<String, usize>,
    /// Scenario → count.
    pub scenarios: BTreeMap<String, usize>,
    /// `subset/scenario` → count.
    pub subset_scenarios: BTreeMap<String, usize>,
    /// `safe` / `unsafe` → count (gold for benchmarks).
    pub verdicts: BTreeMap<String, usize>,
    /// Ids whose image is absent, in item order.
    pub missing_images: Vec<String>,
}

/// Summarises a loaded input.
pub fn stats(loaded: &Loaded) -> Stats {
    let entries = loaded.entries();
    let mut s = Stats {
        source: loaded.name(),
        items: entries.len(),
        subsets: BTreeMap::new(),
        scenarios: BTreeMap::new(),
        subset_scenarios: BTreeMap::new(),
        verdicts: BTreeMap::new(),
        missing_images: Vec::new(),
    };
    if let Loaded::Benchmark(_) = loaded {
        for subset in crate::benchmark::Subset::ALL {
            s.subsets.insert(subset.as_str().to_string(), 0);
        }
    }
    for e in &entries {
        let subset = e.subset.clone().unwrap_or_else(|| UNLABELLED.to_string());
        let scenario = e.scenario.clone().unwrap_or_else(|| UNLABELLED.to_string());
        *s.subset_scenarios
            .entry(format!("{subset}/{scenario}"))
            .or_default() += 1;
        *s.subsets.entry(subset).or_default() += 1;
        *s.scenarios.entry(scenario).or_default() += 1;
        let verdict = e.verdict.map_or(UNLABELLED, |v| v.as_str());
        *s.verdicts.entry(verdict.to_string()).or_default() += 1;
        if !e.image.as_deref().is_some_and(|p| p.is_file()) {
            s.missing_images.push(e.id.clone());
        }
    }
    s
}

impl Stats {
    /// A human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}: {} items", self.source, self.items);
        let section = |out: &mut String, title: &str, map: &BTreeMap<String, usize>| {
            let _ = writeln!(out, "{title}:");
            for (k, v) in map {
                let _ = writeln!(out, "  {k:<44} {v:>6}");
            }
        };
        section(&mut out, "subsets", &self.subsets);
        section(&mut out, "verdicts", &self.verdicts);
        section(&mut out, "subset/scenario", &self.subset_scenarios);
        let _ = writeln!(out, "missing images: {}", self.missing_images.len());
        if !self.missing_images.is_empty() {
            let _ = writeln!(out, "  ids: {}", compress_ids(&self.missing_images));
        }
        out
    }
}

/// Joins ids, writing runs of consecutive numbers as `a–b` (e.g. `18, 441, 2301–2370`).
pub fn compress_ids(ids: &[String]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        if let Ok(start) = ids[i].parse::<u64>() {
            while j + 1 < ids.len()
                && ids[j + 1].parse::<u64>().ok() == Some(start + (j + 1 - i) as u64)
            {
                j += 1;
            }
        }
        parts.push(if j > i + 1 {
            format!("{}–{}", ids[i], ids[j])
        } else {
            ids[i].clone()
        });
        if j == i + 1 {
            parts.push(ids[j].clone());
        }
        i = j + 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::compress_ids;

    #[test]
    fn runs_of_ids_are_compressed() {
        let ids: Vec<String> = ["1", "2", "5", "6", "7", "9", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(compress_ids(&ids), "1, 2, 5–7, 9, x");
    }
}
