//! The two files a distillation appends to, and what they already hold.
//!
//! - the traces file (`--out`): one kept trace per line, in the trace format of
//!   `safeaware_data::traces` plus `teacher` (the model name) and `sample` (which of the
//!   pair's samples it was, from 0);
//! - the rejected file (`--rejected`, default `<out stem>.rejected.jsonl`): one line per pair
//!   none of whose samples was kept: `id`, `image`, `prompt`, `verdict` (the gold label),
//!   `reason` (that of the last sample) and `samples` (each `reason` and `response`).
//!
//! Both are append-only ([`LineAppender`]: whole lines, synced, a cut-off last line dropped on
//! opening), and the ids already in either are done: a rerun after a kill skips them, so no
//! pair is written twice.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use safeaware_common::fsio::write_atomic;
use safeaware_data::benchmark::Verdict;
use safeaware_data::fileio::{json_lines, LineAppender, RawId};
use safeaware_data::traces::Trace;
use serde::{Deserialize, Serialize};

use super::parse::RejectReason;
use crate::EvalError;

/// A kept trace as written: the trace and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct KeptLine<'a> {
    #[serde(flatten)]
    pub trace: &'a Trace,
    pub teacher: &'a str,
    pub sample: usize,
}

/// One rejected sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedSample {
    pub reason: RejectReason,
    pub response: String,
}

/// A pair none of whose samples was kept, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedLine {
    pub id: String,
    pub image: String,
    pub prompt: String,
    /// The gold label.
    pub verdict: Verdict,
    /// The last sample's reason.
    pub reason: RejectReason,
    pub samples: Vec<RejectedSample>,
}

/// The rejected file next to `out`: `<stem>.rejected.jsonl`.
pub fn default_rejected_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map_or_else(
        || "traces".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    out.with_file_name(format!("{stem}.rejected.jsonl"))
}

/// The open output files and the ids they already hold.
pub struct Outputs {
    pub traces: LineAppender,
    pub rejected: LineAppender,
    /// Ids with a kept trace.
    pub kept: HashSet<String>,
    /// Ids with a rejected line.
    pub rejected_ids: HashSet<String>,
    /// Unterminated last lines cut off on opening (a killed run's), with their file.
    pub cut: Vec<(PathBuf, String)>,
}

impl Outputs {
    /// Opens both files for appending (cutting off a half-written last line) and reads their
    /// ids. With `retry_rejected`, the rejected file is emptied first so its pairs are asked
    /// again.
    pub fn open(out: &Path, rejected: &Path, retry_rejected: bool) -> Result<Outputs, EvalError> {
        if retry_rejected && rejected.is_file() {
            write_atomic(rejected, b"").map_err(EvalError::io(rejected))?;
        }
        let (traces, cut_traces) = LineAppender::open(out).map_err(EvalError::io(out))?;
        let (rejected_file, cut_rejected) =
            LineAppender::open(rejected).map_err(EvalError::io(rejected))?;
        let cut = [(out, cut_traces), (rejected, cut_rejected)]
            .into_iter()
            .filter_map(|(p, c)| c.map(|c| (p.to_path_buf(), c)))
            .collect();
        Ok(Outputs {
            kept: read_ids(out)?,
            rejected_ids: read_ids(rejected)?,
            traces,
            rejected: rejected_file,
            cut,
        })
    }

    /// Whether `id` is done (kept or rejected).
    pub fn done(&self, id: &str) -> bool {
        self.kept.contains(id) || self.rejected_ids.contains(id)
    }

    /// Appends a kept trace.
    pub fn keep(&mut self, line: &KeptLine<'_>) -> Result<(), EvalError> {
        let json = serde_json::to_string(line).expect("a trace always serialises");
        let path = self.traces.path().to_path_buf();
        self.traces.append(&json).map_err(EvalError::io(path))?;
        self.kept.insert(line.trace.id.clone());
        Ok(())
    }

    /// Appends a rejected pair.
    pub fn reject(&mut self, line: &RejectedLine) -> Result<(), EvalError> {
        let json = serde_json::to_string(line).expect("a rejected line always serialises");
        let path = self.rejected.path().to_path_buf();
        self.rejected.append(&json).map_err(EvalError::io(path))?;
        self.rejected_ids.insert(line.id.clone());
        Ok(())
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: RawId,
}

/// The ids of a JSON Lines file (none if it does not exist); a line without a readable id is an
/// error naming the file and line.
fn read_ids(path: &Path) -> Result<HashSet<String>, EvalError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(EvalError::io(path)(e)),
    };
    json_lines(&text)
        .map(|(line, json)| {
            serde_json::from_str::<IdOnly>(json)
                .map(|r| r.id.into_string())
                .map_err(|e| EvalError::Json {
                    path: path.to_path_buf(),
                    message: format!(
                        "line {line}: no readable `id` ({e}); is this a file of distill's?"
                    ),
                })
        })
        .collect()
}
