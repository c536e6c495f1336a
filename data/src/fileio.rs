//! Small file helpers shared by the data modules: atomic writes, JSON Lines iteration, ids that
//! may be numbers or strings, and image decoding that trusts the bytes, not the extension.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageReader};
use serde::Deserialize;

/// Writes `bytes` to `path` atomically: a temporary sibling is written and synced, then renamed
/// into place, so readers never see a half-written file. Creates missing parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename durable; failure to sync a folder is not worth losing the data over.
        let _ = File::open(&parent).and_then(|d| d.sync_all());
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

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
