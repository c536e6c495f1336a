//! Output folders that one process owns: an OS advisory lock held for the process's life, and a
//! marker file that says safeaware made the folder.
//!
//! [`OutputDir::claim`] is what a command calls before it writes into a folder (a training run,
//! an evaluation's output, a synthetic world):
//! - a folder that is not empty and has no [`MARKER_FILE`] is someone else's: it is refused
//!   unless the user passed `--overwrite`;
//! - a folder another live process holds is refused at once, naming that process's pid (the
//!   lock is `flock`-style, so the OS releases it when the holder exits or is killed);
//! - a folder the claim created is removed again when the claim is dropped with nothing but
//!   the marker and lock in it, so a refused or failed start leaves no empty folders behind.
//!
//! [`OutputDir::lock`] only locks (resuming a run in a folder that must already exist).
//! [`refuse_input`] refuses an output that is one of the command's inputs, whatever
//! `--overwrite` says. Output files (rather than folders) are in [`crate::output_file`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The file whose presence says safeaware created the folder (its content names the command).
pub const MARKER_FILE: &str = ".safeaware-output";
/// The lock file: locked while a process works in the folder, holding that process's pid.
pub const LOCK_FILE: &str = ".safeaware.lock";

/// Why a folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutputDirError {
    /// Another process holds the folder's lock.
    #[error(
        "{path} is in use by another safeaware process (pid {holder}); wait for it to finish \
         or stop it, then try again"
    )]
    Locked { path: PathBuf, holder: String },
    /// The folder holds files safeaware did not write.
    #[error(
        "{dir} is not empty and was not made by safeaware (no {MARKER_FILE} in it); \
         choose another folder, or pass --overwrite to write into it anyway"
    )]
    Foreign { dir: PathBuf },
    /// An output file exists and may not be replaced without `--overwrite`; `detail` says more
    /// (e.g. why it is not the command's own).
    #[error(
        "{path} already exists{detail}; choose another file, or pass --overwrite to replace it"
    )]
    FileExists { path: PathBuf, detail: String },
    /// An output is one of the command's inputs.
    #[error(
        "{out_flag} {out} is the same as {in_flag} {input}: an output may never replace an \
         input (not even with --overwrite); choose another {out_flag}"
    )]
    IsInput {
        out_flag: String,
        out: PathBuf,
        in_flag: String,
        input: PathBuf,
    },
    /// The folder or its lock file could not be created, opened or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// A folder this process holds: locked until dropped.
#[derive(Debug)]
pub struct OutputDir {
    dir: PathBuf,
    lock: Option<File>,
    /// The topmost folder the claim created (removed on drop while empty).
    created: Option<PathBuf>,
}

impl OutputDir {
    /// Claims `dir` for `command` (a word such as "train" recorded in the marker): creates it if
    /// missing, refuses a foreign non-empty folder unless `overwrite`, and locks it.
    pub fn claim(dir: &Path, command: &str, overwrite: bool) -> Result<OutputDir, OutputDirError> {
        let created = first_missing_ancestor(dir);
        if created.is_none() && !overwrite && is_foreign(dir)? {
            return Err(OutputDirError::Foreign {
                dir: dir.to_path_buf(),
            });
        }
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let mut claim = OutputDir {
            dir: dir.to_path_buf(),
            lock: None,
            created,
        };
        claim.lock = Some(lock_file(dir)?);
        let marker = dir.join(MARKER_FILE);
        if !marker.exists() {
            crate::fsio::write_atomic(&marker, format!("{command}\n").as_bytes())
                .map_err(io_at(&marker))?;
        }
        Ok(claim)
    }

