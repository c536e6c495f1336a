//! The parity fixtures built into the binary (see `build.rs`), written out to a temporary
//! folder so that they load like any fixture folder.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// One shipped fixture: its name and its files (name, bytes).
type ShippedFixture = (&'static str, &'static [(&'static str, &'static [u8])]);

include!(concat!(env!("OUT_DIR"), "/shipped_fixtures.rs"));

/// The shipped fixtures, unpacked under a temporary folder that lives as long as this value.
pub struct Unpacked {
    _dir: tempfile::TempDir,
    /// One folder per fixture, in name order.
    pub folders: Vec<PathBuf>,
}

/// Writes every shipped fixture into a fresh temporary folder.
pub fn unpack() -> Result<Unpacked> {
    let dir = tempfile::Builder::new()
        .prefix("safeaware-doctor-")
        .tempdir()
        .context("creating a temporary folder for the parity fixtures")?;
    let mut folders = Vec::new();
    for (name, files) in SHIPPED {
        let folder = dir.path().join(name);
        for (relative, bytes) in *files {
            let path = folder.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        folders.push(folder);
    }
    Ok(Unpacked { _dir: dir, folders })
}
