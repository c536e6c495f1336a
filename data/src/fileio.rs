//! Small file helpers shared by the data modules: append-only JSON Lines files that survive a
//! kill, JSON Lines iteration, paths written relative to a file, ids that may be numbers or
//! strings, and image decoding that trusts the bytes, not the extension. (Whole files are
//! written with `safeaware_common::fsio::write_atomic`.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageReader};
use serde::Deserialize;

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

/// `path` as it should be written in a file in folder `dir`: relative to `dir` when they share a
/// folder (climbing out with `..` as needed, `/` separators), else absolute. Reading it back
/// with `dir.join(..)` gives the same file.
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
    // Sharing only the root (or drive), the absolute path is the shorter and sturdier one.
    let shares_a_folder = target
        .components()
        .take(common)
        .any(|c| matches!(c, std::path::Component::Normal(_)));
    if !shares_a_folder {
        return target.display().to_string();
    }
    let ups = base.components().skip(common).map(|_| "..".to_string());
    let downs = target
        .components()
        .skip(common)
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    ups.chain(downs).collect::<Vec<_>>().join("/")
}

/// Removes `.` and folds `name/..` without touching the file system.
fn normalise(path: &Path) -> PathBuf {
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
            relative_path(&image, &root.join("out/pairs")),
            "../../images/a/x.png"
        );
        assert_eq!(
            relative_path(&image, &root.join("out/./b/..")),
            "../images/a/x.png"
        );
        let back = root.join("out/pairs").join("../../images/a/x.png");
        assert_eq!(normalise(&back), normalise(&image));
        assert_eq!(
            relative_path(Path::new("/a/b.png"), Path::new("/c/d")),
            "/a/b.png"
        );
    }
}
