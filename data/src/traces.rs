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
use crate::fileio::{self, RawId};
use crate::sharegpt::{self, ChatRecord, Conversation, Message, Role};

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
fn two_turns(id: &str, image: PathBuf, prompt: &str, answer: String) -> Conversation {
    Conversation {
        id: id.to_string(),
        images: vec![image],
        messages: vec![
            Message {
                role: Role::User,
                content: format!("{}\n{}", sharegpt::IMAGE_PLACEHOLDER, user_question(prompt)),
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

/// One line of a training file: a native trace, a description-only trace or a ShareGPT
/// conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Trace(Trace),
    Description(DescriptionTrace),
    Chat(ChatRecord),
}

impl Record {
    /// The record's id (ShareGPT lines without one get `line-<n>`).
    pub fn id(&self) -> &str {
        match self {
            Record::Trace(t) => &t.id,
            Record::Description(d) => &d.id,
            Record::Chat(c) => &c.id,
        }
    }

    /// Image paths as written (relative to the file's folder).
    pub fn images(&self) -> Vec<&Path> {
        match self {
            Record::Trace(t) => vec![t.image.as_path()],
            Record::Description(d) => vec![d.image.as_path()],
            Record::Chat(c) => c.images.iter().map(PathBuf::as_path).collect(),
        }
    }

    /// The conversation to train on; a trace renders its answer in `style`, a chat is as written.
    pub fn to_conversation(&self, style: TargetStyle, dir: &Path) -> Conversation {
        match self {
            Record::Trace(t) => t.to_conversation(style, dir),
            Record::Description(d) => d.to_conversation(dir),
            Record::Chat(c) => c.to_conversation(dir),
        }
    }

    /// Whether the record has a target in `style` (description-only ones need `vcr`).
    pub fn trains_in(&self, style: TargetStyle) -> bool {
        !matches!(self, Record::Description(_)) || style == TargetStyle::Vcr
    }

    /// Whether the answer is left open: its end of turn is not learned (description-only).
    pub fn open_answer(&self) -> bool {
        matches!(self, Record::Description(_))
    }
}

/// A training file: its records, line numbers, and the folder images are relative to.
#[derive(Debug, Clone)]
pub struct TrainingFile {
    pub path: PathBuf,
    /// The folder that image paths are relative to.
    pub dir: PathBuf,
    /// `(line number, record)` in file order.
    pub records: Vec<(usize, Record)>,
}

impl TrainingFile {
    /// Every record as a conversation with resolved image paths.
    pub fn conversations(&self, style: TargetStyle) -> Vec<Conversation> {
        self.records
            .iter()
            .map(|(_, r)| r.to_conversation(style, &self.dir))
            .collect()
    }

    /// The full native traces only (description-only and ShareGPT lines skipped).
    pub fn traces(&self) -> impl Iterator<Item = &Trace> {
        self.records.iter().filter_map(|(_, r)| match r {
            Record::Trace(t) => Some(t),
            _ => None,
        })
    }
}

/// Errors reading or writing training files; each names the file, and the line where one applies.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: no records")]
    Empty { path: PathBuf },
}

/// Reads a training file (native traces and/or ShareGPT lines); fails on the first bad line,
/// naming the file and line number. Images are not opened here (see `tools::validate`).
pub fn read_training_file(path: &Path) -> Result<TrainingFile, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut records = Vec::new();
    for (line, json) in fileio::json_lines(&text) {
        let record = parse_record(json, line).map_err(|message| TraceError::Line {
            path: path.to_path_buf(),
            line,
            message,
        })?;
        records.push((line, record));
    }
    if records.is_empty() {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(TrainingFile {
        path: path.to_path_buf(),
        dir: fileio::base_dir(path),
        records,
    })
}

/// Writes native traces as JSON Lines, atomically.
pub fn write_traces(path: &Path, traces: &[Trace]) -> Result<(), TraceError> {
    write_lines(path, traces, &[])
}

/// Writes full traces, then description-only ones, as JSON Lines, atomically.
pub fn write_lines(
    path: &Path,
    traces: &[Trace],
    descriptions: &[DescriptionTrace],
) -> Result<(), TraceError> {
    let mut out = String::new();
    let lines = traces
        .iter()
        .map(serde_json::to_string)
        .chain(descriptions.iter().map(serde_json::to_string));
    for line in lines {
        out.push_str(&line.expect("a trace always serialises"));
        out.push('\n');
    }
    fileio::write_atomic(path, out.as_bytes()).map_err(|source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses one JSON line of a training file; `line` names ShareGPT records without an id.
/// The error message is for the caller to prefix with file and line.
pub fn parse_record(json: &str, line: usize) -> Result<Record, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    let Some(object) = value.as_object() else {
        return Err("expected a JSON object".to_string());
    };
    if object.contains_key("messages") || object.contains_key("conversations") {
        return sharegpt::parse_chat(value, line).map(Record::Chat);
    }
    if !object.contains_key("reasoning") && !object.contains_key("verdict") {
        return parse_description(value).map(Record::Description);
    }
    if crate::pairs::is_pair(&value) {
        return Err(
            "a labelled pair (a verdict without description or reasoning), not a trace: \
                    distil pairs into traces with `safeaware data distill`"
                .to_string(),
        );
    }
    parse_trace(value).map(Record::Trace)
}

/// A non-empty `id`, and each named field not blank (the error names the id and the field).
pub(crate) fn require_text(id: &str, fields: &[(&str, &str)]) -> Result<(), String> {
    if id.trim().is_empty() {
        return Err("empty `id`".to_string());
    }
    match fields.iter().find(|(_, text)| text.trim().is_empty()) {
        Some((name, _)) => Err(format!("id {id}: empty `{name}`")),
        None => Ok(()),
    }
}

#[derive(Deserialize)]
struct RawDescription {
    id: RawId,
    image: String,
    prompt: String,
    description: String,
}

fn parse_description(value: serde_json::Value) -> Result<DescriptionTrace, String> {
    let raw: RawDescription = serde_json::from_value(value)
        .map_err(|e| format!("bad trace (description-only: no reasoning, no verdict): {e}"))?;
    let id = raw.id.into_string();
    require_text(
        &id,
        &[
            ("image", &raw.image),
            ("prompt", &raw.prompt),
            ("description", &raw.description),
        ],
    )?;
    Ok(DescriptionTrace {
        id,
        image: PathBuf::from(raw.image),
        prompt: raw.prompt,
        description: raw.description,
    })
}

/// Unknown extra fields are ignored, so files may carry metadata of their own.
#[derive(Deserialize)]
struct RawTrace {
    id: RawId,
    image: String,
    prompt: String,
    description: String,
    reasoning: String,
    verdict: String,
    #[serde(default)]
    subset: Option<String>,
    #[serde(default)]
    scenario: Option<String>,
}

fn parse_trace(value: serde_json::Value) -> Result<Trace, String> {
    let raw: RawTrace = serde_json::from_value(value).map_err(|e| format!("bad trace: {e}"))?;
    let id = raw.id.into_string();
    require_text(
        &id,
        &[
            ("image", &raw.image),
            ("prompt", &raw.prompt),
            ("description", &raw.description),
            ("reasoning", &raw.reasoning),
        ],
    )?;
    let (verdict, subset) = parse_labels(&id, &raw.verdict, raw.subset)?;
    Ok(Trace {
        id,
        image: PathBuf::from(raw.image),
        prompt: raw.prompt,
        description: raw.description,
        reasoning: raw.reasoning,
        verdict,
        subset,
        scenario: raw.scenario,
    })
}

/// A `verdict` (`safe` | `unsafe`) and an optional `subset` read from a line of item `id`; the
/// error names the id and the field.
pub(crate) fn parse_labels(
    id: &str,
    verdict: &str,
    subset: Option<String>,
) -> Result<(Verdict, Option<Subset>), String> {
    let verdict = Verdict::from_name(verdict)
        .ok_or_else(|| format!("id {id}: `verdict` is `{verdict}`, expected `safe` or `unsafe`"))?;
    let subset = match subset {
        None => None,
        Some(s) => Some(Subset::from_name(&s).ok_or_else(|| {
            format!("id {id}: `subset` is `{s}`, expected typical, attack or over_safety")
        })?),
    };
    Ok((verdict, subset))
}
