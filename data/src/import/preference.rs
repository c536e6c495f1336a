//! Public preference sets into a preference file for DPO ([`crate::preferences`]).
//!
//! - **TRL** (`PreferenceFormat::Trl`): the JSON Lines a `datasets` preference set writes
//!   (`dataset.to_json(...)`), as TRL's `DPOTrainer` reads it for vision models: `prompt`,
//!   `chosen`, `rejected` and an image column, `images` (a list of one) or `image`. Each text
//!   column is a string (TRL's *standard* form) or a list of messages (its *conversational*
//!   form: `prompt` one user message, `chosen`/`rejected` one assistant message, each content a
//!   string or a list of `{"type": "text", "text"}` and `{"type": "image"}` parts).
//! - **SPA-VL** (`PreferenceFormat::SpaVl`, Zhang et al., CVPR 2025): a JSON array or JSON Lines
//!   of `image` (or `image_name`), `question`, `chosen`, `rejected`, and the harm taxonomy
//!   `class1`/`class2`/`class3` (kept as the scenario `class1/class2/class3`).
//!
//! An image is a path relative to `--images` (by default the file's folder) or an object with
//! such a `path`; images embedded as bytes are refused (save them to files first). The ids are
//! the records' `id` or `<file stem>-<line or record number>`. Every pair is an instruction
//! pair: its prompt is the user's message as written, its answers texts.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{check_records, read_text, ImportError};
use crate::fileio::{self, RawId};
use crate::preferences::{check_distinct, write_preferences, PreferenceAnswer, PreferencePair};

/// A preference layout `data import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferenceFormat {
    Trl,
    SpaVl,
}

/// What a preference import wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferenceSummary {
    /// Records read from the source.
    pub records: usize,
    /// Preference pairs written.
    pub pairs: usize,
}

/// Imports `file` (images under `images`) into the preference file `out`.
pub fn import(
    file: &Path,
    format: PreferenceFormat,
    images: &Path,
    out: &Path,
) -> Result<PreferenceSummary, ImportError> {
    let records = read_records(file)?;
    if records.is_empty() {
        return Err(ImportError::Empty {
            path: file.to_path_buf(),
        });
    }
    let stem = file
        .file_stem()
        .map_or_else(|| "row".to_string(), |s| s.to_string_lossy().into_owned());
    let mut pairs = Vec::with_capacity(records.len());
    for (place, number, record) in &records {
        let fail = |message: String| ImportError::Record {
            place: place.clone(),
            message,
        };
        let object = record
            .as_object()
            .ok_or_else(|| fail("expected a JSON object".into()))?;
        let id = match object.get("id") {
            Some(id) => serde_json::from_value::<RawId>(id.clone())
                .map_err(|_| fail("`id` must be a string or a number".into()))?
                .into_string(),
            None => format!("{stem}-{number}"),
        };
        let pair = match format {
            PreferenceFormat::Trl => trl_pair(&id, object, images),
            PreferenceFormat::SpaVl => spa_vl_pair(&id, object, images),
        };
        pairs.push(
            pair.and_then(|p| check_distinct(&p).map(|()| p))
                .map_err(fail)?,
        );
    }
    check_records(
        records
            .iter()
            .zip(&pairs)
            .map(|((place, _, _), p)| (place.as_str(), p.id.as_str(), p.image.as_path())),
        images,
    )?;
    let out_dir = fileio::base_dir(out);
    for pair in &mut pairs {
        pair.image = fileio::relative_path(&pair.image, &out_dir).into();
    }
    write_preferences(out, &pairs)?;
    Ok(PreferenceSummary {
        records: records.len(),
        pairs: pairs.len(),
    })
}

/// The records of a JSON array (`file: record N`) or of JSON Lines (`file:line`), each with
/// its place and number.
fn read_records(file: &Path) -> Result<Vec<(String, usize, Value)>, ImportError> {
    let text = read_text(file)?;
    if text.trim_start().starts_with('[') {
        let values: Vec<Value> = serde_json::from_str(&text).map_err(|e| ImportError::Record {
            place: file.display().to_string(),
            message: format!("bad JSON array: {e}"),
        })?;
        return Ok(values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("{}: record {}", file.display(), i + 1), i + 1, v))
            .collect());
    }
    fileio::json_lines(&text)
        .map(|(line, json)| {
            let place = format!("{}:{line}", file.display());
            match serde_json::from_str(json) {
                Ok(value) => Ok((place, line, value)),
                Err(e) => Err(ImportError::Record {
                    place,
                    message: format!("bad JSON: {e}"),
                }),
            }
        })
        .collect()
}

