//! The crate's error type: every failure names the file, tensor, config field or shape involved,
//! so a bad checkpoint or a malformed batch is diagnosed from the message alone.

use std::path::{Path, PathBuf};

/// Everything that can go wrong loading, saving or running the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{action} `{path}`: {cause}")]
    Io {
        /// What was being done (`reading`, `writing`, ...).
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error (in the message, so not also a `source()`).
        cause: std::io::Error,
    },
    /// A JSON file (config.json, an index) is not valid JSON.
    #[error("parsing `{path}`: {cause}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The underlying error (in the message, so not also a `source()`).
        cause: serde_json::Error,
    },
    /// A config field is missing, has the wrong type, or holds an unsupported value.
    #[error("config field `{field}`: {message}")]
    ConfigField {
        /// The dotted field path, e.g. `text_config.rope_scaling`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A safetensors file is truncated, corrupt or holds an unsupported dtype.
    #[error("safetensors file `{path}`: {message}")]
    Safetensors {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The weights on disk do not match the architecture the config describes.
    #[error("weights in `{dir}` do not match the config:{}", list_problems(.missing, .unexpected, .mis_shaped))]
    WeightsMismatch {
        /// The model folder.
        dir: PathBuf,
        /// Expected tensors absent from the files, as `name [shape]`.
        missing: Vec<String>,
        /// Tensors in the files the architecture has no place for, as `name [shape]`.
        unexpected: Vec<String>,
        /// Tensors present with the wrong shape, as `name: file [..] expected [..]`.
        mis_shaped: Vec<String>,
    },
    /// A folder holds no weights file.
    #[error("no `model.safetensors` or `model.safetensors.index.json` in `{0}`")]
    NoWeights(PathBuf),
    /// The number of image tokens in the text does not match the image tiles given.
    #[error(
        "image tokens do not match the tiles: {image_tokens} image tokens (id {image_token_id}) in input_ids, \
         but {tiles} tiles x {tokens_per_tile} tokens per tile = {expected}"
    )]
    ImageTokenMismatch {
        /// Image tokens found in `input_ids`.
        image_tokens: usize,
        /// The image token id.
        image_token_id: u32,
        /// Tiles in `pixel_values`.
        tiles: usize,
        /// Tokens each tile contributes.
        tokens_per_tile: usize,
        /// `tiles * tokens_per_tile`.
        expected: usize,
    },
    /// A parity fixture folder is missing a file or holds inconsistent data.
    #[error("parity fixture `{path}`: {message}")]
    Fixture {
        /// The folder or file involved.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// An adapter folder holds something this crate cannot apply to the model.
    #[error("adapter `{path}`: {message}")]
    Adapter {
        /// The folder or file involved.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// LoRA was asked for a layer name the model does not have in the chosen parts.
    #[error("LoRA target `{target}` is not a layer of the parts {parts}; valid targets: {valid}")]
    LoraTarget {
        /// The name asked for.
        target: String,
        /// The parts asked for, comma-separated.
        parts: String,
        /// The layer names those parts have, comma-separated.
        valid: String,
    },
    /// An input tensor has the wrong shape or content.
    #[error("input `{name}`: {message}")]
    Input {
        /// Which input (`input_ids`, `pixel_values`, ...).
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

fn list_problems(missing: &[String], unexpected: &[String], mis_shaped: &[String]) -> String {
    let mut out = String::new();
    for (title, items) in [
        ("missing", missing),
        ("unexpected", unexpected),
        ("wrong shape", mis_shaped),
    ] {
        if !items.is_empty() {
            out.push_str(&format!("\n  {title} ({}):", items.len()));
            for item in items {
                out.push_str(&format!("\n    {item}"));
            }
        }
    }
    out
}

/// Shorthand for results in this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    /// A [`ModelError::Io`] for `action` on `path`, as a `map_err` argument.
    pub fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |cause| Self::Io {
            action,
            path,
            cause,
        }
    }

    /// A [`ModelError::ConfigField`] for `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::ConfigField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A [`ModelError::Input`] for input `name`.
    pub fn input(name: &'static str, message: impl Into<String>) -> Self {
        Self::Input {
            name,
            message: message.into(),
        }
    }
}
