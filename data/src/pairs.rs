//! Labelled pairs: an image, a prompt and the gold verdict, without a trace. The importers
//! (`data import`) write them, distillation (`data distill`) turns them into traces, and the
//! benchmark guard (`data overlap`) reads them as it reads traces.
//!
//! JSON Lines, one object per line: `id` (string or number), `image` (relative to the file's
//! folder and inside it, or absolute), `prompt`, `verdict` (`safe` | `unsafe`), optional `subset`
//! (`typical` | `attack` | `over_safety`) and `scenario`. Unknown fields are ignored. Ids are
//! unique. A line is a pair when it has a `verdict` but neither `description` nor `reasoning`
//! (nor the `messages`/`conversations` of a ShareGPT line): see [`is_pair`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::benchmark::{BenchmarkItem, Subset, Verdict};
use crate::fileio::{self, RawId};
use crate::traces::{parse_labels, read_records, require_text, write_records, TraceError};

/// One labelled image + prompt pair; `image` is as written (relative to the file's folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledPair {
    pub id: String,
    pub image: PathBuf,
    pub prompt: String,
    /// The gold verdict.
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<Subset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
}

impl LabelledPair {
    /// The pair as a benchmark item (image resolved against `dir`, the pairs file's folder), so
    /// it can be asked as the evaluator asks: the subset defaults to over-safety for a safe pair
    /// and typical for an unsafe one.
    pub fn to_item(&self, dir: &Path) -> BenchmarkItem {
        BenchmarkItem {
            id: self.id.clone(),
            image: Some(dir.join(&self.image)),
            prompt: self.prompt.clone(),
            gold: self.verdict,
            subset: self.subset.unwrap_or(match self.verdict {
                Verdict::Safe => Subset::OverSafety,
                Verdict::Unsafe => Subset::Typical,
            }),
            scenario: self.scenario.clone(),
            counterfactual: None,
        }
    }
}

/// A pairs file: its pairs with their line numbers, and the folder images are relative to.
#[derive(Debug, Clone)]
pub struct PairsFile {
    pub path: PathBuf,
    pub dir: PathBuf,
    /// `(line number, pair)` in file order.
    pub pairs: Vec<(usize, LabelledPair)>,
}

/// Whether a JSON line is a labelled pair rather than a trace or a ShareGPT line.
pub fn is_pair(value: &serde_json::Value) -> bool {
    value.as_object().is_some_and(|o| {
        o.contains_key("verdict")
            && !["description", "reasoning", "messages", "conversations"]
                .iter()
                .any(|k| o.contains_key(*k))
    })
}

#[derive(Deserialize)]
struct RawPair {
    id: RawId,
    image: String,
    prompt: String,
    verdict: String,
    #[serde(default)]
    subset: Option<String>,
    #[serde(default)]
    scenario: Option<String>,
}

/// Parses one line; the error message is for the caller to prefix with file and line.
pub fn parse_pair(json: &str) -> Result<LabelledPair, String> {
    let raw: RawPair = serde_json::from_str(json).map_err(|e| format!("bad pair: {e}"))?;
    let id = raw.id.into_string();
    require_text(&id, &[("image", &raw.image), ("prompt", &raw.prompt)])?;
    fileio::check_inside(Path::new(&raw.image)).map_err(|e| format!("id {id}: `image`: {e}"))?;
    let (verdict, subset) = parse_labels(&id, &raw.verdict, raw.subset)?;
    Ok(LabelledPair {
        id,
        image: PathBuf::from(raw.image),
        prompt: raw.prompt,
        verdict,
        subset,
        scenario: raw.scenario,
    })
}

/// Reads a pairs file; fails on the first bad line or repeated id, naming file and line.
pub fn read_pairs(path: &Path) -> Result<PairsFile, TraceError> {
    let pairs = read_records(path, |json, _| parse_pair(json), |p: &LabelledPair| &p.id)?;
    Ok(PairsFile {
        path: path.to_path_buf(),
        dir: fileio::base_dir(path),
        pairs,
    })
}

/// Writes pairs as JSON Lines, atomically.
pub fn write_pairs(path: &Path, pairs: &[LabelledPair]) -> Result<(), TraceError> {
    write_records(path, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_and_bad_lines_name_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs.jsonl");
        let pair = LabelledPair {
            id: "a-1".into(),
            image: "img/a.png".into(),
            prompt: "how do i cut it?".into(),
            verdict: Verdict::Unsafe,
            subset: None,
            scenario: Some("safe_unsafes".into()),
        };
        write_pairs(&path, std::slice::from_ref(&pair)).unwrap();
        let file = read_pairs(&path).unwrap();
        assert_eq!(file.pairs, vec![(1, pair.clone())]);
        assert_eq!(file.dir, dir.path());

        let line = serde_json::to_string(&pair).unwrap();
        std::fs::write(&path, format!("{line}\n\n{line}\n")).unwrap();
        let err = read_pairs(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("pairs.jsonl:3: id a-1 repeats line 1"),
            "{err}"
        );
        std::fs::write(
            &path,
            "{\"id\": 2, \"image\": \"x.png\", \"prompt\": \"p\", \"verdict\": \"maybe\"}\n",
        )
        .unwrap();
        let err = read_pairs(&path).unwrap_err().to_string();
        assert!(err.contains(":1: id 2: `verdict` is `maybe`"), "{err}");
    }

    #[test]
    fn pairs_are_told_apart_from_traces_and_chats() {
        let v = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert!(is_pair(&v(r#"{"id": 1, "verdict": "safe"}"#)));
        assert!(!is_pair(&v(
            r#"{"id": 1, "verdict": "safe", "reasoning": "r"}"#
        )));
        assert!(!is_pair(&v(r#"{"id": 1, "description": "d"}"#)));
        assert!(!is_pair(&v(r#"{"id": 1, "gold": "safe"}"#)));
    }
}
