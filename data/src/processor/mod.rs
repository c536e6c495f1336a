//! The processor of a vision-language model: turns conversations with images into the token
//! ids, labels and pixels the model consumes, identical to HF's processor (PIL backend) of its
//! family: SmolVLM/Idefics3 (`Idefics3Processor`: image tiles), LLaVA-1.5 (`LlavaProcessor`:
//! one CLIP crop per image) or Qwen2-VL / Qwen2.5-VL (`Qwen2VLProcessor`: dynamic resolution,
//! patches and `image_grid_thw`). One [`Processor`] type serves all; [`Family`] says which.
//!
//! - [`Processor::from_folder`] loads a model folder (tokenizer.json, tokenizer_config.json,
//!   preprocessor_config.json, processor_config.json, chat template), picking the family from
//!   config.json or the processor class names; [`Processor::from_parts`] (SmolVLM),
//!   [`Processor::from_llava_parts`] and [`Processor::from_qwen2_vl_parts`] build one in memory;
//!   [`Processor::save`] writes the files back out.
//! - [`Processor::encode_training`] gives ids, labels (only the assistant answers learn) and
//!   pixels; [`Processor::encode_prompt`] gives the generation prompt.
//! - The chat template is the folder's Jinja template rendered with minijinja (HF's settings),
//!   the family's built-in one when the folder has none.
//! - Images are decoded by content, resized with a bit-exact port of Pillow's resampling and
//!   tiled (SmolVLM) or cropped (LLaVA) as HF does: pixels equal HF's exactly for lossless
//!   inputs (JPEG decoders differ by about half a level on average).
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

mod clip;
mod config;
mod decode;
mod encode;
mod error;
mod expand;
mod family;
mod family_config;
mod folder;
mod image_processor;
mod llava_config;
mod llava_folder;
mod message;
mod qwen2_vl;
mod qwen2_vl_config;
mod qwen2_vl_folder;
mod resample;
mod template;
mod tiling;
mod tokens;

pub use clip::ClipImageProcessor;
pub use config::{image_seq_len, ImageProcessorConfig, ProcessorConfig, Size, TokenizerConfig};
pub use decode::{load_image, to_rgb, ImageSource};
pub use encode::{Encoded, IGNORE_INDEX};
pub use error::{ProcessorError, Result};
pub use expand::{image_prompt, llava_image_prompt};
pub use family::{Family, SUPPORTED_MODEL_TYPES};
pub use family_config::FamilyConfig;
pub use image_processor::{Grid, ImageProcessor, ProcessedImage};
pub use llava_config::{
    ClipImageProcessorConfig, LlavaProcessorConfig, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD,
};
pub use message::{Message, Part, Role};
pub use qwen2_vl::{smart_resize, Qwen2VlImageProcessor};
pub use qwen2_vl_config::{
    Qwen2VlImageProcessorConfig, Qwen2VlProcessorConfig, IM_END, QWEN2_VL_IMAGE_TOKEN, VISION_END,
    VISION_START,
};
pub use qwen2_vl_folder::load_qwen2_vl_image_processor;
pub use resample::{resize, Resample};
pub use template::{
    ChatTemplate, LLAVA_CHAT_TEMPLATE, QWEN2_VL_CHAT_TEMPLATE, SMOLVLM_CHAT_TEMPLATE,
};
pub use tiling::Idefics3ImageProcessor;
pub use tokens::{
    add_llava_tokens, add_qwen2_vl_tokens, add_smolvlm_tokens, row_col_token, SpecialTokens,
    END_OF_UTTERANCE, FAKE_IMAGE_TOKEN, GLOBAL_IMAGE_TOKEN, IMAGE_TOKEN, LLAVA_EOS, MAX_GRID_SIDE,
};

pub use tokenizers::Tokenizer;

/// Everything a SmolVLM [`Processor`] is made of, for building one in memory.
#[derive(Debug, Clone)]
pub struct ProcessorParts {
    pub tokenizer: Tokenizer,
    pub tokenizer_config: TokenizerConfig,
    pub image_config: ImageProcessorConfig,
    pub processor_config: ProcessorConfig,
    /// Jinja source; `None` for SmolVLM's built-in template.
    pub chat_template: Option<String>,
}

/// Everything a LLaVA [`Processor`] is made of, for building one in memory (e.g. the trainer's
/// synthetic LLaVA preset: a tiny tokenizer with [`add_llava_tokens`], [`TokenizerConfig::llava`],
/// [`ClipImageProcessorConfig::clip`] and [`LlavaProcessorConfig::llava_1_5`]).
#[derive(Debug, Clone)]
pub struct LlavaParts {
    pub tokenizer: Tokenizer,
    pub tokenizer_config: TokenizerConfig,
    pub image_config: ClipImageProcessorConfig,
    pub processor_config: LlavaProcessorConfig,
    /// config.json's `image_seq_length`, used when `processor_config` cannot give the count.
    pub image_seq_length: Option<usize>,
    /// Jinja source; `None` for llava-hf's template ([`LLAVA_CHAT_TEMPLATE`]).
    pub chat_template: Option<String>,
}

/// Everything a Qwen2-VL [`Processor`] is made of, for building one in memory (e.g. a synthetic
/// preset: a tiny tokenizer with [`add_qwen2_vl_tokens`] and
/// [`Qwen2VlImageProcessorConfig::with_bounds`]).
#[derive(Debug, Clone)]
pub struct Qwen2VlParts {
    pub tokenizer: Tokenizer,
    pub tokenizer_config: TokenizerConfig,
    pub image_config: Qwen2VlImageProcessorConfig,
    pub processor_config: Qwen2VlProcessorConfig,
    /// Jinja source; `None` for Qwen2-VL's template ([`QWEN2_VL_CHAT_TEMPLATE`]).
    pub chat_template: Option<String>,
}

