//! Reading a processor from a SmolVLM model folder and writing one into a checkpoint folder.
//!
//! Read: tokenizer.json and preprocessor_config.json (required), tokenizer_config.json,
//! processor_config.json (`image_seq_len`; else derived from config.json; else HF's 169), and
//! the chat template from chat_template.jinja, chat_template.json, processor_config.json or
//! tokenizer_config.json, in that order (SmolVLM's built-in template when none has one).
//! Written: tokenizer.json, tokenizer_config.json, preprocessor_config.json,
//! processor_config.json and chat_template.json, readable by HF's `Idefics3Processor`.

use std::path::Path;

use safeaware_common::fsio::write_atomic;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::config::{image_seq_len, ImageProcessorConfig, ProcessorConfig, TokenizerConfig};
use super::error::{ProcessorError, Result};
use super::template::ChatTemplate;
use super::{Processor, Tokenizer};

const TOKENIZER: &str = "tokenizer.json";
const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
const PREPROCESSOR_CONFIG: &str = "preprocessor_config.json";
const PROCESSOR_CONFIG: &str = "processor_config.json";
const CHAT_TEMPLATE_JSON: &str = "chat_template.json";
const CHAT_TEMPLATE_JINJA: &str = "chat_template.jinja";
const MODEL_CONFIG: &str = "config.json";

impl Processor {
    /// Loads the processor files of a SmolVLM model folder.
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let tokenizer_path = dir.join(TOKENIZER);
        let tokenizer = Tokenizer::from_bytes(read(&tokenizer_path)?).map_err(|e| {
            ProcessorError::Tokenizer {
                origin: tokenizer_path.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        let tokenizer_config: TokenizerConfig =
            read_json_opt(&dir.join(TOKENIZER_CONFIG))?.unwrap_or_default();
        let image_path = dir.join(PREPROCESSOR_CONFIG);
        let image_config: ImageProcessorConfig = read_json(&image_path)?;
        image_config.validate(&image_path.display().to_string())?;
        let config = match read_json_opt::<ProcessorConfig>(&dir.join(PROCESSOR_CONFIG))? {
            Some(c) => c,
            None => {
                ProcessorConfig::with_image_seq_len(seq_len_from_model_config(dir)?.unwrap_or(169))
            }
        };
        let template = load_template(dir, &config, &tokenizer_config)?;
        Processor::assemble(
            tokenizer,
            tokenizer_config,
            image_config,
            config,
            template,
            &dir.display().to_string(),
        )
    }

    /// Writes the processor files into `dir` (created if missing), so that both
    /// [`Processor::from_folder`] and HF's `Idefics3Processor.from_pretrained` can load them.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let tokenizer_path = dir.join(TOKENIZER);
        let tokenizer_json =
            self.tokenizer
                .to_string(false)
                .map_err(|e| ProcessorError::Tokenizer {
                    origin: tokenizer_path.display().to_string(),
                    reason: e.to_string(),
                })?;
        write(&tokenizer_path, tokenizer_json.as_bytes())?;
        write_json(&dir.join(TOKENIZER_CONFIG), &self.tokenizer_config)?;

        let mut image_config = self.images.config().clone();
        image_config
            .extra
            .entry("image_processor_type")
            .or_insert_with(|| Value::from("Idefics3ImageProcessor"));
        image_config
            .extra
            .entry("processor_class")
            .or_insert_with(|| Value::from("Idefics3Processor"));
        write_json(&dir.join(PREPROCESSOR_CONFIG), &image_config)?;

        let mut config = self.config.clone();
        config
            .extra
            .entry("processor_class")
            .or_insert_with(|| Value::from("Idefics3Processor"));
        config.extra.remove("chat_template");
        write_json(&dir.join(PROCESSOR_CONFIG), &config)?;

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

/// The first chat template found (see the module docs).
fn load_template(
    dir: &Path,
    config: &ProcessorConfig,
    tokens: &TokenizerConfig,
) -> Result<ChatTemplate> {
    let jinja = dir.join(CHAT_TEMPLATE_JINJA);
    if jinja.exists() {
        let source = String::from_utf8(read(&jinja)?)
            .map_err(|_| ProcessorError::config(jinja.display(), "chat template is not UTF-8"))?;
        return ChatTemplate::new(source, jinja.display().to_string());
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
        return ChatTemplate::new(source, json_path.display().to_string());
    }
    if let Some(source) = config.extra.get("chat_template").and_then(Value::as_str) {
        return ChatTemplate::new(source, dir.join(PROCESSOR_CONFIG).display().to_string());
    }
    if let Some(source) = tokens.chat_template() {
        return ChatTemplate::new(source, dir.join(TOKENIZER_CONFIG).display().to_string());
    }
    Ok(ChatTemplate::smolvlm())
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

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ProcessorError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    serde_json::from_slice(&read(path)?).map_err(|source| ProcessorError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if path.exists() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes).map_err(|source| ProcessorError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
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
