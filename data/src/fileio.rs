//! Small file helpers shared by the data modules: text files read as users save them (a UTF-8
//! BOM, CRLF line ends; bytes that are not UTF-8 named by line), append-only JSON Lines files
//! that survive a kill, JSON Lines iteration, paths written relative to a file and kept inside
//! its folder, ids that may be numbers or strings, and image decoding that trusts the bytes,
//! not the extension. (Whole files are written with `safeaware_common::fsio::write_atomic`.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
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
            let line = line_at(bytes, e.valid_up_to());
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line {line} is not valid UTF-8"),
            ))
        }
    }
}

/// The 1-based line of byte `offset` in `bytes` (lines end with `\n`, so a CRLF file counts as
/// an editor does).
pub fn line_at(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
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

/// An append-only lines file that a killed process leaves whole: each line goes to the file in
/// one `write` of the whole line and its newline, then is synced, and [`LineAppender::open`]
/// first cuts off a last line left without its newline (a write cut short by a crash or a
/// full disk), so the file only ever holds complete lines.
pub struct LineAppender {
    path: PathBuf,
    file: File,
}

impl LineAppender {
    /// Opens `path` for appending, creating it and its folder; returns the appender and the
    /// unterminated last line that was cut off, if any.
    pub fn open(path: &Path) -> io::Result<(LineAppender, Option<String>)> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let cut = cut_unterminated_line(path)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let appender = LineAppender {
            path: path.to_path_buf(),
            file,
        };
        Ok((appender, cut))
    }

    /// The file appended to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `line` (which must not hold a newline) and syncs it to disk.
    pub fn append(&mut self, line: &str) -> io::Result<()> {
        debug_assert!(!line.contains('\n'), "one line at a time");
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.file.write_all(&bytes)?;
        self.file.sync_data()
    }
}

/// Truncates `path` after its last newline; returns what was cut (lossy UTF-8), if anything.
fn cut_unterminated_line(path: &Path) -> io::Result<Option<String>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(None);
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(keep as u64)?;
    file.sync_all()?;
    Ok(Some(String::from_utf8_lossy(&bytes[keep..]).into_owned()))
}

/// `path` as it should be written in a file in folder `dir`: relative to `dir` when it is inside
/// it (`/` separators), else absolute, because relative paths that climb out of their file's
/// folder are refused on reading ([`check_inside`]). Reading it back with `dir.join(..)` gives
/// the same file.
pub fn relative_path(path: &Path, dir: &Path) -> String {
    let (Ok(target), Ok(base)) = (std::path::absolute(path), std::path::absolute(dir)) else {
        return path.display().to_string();
    };
    let (target, base) = (normalise(&target), normalise(&base));
    let common = target
        .components()
        .zip(base.components())
        .take_while(|(a, b)| a == b)
        .count();
    if common < base.components().count() {
        return target.display().to_string();
    }
    let downs = target
        .components()
        .skip(common)
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    downs.collect::<Vec<_>>().join("/")
}

/// Removes `.` and folds `name/..` without touching the file system (a leading `..` of a
/// relative path is dropped: only for comparing paths, never for opening one).
pub fn normalise(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unterminated_last_line_is_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/lines.jsonl");
        let (mut a, cut) = LineAppender::open(&path).unwrap();
        assert_eq!(cut, None);
        a.append("{\"id\": 1}").unwrap();
        drop(a);
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("{\"id\": 2, \"pro");
        fs::write(&path, &text).unwrap();
        let (mut a, cut) = LineAppender::open(&path).unwrap();
        assert_eq!(cut.as_deref(), Some("{\"id\": 2, \"pro"));
        a.append("{\"id\": 3}").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\"id\": 1}\n{\"id\": 3}\n"
        );
    }

    #[test]
    fn relative_paths_read_back_to_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let image = root.join("images/a/x.png");
        assert_eq!(relative_path(&image, &root.join("images")), "a/x.png");
        assert_eq!(
            relative_path(&image, &root.join("./images/b/..")),
            "a/x.png"
        );
        // Outside the folder: absolute (a relative path may not climb out of its folder).
        let outside = relative_path(&image, &root.join("out/pairs"));
        assert_eq!(normalise(Path::new(&outside)), normalise(&image));
        assert!(check_inside(Path::new(&outside)).is_ok());
        assert_eq!(
            relative_path(Path::new("/a/b.png"), Path::new("/c/d")),
            "/a/b.png"
        );
    }
}