    /// Locks an existing folder without checking or writing its marker.
    pub fn lock(dir: &Path) -> Result<OutputDir, OutputDirError> {
        Ok(OutputDir {
            dir: dir.to_path_buf(),
            lock: Some(lock_file(dir)?),
            created: None,
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        let Some(top) = self.created.clone() else {
            return;
        };
        if !holds_only_bookkeeping(&self.dir) {
            return;
        }
        let _ = fs::remove_file(self.dir.join(MARKER_FILE));
        let _ = fs::remove_file(self.dir.join(LOCK_FILE));
        self.lock = None;
        // Remove the folders the claim created, innermost first, while they are empty.
        for dir in self.dir.ancestors() {
            if fs::remove_dir(dir).is_err() || dir == top {
                break;
            }
        }
    }
}

/// Opens (creating) and locks `<dir>/.safeaware.lock`, then records this process's pid in it.
fn lock_file(dir: &Path) -> Result<File, OutputDirError> {
    lock_at(&dir.join(LOCK_FILE), dir)
}

/// Opens (creating) and locks the lock file `path` guarding `subject` (a folder or a file), then
/// records this process's pid in it; a lock another process holds is [`OutputDirError::Locked`]
/// naming `subject` and that process's pid.
pub(crate) fn lock_at(path: &Path, subject: &Path) -> Result<File, OutputDirError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_at(path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "unknown".to_string());
            return Err(OutputDirError::Locked {
                path: subject.to_path_buf(),
                holder,
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_at(path)(e)),
    }
    let pid = format!("{}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.write_all(pid.as_bytes()))
        .and_then(|()| file.flush())
        .map_err(io_at(path))?;
    Ok(file)
}

/// Refuses `out` (given as `out_flag`) when it is one of `inputs` (each with its flag): the same
/// file or folder however it is named (`./a`, a symbolic link, a hard link).
pub fn refuse_input(
    out_flag: &str,
    out: &Path,
    inputs: &[(&str, &Path)],
) -> Result<(), OutputDirError> {
    match inputs.iter().find(|(_, input)| same_path(out, input)) {
        Some((in_flag, input)) => Err(OutputDirError::IsInput {
            out_flag: out_flag.to_string(),
            out: out.to_path_buf(),
            in_flag: in_flag.to_string(),
            input: input.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// Whether `a` and `b` name the same file or folder (one of them may not exist yet).
pub fn same_path(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (fs::metadata(a), fs::metadata(b)) {
            return (x.dev(), x.ino()) == (y.dev(), y.ino());
        }
    }
    resolved(a) == resolved(b)
}

/// `path` made absolute with symbolic links resolved as far as it exists, and `.` and `..`
/// folded in the part that does not exist yet.
fn resolved(path: &Path) -> PathBuf {
    use std::path::Component;
    if let Ok(p) = fs::canonicalize(path) {
        return p;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut components = absolute.components();
    match components.next_back() {
        Some(Component::Normal(name)) => resolved(components.as_path()).join(name),
        Some(Component::CurDir) => resolved(components.as_path()),
        Some(Component::ParentDir) => {
            let mut parent = resolved(components.as_path());
            parent.pop();
            parent
        }
        _ => absolute,
    }
}

/// Whether `dir` exists, holds something besides a lock file, and has no marker.
fn is_foreign(dir: &Path) -> Result<bool, OutputDirError> {
    if !dir.is_dir() {
        return Ok(false);
    }
    let mut entries = fs::read_dir(dir).map_err(io_at(dir))?;
    let has_content = entries.any(|e| e.map_or(true, |e| e.file_name() != LOCK_FILE));
    Ok(has_content && !dir.join(MARKER_FILE).exists())
}

/// Whether `dir` holds nothing but the marker and the lock file.
fn holds_only_bookkeeping(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            let name = e.file_name();
            name == MARKER_FILE || name == LOCK_FILE
        })
    })
}

/// The outermost ancestor of `dir` (itself included) that does not exist yet.
fn first_missing_ancestor(dir: &Path) -> Option<PathBuf> {
    let mut missing = None;
    for a in dir.ancestors() {
        if a.as_os_str().is_empty() || a.exists() {
            break;
        }
        missing = Some(a.to_path_buf());
    }
    missing
}

/// The error of an I/O failure at `path`.
pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> OutputDirError {
    let path = path.to_path_buf();
    move |source| OutputDirError::Io { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_names_the_holder_and_a_drop_releases_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let held = OutputDir::claim(&dir, "train", false).unwrap();
        fs::write(dir.join("metrics.jsonl"), b"{}\n").unwrap();
        let err = OutputDir::lock(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains(&dir.display().to_string()), "{err}");
        drop(held);
        OutputDir::claim(&dir, "train", false).unwrap();
    }

    #[test]
    fn a_foreign_folder_is_refused_unless_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("train.jsonl"), b"mine").unwrap();
        let err = OutputDir::claim(tmp.path(), "synth", false).unwrap_err();
        assert!(matches!(err, OutputDirError::Foreign { .. }), "{err}");
        assert!(!tmp.path().join(MARKER_FILE).exists());
        assert!(!tmp.path().join(LOCK_FILE).exists());
        let claim = OutputDir::claim(tmp.path(), "synth", true).unwrap();
        assert!(claim.path().join(MARKER_FILE).is_file());
        drop(claim);
        // Once marked, the folder is safeaware's own.
        OutputDir::claim(tmp.path(), "synth", false).unwrap();
    }

    #[test]
    fn an_unused_claim_removes_the_folders_it_created() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/c");
        drop(OutputDir::claim(&dir, "eval", false).unwrap());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
        // A folder that existed before is kept, and so is one that got content.
        let kept = tmp.path().join("kept");
        let claim = OutputDir::claim(&kept, "eval", false).unwrap();
        fs::write(kept.join("results.json"), b"{}").unwrap();
        drop(claim);
        assert!(kept.join("results.json").is_file());
        fs::create_dir(tmp.path().join("empty")).unwrap();
        drop(OutputDir::claim(&tmp.path().join("empty"), "eval", false).unwrap());
        assert!(tmp.path().join("empty").is_dir());
    }

    #[test]
    fn an_output_that_is_an_input_is_refused_however_it_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("pairs.jsonl");
        fs::write(&input, b"{}").unwrap();
        let sub = tmp.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let dotted = sub.join("../pairs.jsonl");
        let err = refuse_input("--out", &dotted, &[("--pairs", &input)]).unwrap_err();
        assert!(matches!(err, OutputDirError::IsInput { .. }), "{err}");
        assert!(err.to_string().contains("--pairs"), "{err}");
        let linked = tmp.path().join("linked.jsonl");
        fs::hard_link(&input, &linked).unwrap();
        assert!(refuse_input("--out", &linked, &[("--pairs", &input)]).is_err());
        // Another file, existing or not, is fine.
        let other = sub.join("new/pairs.jsonl");
        refuse_input("--out", &other, &[("--pairs", &input)]).unwrap();
        refuse_input("--out", &sub, &[("--pairs", &input)]).unwrap();
        // Neither exists yet: `..` is folded all the same.
        let (a, b) = (sub.join("new/t.jsonl"), sub.join("new/../new/./t.jsonl"));
        assert!(same_path(&a, &b) && !same_path(&a, &sub.join("t.jsonl")));
    }
}
