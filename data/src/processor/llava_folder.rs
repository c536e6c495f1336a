//! Reading and writing a LLaVA processor folder.
//!
//! Read: tokenizer.json (required), tokenizer_config.json, processor_config.json (`patch_size`,
//! `vision_feature_select_strategy`, `num_additional_image_tokens`, `image_token`; a
//! transformers 5 folder nests the image processor here as `image_processor`),
//! preprocessor_config.json (the hub's image processor), config.json (`image_seq_length` when the
//! processor keys cannot give the count; `image_token_index`, checked against the tokenizer), and
//! the chat template as for SmolVLM (llava-hf's template when none).
//! Written in the hub's layout: preprocessor_config.json, processor_config.json without the
//! nested image processor, chat_template.json (see `folder.rs`), loadable by HF's
//! `AutoProcessor.from_pretrained`.

use std::path::Path;

use serde_json::Value;

use super::clip::ClipImageProcessor;
use super::config::TokenizerConfig;
use super::error::{ProcessorError, Result};
use super::family_config::FamilyConfig;
use super::folder::{
    load_image_config, load_template, load_tokenizer, read_json_opt, write_json, MODEL_CONFIG,
    PREPROCESSOR_CONFIG, PROCESSOR_CONFIG, TOKENIZER_CONFIG,
};
use super::image_processor::ImageProcessor;
use super::llava_config::{ClipImageProcessorConfig, LlavaProcessorConfig};
use super::template::ChatTemplate;
use super::Processor;

const PROCESSOR_CLASS: &str = "LlavaProcessor";

impl Processor {
    /// Loads a LLaVA folder (see the module docs).
    pub(super) fn llava_from_folder(dir: &Path) -> Result<Self> {
        let tokenizer = load_tokenizer(dir)?;
        let tokenizer_config: TokenizerConfig =
            read_json_opt(&dir.join(TOKENIZER_CONFIG))?.unwrap_or_default();
        let mut config: LlavaProcessorConfig =
            read_json_opt(&dir.join(PROCESSOR_CONFIG))?.unwrap_or_default();
        if config.image_token.is_none() {
            config.image_token = tokenizer_image_token(&tokenizer_config);
        }
        let (image_config, image_origin) = load_image_config::<ClipImageProcessorConfig>(dir)?;
        config.extra.remove("image_processor"); // now the image processor's own configuration
        let images = ClipImageProcessor::new(image_config, &image_origin)?;
        let model_path = dir.join(MODEL_CONFIG);
        let model = read_json_opt::<Value>(&model_path)?;
        let image_seq_length = model_usize(model.as_ref(), "image_seq_length", &model_path)?;
        let template = load_template(dir, &config.extra, &tokenizer_config)?
            .unwrap_or_else(ChatTemplate::llava);
        let family = FamilyConfig::Llava {
            config,
            image_seq_length,
        };
        let processor = Processor::assemble(
            tokenizer,
            tokenizer_config,
            ImageProcessor::Clip(images),
            family,
            template,
            &dir.display().to_string(),
        )?;
        let index = model_usize(model.as_ref(), "image_token_index", &model_path)?;
        if let Some(index) = index.filter(|i| *i as u32 != processor.special.image) {
            return Err(ProcessorError::config(
                model_path.display(),
                format!(
                    "image_token_index {index} is not the tokenizer's id {} of {:?}",
                    processor.special.image,
                    processor.config.placeholder()
                ),
            ));
        }
        Ok(processor)
    }
}

/// preprocessor_config.json and processor_config.json of a LLaVA processor, the hub's layout.
pub(super) fn save_llava(
    dir: &Path,
    images: &ClipImageProcessor,
    config: &LlavaProcessorConfig,
) -> Result<()> {
    let mut image_config = images.config().clone();
    let class = if image_config.do_pad && image_config.pads_to_square() {
        "LlavaImageProcessor"
    } else {
        "CLIPImageProcessor"
    };
    let entry = image_config.extra.entry("image_processor_type");
    entry.or_insert_with(|| Value::from(class));
    image_config
        .extra
        .insert("processor_class".into(), Value::from(PROCESSOR_CLASS));
    write_json(&dir.join(PREPROCESSOR_CONFIG), &image_config)?;

    let mut config = config.clone();
    config
        .extra
        .insert("processor_class".into(), Value::from(PROCESSOR_CLASS));
    config.extra.remove("chat_template");
    config.extra.remove("image_processor");
    write_json(&dir.join(PROCESSOR_CONFIG), &config)
}

/// The image token a transformers 5 tokenizer_config.json names
/// (`extra_special_tokens.image_token`, or a top-level `image_token`).
pub(super) fn tokenizer_image_token(config: &TokenizerConfig) -> Option<String> {
    let named = config
        .extra
        .get("extra_special_tokens")
        .and_then(|t| t.get("image_token"));
    named
        .or_else(|| config.extra.get("image_token"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A non-negative integer `key` of config.json, if present; an error naming the file otherwise.
pub(super) fn model_usize(model: Option<&Value>, key: &str, path: &Path) -> Result<Option<usize>> {
    let Some(value) = model.and_then(|m| m.get(key)) else {
        return Ok(None);
    };
    value.as_u64().map(|v| Some(v as usize)).ok_or_else(|| {
        ProcessorError::config(
            path.display(),
            format!("{key} must be a non-negative integer, got {value}"),
        )
    })
}
