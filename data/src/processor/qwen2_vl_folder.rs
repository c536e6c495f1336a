//! Reading and writing a Qwen2-VL (or Qwen2.5-VL) processor folder.
//!
//! Read: tokenizer.json (required), tokenizer_config.json, preprocessor_config.json (or a
//! transformers 5 processor_config.json's nested `image_processor`), processor_config.json (its
//! `image_token`, else the tokenizer config's, else `<|image_pad|>`), config.json
//! (`image_token_id`, checked against the tokenizer), and the chat template as for the other
//! families (Qwen2-VL's template when none). Written in the hub's layout:
//! preprocessor_config.json and processor_config.json, loadable by HF's `AutoProcessor`.

use std::path::Path;

use serde_json::Value;

use super::config::TokenizerConfig;
use super::error::{ProcessorError, Result};
use super::family_config::FamilyConfig;
use super::folder::{
    load_image_config, load_template, load_tokenizer, read_json_opt, write_json, MODEL_CONFIG,
    PREPROCESSOR_CONFIG, PROCESSOR_CONFIG, TOKENIZER_CONFIG,
};
use super::image_processor::ImageProcessor;
use super::llava_folder::{model_usize, tokenizer_image_token};
use super::qwen2_vl::Qwen2VlImageProcessor;
use super::qwen2_vl_config::{Qwen2VlImageProcessorConfig, Qwen2VlProcessorConfig};
use super::template::ChatTemplate;
use super::Processor;

impl Processor {
    /// Loads a Qwen2-VL folder (see the module docs).
    pub(super) fn qwen2_vl_from_folder(dir: &Path) -> Result<Self> {
        let tokenizer = load_tokenizer(dir)?;
        let tokenizer_config: TokenizerConfig =
            read_json_opt(&dir.join(TOKENIZER_CONFIG))?.unwrap_or_default();
        let mut config: Qwen2VlProcessorConfig =
            read_json_opt(&dir.join(PROCESSOR_CONFIG))?.unwrap_or_default();
        if config.image_token.is_none() {
            config.image_token = tokenizer_image_token(&tokenizer_config);
        }
        let (image_config, image_origin) = load_image_config::<Qwen2VlImageProcessorConfig>(dir)?;
        config.extra.remove("image_processor"); // now the image processor's own configuration
        let images = Qwen2VlImageProcessor::new(image_config, &image_origin)?;
        let template = load_template(dir, &config.extra, &tokenizer_config)?
            .unwrap_or_else(ChatTemplate::qwen2_vl);
        let family = FamilyConfig::Qwen2Vl {
            config,
            merge_size: images.config().merge_size as usize,
        };
        let processor = Processor::assemble(
            tokenizer,
            tokenizer_config,
            ImageProcessor::Qwen2Vl(images),
            family,
            template,
            &dir.display().to_string(),
        )?;
        let model_path = dir.join(MODEL_CONFIG);
        let model = read_json_opt::<Value>(&model_path)?;
        let index = model_usize(model.as_ref(), "image_token_id", &model_path)?;
        if let Some(index) = index.filter(|i| *i as u32 != processor.special.image) {
            return Err(ProcessorError::config(
                model_path.display(),
                format!(
                    "image_token_id {index} is not the tokenizer's id {} of {:?}",
                    processor.special.image,
                    processor.config.placeholder()
                ),
            ));
        }
        Ok(processor)
    }
}

/// The image processor of a Qwen2-VL folder alone (what `plan` needs): its
/// preprocessor_config.json (or transformers 5's nested one), or HF's defaults when the folder
/// has neither (a folder of config.json only).
pub fn load_qwen2_vl_image_processor(dir: &Path) -> Result<Qwen2VlImageProcessor> {
    let has_config = dir.join(PREPROCESSOR_CONFIG).exists() || dir.join(PROCESSOR_CONFIG).exists();
    if !has_config {
        return Qwen2VlImageProcessor::new(Qwen2VlImageProcessorConfig::default(), "HF's defaults");
    }
    let (config, origin) = load_image_config::<Qwen2VlImageProcessorConfig>(dir)?;
    Qwen2VlImageProcessor::new(config, &origin)
}

/// preprocessor_config.json and processor_config.json of a Qwen2-VL processor, the hub's layout.
pub(super) fn save_qwen2_vl(
    dir: &Path,
    images: &Qwen2VlImageProcessor,
    config: &Qwen2VlProcessorConfig,
) -> Result<()> {
    let class = config
        .extra
        .get("processor_class")
        .and_then(Value::as_str)
        .unwrap_or("Qwen2VLProcessor")
        .to_string();
    let mut image_config = images.config().clone();
    let entry = image_config.extra.entry("image_processor_type");
    entry.or_insert_with(|| Value::from("Qwen2VLImageProcessor"));
    image_config
        .extra
        .insert("processor_class".into(), Value::from(class.as_str()));
    write_json(&dir.join(PREPROCESSOR_CONFIG), &image_config)?;

    let mut config = config.clone();
    config
        .extra
        .insert("processor_class".into(), Value::from(class.as_str()));
    config.extra.remove("chat_template");
    config.extra.remove("image_processor");
    write_json(&dir.join(PROCESSOR_CONFIG), &config)
}
