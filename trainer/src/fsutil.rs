//! Crash-safe file-system helpers shared by the run-folder code.
//!
//! A file or folder only becomes visible under its final name once its bytes are on disk:
//! write to a temporary sibling, fsync it, rename it into place, then fsync the parent folder
//! so the rename itself survives a power cut. Single files go through the data crate's
//! `write_atomic`; folders (checkpoints) use [`fsync_tree`] and [`fsync_dir`] here.

use anyhow::{Context, Result};
use std::fs::{self, File};
use std::path::Path;

/// Writes `bytes` to `path` atomically (temp file in the same folder, fsync, rename), with
/// the path in the error. The work is `safeaware_data::fileio::write_atomic`.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    safeaware_data::fileio::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// Fsyncs a folder so that entries created or renamed in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing folder {}", dir.display()))
}

/// Fsyncs every file and folder under `root` (inclusive), depth first.
pub fn fsync_tree(root: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(root).with_context(|| format!("reading {}", root.display()))?;
    if meta.is_dir() {
        for entry in fs::read_dir(root).with_context(|| format!("listing {}", root.display()))? {
            let entry = entry.with_context(|| format!("listing {}", root.display()))?;
            fsync_tree(&entry.path())?;
        }
        fsync_dir(root)
    } else if meta.is_file() {
        File::open(root)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", root.display()))
    } else {
        Ok(()) // symlinks and special files: nothing of ours to sync
    }
}

/// Removes a file or a folder tree; a missing path is not an error.
pub fn remove_any(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    result.with_context(|| format!("removing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("f.txt");
        atomic_write(&path, b"one").unwrap();
        atomic_write(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp file left behind");
    }

    #[test]
    fn remove_any_handles_files_dirs_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        let d = dir.path().join("d/e");
        fs::write(&f, b"x").unwrap();
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("g"), b"y").unwrap();
        remove_any(&f).unwrap();
        remove_any(&dir.path().join("d")).unwrap();
        remove_any(&dir.path().join("missing")).unwrap();
        assert!(!f.exists() && !dir.path().join("d").exists());
    }
}