/// Tokenizer, chat template and image processor of one model.
#[derive(Debug, Clone)]
pub struct Processor {
    tokenizer: Tokenizer,
    tokenizer_config: TokenizerConfig,
    special: SpecialTokens,
    template: ChatTemplate,
    images: ImageProcessor,
    config: FamilyConfig,
    /// Where it was loaded from, for error messages.
    origin: String,
}

impl Processor {
    /// Builds a SmolVLM processor from in-memory parts (e.g. the trainer's tiny tokenizer). The
    /// tokenizer must already contain SmolVLM's special tokens (see [`add_smolvlm_tokens`]).
    pub fn from_parts(parts: ProcessorParts) -> Result<Self> {
        let origin = "in-memory processor";
        let template = match parts.chat_template {
            Some(src) => ChatTemplate::new(src, "in-memory chat template")?,
            None => ChatTemplate::smolvlm(),
        };
        let images = Idefics3ImageProcessor::new(parts.image_config, origin)?;
        Processor::assemble(
            parts.tokenizer,
            parts.tokenizer_config,
            ImageProcessor::Tiling(images),
            FamilyConfig::Idefics3(parts.processor_config),
            template,
            origin,
        )
    }

    /// Builds a LLaVA processor from in-memory parts. The tokenizer must contain the image token
    /// and the eos/pad/bos tokens `tokenizer_config` names (see [`add_llava_tokens`]).
    pub fn from_llava_parts(parts: LlavaParts) -> Result<Self> {
        let origin = "in-memory processor";
        let template = match parts.chat_template {
            Some(src) => ChatTemplate::new(src, "in-memory chat template")?,
            None => ChatTemplate::llava(),
        };
        let images = ClipImageProcessor::new(parts.image_config, origin)?;
        let config = FamilyConfig::Llava {
            config: parts.processor_config,
            image_seq_length: parts.image_seq_length,
        };
        Processor::assemble(
            parts.tokenizer,
            parts.tokenizer_config,
            ImageProcessor::Clip(images),
            config,
            template,
            origin,
        )
    }

    /// Builds a Qwen2-VL processor from in-memory parts. The tokenizer must contain the image
    /// token, the vision boundaries and `<|im_end|>` (see [`add_qwen2_vl_tokens`]).
    pub fn from_qwen2_vl_parts(parts: Qwen2VlParts) -> Result<Self> {
        let origin = "in-memory processor";
        let template = match parts.chat_template {
            Some(src) => ChatTemplate::new(src, "in-memory chat template")?,
            None => ChatTemplate::qwen2_vl(),
        };
        let images = Qwen2VlImageProcessor::new(parts.image_config, origin)?;
        let config = FamilyConfig::Qwen2Vl {
            config: parts.processor_config,
            merge_size: images.config().merge_size as usize,
        };
        Processor::assemble(
            parts.tokenizer,
            parts.tokenizer_config,
            ImageProcessor::Qwen2Vl(images),
            config,
            template,
            origin,
        )
    }

    /// Checks that the parts fit together and looks the special tokens up.
    fn assemble(
        tokenizer: Tokenizer,
        tokenizer_config: TokenizerConfig,
        images: ImageProcessor,
        config: FamilyConfig,
        template: ChatTemplate,
        origin: &str,
    ) -> Result<Self> {
        let special = match (&images, &config) {
            (ImageProcessor::Tiling(tiling), FamilyConfig::Idefics3(c)) => {
                if c.image_seq_len == 0 {
                    return Err(ProcessorError::config(
                        origin,
                        "image_seq_len must be positive",
                    ));
                }
                let side = largest_grid_side(tiling.config()).min(MAX_GRID_SIDE);
                SpecialTokens::lookup(&tokenizer, &tokenizer_config, side, origin)?
            }
            (ImageProcessor::Clip(_), FamilyConfig::Llava { .. }) => {
                let (h, w) = images.frame_size().unwrap_or((1, 1));
                if config.seq_len(h, w).is_none_or(|n| n == 0) {
                    return Err(family_config::no_count(origin));
                }
                SpecialTokens::lookup_llava(
                    &tokenizer,
                    &tokenizer_config,
                    config.placeholder(),
                    origin,
                )?
            }
            (ImageProcessor::Qwen2Vl(_), FamilyConfig::Qwen2Vl { .. }) => {
                SpecialTokens::lookup_qwen2_vl(
                    &tokenizer,
                    &tokenizer_config,
                    config.placeholder(),
                    origin,
                )?
            }
            _ => {
                return Err(ProcessorError::config(
                    origin,
                    "the image processor and processor_config.json are of different families",
                ))
            }
        };
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

    /// The model family.
    pub fn family(&self) -> Family {
        self.config.family()
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

    /// processor_config.json (SmolVLM's or LLaVA's).
    pub fn processor_config(&self) -> &FamilyConfig {
        &self.config
    }

    /// `<image>` tokens per tile (SmolVLM) or per image (LLaVA; for an image of the crop size
    /// when the size of the processed image varies); 0 for Qwen2-VL, whose count follows each
    /// image's size.
    pub fn image_seq_len(&self) -> usize {
        let (h, w) = self.frame_size();
        self.config.seq_len(h, w).unwrap_or(0)
    }

    /// `(height, width)` of each pixel frame (a tile or a crop); for LLaVA without a centre crop,
    /// a square of the resize target.
    pub fn frame_size(&self) -> (usize, usize) {
        self.images.frame_size().unwrap_or_else(|| {
            let side = self
                .images
                .as_clip()
                .and_then(|p| p.config().size.shortest_edge)
                .unwrap_or(0) as usize;
            (side, side)
        })
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
