//! The ShareGPT/LLaVA conversation form of a training line, and the [`Conversation`] every
//! training record becomes.
//!
//! Accepted line shapes (JSON objects):
//! - ShareGPT: `{"id": …, "messages": [{"role": "user", "content": "<image>\n…"}, {"role":
//!   "assistant", "content": "…"}], "images": ["img/a.png"]}`
//! - LLaVA: `{"id": …, "conversations": [{"from": "human", "value": "<image>\n…"}, {"from": "gpt",
//!   "value": "…"}], "image": "img/a.png"}`
//!
//! Roles `system`, `user`/`human`, `assistant`/`gpt` are understood. The number of
//! [`IMAGE_PLACEHOLDER`]s over all messages must equal the number of images, and the last
//! message must be the assistant's. Image paths are relative to the file's folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fileio::RawId;

/// Where an image goes in a message's text.
pub const IMAGE_PLACEHOLDER: &str = "<image>";

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message; `content` holds an [`IMAGE_PLACEHOLDER`] for each image it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// A conversation ready for the processor: images resolved to paths on disk, in placeholder order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub images: Vec<PathBuf>,
    pub messages: Vec<Message>,
}

/// A ShareGPT line as written: image paths relative to the file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRecord {
    pub id: String,
    pub images: Vec<PathBuf>,
    pub messages: Vec<Message>,
}

impl ChatRecord {
    /// The conversation with image paths resolved against `dir`.
    pub fn to_conversation(&self, dir: &Path) -> Conversation {
        Conversation {
            id: self.id.clone(),
            images: self.images.iter().map(|p| dir.join(p)).collect(),
            messages: self.messages.clone(),
        }
    }
}

#[derive(Deserialize)]
struct RawChat {
    #[serde(default)]
    id: Option<RawId>,
    #[serde(alias = "conversations")]
    messages: Vec<RawMessage>,
    #[serde(default)]
    images: Option<Vec<String>>,
    #[serde(default)]
    image: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(alias = "from")]
    role: String,
    #[serde(alias = "value")]
    content: String,
}

/// Parses a ShareGPT/LLaVA object; `line` names records without an id (`line-<n>`).
/// The error message is for the caller to prefix with file and line.
pub fn parse_chat(value: serde_json::Value, line: usize) -> Result<ChatRecord, String> {
    let raw: RawChat =
        serde_json::from_value(value).map_err(|e| format!("bad ShareGPT record: {e}"))?;
    let id = raw
        .id
        .map(RawId::into_string)
        .unwrap_or_else(|| format!("line-{line}"));
    let ctx = |msg: String| format!("id {id}: {msg}");
    let images: Vec<PathBuf> = match (raw.images, raw.image) {
        (Some(_), Some(_)) => return Err(ctx("has both `images` and `image`".to_string())),
        (Some(list), None) => list.into_iter().map(PathBuf::from).collect(),
        (None, Some(one)) => vec![PathBuf::from(one)],
        (None, None) => Vec::new(),
    };
    let mut messages = Vec::with_capacity(raw.messages.len());
    for (i, m) in raw.messages.into_iter().enumerate() {
        let role = match m.role.to_ascii_lowercase().as_str() {
            "system" => Role::System,
            "user" | "human" => Role::User,
            "assistant" | "gpt" => Role::Assistant,
            other => return Err(ctx(format!("message {}: unknown role `{other}`", i + 1))),
        };
        messages.push(Message {
            role,
            content: m.content,
        });
    }
    if messages.last().map(|m| m.role) != Some(Role::Assistant) {
        return Err(ctx("the last message must be the assistant's".to_string()));
    }
    let placeholders: usize = messages
        .iter()
        .map(|m| m.content.matches(IMAGE_PLACEHOLDER).count())
        .sum();
    if placeholders != images.len() {
        return Err(ctx(format!(
            "{placeholders} `{IMAGE_PLACEHOLDER}` placeholder(s) but {} image(s)",
            images.len()
        )));
    }
    Ok(ChatRecord {
        id,
        images,
        messages,
    })
}
