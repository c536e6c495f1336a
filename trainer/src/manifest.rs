//! `manifest.json` of a checkpoint: the size and CRC32C of every file it wrote, so that a resume
//! can tell a complete checkpoint from one truncated or corrupted after it was written (a full
//! disk, a copy cut short, a bad sector) before it loads anything.
//!
//! The manifest is written last into the temporary checkpoint folder, before it is fsynced and
//! renamed (see `checkpoint.rs`). Checkpoints written before manifests existed have none: they
//! are accepted as unverified.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::fsutil::atomic_write;

/// The manifest's file name inside a checkpoint folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// One file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileEntry {
    size: u64,
    /// CRC32C of the bytes, as 8 hex digits.
    crc32c: String,
}

/// The whole manifest: files by path relative to the checkpoint folder (`/`-separated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    files: BTreeMap<String, FileEntry>,
}

/// Why a checkpoint failed verification; the message names the file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointFault {
    #[error("{file} is missing")]
    Missing { file: PathBuf },
    #[error("{file} is truncated ({size} of {expected} bytes)")]
    Truncated {
        file: PathBuf,
        size: u64,
        expected: u64,
    },
    #[error("{file} is corrupt ({reason})")]
    Corrupt { file: PathBuf, reason: String },
}

/// What verification found in a checkpoint that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Every file the manifest lists is there with its size and checksum.
    Verified,
    /// No manifest (written by an older safeaware): nothing could be checked.
    NoManifest,
}

/// Writes `<dir>/manifest.json` listing every file under `dir`.
pub fn write_manifest(dir: &Path) -> Result<()> {
    let mut files = BTreeMap::new();
    for path in files_under(dir)? {
        let (size, crc) = checksum(&path).with_context(|| format!("reading {}", path.display()))?;
        files.insert(
            relative_name(dir, &path),
            FileEntry {
                size,
                crc32c: format!("{crc:08x}"),
            },
        );
    }
    let text = serde_json::to_string_pretty(&Manifest { files }).context("serialising")?;
    atomic_write(&dir.join(MANIFEST_FILE), text.as_bytes())
}

/// Checks every file `<dir>/manifest.json` lists: present, the recorded size, the recorded
/// checksum.
pub fn verify(dir: &Path) -> Result<Verification, CheckpointFault> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = match fs::read_to_string(&manifest_path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Verification::NoManifest),
        Err(e) => return Err(corrupt(&manifest_path, e.to_string())),
        Ok(text) => text,
    };
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|_| corrupt(&manifest_path, "not a valid manifest".into()))?;
    for (name, entry) in &manifest.files {
        let file = dir.join(name);
        let size = match fs::metadata(&file) {
            Ok(m) => m.len(),
            Err(_) => return Err(CheckpointFault::Missing { file }),
        };
        if size < entry.size {
            return Err(CheckpointFault::Truncated {
                file,
                size,
                expected: entry.size,
            });
        }
        if size > entry.size {
            let reason = format!("{size} bytes, the manifest says {}", entry.size);
            return Err(corrupt(&file, reason));
        }
        let (_, crc) = checksum(&file).map_err(|e| corrupt(&file, e.to_string()))?;
        if format!("{crc:08x}") != entry.crc32c {
            return Err(corrupt(
                &file,
                "its checksum differs from the manifest".into(),
            ));
        }
    }
    Ok(Verification::Verified)
}

/// [`verify`] for a loader of a model folder (`eval`, `serve`, `export`, `inspect`): a folder
/// whose files no longer match its manifest.json is refused, naming the file; one without a
/// manifest (an HF folder) is taken as it is.
pub fn verify_model_folder(dir: &Path) -> Result<Verification> {
    verify(dir).map_err(|fault| {
        anyhow::anyhow!(
            "{} does not match its {MANIFEST_FILE}: {fault}",
            dir.display()
        )
    })
}

fn corrupt(file: &Path, reason: String) -> CheckpointFault {
    CheckpointFault::Corrupt {
        file: file.to_path_buf(),
        reason,
    }
}

/// Size and CRC32C of a file, read in blocks.
fn checksum(path: &Path) -> io::Result<(u64, u32)> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut size, mut crc) = (0u64, 0u32);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((size, crc));
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        size += n as u64;
    }
}

/// Every regular file under `dir` (recursively), the manifest itself aside, sorted.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let path = entry
                .with_context(|| format!("listing {}", d.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() && path != dir.join(MANIFEST_FILE) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn relative_name(dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("trainer_state")).unwrap();
        fs::write(dir.path().join("model.safetensors"), vec![7u8; 3000]).unwrap();
        fs::write(dir.path().join("trainer_state/optimizer.mpk"), b"abcdef").unwrap();
        write_manifest(dir.path()).unwrap();
        dir
    }

    #[test]
    fn an_intact_checkpoint_verifies_and_one_without_manifest_is_unverified() {
        let dir = checkpoint();
        assert_eq!(verify(dir.path()), Ok(Verification::Verified));
        fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
        assert_eq!(verify(dir.path()), Ok(Verification::NoManifest));
    }

    #[test]
    fn truncation_corruption_and_loss_are_named() {
        let dir = checkpoint();
        let opt = dir.path().join("trainer_state/optimizer.mpk");
        fs::write(&opt, b"abc").unwrap();
        let err = verify(dir.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{} is truncated (3 of 6 bytes)", opt.display())
        );
        fs::write(&opt, b"abcdeX").unwrap();
        let err = verify(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("optimizer.mpk is corrupt") && err.contains("checksum"),
            "{err}"
        );
        fs::remove_file(&opt).unwrap();
        let err = verify(dir.path()).unwrap_err().to_string();
        assert!(err.ends_with("optimizer.mpk is missing"), "{err}");
        fs::write(dir.path().join(MANIFEST_FILE), b"{").unwrap();
        let err = verify(dir.path()).unwrap_err().to_string();
        assert!(err.contains("manifest.json is corrupt"), "{err}");
    }
}
