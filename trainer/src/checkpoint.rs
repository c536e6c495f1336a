//! Run-folder checkpoint mechanics: crash-safe publishing, the `latest` pointer, pruning and
//! finding where to resume.
//!
//! Layout of a run folder:
//! ```text
//! <run>/checkpoints/step_<N>/      complete checkpoints (model files + trainer_state/)
//! <run>/checkpoints/latest         "step_<N>": the newest committed checkpoint
//! <run>/checkpoints/.tmp-step_<N>/ a checkpoint being written (garbage after a crash)
//! <run>/final/                     the model at the end of training
//! ```
//! A checkpoint is written into `.tmp-step_<N>`, fsynced, renamed to `step_<N>` (atomic on one
//! file system) and only then is `latest` replaced (itself atomically). A crash at any point
//! therefore leaves `latest` naming a complete checkpoint. What goes inside is the caller's
//! business: a callback writes the files; a `manifest.json` of their sizes and checksums is
//! added last (`manifest.rs`), and a resume takes the newest checkpoint that verifies
//! ([`resume_checkpoint`]). A write that fails for want of space says "disk full".

use crate::fsutil::atomic_write;
use crate::manifest::{verify, write_manifest, Verification};
use anyhow::{Context, Result};
use safeaware_common::fsio::{is_disk_full, remove_any, sync_dir, sync_tree};
use std::fs;
use std::path::{Path, PathBuf};

/// Sub-folder of the run folder holding step checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Pointer file (inside [`CHECKPOINTS_DIR`]) naming the newest committed checkpoint.
pub const LATEST_FILE: &str = "latest";
/// Sub-folder of the run folder holding the final model.
pub const FINAL_DIR: &str = "final";
const TMP_PREFIX: &str = ".tmp-";
const OLD_PREFIX: &str = ".old-";

/// A complete checkpoint on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Optimiser steps completed when it was written.
    pub step: u64,
    /// Its folder.
    pub path: PathBuf,
}

/// `<run>/checkpoints`.
pub fn checkpoints_dir(run: &Path) -> PathBuf {
    run.join(CHECKPOINTS_DIR)
}

/// Folder name of the checkpoint after `step` steps: `step_<step>`.
pub fn step_dir_name(step: u64) -> String {
    format!("step_{step}")
}

/// The step of a `step_<N>` folder name.
pub fn parse_step_dir(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step_")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Writes the checkpoint for `step`: `write` fills a fresh temporary folder, which is then
/// fsynced, renamed to `<run>/checkpoints/step_<step>` (replacing one of the same step) and
/// recorded in `latest`. Returns the checkpoint folder. Leftovers of interrupted writes are
/// removed first. On error the temporary folder is removed and `latest` is unchanged.
pub fn write_checkpoint(
    run: &Path,
    step: u64,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let dir = checkpoints_dir(run);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    cleanup_incomplete(run)?;
    let name = step_dir_name(step);
    let path = publish_dir(&dir, &name, write)
        .with_context(|| format!("writing checkpoint {name}"))
        .map_err(say_disk_full)?;
    atomic_write(&dir.join(LATEST_FILE), format!("{name}\n").as_bytes())
        .with_context(|| format!("updating {}", dir.join(LATEST_FILE).display()))?;
    Ok(path)
}

/// Writes `<run>/final` the same crash-safe way (replacing an existing one).
pub fn write_final(run: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    write_run_folder(run, FINAL_DIR, write).context("writing the final model")
}

/// Writes the folder `<run>/<name>` crash-safely (replacing an existing one).
pub fn write_run_folder(
    run: &Path,
    name: &str,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    fs::create_dir_all(run).with_context(|| format!("creating {}", run.display()))?;
    publish_dir(run, name, write).map_err(say_disk_full)
}

/// Puts "disk full" in front of an error caused by a full disk (ENOSPC) or quota.
fn say_disk_full(err: anyhow::Error) -> anyhow::Error {
    if err.chain().any(is_disk_full) {
        err.context("disk full: free space where the run folder is, then resume the run")
    } else {
        err
    }
}

/// Fills `<parent>/.tmp-<name>` with `write`, fsyncs it and renames it to `<parent>/<name>`.
fn publish_dir(
    parent: &Path,
    name: &str,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let tmp = parent.join(format!("{TMP_PREFIX}{name}"));
    let target = parent.join(name);
    let old = parent.join(format!("{OLD_PREFIX}{name}"));
    remove_any(&tmp)?;
    fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let filled = write(&tmp)
        .and_then(|()| write_manifest(&tmp))
        .and_then(|()| sync_tree(&tmp).map_err(Into::into));
    if let Err(e) = filled {
        let _ = remove_any(&tmp);
        return Err(e);
    }
    // A folder cannot be renamed over a non-empty one: move the previous one aside first.
    if target.exists() {
        remove_any(&old)?;
        fs::rename(&target, &old).with_context(|| format!("moving aside {}", target.display()))?;
    }
    fs::rename(&tmp, &target)
        .with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))?;
    sync_dir(parent)?;
    remove_any(&old)?;
    Ok(target)
}

