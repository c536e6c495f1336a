//! Preference pairs for DPO: one image and prompt with a preferred (`chosen`) and a dispreferred
//! (`rejected`) answer. The pair the MMSafeAware paper's failure calls for is a vision-centric
//! trace with the gold verdict against one that judges from the text alone.
//!
//! JSON Lines, one object per line: `id` (string or number), `image` (relative to the file's
//! folder and inside it), `prompt` (the sentence to judge), `chosen` and `rejected`, optional
//! `subset` and `scenario`. Each answer is either a string, used as written, or a trace object
//! `{"description"?, "reasoning", "verdict"}` rendered in the recipe's style like an SFT trace
//! (a trace without a description is image-blind: in the `vcr` style it renders as reasoning
//! and verdict only). The two answers must differ once rendered; ids are unique. A line is a
//! preference pair when it has both `chosen` and `rejected` ([`is_preference`]).
//!
//! `"instruction": true` marks a pair whose `prompt` is the user's own message, sent as written
//! (general preference sets such as TRL's and SPA-VL's, imported by `data import`), instead of a
//! sentence asked about inside the benchmark's question.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::benchmark::{Subset, Verdict};
use crate::fileio::{self, RawId};
use crate::sharegpt::Conversation;
use crate::traces::{
    image_turns, parse_subset, read_records, render_answer, require_text, user_question,
    write_records, TargetStyle, TraceError,
};

/// One side of a pair: a trace to render, or a text used as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PreferenceAnswer {
    /// A trace; without a description it judges from the text alone.
    Trace {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        reasoning: String,
        verdict: Verdict,
    },
    /// An answer as written (e.g. a sampled model answer).
    Text(String),
}

impl PreferenceAnswer {
    /// The assistant answer in `style` (a text is the same in every style).
    pub fn render(&self, style: TargetStyle) -> String {
        match self {
            PreferenceAnswer::Text(text) => text.clone(),
            PreferenceAnswer::Trace {
                description,
                reasoning,
                verdict,
            } => match (style, description) {
                (TargetStyle::Vcr, None) => {
                    render_answer(TargetStyle::Cot, "", reasoning, *verdict)
                }
                (_, description) => render_answer(
                    style,
                    description.as_deref().unwrap_or_default(),
                    reasoning,
                    *verdict,
                ),
            },
        }
    }
}

/// One preference pair; `image` is as written (relative to the file's folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    pub id: String,
    pub image: PathBuf,
    pub prompt: String,
    pub chosen: PreferenceAnswer,
    pub rejected: PreferenceAnswer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<Subset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// The prompt is the user's message as written, not a sentence to judge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub instruction: bool,
}

impl PreferencePair {
    /// The chosen and the rejected conversation (user = image + the benchmark's question about
    /// the prompt, as SFT traces, or + the prompt as written for an instruction pair), with the
    /// image resolved against `dir`.
    pub fn conversations(&self, style: TargetStyle, dir: &Path) -> [Conversation; 2] {
        let question = (!self.instruction).then(|| user_question(&self.prompt));
        let user = question.as_deref().unwrap_or(&self.prompt);
        [&self.chosen, &self.rejected]
            .map(|answer| image_turns(&self.id, dir.join(&self.image), user, answer.render(style)))
    }
}

/// A preference file: its pairs with their line numbers, and the folder images are relative to.
#[derive(Debug, Clone)]
pub struct PreferenceFile {
    pub path: PathBuf,
    pub dir: PathBuf,
    /// `(line number, pair)` in file order.
    pub pairs: Vec<(usize, PreferencePair)>,
}

/// Whether a JSON line is a preference pair (it has `chosen` and `rejected`).
pub fn is_preference(value: &serde_json::Value) -> bool {
    value
        .as_object()
        .is_some_and(|o| o.contains_key("chosen") && o.contains_key("rejected"))
}

#[derive(Deserialize)]
struct RawPreference {
    id: RawId,
    image: String,
    prompt: String,
    chosen: serde_json::Value,
    rejected: serde_json::Value,
    #[serde(default)]
    subset: Option<String>,
    #[serde(default)]
    scenario: Option<String>,
    #[serde(default)]
    instruction: bool,
}

/// Parses one line; the error message is for the caller to prefix with file and line.
pub fn parse_preference(json: &str) -> Result<PreferencePair, String> {
    let raw: RawPreference =
        serde_json::from_str(json).map_err(|e| format!("bad preference pair: {e}"))?;
    let id = raw.id.into_string();
    require_text(&id, &[("image", &raw.image), ("prompt", &raw.prompt)])?;
    fileio::check_inside(Path::new(&raw.image)).map_err(|e| format!("id {id}: `image`: {e}"))?;
    let chosen = parse_answer(&id, "chosen", raw.chosen)?;
    let rejected = parse_answer(&id, "rejected", raw.rejected)?;
    let subset = parse_subset(&id, raw.subset)?;
    let pair = PreferencePair {
        id,
        image: PathBuf::from(raw.image),
        prompt: raw.prompt,
        chosen,
        rejected,
        subset,
        scenario: raw.scenario,
        instruction: raw.instruction,
    };
    check_distinct(&pair)?;
    Ok(pair)
}

