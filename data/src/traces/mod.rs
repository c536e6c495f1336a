//! Training traces: JSON Lines files of image + prompt + target answer, and how answers render.
//!
//! # Native trace form
//! One object per line: `id` (string or number), `image` (path relative to the file's folder),
//! `prompt` (the sentence to judge), `description`, `reasoning`, `verdict` (`safe` | `unsafe`),
//! optional `subset` (`typical` | `attack` | `over_safety`) and `scenario`.
//!
//! A line with neither `reasoning` nor `verdict` is a [`DescriptionTrace`]: only the image
//! description is learned, under the given prompt. Its answer is rendered as
//! `<description>…</description>` and left open (the trainer labels no end of turn after it), so
//! the model learns to describe what it sees whatever the prompt, never to stop after describing.
//! It trains in the `vcr` style only; the other styles have no description.
//!
//! # Rendering
//! The user turn is [`user_question`]: the MMSafeAware question, a newline, and the prompt in
//! double quotes, exactly as `prompt.txt` writes its blocks. The assistant turn depends on the
//! [`TargetStyle`]:
//! - `vcr`: `<description>…</description>\n<reasoning>…</reasoning>\n<verdict>Yes</verdict>`
//! - `cot`: `<reasoning>…</reasoning>\n<verdict>No</verdict>`
//! - `direct`: `<verdict>Yes</verdict>`
//!
//! The verdict answers the benchmark's question in its own words, Yes (safe) or No (unsafe)
//! ([`verdict_text`], the one place the wording is made), so the MMSafeAware authors' scorer
//! (`yes`/`no` anywhere in the answer) reads it right. The trace file keeps
//! `verdict: safe|unsafe` as data. [`parse_verdict`] reads the verdict tag back out of a model's
//! answer, in this wording or the older bare `safe`/`unsafe`.
//!
//! Lines may instead be in the ShareGPT/LLaVA form (see [`crate::sharegpt`]); [`read_training_file`]
//! accepts both, line by line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::benchmark::{Subset, Verdict, PAPER_QUESTION};
use crate::sharegpt::{self, Conversation, Message, Role};

mod file;
pub(crate) use file::{parse_labels, parse_subset, read_records, require_text, write_records};
pub use file::{
    parse_record, read_training_file, write_lines, write_traces, Record, TraceError, TrainingFile,
};

/// Opening tag of the image description (style `vcr`).
pub const DESCRIPTION_OPEN: &str = "<description>";
/// Closing tag of the image description.
pub const DESCRIPTION_CLOSE: &str = "</description>";
/// Opening tag of the reasoning (styles `vcr`, `cot`).
pub const REASONING_OPEN: &str = "<reasoning>";
/// Closing tag of the reasoning.
pub const REASONING_CLOSE: &str = "</reasoning>";
/// Opening tag of the verdict (every style); the text inside is [`verdict_text`].
pub const VERDICT_OPEN: &str = "<verdict>";
/// Closing tag of the verdict.
pub const VERDICT_CLOSE: &str = "</verdict>";
/// Every tag string, in answer order.
pub const TAGS: [&str; 6] = [
    DESCRIPTION_OPEN,
    DESCRIPTION_CLOSE,
    REASONING_OPEN,
    REASONING_CLOSE,
    VERDICT_OPEN,
    VERDICT_CLOSE,
];

/// How the assistant answer of a trace is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TargetStyle {
    /// Description, reasoning, verdict.
    #[default]
    Vcr,
    /// Reasoning, verdict.
    Cot,
    /// Verdict only.
    Direct,
}

impl TargetStyle {
    /// All styles.
    pub const ALL: [TargetStyle; 3] = [TargetStyle::Vcr, TargetStyle::Cot, TargetStyle::Direct];

    /// The name used on the command line and in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetStyle::Vcr => "vcr",
            TargetStyle::Cot => "cot",
            TargetStyle::Direct => "direct",
        }
    }
}

impl fmt::Display for TargetStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TargetStyle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TargetStyle::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown target style `{s}` (expected vcr, cot or direct)"))
    }
}

/// One training trace in the native form. `image` is as written in the file (relative to it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub id: String,
    pub image: PathBuf,
    pub prompt: String,
    pub description: String,
    pub reasoning: String,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<Subset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
}

impl Trace {
    /// The user question for this trace (see [`user_question`]).
    pub fn question(&self) -> String {
        user_question(&self.prompt)
    }

    /// The assistant answer in `style` (see [`render_answer`]).
    pub fn answer(&self, style: TargetStyle) -> String {
        render_answer(style, &self.description, &self.reasoning, self.verdict)
    }

    /// A two-turn conversation: user = image placeholder + question, assistant = answer.
    /// `dir` is the folder of the traces file; the image path is resolved against it.
    pub fn to_conversation(&self, style: TargetStyle, dir: &Path) -> Conversation {
        two_turns(
            &self.id,
            dir.join(&self.image),
            &self.prompt,
            self.answer(style),
        )
    }
}

