//! Encoding conversations: render the chat template, preprocess the images, expand their
//! placeholders, tokenize, and (for training) mask everything but the assistant answers.
//!
//! Labels are found on the rendered text, not by guessing token boundaries: for each assistant
//! message the template is rendered up to its generation prompt and up to its end, the answer is
//! the text in between up to and including its `<end_of_utterance>`, and a token is learned iff
//! it starts inside an answer (offsets from the tokenizer). Text after that, such as the
//! template's trailing newline, stays masked.

use std::ops::Range;

use super::decode::ImageSource;
use super::error::{ProcessorError, Result};
use super::expand::{expand, image_prompt, Expanded};
use super::image_processor::Grid;
use super::message::{Message, Role};
use super::tokens::{row_col_token, END_OF_UTTERANCE};
use super::Processor;

pub use safeaware_common::labels::IGNORE_INDEX;

/// Model inputs for one conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub input_ids: Vec<u32>,
    /// Training targets aligned with `input_ids` ([`IGNORE_INDEX`] except on answer tokens);
    /// `None` for prompts.
    pub labels: Option<Vec<i64>>,
    /// All images' tiles, flattened `[N, 3, H, W]` (HF's order: image by image, each image's
    /// row-major tiles then its global view).
    pub pixel_values: Vec<f32>,
    /// `[N, 3, H, W]`; `N` is 0 without images.
    pub pixel_shape: [usize; 4],
    /// Per image, how it was tiled.
    pub grids: Vec<Grid>,
}

impl Encoded {
    /// Number of tiles in `pixel_values`.
    pub fn num_tiles(&self) -> usize {
        self.pixel_shape[0]
    }
}

