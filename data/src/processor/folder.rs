//! Reading a processor from a model folder and writing one into a checkpoint folder; the
//! family is detected first ([`Family::detect`]), LLaVA's specifics are in `llava_folder.rs`,
//! Qwen2-VL's in `qwen2_vl_folder.rs`.
//!
//! Read (SmolVLM): tokenizer.json and preprocessor_config.json (required),
//! tokenizer_config.json, processor_config.json (`image_seq_len`; else derived from
//! config.json; else HF's 169), and the chat template from chat_template.jinja,
//! chat_template.json, processor_config.json or tokenizer_config.json, in that order (the
//! family's built-in template when none has one).
//! Written: tokenizer.json, tokenizer_config.json, preprocessor_config.json,
//! processor_config.json and chat_template.json (the hub's layout), readable by HF's
//! `AutoProcessor`.

use std::path::Path;

use safeaware_common::fsio::write_atomic;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::config::{image_seq_len, ImageProcessorConfig, ProcessorConfig, TokenizerConfig};
use super::error::{ProcessorError, Result};
use super::family::Family;
use super::family_config::FamilyConfig;
use super::image_processor::ImageProcessor;
use super::template::ChatTemplate;
use super::tiling::Idefics3ImageProcessor;
use super::{Processor, Tokenizer};

pub(super) const TOKENIZER: &str = "tokenizer.json";
pub(super) const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
pub(super) const PREPROCESSOR_CONFIG: &str = "preprocessor_config.json";
pub(super) const PROCESSOR_CONFIG: &str = "processor_config.json";
pub(super) const CHAT_TEMPLATE_JSON: &str = "chat_template.json";
pub(super) const CHAT_TEMPLATE_JINJA: &str = "chat_template.jinja";
pub(super) const MODEL_CONFIG: &str = "config.json";

impl Processor {
    /// Loads the processor files of a model folder, of the family its files name.
    pub fn from_folder(dir: &Path) -> Result<Self> {
        match detect_family(dir)? {
            Family::Idefics3 => Processor::idefics3_from_folder(dir),
            Family::Llava => Processor::llava_from_folder(dir),
            Family::Qwen2Vl => Processor::qwen2_vl_from_folder(dir),
        }
    }

    /// Loads a SmolVLM folder.
    fn idefics3_from_folder(dir: &Path) -> Result<Self> {
        let tokenizer = load_tokenizer(dir)?;
        let tokenizer_config: TokenizerConfig =
            read_json_opt(&dir.join(TOKENIZER_CONFIG))?.unwrap_or_default();
        let (image_config, image_origin) = load_image_config::<ImageProcessorConfig>(dir)?;
        image_config.validate(&image_origin)?;
        let mut config = match read_json_opt::<ProcessorConfig>(&dir.join(PROCESSOR_CONFIG))? {
            Some(c) => c,
            None => {
                ProcessorConfig::with_image_seq_len(seq_len_from_model_config(dir)?.unwrap_or(169))
            }
        };
        config.extra.remove("image_processor"); // read by load_image_config
        let template = load_template(dir, &config.extra, &tokenizer_config)?
            .unwrap_or_else(ChatTemplate::smolvlm);
        let origin = dir.display().to_string();
        let images = Idefics3ImageProcessor::new(image_config, &image_origin)?;
        Processor::assemble(
            tokenizer,
            tokenizer_config,
            ImageProcessor::Tiling(images),
            FamilyConfig::Idefics3(config),
            template,
            &origin,
        )
    }

    /// Writes the processor files into `dir` (created if missing), so that both
    /// [`Processor::from_folder`] and HF's `AutoProcessor.from_pretrained` can load them.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.save_tokenizer(dir)?;
        match (&self.images, &self.config) {
            (ImageProcessor::Tiling(images), FamilyConfig::Idefics3(config)) => {
                save_idefics3(dir, images, config)?
            }
            (ImageProcessor::Clip(images), FamilyConfig::Llava { config, .. }) => {
                super::llava_folder::save_llava(dir, images, config)?
            }
            (ImageProcessor::Qwen2Vl(images), FamilyConfig::Qwen2Vl { config, .. }) => {
                super::qwen2_vl_folder::save_qwen2_vl(dir, images, config)?
            }
            _ => unreachable!("Processor::assemble pairs each family's parts"),
        }
        self.save_template(dir)
    }

    /// tokenizer.json and tokenizer_config.json.
    fn save_tokenizer(&self, dir: &Path) -> Result<()> {
        let tokenizer_path = dir.join(TOKENIZER);
        let tokenizer_json =
            self.tokenizer
                .to_string(false)
                .map_err(|e| ProcessorError::Tokenizer {
                    origin: tokenizer_path.display().to_string(),
                    reason: e.to_string(),
                })?;
        write(&tokenizer_path, tokenizer_json.as_bytes())?;
        write_json(&dir.join(TOKENIZER_CONFIG), &self.tokenizer_config)
    }

    /// chat_template.json (and chat_template.jinja when one exists, so it cannot go stale).
    fn save_template(&self, dir: &Path) -> Result<()> {
        let source = self.template.source();
        write_json(
            &dir.join(CHAT_TEMPLATE_JSON),
            &serde_json::json!({ "chat_template": source }),
        )?;
        // A stale chat_template.jinja would win over chat_template.json on the next load.
        let jinja = dir.join(CHAT_TEMPLATE_JINJA);
        if jinja.exists() {
            write(&jinja, source.as_bytes())?;
        }
        Ok(())
    }
}

