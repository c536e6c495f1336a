//! A recorded responses file (`--responses`): JSON Lines with `id` (number or string) and
//! `response`, as the MMSafeAware authors' scorer reads them.
//!
//! Every response whose id is in the benchmark is scored (its image need not exist). Ids not in
//! the benchmark are counted and ignored. A line that cannot be read is recorded against its id
//! when the id can still be made out (even from broken JSON), and counted as an unattributed
//! line otherwise. When an id has several readable lines the first one counts and the others are
//! counted as duplicates.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use safeaware_data::benchmark::Benchmark;
use safeaware_data::fileio::json_lines;
use serde_json::{json, Value};

use super::{Answer, AnswerRequest, AnswerSource, SourceError, SourceInfo};
use crate::EvalError;

/// The `kind` this source records in results.
pub const RESPONSES_KIND: &str = "responses";

/// How many ids/lines results.json lists (the counts are always complete).
const LIST_LIMIT: usize = 100;

/// The responses of a file, indexed by benchmark id.
#[derive(Debug, Clone)]
pub struct ResponsesFile {
    path: PathBuf,
    /// Id → response text, or the (line, message) of an unreadable line.
    responses: HashMap<String, Result<String, (usize, String)>>,
    lines: usize,
    unknown_lines: usize,
    unknown_ids: Vec<String>,
    duplicate_ids: Vec<String>,
    unattributed: Vec<(usize, String)>,
}

impl ResponsesFile {
    /// Reads `path`, keeping the responses to `benchmark`'s items. Only an unreadable file is an
    /// error; bad lines are recorded.
    pub fn load(path: &Path, benchmark: &Benchmark) -> Result<ResponsesFile, EvalError> {
        let text = safeaware_data::fileio::read_text(path).map_err(EvalError::io(path))?;
        let known: HashSet<&str> = benchmark.items.iter().map(|i| i.id.as_str()).collect();
        let mut file = ResponsesFile {
            path: path.to_path_buf(),
            responses: HashMap::new(),
            lines: 0,
            unknown_lines: 0,
            unknown_ids: Vec::new(),
            duplicate_ids: Vec::new(),
            unattributed: Vec::new(),
        };
        let mut broken: Vec<(String, usize, String)> = Vec::new();
        for (line, json) in json_lines(&text) {
            file.lines += 1;
            let (id, parsed) = match parse_line(json) {
                Ok(pair) => pair,
                Err(message) => {
                    file.unattributed.push((line, message));
                    continue;
                }
            };
            if !known.contains(id.as_str()) {
                file.unknown_lines += 1;
                if !file.unknown_ids.contains(&id) {
                    file.unknown_ids.push(id);
                }
                continue;
            }
            match parsed {
                Ok(response) => match file.responses.entry(id) {
                    std::collections::hash_map::Entry::Occupied(e) => {
                        file.duplicate_ids.push(e.key().clone())
                    }
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(Ok(response));
                    }
                },
                Err(message) => broken.push((id, line, message)),
            }
        }
        // A broken line counts only for an id that has no readable one.
        for (id, line, message) in broken {
            file.responses.entry(id).or_insert(Err((line, message)));
        }
        Ok(file)
    }

    /// Ids in the file that the benchmark does not have, in file order (each once).
    pub fn unknown_ids(&self) -> &[String] {
        &self.unknown_ids
    }

    /// Lines with no id that could be made out: (line number, problem).
    pub fn unattributed_lines(&self) -> &[(usize, String)] {
        &self.unattributed
    }
}

/// Reads one line into its id and its response (or why the response is unreadable). Fails
/// only when no id can be made out.
fn parse_line(json: &str) -> Result<(String, Result<String, String>), String> {
    let value: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => {
            let id = scan_id(json).ok_or_else(|| format!("invalid JSON without an id: {e}"))?;
            return Ok((id, Err(format!("invalid JSON: {e}"))));
        }
    };
    let id = value
        .get("id")
        .and_then(id_text)
        .ok_or("no usable `id` field")?;
    let response = match value.get("response") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("`response` is not a string: {other}")),
        None => Err("no `response` field".to_string()),
    };
    Ok((id, response))
}

/// An id as text: integers (also written `7.0`) and non-empty strings (trimmed).
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i.to_string())
            } else {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                    .map(|f| (f as i64).to_string())
            }
        }
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// Best-effort id from a broken JSON line such as `{"id": 12, "response": "Yes, th`.
fn scan_id(line: &str) -> Option<String> {
    let after = &line[line.find("\"id\"")? + 4..];
    let after = after.trim_start().strip_prefix(':')?.trim_start();
    let (quoted, rest) = match after.strip_prefix('"') {
        Some(r) => (true, r),
        None => (false, after),
    };
    let end = if quoted {
        rest.find('"')?
    } else {
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len())
    };
    let id = rest[..end].trim();
    (!id.is_empty()).then(|| id.to_string())
}