/// Removes leftovers of interrupted writes (`.tmp-*`, `.old-*`) in the checkpoints folder and
/// the run folder. Returns what was removed.
pub fn cleanup_incomplete(run: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for dir in [checkpoints_dir(run), run.to_path_buf()] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) || name.starts_with(OLD_PREFIX) {
                remove_any(&entry.path())?;
                removed.push(entry.path());
            }
        }
    }
    removed.sort();
    Ok(removed)
}

/// Complete checkpoints (`step_<N>` folders), oldest first.
pub fn list_checkpoints(run: &Path) -> Result<Vec<Checkpoint>> {
    let dir = checkpoints_dir(run);
    let entries = match fs::read_dir(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.with_context(|| format!("listing {}", dir.display()))?,
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(step) = parse_step_dir(&name) {
            if entry.path().is_dir() {
                found.push(Checkpoint {
                    step,
                    path: entry.path(),
                });
            }
        }
    }
    found.sort_by_key(|c| c.step);
    Ok(found)
}

/// The checkpoint to resume from: the one `latest` names if it exists, otherwise (pointer
/// missing, garbled or dangling) the highest-numbered complete checkpoint; `None` if there is
/// none. Leftover temporary folders never count.
pub fn latest_checkpoint(run: &Path) -> Result<Option<Checkpoint>> {
    let dir = checkpoints_dir(run);
    if let Ok(text) = fs::read_to_string(dir.join(LATEST_FILE)) {
        let name = text.trim();
        if let Some(step) = parse_step_dir(name) {
            let path = dir.join(name);
            if path.is_dir() {
                return Ok(Some(Checkpoint { step, path }));
            }
        }
    }
    Ok(list_checkpoints(run)?.pop())
}

/// The checkpoint to resume from: the newest one that verifies against its manifest, trying
/// the one `latest` names first (see [`latest_checkpoint`]), then the others, newest first.
/// Each checkpoint passed over is reported in `skipped` with the reason.
pub fn resume_checkpoint(run: &Path) -> Result<ResumeChoice> {
    let mut candidates = list_checkpoints(run)?;
    candidates.reverse();
    if let Some(latest) = latest_checkpoint(run)? {
        candidates.retain(|c| c.step != latest.step);
        candidates.insert(0, latest);
    }
    let mut choice = ResumeChoice::default();
    for ckpt in candidates {
        match verify(&ckpt.path) {
            Ok(verification) => {
                choice.chosen = Some((ckpt, verification));
                break;
            }
            Err(fault) => choice.skipped.push((ckpt, fault.to_string())),
        }
    }
    Ok(choice)
}

/// What [`resume_checkpoint`] found.
#[derive(Debug, Default)]
pub struct ResumeChoice {
    /// The checkpoint to resume from, and whether its manifest verified it.
    pub chosen: Option<(Checkpoint, Verification)>,
    /// Newer checkpoints that failed verification, with why.
    pub skipped: Vec<(Checkpoint, String)>,
}

