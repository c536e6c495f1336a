//! Crash-safe file-system writes, the one implementation every crate uses.
//!
//! A file only becomes visible under its final name once its bytes are on disk: it is written
//! to a temporary sibling, fsynced, renamed into place, and the folder is fsynced so the rename
//! itself survives a power cut. Readers never see a half-written config, checkpoint or report,
//! and a failed write leaves the previous file and no temporary behind. Folders published the
//! same way (checkpoints) are made durable with [`sync_tree`] and [`sync_dir`].
//!
//! Errors are plain `std::io::Error`s. A single-file write leaves naming the file to the
//! caller (each crate wraps it in its own error type); the folder helpers walk several paths,
//! so their errors name the one that failed.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically, creating missing parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// Writes `path` atomically from whatever `fill` writes (streamed through a buffer, so large
/// files such as safetensors are never held whole in memory). Creates missing parent folders.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let parent = parent_dir(path);
    fs::create_dir_all(&parent)?;
    let tmp = parent.join(format!(".{}.tmp-{}", file_name(path), std::process::id()));
    let result = (|| {
        let mut out = BufWriter::new(File::create(&tmp)?);
        fill(&mut out)?;
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename durable; failing to sync a folder is not worth losing the data over.
        let _ = sync_dir(&parent);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs a folder so that entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(naming("syncing folder", dir))
}

/// Fsyncs every file and folder under `root` (inclusive), depth first. Symbolic links and
/// special files are left alone.
pub fn sync_tree(root: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(root).map_err(naming("reading", root))?;
    if meta.is_dir() {
        for entry in fs::read_dir(root).map_err(naming("listing", root))? {
            sync_tree(&entry.map_err(naming("listing", root))?.path())?;
        }
        sync_dir(root)
    } else if meta.is_file() {
        File::open(root)
            .and_then(|f| f.sync_all())
            .map_err(naming("syncing", root))
    } else {
        Ok(())
    }
}

/// Removes a file or a whole folder tree; a missing path is not an error.
pub fn remove_any(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    result.map_err(naming("removing", path))
}

/// Whether an error (or any error it wraps) is a full disk (ENOSPC) or an exceeded quota.
pub fn is_disk_full(err: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(io) = err.downcast_ref::<io::Error>() {
        let full = matches!(
            io.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        ) || io.raw_os_error() == Some(ENOSPC);
        // An io::Error wrapping another error hides it from `source()`: look inside too.
        if full || io.get_ref().is_some_and(|inner| is_disk_full(inner)) {
            return true;
        }
    }
    err.source().is_some_and(is_disk_full)
}

/// Linux's "no space left on device".
const ENOSPC: i32 = 28;

/// The folder `path` is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Wraps an error so its message says what was done to which path (the kind is kept).
fn naming(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> io::Error {
    let path = path.to_path_buf();
    move |e| io::Error::new(e.kind(), format!("{action} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_content_creates_parents_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("f.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(names(&dir.path().join("sub")), ["f.txt"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_atomic(&path, b"first").unwrap();
        let failed = write_atomic_with(&path, |out| {
            out.write_all(b"half")?;
            Err(io::Error::other("boom"))
        });
        assert_eq!(failed.unwrap_err().to_string(), "boom");
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(names(dir.path()), ["x.json"]);
    }

    #[test]
    fn remove_any_handles_files_folders_and_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        let d = dir.path().join("d/e");
        fs::write(&f, b"x").unwrap();
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("g"), b"y").unwrap();
        remove_any(&f).unwrap();
        remove_any(&dir.path().join("d")).unwrap();
        remove_any(&dir.path().join("missing")).unwrap();
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn disk_full_is_recognised_through_wrappers() {
        let full = io::Error::from(io::ErrorKind::StorageFull);
        assert!(is_disk_full(&full));
        let wrapped = io::Error::other(full);
        assert!(is_disk_full(&wrapped));
        assert!(!is_disk_full(&io::Error::from(io::ErrorKind::NotFound)));
    }

    #[test]
    fn sync_tree_walks_a_folder_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/c"), b"z").unwrap();
        sync_tree(dir.path()).unwrap();
        let missing = dir.path().join("nope");
        let err = sync_tree(&missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
    }
}