impl AnswerSource for ResponsesFile {
    fn info(&self) -> SourceInfo {
        let unattributed: Vec<Value> = self
            .unattributed
            .iter()
            .take(LIST_LIMIT)
            .map(|(line, message)| json!({"line": line, "error": message}))
            .collect();
        let details = BTreeMap::from([
            ("path".to_string(), json!(self.path.display().to_string())),
            ("lines".to_string(), json!(self.lines)),
            (
                "unknown_ids".to_string(),
                json!(&self.unknown_ids[..self.unknown_ids.len().min(LIST_LIMIT)]),
            ),
            (
                "duplicate_ids".to_string(),
                json!(&self.duplicate_ids[..self.duplicate_ids.len().min(LIST_LIMIT)]),
            ),
            ("unattributed_lines".to_string(), Value::Array(unattributed)),
        ]);
        let counts = BTreeMap::from([
            ("unknown_ids".to_string(), self.unknown_lines),
            ("duplicate_ids".to_string(), self.duplicate_ids.len()),
            ("unattributed_lines".to_string(), self.unattributed.len()),
        ]);
        let name = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        SourceInfo {
            kind: RESPONSES_KIND.into(),
            name,
            details,
            counts,
        }
    }

    fn generates(&self) -> bool {
        false
    }

    fn answer(&self, request: &AnswerRequest<'_>) -> Result<Answer, SourceError> {
        match self.responses.get(&request.item.id) {
            Some(Ok(text)) => Ok(Answer::Text(text.clone())),
            Some(Err((line, message))) => Err(SourceError::UnreadableResponse {
                line: *line,
                message: message.clone(),
            }),
            None => Ok(Answer::NoResponse),
        }
    }
}

#[cfg(test)]
mod tests {
    use safeaware_data::benchmark::{BenchmarkItem, Subset, Verdict};

    use super::*;
    use crate::prompt::Conversation;

    fn bench(ids: &[&str]) -> Benchmark {
        let items = ids
            .iter()
            .map(|id| BenchmarkItem {
                id: id.to_string(),
                image: None,
                prompt: "p".into(),
                gold: Verdict::Unsafe,
                subset: Subset::Typical,
                scenario: None,
                counterfactual: None,
            })
            .collect();
        Benchmark {
            spec: "test".into(),
            items,
            missing_images: vec![],
        }
    }

    fn ask(f: &ResponsesFile, b: &Benchmark, id: &str) -> Result<Answer, SourceError> {
        let item = b.items.iter().find(|i| i.id == id).unwrap();
        let conv = Conversation::single(None, String::new());
        f.answer(&AnswerRequest {
            item,
            conversation: &conv,
        })
    }

    #[test]
    fn reads_ids_as_numbers_or_strings_and_records_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let lines = [
            r#"{"id": 1, "response": "Yes"}"#,
            r#"{"id": "2", "response": "No"}"#,
            r#"{"id": 3.0, "response": "maybe"}"#,
            r#"{"id": 1, "response": "second answer for 1"}"#,
            r#"{"id": 4, "response": null}"#,
            r#"{"id": 5, "response": "Yes, th"#,
            r#"{"id": 99, "response": "unknown"}"#,
            r#"{"id": 99, "response": "unknown again"}"#,
            r#"not json at all"#,
            "",
            r#"{"id": 6, "response": 7}"#,
            r#"{"id": 6, "response": "readable wins"}"#,
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let b = bench(&["1", "2", "3", "4", "5", "6", "7"]);
        let f = ResponsesFile::load(&path, &b).unwrap();
        assert_eq!(ask(&f, &b, "1").unwrap(), Answer::Text("Yes".into()));
        assert_eq!(ask(&f, &b, "2").unwrap(), Answer::Text("No".into()));
        assert_eq!(ask(&f, &b, "3").unwrap(), Answer::Text("maybe".into()));
        assert!(matches!(
            ask(&f, &b, "4"),
            Err(SourceError::UnreadableResponse { line: 5, .. })
        ));
        assert!(matches!(
            ask(&f, &b, "5"),
            Err(SourceError::UnreadableResponse { line: 6, .. })
        ));
        assert_eq!(
            ask(&f, &b, "6").unwrap(),
            Answer::Text("readable wins".into())
        );
        assert_eq!(ask(&f, &b, "7").unwrap(), Answer::NoResponse);
        let info = f.info();
        assert_eq!(info.counts["unknown_ids"], 2);
        assert_eq!(info.counts["duplicate_ids"], 1);
        assert_eq!(info.counts["unattributed_lines"], 1);
        assert_eq!(f.unknown_ids(), ["99"]);
        assert_eq!(f.unattributed_lines()[0].0, 9);
        assert_eq!(info.details["lines"], 11);
    }

    #[test]
    fn scan_id_reads_broken_lines() {
        assert_eq!(
            scan_id(r#"{"id": 12, "response": "Ye"#).as_deref(),
            Some("12")
        );
        assert_eq!(scan_id(r#"{"id":"a-7","resp"#).as_deref(), Some("a-7"));
        assert_eq!(scan_id(r#"{"response": "x"#), None);
        assert_eq!(scan_id(r#"{"id": , "#), None);
    }
}
