//! The two files a distillation appends to, and what they already hold.
//!
//! - the traces file (`--out`): one kept trace per line, in the trace format of
//!   `safeaware_data::traces` plus `teacher` (the model name) and `sample` (which of the
//!   pair's samples it was, from 0); with `--preferences`, one preference pair per line
//!   (`safeaware_data::preferences`) plus `teacher`, `chosen_sample` and `rejected_sample`;
//! - the rejected file (`--rejected`, default `<out stem>.rejected.jsonl`): one line per pair
//!   none of whose samples was kept: `id`, `image`, `prompt`, `verdict` (the gold label),
//!   `reason` (that of the last sample) and `samples` (each `reason` and `response`).
//!
//! Both are append-only ([`LineAppender`]: whole lines, synced, a cut-off last line dropped on
//! opening), and the ids already in either are done: a rerun after a kill skips them, so no
//! pair is written twice. Both are locked while a distillation runs ([`OutputFile`]: a second
//! process on either fails at once, naming the first's pid), and an existing file that is not
//! distill's (a line without an `id` and the field every line of that file has: `teacher` for
//! traces, `reason` for rejected pairs) is refused, or emptied first with `--overwrite`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use safeaware_common::fsio::write_atomic;
use safeaware_common::output_dir::OutputDirError;
use safeaware_common::output_file::OutputFile;
use safeaware_data::benchmark::Verdict;
use safeaware_data::fileio::{json_lines, LineAppender, RawId};
use safeaware_data::preferences::PreferencePair;
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

/// A kept preference pair as written: the pair, the teacher and which samples its answers were.
#[derive(Debug, Clone, Serialize)]
pub struct PreferredLine<'a> {
    #[serde(flatten)]
    pub pair: &'a PreferencePair,
    pub teacher: &'a str,
    pub chosen_sample: usize,
    pub rejected_sample: usize,
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
    /// The locks on both files, held while this is open.
    _locks: [OutputFile; 2],
}

/// The field every line distill writes to the traces file has.
const TRACES_MARK: &str = "teacher";
/// The field every line distill writes to the rejected file has.
const REJECTED_MARK: &str = "reason";

impl Outputs {
    /// Locks both files, checks they are distill's (emptying one that is not with
    /// `overwrite`), opens them for appending (cutting off a half-written last line) and reads
    /// their ids. With `retry_rejected`, the rejected file is emptied first so its pairs are
    /// asked again.
    pub fn open(
        out: &Path,
        rejected: &Path,
        retry_rejected: bool,
        overwrite: bool,
    ) -> Result<Outputs, EvalError> {
        let files = [(out, TRACES_MARK), (rejected, REJECTED_MARK)];
        if !overwrite {
            // Refused before anything (even a lock file) is created beside someone's file.
            for (path, mark) in files {
                check_own(path, mark, false)?;
            }
        }
        let locks = [OutputFile::lock(out)?, OutputFile::lock(rejected)?];
        for (path, mark) in files {
            check_own(path, mark, overwrite)?;
        }
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
            _locks: locks,
        })
    }

    /// Whether `id` is done (kept or rejected).
    pub fn done(&self, id: &str) -> bool {
        self.kept.contains(id) || self.rejected_ids.contains(id)
    }

    /// Appends a kept trace.
    pub fn keep(&mut self, line: &KeptLine<'_>) -> Result<(), EvalError> {
        let json = serde_json::to_string(line).expect("a trace always serialises");
        self.append_kept(&line.trace.id, &json)
    }

    /// Appends a kept preference pair.
    pub fn keep_preference(&mut self, line: &PreferredLine<'_>) -> Result<(), EvalError> {
        let json = serde_json::to_string(line).expect("a preference pair always serialises");
        self.append_kept(&line.pair.id, &json)
    }

    /// Appends one kept line for `id` to the traces file.
    fn append_kept(&mut self, id: &str, json: &str) -> Result<(), EvalError> {
        let path = self.traces.path().to_path_buf();
        self.traces.append(json).map_err(EvalError::io(path))?;
        self.kept.insert(id.to_string());
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

/// Refuses an existing `path` that is not a file of distill's, unless `overwrite`, which
/// empties it. Every whole line must be JSON with an `id` and `mark`; an unterminated last line
/// (cut off when the file is opened) only counts in a file with no whole line of distill's.
fn check_own(path: &Path, mark: &str, overwrite: bool) -> Result<(), EvalError> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(EvalError::io(path)(e)),
    };
    let (whole, tail) = match text.rfind('\n') {
        Some(end) => text.split_at(end + 1),
        None => ("", text.as_str()),
    };
    let foreign_line = json_lines(whole)
        .find(|(_, json)| !is_own_line(json, mark))
        .map(|(line, _)| line);
    let any_own = json_lines(whole).next().is_some();
    let foreign = match foreign_line {
        Some(line) => Some(line),
        None if !any_own && !tail.trim().is_empty() && !is_own_line(tail.trim(), mark) => {
            Some(whole.lines().count() + 1)
        }
        None => None,
    };
    let Some(line) = foreign else {
        return Ok(());
    };
    if overwrite {
        return write_atomic(path, b"").map_err(EvalError::io(path));
    }
    Err(OutputDirError::FileExists {
        path: path.to_path_buf(),
        detail: format!(
            " and is not distill's output (line {line} is not JSON with an `id` and `{mark}`)"
        ),
    }
    .into())
}

/// Whether a JSON line is one distill wrote to a file whose lines all have `mark`.
fn is_own_line(json: &str, mark: &str) -> bool {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else {
        return false;
    };
    value.get(mark).is_some()
        && value
            .get("id")
            .is_some_and(|id| RawId::deserialize(id).is_ok())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_distill_did_not_write_is_refused_or_emptied_with_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (out, rejected) = (dir.path().join("t.jsonl"), dir.path().join("r.jsonl"));
        let own = "{\"id\": \"a\", \"teacher\": \"m\"}\n{\"id\": 2, \"teacher\": \"m\"}\n{\"id\"";
        std::fs::write(&out, own).unwrap();
        // Its own file (a cut-off last line included) is resumed.
        let opened = Outputs::open(&out, &rejected, false, false).unwrap();
        assert_eq!((opened.kept.len(), opened.cut.len()), (2, 1));
        drop(opened);
        let foreign = "{\"id\": \"a\", \"verdict\": \"safe\"}\n";
        std::fs::write(&out, foreign).unwrap();
        let listing = || {
            let mut names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let before = listing();
        let err = Outputs::open(&out, &rejected, false, false)
            .err()
            .expect("a file distill did not write is refused")
            .to_string();
        assert!(
            err.contains("t.jsonl already exists and is not distill's output (line 1"),
            "{err}"
        );
        assert_eq!(listing(), before);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), foreign);
        Outputs::open(&out, &rejected, false, true).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"");
    }
}
