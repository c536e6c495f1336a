//! Where answers come from: the [`AnswerSource`] trait and its implementations — a recorded
//! responses file ([`responses`]), an OpenAI-compatible chat endpoint ([`endpoint`]) and a
//! model in memory ([`local`], over the [`generator`] that `safeaware serve` also uses).

pub mod context;
pub mod data_url;
pub mod endpoint;
pub mod generator;
pub mod local;
pub mod responses;

use std::collections::BTreeMap;

use safeaware_data::benchmark::BenchmarkItem;
use serde::{Deserialize, Serialize};

use crate::prompt::Conversation;

/// One question to a source: the item (its id and image) and the conversation to answer.
#[derive(Debug, Clone, Copy)]
pub struct AnswerRequest<'a> {
    pub item: &'a BenchmarkItem,
    pub conversation: &'a Conversation,
}

/// What a source gave back for an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The model's text.
    Text(String),
    /// The source has no answer for this item (a responses file without its id): the item is
    /// counted as missing and left out of every denominator.
    NoResponse,
}

/// Why a source could not answer one item; recorded against the item, never fatal to a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The item has no image, so a generating source cannot ask about it.
    #[error("image missing")]
    MissingImage,
    /// The image could not be read or decoded.
    #[error("image {path}: {message}")]
    Image { path: String, message: String },
    /// The endpoint kept failing (or failed in a way not worth retrying).
    #[error("endpoint: {message} (after {attempts} attempt(s))")]
    Endpoint { message: String, attempts: u32 },
    /// The recorded response for this id could not be read.
    #[error("responses file line {line}: {message}")]
    UnreadableResponse { line: usize, message: String },
    /// The prompt does not fit the model's context (`max_position_embeddings`) with room for
    /// an answer; it is refused before the model allocates anything for it.
    #[error("prompt too long for the model's context of {context} tokens (max_position_embeddings): {detail}")]
    TooLong { context: usize, detail: String },
    /// Anything else a source reports.
    #[error("{0}")]
    Other(String),
}

/// A source as results.json records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// `responses`, `endpoint`, `model`, …
    pub kind: String,
    /// The model or file that answers (what a reader wants to see in a table).
    pub name: String,
    /// Kind-specific details (endpoint URL, file path, retries, …).
    #[serde(default)]
    pub details: BTreeMap<String, serde_json::Value>,
    /// Extra counts merged into `counts` (e.g. `unknown_ids` of a responses file).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, usize>,
}

/// Something that answers benchmark questions.
///
/// Sources are shared by worker threads (`Sync`); a source holding state that is not `Sync`
/// (a model on one device) can keep it in a `Mutex` and report [`AnswerSource::parallelism`] 1.
pub trait AnswerSource: Sync {
    /// What to record about this source in results.json.
    fn info(&self) -> SourceInfo;

    /// Whether the source generates answers (needs the image, may be asked several turns, and a
    /// run with it can resume); `false` for recorded responses, which are scored as given.
    fn generates(&self) -> bool {
        true
    }

    /// How many items may be asked at once.
    fn parallelism(&self) -> usize {
        1
    }

    /// Answers the last user turn of `request.conversation` about `request.item`.
    fn answer(&self, request: &AnswerRequest<'_>) -> Result<Answer, SourceError>;

    /// How many items one [`AnswerSource::answer_batch`] call should take (local models
    /// generate a batch together; remote sources answer one at a time).
    fn batch_size(&self) -> usize {
        1
    }

    /// Answers several requests; one result per request, in order.
    fn answer_batch(&self, requests: &[AnswerRequest<'_>]) -> Vec<Result<Answer, SourceError>> {
        requests.iter().map(|r| self.answer(r)).collect()
    }
}
