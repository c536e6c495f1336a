//! Errors loading a benchmark; each names the file and the line, block or id it concerns.

use std::path::PathBuf;

/// A benchmark could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    #[error("bad benchmark spec `{spec}`: {message}")]
    Spec { spec: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A malformed line (JSONL) or block (`prompt.txt`, `line` is where the block starts).
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: no items")]
    Empty { path: PathBuf },
    #[error("id {id}: two images, {first} and {second}")]
    DuplicateImage {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
}
