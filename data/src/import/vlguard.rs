//! VLGuard's `train.json` (Zong et al., ICML 2024): a JSON array of image records,
//!
//! ```json
//! {"id": "Ads_423222", "image": "bad_ads/c7ea….png", "safe": true,
//!  "instr-resp": [{"safe_instruction": "…", "response": "…"},
//!                 {"unsafe_instruction": "…", "response": "…"}]}
//! {"id": "Ads_364812", "image": "bad_ads/b02f….png", "safe": false,
//!  "harmful_category": "risky behavior", "harmful_subcategory": "political",
//!  "instr-resp": [{"instruction": "…", "response": "…"}]}
//! ```
//!
//! One pair per instruction, id `<record id>-<index in instr-resp>`: a safe image with its
//! `safe_instruction` is safe (scenario `safe_safes`), with its `unsafe_instruction` unsafe
//! (`safe_unsafes`); every instruction about an unsafe image is unsafe (`unsafes`, or
//! `unsafes/<harmful_category>` when the record names one). The responses are not kept: the
//! traces come from distillation. `image` is relative to the `--images` folder (the unzipped
//! `train.zip`) and may not leave it (`..`).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{finish, read_text, ImportError, ImportSummary, Imported};
use crate::benchmark::Verdict;
use crate::fileio::{self, RawId};
use crate::pairs::LabelledPair;

#[derive(Deserialize)]
struct Record {
    id: RawId,
    image: String,
    safe: bool,
    #[serde(default)]
    harmful_category: Option<String>,
    #[serde(rename = "instr-resp")]
    instr_resp: Vec<serde_json::Map<String, Value>>,
}

/// Imports `train` (images under `images`) into the pairs file `out`.
pub fn import(train: &Path, images: &Path, out: &Path) -> Result<ImportSummary, ImportError> {
    let text = read_text(train)?;
    let records: Vec<Value> = serde_json::from_str(&text).map_err(|e| ImportError::Record {
        place: train.display().to_string(),
        message: format!("expected a JSON array of VLGuard records: {e}"),
    })?;
    if records.is_empty() {
        return Err(ImportError::Empty {
            path: train.to_path_buf(),
        });
    }
    let mut imported = Vec::new();
    for (index, value) in records.iter().enumerate() {
        let place = format!("{}: record {}", train.display(), index + 1);
        let fail = |message: String| ImportError::Record {
            place: place.clone(),
            message,
        };
        let record: Record = serde_json::from_value(value.clone())
            .map_err(|e| fail(format!("bad VLGuard record: {e}")))?;
        for pair in record_pairs(&record, images).map_err(fail)? {
            imported.push(Imported {
                place: place.clone(),
                pair,
            });
        }
    }
    finish(imported, records.len(), images, out)
}

/// The pairs of one record; the error names the record's id.
fn record_pairs(record: &Record, images: &Path) -> Result<Vec<LabelledPair>, String> {
    let id = record.id.clone().into_string();
    if record.instr_resp.is_empty() {
        return Err(format!("id {id}: `instr-resp` is empty"));
    }
    fileio::check_inside(Path::new(&record.image)).map_err(|e| format!("id {id}: `image`: {e}"))?;
    let mut pairs = Vec::new();
    for (k, entry) in record.instr_resp.iter().enumerate() {
        let (prompt, verdict, scenario) = instruction(record, entry)
            .ok_or_else(|| format!("id {id}: instr-resp[{k}] {}", expected(record.safe)))?;
        pairs.push(LabelledPair {
            id: format!("{id}-{k}"),
            image: images.join(&record.image),
            prompt: prompt.to_string(),
            verdict,
            subset: None,
            scenario: Some(scenario),
        });
    }
    Ok(pairs)
}

/// The instruction of one `instr-resp` entry, its verdict and its scenario.
fn instruction<'a>(
    record: &Record,
    entry: &'a serde_json::Map<String, Value>,
) -> Option<(&'a str, Verdict, String)> {
    let text = |key: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    if !record.safe {
        let scenario = match &record.harmful_category {
            Some(c) => format!("unsafes/{c}"),
            None => "unsafes".to_string(),
        };
        return Some((text("instruction")?, Verdict::Unsafe, scenario));
    }
    match (text("safe_instruction"), text("unsafe_instruction")) {
        (Some(s), None) => Some((s, Verdict::Safe, "safe_safes".into())),
        (None, Some(u)) => Some((u, Verdict::Unsafe, "safe_unsafes".into())),
        _ => None,
    }
}

/// What an entry of a safe or unsafe image must hold.
fn expected(safe: bool) -> &'static str {
    if safe {
        "of a safe image needs exactly one non-empty `safe_instruction` or `unsafe_instruction`"
    } else {
        "of an unsafe image needs a non-empty `instruction`"
    }
}