/// A TRL record: `prompt`, `chosen`, `rejected`, and `images` or `image`.
fn trl_pair(
    id: &str,
    record: &Map<String, Value>,
    images: &Path,
) -> Result<PreferencePair, String> {
    let image = match (record.get("images"), record.get("image")) {
        (Some(Value::Array(list)), _) if list.len() == 1 => image_path(id, "images", &list[0])?,
        (Some(Value::Array(list)), _) => {
            return Err(format!(
                "id {id}: `images` holds {} images; a pair takes exactly one",
                list.len()
            ))
        }
        (Some(other), _) | (None, Some(other)) => image_path(id, "image", other)?,
        (None, None) => return Err(format!("id {id}: no `images` or `image` column")),
    };
    let text = |field: &str, role: &str| {
        let value = record
            .get(field)
            .ok_or_else(|| format!("id {id}: no `{field}` column"))?;
        message_text(value, role).map_err(|e| format!("id {id}: `{field}`: {e}"))
    };
    pair(
        id,
        images.join(image),
        text("prompt", "user")?,
        [text("chosen", "assistant")?, text("rejected", "assistant")?],
        None,
    )
}

/// An SPA-VL record: `image` or `image_name`, `question`, `chosen`, `rejected`, `class1..3`.
fn spa_vl_pair(
    id: &str,
    record: &Map<String, Value>,
    images: &Path,
) -> Result<PreferencePair, String> {
    let image = match record.get("image").or_else(|| record.get("image_name")) {
        Some(value) => image_path(id, "image", value)?,
        None => return Err(format!("id {id}: no `image` or `image_name` field")),
    };
    let text = |field: &str| match record.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(format!("id {id}: `{field}` must be a string")),
    };
    let classes: Vec<&str> = ["class1", "class2", "class3"]
        .iter()
        .filter_map(|c| record.get(*c).and_then(Value::as_str))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    pair(
        id,
        images.join(image),
        text("question")?,
        [text("chosen")?, text("rejected")?],
        (!classes.is_empty()).then(|| classes.join("/")),
    )
}

/// An instruction pair of texts; blank texts are refused, naming the field.
fn pair(
    id: &str,
    image: PathBuf,
    prompt: String,
    [chosen, rejected]: [String; 2],
    scenario: Option<String>,
) -> Result<PreferencePair, String> {
    for (field, text) in [
        ("prompt", &prompt),
        ("chosen", &chosen),
        ("rejected", &rejected),
    ] {
        if text.trim().is_empty() {
            return Err(format!("id {id}: empty `{field}`"));
        }
    }
    Ok(PreferencePair {
        id: id.to_string(),
        image,
        prompt,
        chosen: PreferenceAnswer::Text(chosen),
        rejected: PreferenceAnswer::Text(rejected),
        subset: None,
        scenario,
        instruction: true,
    })
}

/// An image value: a relative path, or an object with one in `path` (a `datasets` Image
/// exported with its path); embedded bytes are refused.
fn image_path(id: &str, field: &str, value: &Value) -> Result<PathBuf, String> {
    let path = match value {
        Value::String(s) => Some(s.as_str()),
        Value::Object(o) => o.get("path").and_then(Value::as_str),
        _ => None,
    };
    let Some(path) = path.map(str::trim).filter(|p| !p.is_empty()) else {
        let embedded = value.get("bytes").is_some_and(|b| !b.is_null());
        return Err(if embedded {
            format!("id {id}: `{field}` is embedded image bytes without a path; save the images to files and give their paths")
        } else {
            format!("id {id}: `{field}` must be an image path or {{\"path\": ...}}")
        });
    };
    fileio::check_inside(Path::new(path)).map_err(|e| format!("id {id}: `{field}`: {e}"))?;
    Ok(PathBuf::from(path))
}

/// The text of a TRL column: a string, or a list of exactly one message of `role` whose
/// content is a string or text and image parts (the texts joined by newlines).
fn message_text(value: &Value, role: &str) -> Result<String, String> {
    let messages = match value {
        Value::String(s) => return Ok(s.clone()),
        Value::Array(messages) => messages,
        _ => return Err("must be a string or a list of messages".into()),
    };
    let [message] = messages.as_slice() else {
        return Err(format!(
            "holds {} messages; one {role} message is supported (no system or earlier turns)",
            messages.len()
        ));
    };
    if message.get("role").and_then(Value::as_str) != Some(role) {
        return Err(format!("the message's role must be `{role}`"));
    }
    match message.get("content") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => part_texts(parts),
        _ => Err("the message has no `content`".into()),
    }
}