/// The family of the folder `dir` (see [`Family::detect`]).
fn detect_family(dir: &Path) -> Result<Family> {
    let files = [MODEL_CONFIG, PROCESSOR_CONFIG, PREPROCESSOR_CONFIG].map(|f| dir.join(f));
    let [model, processor, image] = files.each_ref().map(|p| read_json_opt::<Value>(p));
    let (model, processor, image) = (model?, processor?, image?);
    let names = files.each_ref().map(|p| p.display().to_string());
    Family::detect(
        model.as_ref().map(|v| (v, names[0].as_str())),
        processor.as_ref().map(|v| (v, names[1].as_str())),
        image.as_ref().map(|v| (v, names[2].as_str())),
    )
}

/// The image processor's configuration: preprocessor_config.json (the hub's layout), else the
/// `image_processor` entry of processor_config.json (transformers 5's). Returns it with a name
/// for errors.
pub(super) fn load_image_config<T: DeserializeOwned>(dir: &Path) -> Result<(T, String)> {
    let path = dir.join(PREPROCESSOR_CONFIG);
    if path.exists() {
        return Ok((read_json(&path)?, path.display().to_string()));
    }
    let nested_path = dir.join(PROCESSOR_CONFIG);
    let nested = read_json_opt::<Value>(&nested_path)?
        .and_then(|mut v| v.get_mut("image_processor").map(Value::take));
    let origin = format!("{} (image_processor)", nested_path.display());
    match nested {
        Some(value) => serde_json::from_value(value)
            .map(|config| (config, origin.clone()))
            .map_err(|e| ProcessorError::config(&origin, e.to_string())),
        None => Err(ProcessorError::config(
            dir.display(),
            format!("no image processor configuration: {PREPROCESSOR_CONFIG} is missing and {PROCESSOR_CONFIG} has no \"image_processor\""),
        )),
    }
}

/// tokenizer.json of `dir`.
pub(super) fn load_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let tokenizer_path = dir.join(TOKENIZER);
    Tokenizer::from_bytes(read(&tokenizer_path)?).map_err(|e| ProcessorError::Tokenizer {
        origin: tokenizer_path.display().to_string(),
        reason: e.to_string(),
    })
}

/// SmolVLM's preprocessor_config.json and processor_config.json.
fn save_idefics3(
    dir: &Path,
    images: &Idefics3ImageProcessor,
    config: &ProcessorConfig,
) -> Result<()> {
    {
        let mut image_config = images.config().clone();
        image_config
            .extra
            .entry("image_processor_type")
            .or_insert_with(|| Value::from("Idefics3ImageProcessor"));
        image_config
            .extra
            .entry("processor_class")
            .or_insert_with(|| Value::from("Idefics3Processor"));
        write_json(&dir.join(PREPROCESSOR_CONFIG), &image_config)?;

        let mut config = config.clone();
        config
            .extra
            .entry("processor_class")
            .or_insert_with(|| Value::from("Idefics3Processor"));
        config.extra.remove("chat_template");
        config.extra.remove("image_processor");
        write_json(&dir.join(PROCESSOR_CONFIG), &config)
    }
}

/// The first chat template found (see the module docs); `processor_config` is
/// processor_config.json's keys. `None` when the folder has none.
pub(super) fn load_template(
    dir: &Path,
    processor_config: &serde_json::Map<String, Value>,
    tokens: &TokenizerConfig,
) -> Result<Option<ChatTemplate>> {
    let jinja = dir.join(CHAT_TEMPLATE_JINJA);
    if jinja.exists() {
        let source = String::from_utf8(read(&jinja)?)
            .map_err(|_| ProcessorError::config(jinja.display(), "chat template is not UTF-8"))?;
        return ChatTemplate::new(source, jinja.display().to_string()).map(Some);
    }
    let json_path = dir.join(CHAT_TEMPLATE_JSON);
    if let Some(value) = read_json_opt::<Value>(&json_path)? {
        let source = value
            .get("chat_template")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ProcessorError::config(
                    json_path.display(),
                    "expected a string field \"chat_template\"",
                )
            })?;
        return ChatTemplate::new(source, json_path.display().to_string()).map(Some);
    }
    if let Some(source) = processor_config
        .get("chat_template")
        .and_then(Value::as_str)
    {
        let origin = dir.join(PROCESSOR_CONFIG).display().to_string();
        return ChatTemplate::new(source, origin).map(Some);
    }
    if let Some(source) = tokens.chat_template() {
        let origin = dir.join(TOKENIZER_CONFIG).display().to_string();
        return ChatTemplate::new(source, origin).map(Some);
    }
    Ok(None)
}

