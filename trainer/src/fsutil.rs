//! The trainer's face of `safeaware_common::fsio`: the same crash-safe write, with the path in
//! an `anyhow` error as the trainer's code reports it.

use anyhow::{Context, Result};
use std::path::Path;

/// Writes `bytes` to `path` atomically (temp file in the same folder, fsync, rename).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    safeaware_common::fsio::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}
