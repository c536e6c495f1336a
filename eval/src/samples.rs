//! `samples.jsonl`: one record per benchmark item asked (id, subset, scenario, prompt, response,
//! the verdict of each parser, whether it is correct, and the error if any).
//!
//! The file is appended to and flushed record by record during a run, so a killed run keeps
//! everything it finished; reading it skips a torn last line, and the last record of an id wins.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use safeaware_common::fsio::write_atomic;
use safeaware_data::benchmark::{BenchmarkItem, Subset, Verdict};
use safeaware_data::fileio::json_lines;
use serde::{Deserialize, Serialize};

use crate::source::SourceError;
use crate::verdict::{Judgment, Parser};
use crate::EvalError;

/// What became of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Answered and scored.
    Scored,
    /// The source has no answer for it (left out of every denominator).
    MissingResponse,
    /// It could not be asked or answered (counted in `counts.errors`).
    Error,
    /// The benchmark has no image for it, so a generating source cannot ask about it (left
    /// out of every denominator; not a failure of the run).
    Skipped,
}

/// A value per parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerParser<T> {
    pub strict: T,
    pub paper: T,
}

impl<T: Copy> PerParser<T> {
    /// The value for `parser`.
    pub fn get(&self, parser: Parser) -> T {
        match parser {
            Parser::Strict => self.strict,
            Parser::Paper => self.paper,
        }
    }
}

/// One line of samples.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub id: String,
    pub subset: Subset,
    pub scenario: Option<String>,
    pub gold: Verdict,
    pub status: Status,
    /// The final question put to the model.
    pub prompt: String,
    /// The model's answer to the first turn of a two-turn strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub response: Option<String>,
    pub verdict: Option<PerParser<Judgment>>,
    pub correct: Option<PerParser<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SampleRecord {
    fn base(item: &BenchmarkItem, prompt: String, status: Status) -> SampleRecord {
        SampleRecord {
            id: item.id.clone(),
            subset: item.subset,
            scenario: item.scenario.clone(),
            gold: item.gold,
            status,
            prompt,
            description: None,
            response: None,
            verdict: None,
            correct: None,
            error: None,
        }
    }

    /// A scored answer: both parsers' verdicts and correctness.
    pub fn scored(
        item: &BenchmarkItem,
        prompt: String,
        description: Option<String>,
        response: String,
    ) -> SampleRecord {
        let judge = |p: Parser| p.judge(&response, item.gold);
        let verdict = PerParser {
            strict: judge(Parser::Strict),
            paper: judge(Parser::Paper),
        };
        let correct = PerParser {
            strict: verdict.strict.is_correct(item.gold),
            paper: verdict.paper.is_correct(item.gold),
        };
        SampleRecord {
            description,
            response: Some(response),
            verdict: Some(verdict),
            correct: Some(correct),
            ..SampleRecord::base(item, prompt, Status::Scored)
        }
    }

    /// An item the source has no answer for.
    pub fn missing(item: &BenchmarkItem, prompt: String) -> SampleRecord {
        SampleRecord::base(item, prompt, Status::MissingResponse)
    }

    /// An item the benchmark has no image for, which a generating source cannot ask about.
    pub fn skipped(item: &BenchmarkItem, prompt: String) -> SampleRecord {
        SampleRecord {
            error: Some(SourceError::MissingImage.to_string()),
            ..SampleRecord::base(item, prompt, Status::Skipped)
        }
    }

    /// An item that failed; `description` keeps a finished first turn.
    pub fn failed(
        item: &BenchmarkItem,
        prompt: String,
        description: Option<String>,
        error: &SourceError,
    ) -> SampleRecord {
        SampleRecord {
            description,
            error: Some(error.to_string()),
            ..SampleRecord::base(item, prompt, Status::Error)
        }
    }

    /// The verdict under `parser`, for a scored record.
    pub fn judgment(&self, parser: Parser) -> Option<Judgment> {
        self.verdict.map(|v| v.get(parser))
    }

    /// Whether the answer is correct under `parser`, for a scored record.
    pub fn is_correct(&self, parser: Parser) -> Option<bool> {
        self.correct.map(|c| c.get(parser))
    }
}

