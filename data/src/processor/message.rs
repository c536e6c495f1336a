//! Conversation messages as the processor takes them: a role and an ordered list of text and
//! image parts (HF's `{"type": "text"|"image"}` content), plus the conversion from the
//! placeholder-in-text [`Conversation`] that training records become.

use super::decode::ImageSource;
use super::error::{ProcessorError, Result};
use super::tokens::IMAGE_TOKEN;
use crate::sharegpt::Conversation;
pub use crate::sharegpt::Role;

/// One piece of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Image(ImageSource),
}

impl Part {
    /// A text part.
    pub fn text(t: impl Into<String>) -> Self {
        Part::Text(t.into())
    }

    /// An image part.
    pub fn image(source: impl Into<ImageSource>) -> Self {
        Part::Image(source.into())
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Part>,
}

impl Message {
    /// A message from parts.
    pub fn new(role: Role, content: Vec<Part>) -> Self {
        Message { role, content }
    }

    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Message::new(Role::System, vec![Part::text(text)])
    }

    /// A user message from parts (images and text in display order).
    pub fn user(content: Vec<Part>) -> Self {
        Message::new(Role::User, content)
    }

    /// An assistant message (the answer a training example teaches).
    pub fn assistant(text: impl Into<String>) -> Self {
        Message::new(Role::Assistant, vec![Part::text(text)])
    }

    /// The images of this message, in order.
    pub fn images(&self) -> impl Iterator<Item = &ImageSource> {
        self.content.iter().filter_map(|p| match p {
            Part::Image(src) => Some(src),
            Part::Text(_) => None,
        })
    }

    /// The messages of a placeholder-style conversation: each `<image>` in a message's text
    /// becomes an image part taking the conversation's next image. A newline right after a
    /// placeholder (the LLaVA `"<image>\n"` convention) is dropped, as it is not part of
    /// SmolVLM's prompt format. Errors when placeholders and images do not pair up.
    pub fn from_conversation(conversation: &Conversation) -> Result<Vec<Message>> {
        let mut images = conversation.images.iter();
        let placeholders: usize = conversation
            .messages
            .iter()
            .map(|m| m.content.matches(IMAGE_TOKEN).count())
            .sum();
        if placeholders != conversation.images.len() {
            return Err(ProcessorError::ImageCount {
                placeholders,
                images: conversation.images.len(),
            });
        }
        let mut out = Vec::with_capacity(conversation.messages.len());
        for m in &conversation.messages {
            let mut content = Vec::new();
            for (i, piece) in m.content.split(IMAGE_TOKEN).enumerate() {
                let text = if i > 0 {
                    let path = images.next().expect("placeholder count checked above");
                    content.push(Part::image(path.clone()));
                    piece.strip_prefix('\n').unwrap_or(piece)
                } else {
                    piece
                };
                if !text.is_empty() {
                    content.push(Part::text(text));
                }
            }
            out.push(Message::new(m.role, content));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharegpt;
    use std::path::PathBuf;

    #[test]
    fn placeholders_become_image_parts_in_order() {
        let conv = Conversation {
            id: "c1".into(),
            images: vec![PathBuf::from("a.png"), PathBuf::from("b.png")],
            messages: vec![
                sharegpt::Message {
                    role: Role::User,
                    content: "<image>\nCompare with<image> please".into(),
                },
                sharegpt::Message {
                    role: Role::Assistant,
                    content: "Same.".into(),
                },
            ],
        };
        let msgs = Message::from_conversation(&conv).unwrap();
        assert_eq!(
            msgs[0].content,
            vec![
                Part::image(PathBuf::from("a.png")),
                Part::text("Compare with"),
                Part::image(PathBuf::from("b.png")),
                Part::text(" please"),
            ]
        );
        assert_eq!(msgs[1], Message::assistant("Same."));
    }

    #[test]
    fn unpaired_placeholders_are_an_error() {
        let conv = Conversation {
            id: "c2".into(),
            images: vec![],
            messages: vec![sharegpt::Message {
                role: Role::User,
                content: "<image> hi".into(),
            }],
        };
        let e = Message::from_conversation(&conv).unwrap_err();
        assert!(
            matches!(
                e,
                ProcessorError::ImageCount {
                    placeholders: 1,
                    images: 0
                }
            ),
            "{e}"
        );
    }
}