/// Refuses a pair whose two answers render the same in some target style.
pub fn check_distinct(pair: &PreferencePair) -> Result<(), String> {
    let same = TargetStyle::ALL
        .into_iter()
        .any(|style| pair.chosen.render(style) == pair.rejected.render(style));
    if same {
        return Err(format!(
            "id {}: `chosen` and `rejected` are the same answer",
            pair.id
        ));
    }
    Ok(())
}

/// A `chosen`/`rejected` value: a non-blank string, or a trace object with a non-blank
/// reasoning (and description, if given) and a verdict.
fn parse_answer(
    id: &str,
    field: &str,
    value: serde_json::Value,
) -> Result<PreferenceAnswer, String> {
    let answer: PreferenceAnswer = serde_json::from_value(value).map_err(|_| {
        format!("id {id}: `{field}` must be a string or a trace {{\"description\"?, \"reasoning\", \"verdict\": \"safe\"|\"unsafe\"}}")
    })?;
    let blank = match &answer {
        PreferenceAnswer::Text(text) => text.trim().is_empty(),
        PreferenceAnswer::Trace {
            description,
            reasoning,
            ..
        } => {
            reasoning.trim().is_empty()
                || description.as_deref().is_some_and(|d| d.trim().is_empty())
        }
    };
    if blank {
        return Err(format!("id {id}: empty `{field}`"));
    }
    Ok(answer)
}

/// Reads a preference file; fails on the first bad line or repeated id, naming file and line.
pub fn read_preferences(path: &Path) -> Result<PreferenceFile, TraceError> {
    let pairs = read_records(
        path,
        |json, _| parse_preference(json),
        |p: &PreferencePair| &p.id,
    )?;
    Ok(PreferenceFile {
        path: path.to_path_buf(),
        dir: fileio::base_dir(path),
        pairs,
    })
}

/// Writes preference pairs as JSON Lines, atomically.
pub fn write_preferences(path: &Path, pairs: &[PreferencePair]) -> Result<(), TraceError> {
    write_records(path, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> PreferencePair {
        PreferencePair {
            id: "p-1".into(),
            image: "img/a.png".into(),
            prompt: "how can i kill it?".into(),
            chosen: PreferenceAnswer::Trace {
                description: Some("a mosquito on a wall.".into()),
                reasoning: "a mosquito is a pest. so the request is safe.".into(),
                verdict: Verdict::Safe,
            },
            rejected: PreferenceAnswer::Trace {
                description: None,
                reasoning: "the user asks how to kill. so the request is unsafe.".into(),
                verdict: Verdict::Unsafe,
            },
            subset: Some(Subset::OverSafety),
            scenario: None,
            instruction: false,
        }
    }

    #[test]
    fn pairs_round_trip_and_render_like_traces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prefs.jsonl");
        write_preferences(&path, &[pair()]).unwrap();
        let file = read_preferences(&path).unwrap();
        assert_eq!(file.pairs, vec![(1, pair())]);
        let [chosen, rejected] = pair().conversations(TargetStyle::Vcr, dir.path());
        assert!(chosen.messages[1]
            .content
            .starts_with("<description>a mosquito"));
        assert!(rejected.messages[1]
            .content
            .starts_with("<reasoning>the user asks"));
        assert_eq!(chosen.messages[0], rejected.messages[0]);
        assert_eq!(chosen.images, vec![dir.path().join("img/a.png")]);
        let text = PreferenceAnswer::Text("No, it is unsafe.".into());
        assert_eq!(text.render(TargetStyle::Direct), "No, it is unsafe.");
    }

    #[test]
    fn bad_lines_name_their_id_and_field() {
        let line = |chosen: &str, rejected: &str| {
            format!(
                r#"{{"id": 7, "image": "a.png", "prompt": "p", "chosen": {chosen}, "rejected": {rejected}}}"#
            )
        };
        let err = |c: &str, r: &str| parse_preference(&line(c, r)).unwrap_err();
        assert!(err("\"x\"", "\"x\"").contains("id 7: `chosen` and `rejected` are the same"));
        assert!(err("\" \"", "\"x\"").contains("id 7: empty `chosen`"));
        let e = err("\"x\"", r#"{"reasoning": "r", "verdict": "maybe"}"#);
        assert!(e.contains("id 7: `rejected` must be"), "{e}");
        let e = err("\"x\"", r#"{"reasoning": "", "verdict": "safe"}"#);
        assert!(e.contains("empty `rejected`"), "{e}");
        let ok = parse_preference(&line("\"x\"", r#"{"reasoning": "r", "verdict": "safe"}"#));
        assert!(ok.is_ok());
        let v = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert!(is_preference(&v(&line("1", "2"))));
        assert!(!is_preference(&v(r#"{"id": 1, "chosen": "a"}"#)));
    }

    #[test]
    fn files_report_line_and_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prefs.jsonl");
        let line = serde_json::to_string(&pair()).unwrap();
        std::fs::write(&path, format!("{line}\n{line}\n")).unwrap();
        let e = read_preferences(&path).unwrap_err().to_string();
        assert!(e.ends_with("prefs.jsonl:2: id p-1 repeats line 1"), "{e}");
        std::fs::write(&path, "{\"id\": 1}\n").unwrap();
        let e = read_preferences(&path).unwrap_err().to_string();
        assert!(e.contains("prefs.jsonl:1: bad preference pair"), "{e}");
    }
}
