//! Small file helpers shared by the data modules: text files read as users save them (a UTF-8
//! BOM, CRLF line ends; bytes that are not UTF-8 named by line), JSON Lines iteration, ids that
//! may be numbers or strings, relative paths kept inside their folder, and image decoding that
//! trusts the bytes, not the extension. (Files are written with
//! `safeaware_common::fsio::write_atomic`.)

use std::path::{Component, Path, PathBuf};

use image::{DynamicImage, ImageFormat};

use crate::complete_image::check_complete;
use serde::Deserialize;

/// Reads a text file: a leading UTF-8 byte-order mark is dropped (CRLF line ends are handled
/// by [`json_lines`]); bytes that are not UTF-8 are an `InvalidData` error naming the line.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_string()),
        Err(e) => {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line {line} is not valid UTF-8"),
            ))
        }
    }
}

/// `Ok` for an absolute path or a relative one that stays inside the folder it is relative
/// to; a relative path climbing out of it with `..` is refused.
pub fn check_inside(path: &Path) -> Result<(), String> {
    if path.is_absolute() {
        return Ok(());
    }
    let mut depth = 0usize;
    for part in path.components() {
        match part {
            Component::ParentDir if depth == 0 => {
                return Err(format!(
                    "path {} leaves the data folder (use an absolute path to mean it)",
                    path.display()
                ))
            }
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    Ok(())
}

/// The non-blank lines of a JSON Lines text with their 1-based line numbers.
pub fn json_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim_start_matches('\u{feff}').trim()))
        .filter(|(_, line)| !line.is_empty())
}

/// The folder that relative paths inside `file` are resolved against.
pub fn base_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An id written as a JSON number or string; kept as text. Anything else (null, a fraction,
/// an object) is refused with a message that says what an id must be.
#[derive(Debug, Clone)]
pub enum RawId {
    Int(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawIdVisitor)
    }
}

struct RawIdVisitor;

impl serde::de::Visitor<'_> for RawIdVisitor {
    type Value = RawId;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an id (a whole number or a string)")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawId, E> {
        Ok(RawId::Int(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawId, E> {
        Ok(RawId::Text(v.to_string()))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawId, E> {
        Ok(RawId::Text(v.to_string()))
    }
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

/// Decodes an image file completely, detecting its format from its content (release files
/// named `.png` may hold JPEG bytes); a file cut short is an error, not a partly grey image.
/// The error text says what failed; callers add the path or id.
pub fn decode_image(path: &Path) -> Result<DynamicImage, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot open: {e}"))?;
    decode_image_bytes(&bytes).map(|(_, image)| image)
}

/// [`decode_image`] for bytes in memory; also returns the format found.
pub fn decode_image_bytes(bytes: &[u8]) -> Result<(ImageFormat, DynamicImage), String> {
    let format = image::guess_format(bytes).map_err(|_| "unknown image format".to_string())?;
    check_complete(bytes, format)?;
    let image = image::load_from_memory_with_format(bytes, format)
        .map_err(|e| format!("corrupt: cannot decode: {e}"))?;
    Ok((format, image))
}
