//! Errors of a whole evaluation run (bad settings, unreadable inputs, unwritable outputs).
//!
//! Problems with a single item (a missing image, an endpoint that keeps failing, a broken
//! response line) are not errors of the run: they are [`crate::source::SourceError`]s recorded
//! against the item.

use std::path::PathBuf;

use safeaware_data::benchmark::BenchmarkError;

/// An evaluation run could not start or could not write its outputs.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A setting is invalid or settings contradict each other.
    #[error("invalid setting: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A JSON file is malformed.
    #[error("{path}: {message}")]
    Json { path: PathBuf, message: String },
    /// The benchmark could not be loaded.
    #[error(transparent)]
    Benchmark(#[from] BenchmarkError),
    /// The output folder is another process's or another program's.
    #[error(transparent)]
    Output(#[from] safeaware_common::output_dir::OutputDirError),
    /// The output folder holds a run made with other settings.
    #[error(
        "{out} holds a run with other settings ({what} was {before}, now {now}); \
         use another --out or remove the folder"
    )]
    SettingsMismatch {
        out: PathBuf,
        what: String,
        before: String,
        now: String,
    },
}

impl EvalError {
    /// An [`EvalError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EvalError {
        let path = path.into();
        move |source| EvalError::Io { path, source }
    }
}
