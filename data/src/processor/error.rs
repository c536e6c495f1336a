//! The processor's error type. Every variant names what it was working on (a file, a token, an
//! image) so a bad model folder or a corrupt image is diagnosable from the message alone.

use std::path::PathBuf;

/// Anything that can go wrong loading a processor folder or encoding a conversation.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is malformed (the message carries line and column).
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A configuration value is present but unusable.
    #[error("{origin}: {reason}")]
    Config { origin: String, reason: String },
    /// tokenizer.json could not be loaded or saved, or encoding failed.
    #[error("tokenizer ({origin}): {reason}")]
    Tokenizer { origin: String, reason: String },
    /// A token the processor needs is not in the tokenizer's vocabulary.
    #[error("tokenizer ({origin}) has no token {token:?}, needed for {purpose}")]
    MissingToken {
        origin: String,
        token: String,
        purpose: String,
    },
    /// The chat template does not compile or fails to render.
    #[error("chat template ({origin}): {reason}")]
    Template { origin: String, reason: String },
    /// An image could not be decoded or has an unusable size.
    #[error("image {name}: {reason}")]
    Image { name: String, reason: String },
    /// The rendered prompt has a different number of `<image>` placeholders than images given.
    #[error(
        "the prompt has {placeholders} <image> placeholder(s) but {images} image(s) were given"
    )]
    ImageCount { placeholders: usize, images: usize },
    /// A training conversation has no assistant message, so there is nothing to learn.
    #[error("the conversation has no assistant message to train on")]
    NoAssistantTurn,
}

/// Shorthand for results of this module.
pub type Result<T, E = ProcessorError> = std::result::Result<T, E>;

impl ProcessorError {
    pub(crate) fn config(origin: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        ProcessorError::Config {
            origin: origin.to_string(),
            reason: reason.into(),
        }
    }
}
