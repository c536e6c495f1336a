//! A plain table of labelled pairs: CSV with a header row, or JSON Lines.
//!
//! Columns (CSV header names or JSON fields): `image` (relative to the `--images` folder, by
//! default the file's own folder), `prompt`, `label` (`safe` | `unsafe`, any case; `verdict` is
//! accepted as the same column), and optionally `id` (default `<file stem>-<line>`), `subset`
//! and `scenario`. A relative `image` may not leave its folder (`..`), as in every data file. Other columns are ignored. CSV follows RFC 4180: fields with commas, quotes or
//! line breaks are quoted, quotes inside doubled.

use std::path::Path;

use serde::Deserialize;

use super::{finish, read_text, ImportError, ImportSummary, Imported};
use crate::fileio::{self, line_at, RawId};
use crate::pairs::LabelledPair;
use crate::traces::{parse_labels, require_text};

/// One row as read, before checking.
#[derive(Deserialize)]
struct Row {
    #[serde(default)]
    id: Option<RawId>,
    image: String,
    prompt: String,
    #[serde(alias = "verdict")]
    label: String,
    #[serde(default)]
    subset: Option<String>,
    #[serde(default)]
    scenario: Option<String>,
}

/// The format of a table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Jsonl,
}

/// Imports the table `file` (images under `images`) into the pairs file `out`.
pub fn import(
    file: &Path,
    format: TableFormat,
    images: &Path,
    out: &Path,
) -> Result<ImportSummary, ImportError> {
    let rows = match format {
        TableFormat::Csv => csv_rows(file)?,
        TableFormat::Jsonl => jsonl_rows(file)?,
    };
    if rows.is_empty() {
        return Err(ImportError::Empty {
            path: file.to_path_buf(),
        });
    }
    let stem = file
        .file_stem()
        .map_or_else(|| "row".to_string(), |s| s.to_string_lossy().into_owned());
    let count = rows.len();
    let imported = rows
        .into_iter()
        .map(|(line, row)| {
            let place = format!("{}:{line}", file.display());
            let id = row
                .id
                .clone()
                .map_or_else(|| format!("{stem}-{line}"), RawId::into_string);
            let pair = to_pair(id, row, images).map_err(|message| ImportError::Record {
                place: place.clone(),
                message,
            })?;
            Ok(Imported { place, pair })
        })
        .collect::<Result<Vec<_>, ImportError>>()?;
    finish(imported, count, images, out)
}

/// Checks a row and resolves its image (a relative path must stay inside `images`).
fn to_pair(id: String, row: Row, images: &Path) -> Result<LabelledPair, String> {
    require_text(&id, &[("image", &row.image), ("prompt", &row.prompt)])?;
    let image = Path::new(row.image.trim());
    fileio::check_inside(image).map_err(|e| format!("id {id}: `image`: {e}"))?;
    let subset = row.subset.filter(|s| !s.trim().is_empty());
    let (verdict, subset) =
        parse_labels(&id, &row.label, subset).map_err(|e| e.replace("`verdict`", "`label`"))?;
    Ok(LabelledPair {
        id,
        image: images.join(image),
        prompt: row.prompt,
        verdict,
        subset,
        scenario: row.scenario.filter(|s| !s.trim().is_empty()),
    })
}

/// The rows of a CSV file with the line each starts on.
fn csv_rows(file: &Path) -> Result<Vec<(usize, Row)>, ImportError> {
    let text = read_text(file)?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| csv_error(file, 1, e))?.clone();
    for column in ["image", "prompt"] {
        if !headers.iter().any(|h| h == column) {
            return Err(missing_column(file, column));
        }
    }
    if !headers.iter().any(|h| h == "label" || h == "verdict") {
        return Err(missing_column(file, "label"));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = record_line(&text, e.position());
            csv_error(file, line, e)
        })?;
        let line = record_line(&text, record.position());
        let row: Row = record
            .deserialize(Some(&headers))
            .map_err(|e| csv_error(file, line, e))?;
        rows.push((line, row));
    }
    Ok(rows)
}

/// The line a CSV record starts on, as an editor counts lines. The reader's own count (and its
/// record offsets) stop before the `\n` of a CRLF line end, so in a CRLF file they point one
/// line early: the offset is moved past the line ends (and blank lines) before the record.
fn record_line(text: &str, position: Option<&csv::Position>) -> usize {
    let Some(position) = position else {
        return 0;
    };
    let bytes = text.as_bytes();
    let mut at = position.byte() as usize;
    while bytes.get(at).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
        at += 1;
    }
    line_at(bytes, at)
}

fn missing_column(file: &Path, column: &str) -> ImportError {
    ImportError::Record {
        place: format!("{}:1", file.display()),
        message: format!("the header row has no `{column}` column (expected image, prompt, label)"),
    }
}

fn csv_error(file: &Path, line: usize, e: csv::Error) -> ImportError {
    ImportError::Record {
        place: format!("{}:{line}", file.display()),
        message: format!("bad CSV row: {e}"),
    }
}

/// The rows of a JSON Lines file with their line numbers.
fn jsonl_rows(file: &Path) -> Result<Vec<(usize, Row)>, ImportError> {
    let text = read_text(file)?;
    fileio::json_lines(&text)
        .map(|(line, json)| {
            serde_json::from_str(json)
                .map(|row| (line, row))
                .map_err(|e| ImportError::Record {
                    place: format!("{}:{line}", file.display()),
                    message: format!("bad row: {e}"),
                })
        })
        .collect()
}
