//! Encoding conversations: render the chat template, preprocess the images, expand their
//! placeholders, tokenize, and (for training) mask everything but the assistant answers.
//!
//! Labels are found on the rendered text, not by guessing token boundaries: for each assistant
//! message the template is rendered up to its generation prompt and up to its end, the answer is
//! the text in between up to and including its end of turn, and a token is learned iff it
//! starts inside an answer (offsets from the tokenizer). Text after that, such as the
//! template's trailing newline, stays masked.
//!
//! The end of turn: SmolVLM's template writes `<end_of_utterance>` and Qwen2-VL's `<|im_end|>`
//! (learned; the newline after it is not); LLaVA's writes the answer
//! followed by a space and nothing else, so for training each answer's trailing white space is
//! replaced by the eos token (`</s>`), which is learned: `ASSISTANT: answer</s>USER: …`, the
//! format original LLaVA-1.5 trained on. Prompts are left exactly as HF renders them.

use std::ops::Range;

use super::decode::ImageSource;
use super::error::{ProcessorError, Result};
use super::expand::{expand, Expanded};
use super::family::Family;
use super::image_processor::{Grid, ImageProcessor};
use super::message::{Message, Role};
use super::qwen2_vl_config::IM_END;
use super::tokens::{row_col_token, END_OF_UTTERANCE, LLAVA_EOS};
use super::Processor;

pub use safeaware_common::labels::IGNORE_INDEX;

/// Model inputs for one conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub input_ids: Vec<u32>,
    /// Training targets aligned with `input_ids` ([`IGNORE_INDEX`] except on answer tokens);
    /// `None` for prompts.
    pub labels: Option<Vec<i64>>,
    /// All images' frames, flattened `[N, 3, H, W]` (HF's order: image by image; SmolVLM: each
    /// image's row-major tiles then its global view; LLaVA: one crop per image; Qwen2-VL: one
    /// frame per patch, `H = temporal_patch_size·patch_size`, `W = patch_size`, which is HF's
    /// `pixel_values` `[patches, C·T·P·P]` in the same memory).
    pub pixel_values: Vec<f32>,
    /// `[N, 3, H, W]`; `N` is 0 without images.
    pub pixel_shape: [usize; 4],
    /// Per image, how it was tiled (`0`×`0` for LLaVA and Qwen2-VL).
    pub grids: Vec<Grid>,
    /// Qwen2-VL's `image_grid_thw`, a `[t, h, w]` row (in patches) per image; empty for the
    /// other families.
    pub image_grid_thw: Vec<[usize; 3]>,
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
        let mut answers: Vec<Answer> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if m.role == Role::Assistant {
                let open = open_last && Some(i) == last;
                answers.push(self.answer_span(messages, i, &full, open)?);
            }
        }
        if answers.is_empty() {
            return Err(ProcessorError::NoAssistantTurn);
        }
        let (text, answers) = match self.family() {
            Family::Llava => close_answers(&full, &answers, self.eos_text()),
            _ => (full, answers.into_iter().map(|a| a.span).collect()),
        };
        let Tokenized {
            expanded,
            mut encoded,
            offsets,
        } = self.encode_with_offsets(&text, &images_of(messages))?;
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

    /// The text of the eos token (LLaVA's end of turn in training encodings).
    fn eos_text(&self) -> &str {
        self.tokenizer_config
            .eos_token
            .as_deref()
            .unwrap_or(LLAVA_EOS)
    }

    /// HF's `processor(text=…, images=…)`: expands the `<image>` placeholders of an already
    /// rendered `text` with `images` (in order) and tokenizes it.
    pub fn encode_text(&self, text: &str, images: &[ImageSource]) -> Result<Encoded> {
        Ok(self.encode_with_offsets(text, images)?.encoded)
    }

    /// Where, in the rendered conversation `full`, the answer of assistant message `i` is (with
    /// its `<end_of_utterance>` unless `open`; without trailing white space) and where its
    /// rendering ends.
    fn answer_span(
        &self,
        messages: &[Message],
        i: usize,
        full: &str,
        open: bool,
    ) -> Result<Answer> {
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
        let end_of_utterance = match self.family() {
            Family::Idefics3 => answer
                .rfind(END_OF_UTTERANCE)
                .map(|j| (j, END_OF_UTTERANCE)),
            Family::Qwen2Vl => answer.rfind(IM_END).map(|j| (j, IM_END)),
            Family::Llava => None,
        };
        let len = match end_of_utterance {
            Some((j, _)) if open => j,
            Some((j, end)) => j + end.len(),
            None => answer.trim_end().len(),
        };
        Ok(Answer {
            span: prompt.len()..prompt.len() + len,
            rendered_end: upto.len(),
            open,
        })
    }

    /// Expands and tokenizes `text`, returning the expansion and each token's byte offsets.
    fn encode_with_offsets(&self, text: &str, images: &[ImageSource]) -> Result<Tokenized> {
        let (mut height, mut width) = self.frame_size();
        let mut pixel_values = Vec::new();
        let mut grids = Vec::with_capacity(images.len());
        let mut image_grid_thw = Vec::new();
        let mut replacements = Vec::with_capacity(images.len());
        let mut frames = 0;
        for (k, source) in images.iter().enumerate() {
            let processed = self.images.process_source(source)?;
            if let ImageProcessor::Tiling(_) = self.images {
                self.check_grid_tokens(processed.grid)?;
            }
            if k > 0 && (processed.height, processed.width) != (height, width) {
                return Err(ProcessorError::Image {
                    name: source.name(),
                    reason: format!(
                        "processed to {}x{} pixels, unlike the {width}x{height} of the images before it (set a crop size to batch images of different sizes)",
                        processed.width, processed.height
                    ),
                });
            }
            (height, width) = (processed.height, processed.width);
            replacements.push(self.config.image_text(&processed, &self.origin)?);
            grids.push(processed.grid);
            image_grid_thw.extend(processed.grid_thw);
            frames += processed.num_tiles;
            pixel_values.extend_from_slice(&processed.pixel_values);
        }
        let expanded = expand(text, self.config.placeholder(), &replacements)?;
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
        let encoded = Encoded {
            input_ids: encoding.get_ids().to_vec(),
            labels: None,
            pixel_values,
            pixel_shape: [frames, 3, height, width],
            grids,
            image_grid_thw,
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

/// An assistant answer in the rendered conversation.
struct Answer {
    /// The learned bytes.
    span: Range<usize>,
    /// Where the message's rendering ends (after the template's trailing text).
    rendered_end: usize,
    /// Left open: no end of turn is added or learned.
    open: bool,
}

/// LLaVA's training text: each closed answer's trailing white space (up to the end of its
/// rendering) replaced by `eos`, which joins the learned span. Returns the text and the spans.
fn close_answers(full: &str, answers: &[Answer], eos: &str) -> (String, Vec<Range<usize>>) {
    let mut out = String::with_capacity(full.len() + answers.len() * eos.len());
    let mut spans = Vec::with_capacity(answers.len());
    let mut last = 0;
    for a in answers {
        out.push_str(&full[last..a.span.end]);
        let start = a.span.start + out.len() - a.span.end;
        last = a.span.end;
        if !a.open {
            out.push_str(eos);
            let tail = &full[a.span.end..a.rendered_end];
            last += tail.len() - tail.trim_start().len();
        }
        spans.push(start..out.len());
    }
    out.push_str(&full[last..]);
    (out, spans)
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
