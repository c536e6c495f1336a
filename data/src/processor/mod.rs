//! The SmolVLM/Idefics3 processor: turns conversations with images into the token ids, labels
//! and pixel tiles the model consumes, identical to HF's `Idefics3Processor` (PIL backend).
//!
//! - [`Processor::from_folder`] loads a model folder (tokenizer.json, tokenizer_config.json,
//!   preprocessor_config.json, processor_config.json, chat template); [`Processor::from_parts`]
//!   builds one in memory; [`Processor::save`] writes the files back out.
//! - [`Processor::encode_training`] gives ids, labels (only the assistant answers learn) and
//!   pixels; [`Processor::encode_prompt`] gives the generation prompt.
//! - The chat template is the folder's Jinja template rendered with minijinja (HF's settings),
//!   SmolVLM's built-in one when the folder has none.
//! - Images are decoded by content, resized with a bit-exact port of Pillow's resampling and
//!   tiled as HF does: pixels equal HF's exactly for lossless inputs (JPEG decoders differ by
//!   about half a level on average).
//!
//! ```no_run
//! use safeaware_data::processor::{Message, Part, Processor};
//! # fn main() -> safeaware_data::processor::Result<()> {
//! let processor = Processor::from_folder("SmolVLM-256M-Instruct".as_ref())?;
//! let messages = vec![
//!     Message::user(vec![Part::image(std::path::PathBuf::from("kitchen.jpg")), Part::text("Is this safe?")]),
//!     Message::assistant("Unsafe: the knife is within the toddler's reach."),
//! ];
//! let train = processor.encode_training(&messages)?; // input_ids, labels, pixel_values [N,3,H,W], grids
//! let prompt = processor.encode_prompt(&messages[..1])?; // ends with "Assistant:", no labels
//! # let _ = (train, prompt); Ok(()) }
//! ```
//!
//! Training records in the placeholder form ([`crate::sharegpt::Conversation`]) convert with
//! [`Message::from_conversation`].

mod config;
mod decode;
mod encode;
mod error;
mod expand;
mod folder;
mod image_processor;
mod message;
mod resample;
mod template;
mod tokens;

pub use config::{image_seq_len, ImageProcessorConfig, ProcessorConfig, Size, TokenizerConfig};
pub use decode::{load_image, to_rgb, ImageSource};
pub use encode::{Encoded, IGNORE_INDEX};
pub use error::{ProcessorError, Result};
pub use expand::image_prompt;
pub use image_processor::{Grid, ImageProcessor, ProcessedImage};
pub use message::{Message, Part, Role};
pub use resample::{resize, Resample};
pub use template::{ChatTemplate, SMOLVLM_CHAT_TEMPLATE};
pub use tokens::{
    add_smolvlm_tokens, row_col_token, SpecialTokens, END_OF_UTTERANCE, FAKE_IMAGE_TOKEN,
    GLOBAL_IMAGE_TOKEN, IMAGE_TOKEN, MAX_GRID_SIDE,
};

pub use tokenizers::Tokenizer;

/// Everything a [`Processor`] is made of, for building one in memory.
#[derive(Debug, Clone)]
pub struct ProcessorParts {
    pub tokenizer: Tokenizer,
    pub tokenizer_config: TokenizerConfig,
    pub image_config: ImageProcessorConfig,
    pub processor_config: ProcessorConfig,
    /// Jinja source; `None` for SmolVLM's built-in template.
    pub chat_template: Option<String>,
}

/// Tokenizer, chat template and image processor of one SmolVLM model.
#[derive(Debug, Clone)]
pub struct Processor {
    tokenizer: Tokenizer,
    tokenizer_config: TokenizerConfig,
    special: SpecialTokens,
    template: ChatTemplate,
    images: ImageProcessor,
    config: ProcessorConfig,
    /// Where it was loaded from, for error messages.
    origin: String,
}

impl Processor {
    /// Builds a processor from in-memory parts (e.g. the trainer's tiny tokenizer). The tokenizer
    /// must already contain SmolVLM's special tokens (see [`add_smolvlm_tokens`]).
    pub fn from_parts(parts: ProcessorParts) -> Result<Self> {
        let template = match parts.chat_template {
            Some(src) => ChatTemplate::new(src, "in-memory chat template")?,
            None => ChatTemplate::smolvlm(),
        };
        Processor::assemble(
            parts.tokenizer,
            parts.tokenizer_config,
            parts.image_config,
            parts.processor_config,
            template,
            "in-memory processor",
        )
    }

    fn assemble(
        tokenizer: Tokenizer,
        tokenizer_config: TokenizerConfig,
        image_config: ImageProcessorConfig,
        config: ProcessorConfig,
        template: ChatTemplate,
        origin: &str,
    ) -> Result<Self> {
        if config.image_seq_len == 0 {
            return Err(ProcessorError::config(
                origin,
                "image_seq_len must be positive",
            ));
        }
        let images = ImageProcessor::new(image_config, origin)?;
        let side = largest_grid_side(images.config()).min(MAX_GRID_SIDE);
        let special = SpecialTokens::lookup(&tokenizer, &tokenizer_config, side, origin)?;
        Ok(Processor {
            tokenizer,
            tokenizer_config,
            special,
            template,
            images,
            config,
            origin: origin.to_string(),
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Special-token names from tokenizer_config.json.
    pub fn tokenizer_config(&self) -> &TokenizerConfig {
        &self.tokenizer_config
    }

    /// Ids of the special tokens.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// The image processor.
    pub fn image_processor(&self) -> &ImageProcessor {
        &self.images
    }

    /// The chat template.
    pub fn chat_template(&self) -> &ChatTemplate {
        &self.template
    }

    /// processor_config.json.
    pub fn processor_config(&self) -> &ProcessorConfig {
        &self.config
    }

    /// `<image>` tokens per tile.
    pub fn image_seq_len(&self) -> usize {
        self.config.image_seq_len
    }

    /// Token ids back to text.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.tokenizer
            .decode(ids, skip_special_tokens)
            .map_err(|e| self.tokenizer_error(e))
    }

    fn tokenizer_error(&self, e: tokenizers::Error) -> ProcessorError {
        ProcessorError::Tokenizer {
            origin: self.origin.clone(),
            reason: e.to_string(),
        }
    }
}

/// The largest grid side an image can get under `config` (0 when unbounded by the config).
fn largest_grid_side(config: &ImageProcessorConfig) -> usize {
    if !config.do_image_splitting || !config.do_resize {
        return 0;
    }
    let size = &config.size;
    let longest = size
        .longest_edge
        .or_else(|| Some(size.height?.max(size.width?)))
        .unwrap_or(0)
        .min(4096);
    (longest as usize).div_ceil(config.tile_size().max(1) as usize)
}
