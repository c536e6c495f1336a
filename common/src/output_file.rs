//! Output files (rather than folders, see [`crate::output_dir`]): `data import` writes a pairs
//! file, `data distill` appends to a traces file and a rejected file.
//!
//! - [`refuse_existing`]: an existing file is not replaced unless the user passed
//!   `--overwrite` (a command that resumes its own file checks first that it is its own);
//! - [`OutputFile::lock`]: a file a process appends to is locked for that process's life, as an
//!   output folder is: a second process fails at once naming the first's pid. The lock is a
//!   sibling `.<name>.lock` holding the pid (the file itself holds only data); it is left in
//!   place when the process ends, unlocked, because removing it would let two processes lock
//!   two different files of the same name.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::output_dir::{io_at, lock_at, OutputDirError};

/// A file this process holds: locked until dropped.
#[derive(Debug)]
pub struct OutputFile {
    path: PathBuf,
    _lock: File,
}

impl OutputFile {
    /// Locks `path` (which need not exist yet) for this process, creating its folder.
    pub fn lock(path: &Path) -> Result<OutputFile, OutputDirError> {
        let lock = lock_path(path);
        if let Some(dir) = lock.parent() {
            std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        }
        Ok(OutputFile {
            path: path.to_path_buf(),
            _lock: lock_at(&lock, path)?,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file of `path`: `.<name>.lock` in the same folder.
pub fn lock_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.lock"))
}

/// Refuses an existing `path` unless `overwrite`; `detail` is added to the message (e.g. why the
/// file is not the command's own).
pub fn refuse_existing(path: &Path, overwrite: bool, detail: &str) -> Result<(), OutputDirError> {
    if overwrite || std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    Err(OutputDirError::FileExists {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_a_drop_releases_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out/traces.jsonl");
        let held = OutputFile::lock(&path).unwrap();
        assert!(tmp.path().join("out/.traces.jsonl.lock").is_file());
        let err = OutputFile::lock(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("traces.jsonl is in use"), "{err}");
        drop(held);
        OutputFile::lock(&path).unwrap();
    }

    #[test]
    fn an_existing_file_is_refused_unless_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("pairs.jsonl");
        refuse_existing(&path, false, "").unwrap();
        std::fs::write(&path, b"mine").unwrap();
        let err = refuse_existing(&path, false, " (not ours)").unwrap_err();
        assert!(
            err.to_string()
                .contains("pairs.jsonl already exists (not ours)"),
            "{err}"
        );
        refuse_existing(&path, true, "").unwrap();
    }
}