/// Deletes all but the newest `keep_last` checkpoints (0 = keep all), never the one `latest`
/// resolves to. Returns the removed folders.
pub fn prune_checkpoints(run: &Path, keep_last: usize) -> Result<Vec<PathBuf>> {
    if keep_last == 0 {
        return Ok(Vec::new());
    }
    let protected = latest_checkpoint(run)?.map(|c| c.step);
    let all = list_checkpoints(run)?;
    let cutoff = all.len().saturating_sub(keep_last);
    let mut removed = Vec::new();
    for ckpt in &all[..cutoff] {
        if Some(ckpt.step) != protected {
            remove_any(&ckpt.path)?;
            removed.push(ckpt.path.clone());
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_marker(step: u64) -> impl FnOnce(&Path) -> Result<()> {
        move |dir: &Path| {
            fs::create_dir_all(dir.join("trainer_state"))?;
            fs::write(dir.join("trainer_state/step.txt"), step.to_string())?;
            Ok(())
        }
    }

    fn steps(run: &Path) -> Vec<u64> {
        list_checkpoints(run)
            .unwrap()
            .into_iter()
            .map(|c| c.step)
            .collect()
    }

    #[test]
    fn parse_step_dir_is_strict() {
        assert_eq!(parse_step_dir("step_12"), Some(12));
        for bad in [
            "step_",
            "step_-1",
            "step_1a",
            ".tmp-step_1",
            "step_+3",
            "final",
        ] {
            assert_eq!(parse_step_dir(bad), None, "{bad}");
        }
    }

    #[test]
    fn write_publishes_and_points_latest() {
        let run = tempfile::tempdir().unwrap();
        assert_eq!(latest_checkpoint(run.path()).unwrap(), None);
        let p = write_checkpoint(run.path(), 10, write_marker(10)).unwrap();
        assert_eq!(p, run.path().join("checkpoints/step_10"));
        assert_eq!(
            fs::read_to_string(p.join("trainer_state/step.txt")).unwrap(),
            "10"
        );
        write_checkpoint(run.path(), 20, write_marker(20)).unwrap();
        assert_eq!(
            fs::read_to_string(run.path().join("checkpoints/latest")).unwrap(),
            "step_20\n"
        );
        assert_eq!(latest_checkpoint(run.path()).unwrap().unwrap().step, 20);
        let names: Vec<String> = fs::read_dir(checkpoints_dir(run.path()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(names.is_empty(), "temporary entries left: {names:?}");
    }

    #[test]
    fn failed_writer_leaves_previous_state() {
        let run = tempfile::tempdir().unwrap();
        write_checkpoint(run.path(), 1, write_marker(1)).unwrap();
        let err = write_checkpoint(run.path(), 2, |dir: &Path| {
            fs::write(dir.join("half"), b"x")?;
            anyhow::bail!("disk full")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("disk full"));
        assert_eq!(steps(run.path()), [1]);
        assert_eq!(latest_checkpoint(run.path()).unwrap().unwrap().step, 1);
        assert!(!run.path().join("checkpoints/.tmp-step_2").exists());
    }

    #[test]
    fn a_full_disk_says_so_and_names_the_file() {
        let run = tempfile::tempdir().unwrap();
        write_checkpoint(run.path(), 1, write_marker(1)).unwrap();
        let err = write_checkpoint(run.path(), 2, |dir: &Path| {
            let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
            let file = dir.join("trainer_state/optimizer.mpk");
            Err(anyhow::Error::new(full).context(format!("writing {}", file.display())))
        })
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.starts_with("disk full"), "{text}");
        assert!(text.contains("optimizer.mpk"), "{text}");
        assert_eq!(latest_checkpoint(run.path()).unwrap().unwrap().step, 1);
    }

    #[test]
    fn a_checkpoint_that_fails_verification_is_passed_over_with_the_reason() {
        let run = tempfile::tempdir().unwrap();
        for s in [1, 2] {
            write_checkpoint(run.path(), s, write_marker(s)).unwrap();
        }
        let state = run.path().join("checkpoints/step_2/trainer_state/step.txt");
        fs::write(&state, "9").unwrap();
        let choice = resume_checkpoint(run.path()).unwrap();
        let (chosen, how) = choice.chosen.unwrap();
        assert_eq!((chosen.step, how), (1, Verification::Verified));
        assert_eq!(choice.skipped.len(), 1);
        assert!(
            choice.skipped[0].1.contains("step.txt is corrupt"),
            "{:?}",
            choice.skipped
        );
    }

    #[test]
    fn rewriting_a_step_replaces_it() {
        let run = tempfile::tempdir().unwrap();
        write_checkpoint(run.path(), 5, |d: &Path| {
            Ok(fs::write(d.join("v"), b"old")?)
        })
        .unwrap();
        write_checkpoint(run.path(), 5, |d: &Path| {
            Ok(fs::write(d.join("v"), b"new")?)
        })
        .unwrap();
        assert_eq!(
            fs::read(run.path().join("checkpoints/step_5/v")).unwrap(),
            b"new"
        );
        assert_eq!(steps(run.path()), [5]);
    }

    #[test]
    fn latest_falls_back_when_pointer_is_bad_and_ignores_temp() {
        let run = tempfile::tempdir().unwrap();
        write_checkpoint(run.path(), 3, write_marker(3)).unwrap();
        write_checkpoint(run.path(), 7, write_marker(7)).unwrap();
        fs::create_dir_all(run.path().join("checkpoints/.tmp-step_9")).unwrap();
        let latest = run.path().join("checkpoints/latest");
        fs::write(&latest, "step_8\n").unwrap(); // dangling
        assert_eq!(latest_checkpoint(run.path()).unwrap().unwrap().step, 7);
        fs::write(&latest, "garbage").unwrap();
        assert_eq!(latest_checkpoint(run.path()).unwrap().unwrap().step, 7);
        fs::remove_file(&latest).unwrap();
        assert_eq!(latest_checkpoint(run.path()).unwrap().unwrap().step, 7);
        fs::write(&latest, "step_3").unwrap(); // valid pointer wins over a newer folder
        assert_eq!(latest_checkpoint(run.path()).unwrap().unwrap().step, 3);
        let removed = cleanup_incomplete(run.path()).unwrap();
        assert_eq!(removed, [run.path().join("checkpoints/.tmp-step_9")]);
    }

    #[test]
    fn prune_keeps_newest_and_latest_target() {
        let run = tempfile::tempdir().unwrap();
        for s in [1, 2, 3, 4, 5] {
            write_checkpoint(run.path(), s, write_marker(s)).unwrap();
        }
        assert!(prune_checkpoints(run.path(), 0).unwrap().is_empty());
        prune_checkpoints(run.path(), 2).unwrap();
        assert_eq!(steps(run.path()), [4, 5]);
        // `latest` pointing at an older checkpoint protects it.
        write_checkpoint(run.path(), 6, write_marker(6)).unwrap();
        fs::write(run.path().join("checkpoints/latest"), "step_4\n").unwrap();
        prune_checkpoints(run.path(), 1).unwrap();
        assert_eq!(steps(run.path()), [4, 6]);
    }

    #[test]
    fn final_is_published_and_replaced() {
        let run = tempfile::tempdir().unwrap();
        write_final(run.path(), |d: &Path| Ok(fs::write(d.join("m"), b"1")?)).unwrap();
        let p = write_final(run.path(), |d: &Path| Ok(fs::write(d.join("m"), b"2")?)).unwrap();
        assert_eq!(p, run.path().join("final"));
        assert_eq!(fs::read(p.join("m")).unwrap(), b"2");
        assert_eq!(fs::read_dir(run.path()).unwrap().count(), 1);
    }
}