impl Processor {
    /// The chat template applied to `messages` (placeholders not expanded).
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.template
            .render(messages, add_generation_prompt, &self.tokenizer_config)
    }

    /// Inputs for generation: `messages` followed by the assistant prompt; no labels.
    pub fn encode_prompt(&self, messages: &[Message]) -> Result<Encoded> {
        let text = self.render(messages, true)?;
        self.encode_text(&text, &images_of(messages))
    }

    /// Inputs and labels for training on every assistant message of `messages`: each answer's
    /// tokens, its closing `<end_of_utterance>` included, are labelled; all else is ignored.
    pub fn encode_training(&self, messages: &[Message]) -> Result<Encoded> {
        self.encode_answers(messages, false)
    }

    /// As [`Processor::encode_training`], but the last answer is left open: its closing
    /// `<end_of_utterance>` is not labelled, so the model learns the answer without learning to
    /// end the turn there (description-only traces).
    pub fn encode_training_open(&self, messages: &[Message]) -> Result<Encoded> {
        self.encode_answers(messages, true)
    }

    fn encode_answers(&self, messages: &[Message], open_last: bool) -> Result<Encoded> {
        let full = self.render(messages, false)?;
        let last = messages.iter().rposition(|m| m.role == Role::Assistant);
        let mut answers: Vec<Range<usize>> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if m.role == Role::Assistant {
                let open = open_last && Some(i) == last;
                answers.push(self.answer_span(messages, i, &full, open)?);
            }
        }
        if answers.is_empty() {
            return Err(ProcessorError::NoAssistantTurn);
        }
        let Tokenized {
            expanded,
            mut encoded,
            offsets,
        } = self.encode_with_offsets(&full, &images_of(messages))?;
        let answers: Vec<Range<usize>> = answers
            .iter()
            .map(|r| expanded.map(r.start)..expanded.map(r.end))
            .collect();
        let labels = encoded
            .input_ids
            .iter()
            .zip(&offsets)
            .map(|(&id, &(start, _))| {
                if answers.iter().any(|r| r.contains(&start)) {
                    id as i64
                } else {
                    IGNORE_INDEX
                }
            })
            .collect();
        encoded.labels = Some(labels);
        Ok(encoded)
    }

    /// HF's `processor(text=…, images=…)`: expands the `<image>` placeholders of an already
    /// rendered `text` with `images` (in order) and tokenizes it.
    pub fn encode_text(&self, text: &str, images: &[ImageSource]) -> Result<Encoded> {
        Ok(self.encode_with_offsets(text, images)?.encoded)
    }

    /// The byte range, in the rendered conversation `full`, of the answer of assistant message `i`
    /// (without its `<end_of_utterance>` when `open`).
    fn answer_span(
        &self,
        messages: &[Message],
        i: usize,
        full: &str,
        open: bool,
    ) -> Result<Range<usize>> {
        let prompt = self.render(&messages[..i], true)?;
        let upto = self.render(&messages[..=i], false)?;
        if !upto.starts_with(&prompt) || !full.starts_with(&upto) {
            return Err(ProcessorError::Template {
                origin: self.origin.clone(),
                reason: format!(
                    "the rendering up to message {i} is not a prefix of the whole conversation, so its answer cannot be located for labels"
                ),
            });
        }
        let answer = &upto[prompt.len()..];
        let len = match answer.rfind(END_OF_UTTERANCE) {
            Some(j) if open => j,
            Some(j) => j + END_OF_UTTERANCE.len(),
            None => answer.trim_end().len(),
        };
        Ok(prompt.len()..prompt.len() + len)
    }

    /// Expands and tokenizes `text`, returning the expansion and each token's byte offsets.
    fn encode_with_offsets(&self, text: &str, images: &[ImageSource]) -> Result<Tokenized> {
        let tile = self.images.tile_size();
        let mut pixel_values = Vec::new();
        let mut grids = Vec::with_capacity(images.len());
        let mut replacements = Vec::with_capacity(images.len());
        for source in images {
            let processed = self.images.process_source(source)?;
            self.check_grid_tokens(processed.grid)?;
            replacements.push(image_prompt(processed.grid, self.config.image_seq_len));
            grids.push(processed.grid);
            pixel_values.extend_from_slice(&processed.pixel_values);
        }
        let expanded = expand(text, &replacements)?;
        // Like HF's apply_chat_template(tokenize=True): no extra special tokens when the prompt
        // already starts with the bos token.
        let starts_with_bos = self
            .tokenizer_config
            .bos_token
            .as_deref()
            .is_some_and(|b| text.starts_with(b));
        let encoding = self
            .tokenizer
            .encode(expanded.text.as_str(), !starts_with_bos)
            .map_err(|e| self.tokenizer_error(e))?;
        let n = pixel_values.len() / (3 * tile * tile).max(1);
        let encoded = Encoded {
            input_ids: encoding.get_ids().to_vec(),
            labels: None,
            pixel_values,
            pixel_shape: [n, 3, tile, tile],
            grids,
        };
        Ok(Tokenized {
            expanded,
            encoded,
            offsets: encoding.get_offsets().to_vec(),
        })
    }

    /// Errors unless every `<row_r_col_c>` of `grid` is a token (otherwise it would silently be
    /// tokenized as text).
    fn check_grid_tokens(&self, grid: Grid) -> Result<()> {
        if grid.rows <= self.special.grid_side() && grid.cols <= self.special.grid_side() {
            return Ok(());
        }
        for r in 1..=grid.rows {
            for c in 1..=grid.cols {
                let token = row_col_token(r, c);
                if self.tokenizer.token_to_id(&token).is_none() {
                    return Err(ProcessorError::MissingToken {
                        origin: self.origin.clone(),
                        token,
                        purpose: format!("an image tiled {}x{}", grid.rows, grid.cols),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A tokenized prompt with what label placement needs.
struct Tokenized {
    expanded: Expanded,
    encoded: Encoded,
    /// Byte offsets of each token in `expanded.text`.
    offsets: Vec<(usize, usize)>,
}

fn images_of(messages: &[Message]) -> Vec<ImageSource> {
    messages.iter().flat_map(Message::images).cloned().collect()
}
