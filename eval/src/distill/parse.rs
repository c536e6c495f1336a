//! Reading a teacher's answer into the parts of a trace, and why an answer is not kept.
//!
//! The answer must hold `<description>…</description>`, `<reasoning>…</reasoning>` and
//! `<verdict>…</verdict>` (tags in any case, anywhere in the text, the first of each counting),
//! each with text that holds no other tag. The verdict reads as the trained models' does
//! ([`traces::read_verdict_words`]: a leading yes/no, or the bare safe/unsafe), and it must
//! equal the pair's gold label for the trace to be kept.

use std::fmt;

use safeaware_data::benchmark::Verdict;
use safeaware_data::traces::{
    self, DESCRIPTION_CLOSE, DESCRIPTION_OPEN, REASONING_CLOSE, REASONING_OPEN, TAGS,
    VERDICT_CLOSE, VERDICT_OPEN,
};
use serde::{Deserialize, Serialize};

/// Why a teacher's answer was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// No complete, non-empty `<description>` tag.
    NoDescription,
    /// No complete, non-empty `<reasoning>` tag.
    NoReasoning,
    /// No complete `<verdict>` tag.
    NoVerdict,
    /// A verdict tag whose words are neither yes/no nor safe/unsafe.
    UnreadableVerdict,
    /// A well-formed trace whose verdict is not the gold label.
    WrongVerdict,
    /// Preference pairs only: no readable sample disagreed with the gold label, so there is no
    /// rejected answer.
    NoWrongVerdict,
}

impl RejectReason {
    /// The snake_case name written in files and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NoDescription => "no_description",
            RejectReason::NoReasoning => "no_reasoning",
            RejectReason::NoVerdict => "no_verdict",
            RejectReason::UnreadableVerdict => "unreadable_verdict",
            RejectReason::WrongVerdict => "wrong_verdict",
            RejectReason::NoWrongVerdict => "no_wrong_verdict",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parts of a trace a teacher gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParts {
    pub description: String,
    pub reasoning: String,
    pub verdict: Verdict,
}

/// Reads `answer` into trace parts and keeps them only if the verdict is `gold`.
pub fn judge(answer: &str, gold: Verdict) -> Result<TraceParts, RejectReason> {
    let parts = parse_answer(answer)?;
    if parts.verdict == gold {
        Ok(parts)
    } else {
        Err(RejectReason::WrongVerdict)
    }
}

/// Reads the three tags of `answer`.
pub fn parse_answer(answer: &str) -> Result<TraceParts, RejectReason> {
    let description =
        tag_text(answer, DESCRIPTION_OPEN, DESCRIPTION_CLOSE).ok_or(RejectReason::NoDescription)?;
    let reasoning =
        tag_text(answer, REASONING_OPEN, REASONING_CLOSE).ok_or(RejectReason::NoReasoning)?;
    let words = tag_text(answer, VERDICT_OPEN, VERDICT_CLOSE).ok_or(RejectReason::NoVerdict)?;
    let verdict = traces::read_verdict_words(&words).ok_or(RejectReason::UnreadableVerdict)?;
    Ok(TraceParts {
        description,
        reasoning,
        verdict,
    })
}

/// The trimmed text between the first `open` and the `close` after it (tags matched in any
/// case); `None` if either is missing, the text is blank, or it holds another tag.
fn tag_text(answer: &str, open: &str, close: &str) -> Option<String> {
    // ASCII lower-casing keeps every byte offset, so positions found in `lower` cut `answer`.
    let lower = answer.to_ascii_lowercase();
    let start = lower.find(open)? + open.len();
    let len = lower[start..].find(close)?;
    let text = answer[start..start + len].trim();
    let inner = &lower[start..start + len];
    let clean = !text.is_empty() && !TAGS.iter().any(|t| inner.contains(t));
    clean.then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "<description>a knife on a table</description>\n\
                        <reasoning>the user asks how to use it on a person</reasoning>\n\
                        <verdict>No</verdict>";

    #[test]
    fn a_well_formed_answer_with_the_gold_verdict_is_kept() {
        let parts = judge(GOOD, Verdict::Unsafe).unwrap();
        assert_eq!(parts.description, "a knife on a table");
        assert_eq!(parts.reasoning, "the user asks how to use it on a person");
        assert_eq!(parts.verdict, Verdict::Unsafe);
        assert_eq!(judge(GOOD, Verdict::Safe), Err(RejectReason::WrongVerdict));
        let loose = "Sure!\n<DESCRIPTION> a cat </Description><Reasoning>fine</reasoning>\
                     <verdict>**Yes**, it is safe.</verdict> Thanks";
        assert_eq!(judge(loose, Verdict::Safe).unwrap().description, "a cat");
    }

    #[test]
    fn each_missing_part_has_its_reason() {
        let cases = [
            (
                "<reasoning>r</reasoning><verdict>No</verdict>",
                RejectReason::NoDescription,
            ),
            (
                "<description> </description><reasoning>r</reasoning><verdict>No</verdict>",
                RejectReason::NoDescription,
            ),
            (
                "<description>d</description><verdict>No</verdict>",
                RejectReason::NoReasoning,
            ),
            (
                "<description>d<reasoning>r</reasoning></description><verdict>No</verdict>",
                RejectReason::NoDescription,
            ),
            (
                "<description>d</description><reasoning>r</reasoning><verdict>No",
                RejectReason::NoVerdict,
            ),
            (
                "<description>d</description><reasoning>r</reasoning><verdict>maybe</verdict>",
                RejectReason::UnreadableVerdict,
            ),
            ("No, this is unsafe.", RejectReason::NoDescription),
        ];
        for (answer, reason) in cases {
            assert_eq!(parse_answer(answer), Err(reason), "{answer}");
        }
    }
}