/// `image_seq_len` from an Idefics3 config.json (`vision_config.image_size`, `patch_size`,
/// `scale_factor`), when the folder has one.
fn seq_len_from_model_config(dir: &Path) -> Result<Option<usize>> {
    let path = dir.join(MODEL_CONFIG);
    let Some(config) = read_json_opt::<Value>(&path)? else {
        return Ok(None);
    };
    let vision = config.get("vision_config");
    let field = |v: Option<&Value>, key: &str| v.and_then(|v| v.get(key)).and_then(Value::as_u64);
    match (
        field(vision, "image_size"),
        field(vision, "patch_size"),
        field(Some(&config), "scale_factor"),
    ) {
        (Some(size), Some(patch), Some(scale)) => Ok(Some(image_seq_len(
            size as usize,
            patch as usize,
            scale as usize,
        ))),
        _ => Ok(None),
    }
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ProcessorError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    serde_json::from_slice(&read(path)?).map_err(|source| ProcessorError::Json {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn read_json_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if path.exists() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

pub(super) fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes).map_err(|source| ProcessorError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).expect("configs serialize to JSON");
    text.push('\n');
    write(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture_copy() -> tempfile::TempDir {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/processor");
        let dir = tempfile::tempdir().unwrap();
        for f in [
            TOKENIZER,
            TOKENIZER_CONFIG,
            PREPROCESSOR_CONFIG,
            PROCESSOR_CONFIG,
            CHAT_TEMPLATE_JSON,
        ] {
            std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
        }
        dir
    }

    fn load_err(dir: &Path) -> String {
        Processor::from_folder(dir)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_files_are_named_in_errors() {
        let dir = fixture_copy();
        std::fs::write(dir.path().join(TOKENIZER), "{\"not\": \"a tokenizer\"}").unwrap();
        let e = load_err(dir.path());
        assert!(e.contains("tokenizer.json"), "{e}");

        let dir = fixture_copy();
        std::fs::write(
            dir.path().join(PREPROCESSOR_CONFIG),
            "{\n  \"do_resize\": tru\n}",
        )
        .unwrap();
        let e = load_err(dir.path());
        assert!(
            e.contains("preprocessor_config.json") && e.contains("line"),
            "{e}"
        );

        let dir = fixture_copy();
        std::fs::write(dir.path().join(PREPROCESSOR_CONFIG), r#"{"resample": 11}"#).unwrap();
        let e = load_err(dir.path());
        assert!(
            e.contains("preprocessor_config.json") && e.contains("resample"),
            "{e}"
        );

        let dir = fixture_copy();
        std::fs::remove_file(dir.path().join(PREPROCESSOR_CONFIG)).unwrap();
        let e = load_err(dir.path());
        assert!(e.contains("preprocessor_config.json"), "{e}");

        let dir = fixture_copy();
        std::fs::write(
            dir.path().join(CHAT_TEMPLATE_JSON),
            r#"{"chat_template": "{% if %}"}"#,
        )
        .unwrap();
        let e = load_err(dir.path());
        assert!(e.contains("chat_template.json"), "{e}");
    }

    #[test]
    fn template_and_seq_len_fallbacks() {
        let dir = fixture_copy();
        std::fs::remove_file(dir.path().join(CHAT_TEMPLATE_JSON)).unwrap();
        std::fs::remove_file(dir.path().join(PROCESSOR_CONFIG)).unwrap();
        std::fs::write(
            dir.path().join(MODEL_CONFIG),
            r#"{"scale_factor": 4, "vision_config": {"image_size": 512, "patch_size": 16}}"#,
        )
        .unwrap();
        let p = Processor::from_folder(dir.path()).unwrap();
        assert_eq!(p.image_seq_len(), 64);
        assert_eq!(
            p.chat_template().source(),
            super::super::SMOLVLM_CHAT_TEMPLATE
        );

        std::fs::write(
            dir.path().join(CHAT_TEMPLATE_JINJA),
            "{{ messages | length }}",
        )
        .unwrap();
        let p = Processor::from_folder(dir.path()).unwrap();
        assert_eq!(p.render(&[], false).unwrap(), "0");
    }

    #[test]
    fn processor_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Processor>();
    }
}