/// User = image placeholder + [`user_question`] around `prompt`; assistant = `answer`.
pub(crate) fn two_turns(id: &str, image: PathBuf, prompt: &str, answer: String) -> Conversation {
    image_turns(id, image, &user_question(prompt), answer)
}

/// User = image placeholder + `user` as written; assistant = `answer`.
pub(crate) fn image_turns(id: &str, image: PathBuf, user: &str, answer: String) -> Conversation {
    Conversation {
        id: id.to_string(),
        images: vec![image],
        messages: vec![
            Message {
                role: Role::User,
                content: format!("{}\n{user}", sharegpt::IMAGE_PLACEHOLDER),
            },
            Message {
                role: Role::Assistant,
                content: answer,
            },
        ],
    }
}

/// `<description>…</description>`: the first part of a `vcr` answer, and all of a
/// description-only one.
fn description_block(description: &str) -> String {
    format!("{DESCRIPTION_OPEN}{description}{DESCRIPTION_CLOSE}")
}

/// The MMSafeAware user question around `prompt`: the paper's question, a newline, and the
/// prompt in double quotes (as the blocks of the release's `prompt.txt`).
pub fn user_question(prompt: &str) -> String {
    format!("{PAPER_QUESTION}\n\"{prompt}\"")
}

/// The words of a verdict inside its tag: `Yes` (safe) or `No` (unsafe), the answer the
/// benchmark asks for ("is this sentence safe? … start by answering Yes or No").
///
/// One word, as the older `safe`/`unsafe` was: the reasoning before it already ends with
/// `so the request is safe.`, and a longer verdict slowed learning. With
/// `Yes, it is safe.` the quickstart (850 steps) named the object wrongly in 12–16 of its 200
/// validation answers at step 800 over three seeds, against 4 with one word (data/README.md).
pub fn verdict_text(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Safe => "Yes",
        Verdict::Unsafe => "No",
    }
}

/// Renders an assistant answer in `style` from its parts (tags joined by newlines).
pub fn render_answer(
    style: TargetStyle,
    description: &str,
    reasoning: &str,
    verdict: Verdict,
) -> String {
    let verdict = format!("{VERDICT_OPEN}{}{VERDICT_CLOSE}", verdict_text(verdict));
    let reasoning = format!("{REASONING_OPEN}{reasoning}{REASONING_CLOSE}");
    match style {
        TargetStyle::Vcr => format!("{}\n{reasoning}\n{verdict}", description_block(description)),
        TargetStyle::Cot => format!("{reasoning}\n{verdict}"),
        TargetStyle::Direct => verdict,
    }
}

/// The verdict in the first `<verdict>…</verdict>` tag of `text`; `None` if there is no
/// complete tag or its words are not a verdict (see [`read_verdict_words`]).
pub fn parse_verdict(text: &str) -> Option<Verdict> {
    verdict_tag(text).and_then(read_verdict_words)
}

/// The text inside the first complete `<verdict>…</verdict>` tag of `text`, as written.
pub fn verdict_tag(text: &str) -> Option<&str> {
    let start = text.find(VERDICT_OPEN)? + VERDICT_OPEN.len();
    let len = text[start..].find(VERDICT_CLOSE)?;
    Some(&text[start..start + len])
}

/// Reads the words inside a verdict tag: a [`first_word`] `yes` (safe) or `no` (unsafe)
/// decides, as the benchmark's question asks, whatever follows it (`Yes`, `No, it is unsafe.`,
/// or `No , it is unsafe .` as a word-level tokenizer decodes it); else the bare `safe` /
/// `unsafe` of older traces (case and surrounding space ignored). Anything else is `None`.
pub fn read_verdict_words(inner: &str) -> Option<Verdict> {
    match first_word(inner).as_deref() {
        Some("yes") => Some(Verdict::Safe),
        Some("no") => Some(Verdict::Unsafe),
        _ => Verdict::from_name(inner),
    }
}

/// The first word of `text`, lower-cased: leading characters that are not letters or digits
/// (space, `**`, `#`, quotes, punctuation) are skipped; the word runs over letters, digits,
/// `-` and `'` (so "No-one" is not "no"), without trailing `-`/`'`.
pub fn first_word(text: &str) -> Option<String> {
    let start = text.trim_start_matches(|c: char| !c.is_alphanumeric());
    let end = start
        .find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\''))
        .unwrap_or(start.len());
    let word = start[..end].trim_end_matches(['-', '\'']);
    (!word.is_empty()).then(|| word.to_lowercase())
}

/// A description-only trace: an image under a prompt, with only its description to learn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DescriptionTrace {
    pub id: String,
    pub image: PathBuf,
    pub prompt: String,
    pub description: String,
}

impl DescriptionTrace {
    /// User = image placeholder + question; assistant = the description alone, in its tags.
    pub fn to_conversation(&self, dir: &Path) -> Conversation {
        let answer = description_block(&self.description);
        two_turns(&self.id, dir.join(&self.image), &self.prompt, answer)
    }
}
