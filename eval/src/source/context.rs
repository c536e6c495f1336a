//! The model's context as a limit on prompts. A prompt is encoded (template, images, tokens)
//! and its length checked against the context (`max_position_embeddings`) before the model
//! sees it, so an over-long prompt fails alone with a reason instead of sizing an attention
//! mask, rotary tables and a cache that cannot be allocated. [`PromptEncoder`] is shared by the
//! local generator (eval, training-time evaluation) and `safeaware serve`'s request threads.

use safeaware_data::processor::{Encoded, Processor, ProcessorError};

use super::generator::Prompt;
use super::SourceError;

/// A prompt encoded and known to fit the context, with the id that seeds its VCD noise.
#[derive(Debug, Clone)]
pub struct EncodedPrompt {
    pub id: String,
    pub encoded: Encoded,
}

impl EncodedPrompt {
    /// Tokens of the prompt (image tokens included).
    pub fn len(&self) -> usize {
        self.encoded.input_ids.len()
    }

    /// Whether the prompt has no tokens (never, for a rendered chat prompt).
    pub fn is_empty(&self) -> bool {
        self.encoded.input_ids.is_empty()
    }
}

/// Encodes prompts with a model folder's processor and refuses those the model's context
/// cannot hold with at least one new token.
#[derive(Clone, Copy)]
pub struct PromptEncoder<'a> {
    processor: &'a Processor,
    context: usize,
}

impl<'a> PromptEncoder<'a> {
    /// An encoder for a model whose context is `context` tokens.
    pub fn new(processor: &'a Processor, context: usize) -> Self {
        PromptEncoder { processor, context }
    }

    /// The context, in tokens.
    pub fn context(&self) -> usize {
        self.context
    }

    /// The new tokens a prompt of `prompt_tokens` may get: `wanted`, or fewer where the
    /// context ends first.
    pub fn budget(&self, prompt_tokens: usize, wanted: usize) -> usize {
        wanted.min(self.context.saturating_sub(prompt_tokens))
    }

    /// The prompt's tokens and pixels; an image that cannot be read, or a prompt that leaves
    /// no room for an answer in the context, fails with why.
    pub fn encode(&self, prompt: &Prompt) -> Result<EncodedPrompt, SourceError> {
        let encoded = self
            .processor
            .encode_prompt(&prompt.messages)
            .map_err(|e| match e {
                // The processor's image errors name the file already; keep only why.
                ProcessorError::Image { reason, .. } => SourceError::Image {
                    path: prompt.image_name.clone(),
                    message: reason,
                },
                other => SourceError::Other(other.to_string()),
            })?;
        let tokens = encoded.input_ids.len();
        if tokens >= self.context {
            return Err(SourceError::TooLong {
                context: self.context,
                detail: format!(
                    "the prompt is {tokens} tokens, which leaves no room for an answer"
                ),
            });
        }
        Ok(EncodedPrompt {
            id: prompt.id.clone(),
            encoded,
        })
    }
}
