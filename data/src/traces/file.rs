//! Training files: JSON Lines of native traces, description-only traces or ShareGPT/LLaVA
//! conversations, read line by line (errors name the line) and written atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safeaware_common::fsio::write_atomic;
use serde::Deserialize;

use super::{DescriptionTrace, TargetStyle, Trace};
use crate::benchmark::{Subset, Verdict};
use crate::fileio::{self, RawId};
use crate::sharegpt::{self, ChatRecord, Conversation};

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
    let records = read_records(path, parse_record, |r: &Record| r.id())?;
    Ok(TrainingFile {
        path: path.to_path_buf(),
        dir: fileio::base_dir(path),
        records,
    })
}

/// Reads a JSON Lines file of records with unique ids: `parse` reads one line (given its
/// number), `id` names a record. Fails on the first bad line or repeated id, naming the file
/// and line; an empty file is an error too.
pub(crate) fn read_records<T>(
    path: &Path,
    parse: impl Fn(&str, usize) -> Result<T, String>,
    id: impl Fn(&T) -> &str,
) -> Result<Vec<(usize, T)>, TraceError> {
    let text = crate::fileio::read_text(path).map_err(|source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut records = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (line, json) in fileio::json_lines(&text) {
        let at_line = |message| TraceError::Line {
            path: path.to_path_buf(),
            line,
            message,
        };
        let record = parse(json, line).map_err(at_line)?;
        if let Some(first) = seen.insert(id(&record).to_string(), line) {
            return Err(at_line(format!("id {} repeats line {first}", id(&record))));
        }
        records.push((line, record));
    }
    if records.is_empty() {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(records)
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
    let lines = traces
        .iter()
        .map(serde_json::to_string)
        .chain(descriptions.iter().map(serde_json::to_string));
    write_json_lines(path, lines)
}

/// Writes `records` (each to one JSON line) atomically.
pub(crate) fn write_records<T: serde::Serialize>(
    path: &Path,
    records: &[T],
) -> Result<(), TraceError> {
    write_json_lines(path, records.iter().map(serde_json::to_string))
}

fn write_json_lines(
    path: &Path,
    lines: impl Iterator<Item = serde_json::Result<String>>,
) -> Result<(), TraceError> {
    let mut out = String::new();
    for line in lines {
        out.push_str(&line.expect("records always serialise"));
        out.push('\n');
    }
    write_atomic(path, out.as_bytes()).map_err(|source| TraceError::Io {
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
    if crate::preferences::is_preference(&value) {
        return Err(
            "a preference pair (`chosen`/`rejected`), not a trace: it is data for \
             preference tuning (DPO), not for supervised training"
                .to_string(),
        );
    }
    let record = if object.contains_key("messages") || object.contains_key("conversations") {
        sharegpt::parse_chat(value, line).map(Record::Chat)?
    } else if !object.contains_key("reasoning") && !object.contains_key("verdict") {
        parse_description(value).map(Record::Description)?
    } else if crate::pairs::is_pair(&value) {
        return Err(
            "a labelled pair (a verdict without description or reasoning), not a trace: \
                    distil pairs into traces with `safeaware data distill`"
                .to_string(),
        );
    } else {
        parse_trace(value).map(Record::Trace)?
    };
    for image in record.images() {
        fileio::check_inside(image).map_err(|e| format!("id {}: `image`: {e}", record.id()))?;
    }
    Ok(record)
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
    Ok((verdict, parse_subset(id, subset)?))
}

/// An optional `subset` field; the error names the id.
pub(crate) fn parse_subset(id: &str, subset: Option<String>) -> Result<Option<Subset>, String> {
    subset
        .map(|s| {
            Subset::from_name(&s).ok_or_else(|| {
                format!("id {id}: `subset` is `{s}`, expected typical, attack or over_safety")
            })
        })
        .transpose()
}
