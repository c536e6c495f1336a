//! Small file helpers shared by the data modules: JSON Lines iteration, ids that may be numbers
//! or strings, and image decoding that trusts the bytes, not the extension. (Files are written
//! with `safeaware_common::fsio::write_atomic`.)

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageReader};
use serde::Deserialize;

/// The non-blank lines of a JSON Lines text with their 1-based line numbers.
pub fn json_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty())
}

/// The folder that relative paths inside `file` are resolved against.
pub fn base_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An id written as a JSON number or string; kept as text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawId {
    Int(i64),
    Text(String),
}

impl RawId {
    /// The id as text (`7` and `"7"` are the same id).
    pub fn into_string(self) -> String {
        match self {
            RawId::Int(n) => n.to_string(),
            RawId::Text(s) => s,
        }
    }
}

/// Decodes an image, detecting its format from its content (release files named `.png` may
/// hold JPEG bytes). The error text says what failed; callers add the path or id.
pub fn decode_image(path: &Path) -> Result<DynamicImage, String> {
    let reader = ImageReader::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let reader = reader
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    if reader.format().is_none() {
        return Err("unknown image format".to_string());
    }
    reader.decode().map_err(|e| format!("cannot decode: {e}"))
}