/// The records of a samples file; a missing file is empty. Lines that do not parse (a torn
/// last line of a killed run) are skipped and counted.
pub fn read_samples(path: &Path) -> Result<(Vec<SampleRecord>, usize), EvalError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => {
            return Err(EvalError::Io {
                path: path.to_path_buf(),
                source: e,
            })
        }
    };
    let mut records = Vec::new();
    let mut bad = 0;
    for (_, line) in json_lines(&text) {
        match serde_json::from_str(line) {
            Ok(r) => records.push(r),
            Err(_) => bad += 1,
        }
    }
    Ok((records, bad))
}

/// Replaces the samples file with `records`, atomically.
pub fn write_samples(path: &Path, records: &[&SampleRecord]) -> Result<(), EvalError> {
    let mut text = String::new();
    for r in records {
        text.push_str(&to_line(r));
    }
    write_atomic(path, text.as_bytes()).map_err(EvalError::io(path))
}

fn to_line(record: &SampleRecord) -> String {
    let mut line = serde_json::to_string(record).expect("a sample record always serialises");
    line.push('\n');
    line
}

/// Appends records to a samples file, flushing each one.
pub struct SampleWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl SampleWriter {
    /// Opens `path` for appending (creating it).
    pub fn append(path: &Path) -> Result<SampleWriter, EvalError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(EvalError::io(path))?;
        Ok(SampleWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        })
    }

    /// Writes one record and flushes it to the file.
    pub fn write(&mut self, record: &SampleRecord) -> Result<(), EvalError> {
        let path = &self.path;
        self.out
            .write_all(to_line(record).as_bytes())
            .map_err(EvalError::io(path))?;
        self.out.flush().map_err(EvalError::io(path))
    }

    /// Flushes and syncs the file to disk.
    pub fn sync(&mut self) -> Result<(), EvalError> {
        let path = &self.path;
        self.out.flush().map_err(EvalError::io(path))?;
        self.out.get_ref().sync_data().map_err(EvalError::io(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, gold: Verdict) -> BenchmarkItem {
        BenchmarkItem {
            id: id.into(),
            image: None,
            prompt: "p".into(),
            gold,
            subset: Subset::Attack,
            scenario: Some("s".into()),
            counterfactual: None,
        }
    }

    #[test]
    fn scored_records_carry_both_parsers() {
        let r = SampleRecord::scored(
            &item("1", Verdict::Unsafe),
            "q".into(),
            None,
            "I cannot".into(),
        );
        assert_eq!(r.judgment(Parser::Strict), Some(Judgment::Unparsed));
        assert_eq!(r.judgment(Parser::Paper), Some(Judgment::No));
        assert_eq!(r.is_correct(Parser::Strict), Some(false));
        assert_eq!(r.is_correct(Parser::Paper), Some(true));
        let m = SampleRecord::missing(&item("2", Verdict::Safe), "q".into());
        assert_eq!(
            (m.status, m.is_correct(Parser::Paper)),
            (Status::MissingResponse, None)
        );
    }

    #[test]
    fn appended_records_read_back_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.jsonl");
        let a = SampleRecord::scored(&item("1", Verdict::Unsafe), "q".into(), None, "No".into());
        let b = SampleRecord::failed(
            &item("2", Verdict::Unsafe),
            "q".into(),
            Some("desc".into()),
            &SourceError::MissingImage,
        );
        {
            let mut w = SampleWriter::append(&path).unwrap();
            w.write(&a).unwrap();
            w.write(&b).unwrap();
        }
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"id\": \"3\", \"subs");
        std::fs::write(&path, text).unwrap();
        let (records, bad) = read_samples(&path).unwrap();
        assert_eq!(records, vec![a.clone(), b]);
        assert_eq!(bad, 1);
        write_samples(&path, &[&a]).unwrap();
        assert_eq!(read_samples(&path).unwrap(), (vec![a], 0));
        assert_eq!(
            read_samples(&dir.path().join("none.jsonl"))
                .unwrap()
                .0
                .len(),
            0
        );
    }
}