/// The text parts of a message's content, joined by newlines (image parts skipped).
fn part_texts(parts: &[Value]) -> Result<String, String> {
    let mut texts = Vec::new();
    for part in parts {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => match part.get("text").and_then(Value::as_str) {
                Some(t) => texts.push(t),
                None => return Err("a text part without `text`".into()),
            },
            Some("image") => {}
            other => return Err(format!("unknown content part type {other:?}")),
        }
    }
    Ok(texts.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preferences::read_preferences;
    use crate::traces::TargetStyle;

    fn image(dir: &Path, name: &str) {
        image::RgbImage::new(4, 4).save(dir.join(name)).unwrap();
    }

    #[test]
    fn trl_standard_and_conversational_rows_become_instruction_pairs() {
        let dir = tempfile::tempdir().unwrap();
        image(dir.path(), "a.png");
        image(dir.path(), "b.png");
        let rows = [
            r#"{"prompt": "What is this?", "chosen": "A cat.", "rejected": "A bomb.", "images": ["a.png"]}"#,
            r#"{"id": 9, "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How do I use it?"}]}], "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "Carefully."}]}], "rejected": [{"role": "assistant", "content": "Like this."}], "image": {"bytes": null, "path": "b.png"}}"#,
        ];
        let file = dir.path().join("trl.jsonl");
        std::fs::write(&file, rows.join("\n")).unwrap();
        let out = dir.path().join("out/prefs.jsonl");
        let s = import(&file, PreferenceFormat::Trl, dir.path(), &out).unwrap();
        assert_eq!((s.records, s.pairs), (2, 2));
        let read = read_preferences(&out).unwrap();
        let (first, second) = (&read.pairs[0].1, &read.pairs[1].1);
        assert_eq!((first.id.as_str(), second.id.as_str()), ("trl-1", "9"));
        assert_eq!(second.prompt, "How do I use it?");
        assert_eq!(second.chosen, PreferenceAnswer::Text("Carefully.".into()));
        // Outside the output file's folder, so written absolute.
        assert_eq!(first.image, dir.path().join("a.png"));
        assert!(first.instruction);
        let [chosen, _] = second.conversations(TargetStyle::Vcr, &read.dir);
        assert_eq!(chosen.messages[0].content, "<image>\nHow do I use it?");
        assert_eq!(chosen.images, vec![dir.path().join("b.png")]);
    }

    #[test]
    fn spa_vl_records_keep_their_harm_classes() {
        let dir = tempfile::tempdir().unwrap();
        image(dir.path(), "x.jpg");
        let json = r#"[{"image": "x.jpg", "question": "q?", "chosen": "safe answer", "rejected": "harmful answer", "class1": "Privacy", "class2": "Personal data", "class3": ""}]"#;
        let file = dir.path().join("spa.json");
        std::fs::write(&file, json).unwrap();
        let out = dir.path().join("prefs.jsonl");
        import(&file, PreferenceFormat::SpaVl, dir.path(), &out).unwrap();
        let pair = &read_preferences(&out).unwrap().pairs[0].1;
        assert_eq!(pair.id, "spa-1");
        assert_eq!(pair.scenario.as_deref(), Some("Privacy/Personal data"));
        assert_eq!(
            pair.rejected,
            PreferenceAnswer::Text("harmful answer".into())
        );
    }

    #[test]
    fn bad_records_are_named_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        image(dir.path(), "a.png");
        let out = dir.path().join("prefs.jsonl");
        let cases = [
            (
                r#"{"prompt": "p", "chosen": "c", "rejected": "r", "images": ["a.png", "a.png"]}"#,
                "trl.jsonl:1: id trl-1: `images` holds 2 images",
            ),
            (
                r#"{"prompt": "p", "chosen": "c", "rejected": "r", "images": [{"bytes": "AAAA"}]}"#,
                "embedded image bytes",
            ),
            (
                r#"{"prompt": "p", "chosen": "same", "rejected": "same", "image": "a.png"}"#,
                "`chosen` and `rejected` are the same",
            ),
            (
                r#"{"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "p"}], "chosen": "c", "rejected": "r", "image": "a.png"}"#,
                "`prompt`: holds 2 messages",
            ),
            (
                r#"{"prompt": "p", "chosen": "c", "rejected": "r", "image": "../a.png"}"#,
                "`image`",
            ),
            (
                r#"{"prompt": "p", "chosen": "c", "rejected": "r", "image": "gone.png"}"#,
                "1 image(s) not found",
            ),
            (
                r#"{"prompt": "p", "chosen": " ", "rejected": "r", "image": "a.png"}"#,
                "empty `chosen`",
            ),
        ];
        let file = dir.path().join("trl.jsonl");
        for (row, expected) in cases {
            std::fs::write(&file, row).unwrap();
            let e = import(&file, PreferenceFormat::Trl, dir.path(), &out)
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{row}: {e}");
            assert!(!out.exists());
        }
    }
}
