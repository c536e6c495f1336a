//! Generic JSON Lines benchmarks (`jsonl:<file>`).
//!
//! One item per line: `id` (number or string), `image` (path relative to the file's folder;
//! may be absent or null), `prompt`, `gold` (`safe` | `unsafe`, or `yes` | `no`), optional
//! `subset` (`typical` | `attack` | `over_safety`; when absent, `over_safety` for safe items and
//! `typical` for unsafe ones), optional `scenario` and optional `counterfactual`
//! (`{image, gold, subset, scenario?}`: the same prompt with an image that flips the verdict).
//! Items whose image is absent or does not exist stay, with `image: None`, and are listed in
//! `missing_images`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safeaware_common::fsio::write_atomic;
use serde::{Deserialize, Serialize};

use super::{Benchmark, BenchmarkError, BenchmarkItem, Counterfactual, Subset, Verdict};
use crate::fileio::{self, RawId};

#[derive(Deserialize)]
struct RawItem {
    id: RawId,
    #[serde(default)]
    image: Option<String>,
    prompt: String,
    gold: String,
    #[serde(default)]
    subset: Option<String>,
    #[serde(default)]
    scenario: Option<String>,
    #[serde(default)]
    counterfactual: Option<RawCounterfactual>,
}

#[derive(Deserialize)]
struct RawCounterfactual {
    image: String,
    gold: String,
    subset: String,
    #[serde(default)]
    scenario: Option<String>,
}

/// Loads a JSONL benchmark; fails on the first malformed line or a repeated id.
pub fn load(file: &Path) -> Result<Benchmark, BenchmarkError> {
    let text = crate::fileio::read_text(file).map_err(|source| BenchmarkError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let dir = fileio::base_dir(file);
    let mut items = Vec::new();
    let mut missing_images = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (line, json) in fileio::json_lines(&text) {
        let err = |message| BenchmarkError::Line {
            path: file.to_path_buf(),
            line,
            message,
        };
        let mut item = parse_item(json, &dir).map_err(err)?;
        if let Some(first) = seen.insert(item.id.clone(), line) {
            return Err(err(format!("id {} repeats line {first}", item.id)));
        }
        if !item.image.as_deref().is_some_and(Path::is_file) {
            item.image = None;
            missing_images.push(item.id.clone());
        }
        items.push(item);
    }
    if items.is_empty() {
        return Err(BenchmarkError::Empty {
            path: file.to_path_buf(),
        });
    }
    Ok(Benchmark {
        spec: format!("jsonl:{}", file.display()),
        items,
        missing_images,
    })
}

/// Parses one line; `image` is resolved against `dir` but not checked. The error message is for
/// the caller to prefix with file and line.
pub fn parse_item(json: &str, dir: &Path) -> Result<BenchmarkItem, String> {
    let raw: RawItem = serde_json::from_str(json).map_err(|e| format!("bad item: {e}"))?;
    let id = raw.id.into_string();
    if id.trim().is_empty() {
        return Err("empty `id`".to_string());
    }
    if raw.prompt.trim().is_empty() {
        return Err(format!("id {id}: empty `prompt`"));
    }
    let gold = parse_gold(&id, "gold", &raw.gold)?;
    let subset = match raw.subset {
        Some(s) => parse_subset(&id, "subset", &s)?,
        None if gold == Verdict::Safe => Subset::OverSafety,
        None => Subset::Typical,
    };
    let image = raw.image.filter(|p| !p.trim().is_empty());
    if let Some(path) = &image {
        fileio::check_inside(Path::new(path)).map_err(|e| format!("id {id}: `image`: {e}"))?;
    }
    let image = image.map(|p| dir.join(p));
    let counterfactual = match raw.counterfactual {
        Some(c) => {
            fileio::check_inside(Path::new(&c.image))
                .map_err(|e| format!("id {id}: `counterfactual.image`: {e}"))?;
            Some(Counterfactual {
                image: dir.join(&c.image),
                gold: parse_gold(&id, "counterfactual.gold", &c.gold)?,
                subset: parse_subset(&id, "counterfactual.subset", &c.subset)?,
                scenario: c.scenario,
            })
        }
        None => None,
    };
    Ok(BenchmarkItem {
        id,
        image,
        prompt: raw.prompt,
        gold,
        subset,
        scenario: raw.scenario,
        counterfactual,
    })
}

fn parse_gold(id: &str, field: &str, value: &str) -> Result<Verdict, String> {
    Verdict::from_gold(value)
        .ok_or_else(|| format!("id {id}: `{field}` is `{value}`, expected safe, unsafe, yes or no"))
}

fn parse_subset(id: &str, field: &str, value: &str) -> Result<Subset, String> {
    Subset::from_name(value).ok_or_else(|| {
        format!("id {id}: `{field}` is `{value}`, expected typical, attack or over_safety")
    })
}

#[derive(Serialize)]
struct OutItem<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    prompt: &'a str,
    gold: Verdict,
    subset: Subset,
    #[serde(skip_serializing_if = "Option::is_none")]
    scenario: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counterfactual: Option<OutCounterfactual<'a>>,
}

#[derive(Serialize)]
struct OutCounterfactual<'a> {
    image: String,
    gold: Verdict,
    subset: Subset,
    #[serde(skip_serializing_if = "Option::is_none")]
    scenario: Option<&'a str>,
}

/// Writes `items` as a JSONL benchmark at `file`, atomically. Image paths under `file`'s folder
/// are written relative to it (with `/` separators); others as they are.
pub fn write(file: &Path, items: &[BenchmarkItem]) -> Result<(), BenchmarkError> {
    let dir = fileio::base_dir(file);
    let mut out = String::new();
    for item in items {
        let image = item.image.as_ref().map(|p| relative_to(p, &dir));
        let row = OutItem {
            id: &item.id,
            image,
            prompt: &item.prompt,
            gold: item.gold,
            subset: item.subset,
            scenario: item.scenario.as_deref(),
            counterfactual: item.counterfactual.as_ref().map(|c| OutCounterfactual {
                image: relative_to(&c.image, &dir),
                gold: c.gold,
                subset: c.subset,
                scenario: c.scenario.as_deref(),
            }),
        };
        out.push_str(&serde_json::to_string(&row).expect("an item always serialises"));
        out.push('\n');
    }
    write_atomic(file, out.as_bytes()).map_err(|source| BenchmarkError::Io {
        path: file.to_path_buf(),
        source,
    })
}

fn relative_to(path: &Path, dir: &Path) -> String {
    let rel: PathBuf = path
        .strip_prefix(dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.into());
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
