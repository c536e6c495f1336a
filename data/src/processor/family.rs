//! Which processor family a model folder holds: config.json's `model_type` when present, else
//! the processor and image-processor class names of processor_config.json and
//! preprocessor_config.json (a transformers 5 `image_processor` entry included). A folder that
//! names nothing is SmolVLM, the family this crate started with; one that names an unsupported
//! family is an error listing the supported ones.

use serde_json::Value;

use super::error::{ProcessorError, Result};

/// A processor family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// SmolVLM / Idefics3: image tiles, `<fake_token_around_image>`, `<end_of_utterance>`.
    Idefics3,
    /// LLaVA-1.5: one CLIP crop per image, `<image>` repeated `image_seq_length` times.
    Llava,
    /// Qwen2-VL / Qwen2.5-VL: dynamic resolution, `<|image_pad|>` once per merged patch.
    Qwen2Vl,
}

/// The `model_type`s accepted, for error messages.
pub const SUPPORTED_MODEL_TYPES: &str =
    "idefics3, smolvlm (SmolVLM/Idefics3), llava (LLaVA-1.5), qwen2_vl, qwen2_5_vl (Qwen2-VL, Qwen2.5-VL)";

impl Family {
    /// The family of a config.json `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<Family> {
        match model_type {
            "idefics3" | "smolvlm" => Some(Family::Idefics3),
            "llava" => Some(Family::Llava),
            "qwen2_vl" | "qwen2_5_vl" => Some(Family::Qwen2Vl),
            _ => None,
        }
    }

    /// The family of a processor or image-processor class name (a `Fast`/`Pil` suffix allowed).
    pub fn from_class_name(class: &str) -> Option<Family> {
        let base = class.trim_end_matches("Fast").trim_end_matches("Pil");
        match base {
            "Idefics3Processor"
            | "Idefics3ImageProcessor"
            | "SmolVLMProcessor"
            | "SmolVLMImageProcessor" => Some(Family::Idefics3),
            "LlavaProcessor" | "LlavaImageProcessor" | "CLIPImageProcessor" => Some(Family::Llava),
            "Qwen2VLProcessor" | "Qwen2_5_VLProcessor" | "Qwen2VLImageProcessor" => {
                Some(Family::Qwen2Vl)
            }
            _ => None,
        }
    }

    /// The family from a folder's parsed files: `model_config` (config.json), `processor`
    /// (processor_config.json), `image` (preprocessor_config.json), each with its file name for
    /// errors. See the module docs for the order.
    pub fn detect(
        model_config: Option<(&Value, &str)>,
        processor: Option<(&Value, &str)>,
        image: Option<(&Value, &str)>,
    ) -> Result<Family> {
        if let Some((config, origin)) = model_config {
            if let Some(model_type) = config.get("model_type").and_then(Value::as_str) {
                return Family::from_model_type(model_type)
                    .ok_or_else(|| unsupported(origin, &format!("model_type {model_type:?}")));
            }
        }
        let nested = processor.and_then(|(p, origin)| Some((p.get("image_processor")?, origin)));
        let candidates = [
            (processor, "processor_class"),
            (image, "image_processor_type"),
            (image, "processor_class"),
            (nested, "image_processor_type"),
        ];
        for (file, key) in candidates {
            let Some((value, origin)) = file else {
                continue;
            };
            if let Some(class) = value.get(key).and_then(Value::as_str) {
                return Family::from_class_name(class)
                    .ok_or_else(|| unsupported(origin, &format!("{key} {class:?}")));
            }
        }
        Ok(Family::Idefics3)
    }

    /// A short name (`"idefics3"`, `"llava"`, `"qwen2_vl"`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Idefics3 => "idefics3",
            Family::Llava => "llava",
            Family::Qwen2Vl => "qwen2_vl",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn unsupported(origin: &str, what: &str) -> ProcessorError {
    ProcessorError::config(
        origin,
        format!(
            "unsupported processor family ({what}); supported model types: {SUPPORTED_MODEL_TYPES}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn model_type_wins_then_class_names() {
        let llava = json!({"model_type": "llava"});
        let smol = json!({"processor_class": "Idefics3Processor"});
        let f = Family::detect(Some((&llava, "config.json")), Some((&smol, "p")), None);
        assert_eq!(f.unwrap(), Family::Llava);
        let clip = json!({"image_processor_type": "CLIPImageProcessor"});
        assert_eq!(
            Family::detect(None, None, Some((&clip, "pp"))).unwrap(),
            Family::Llava
        );
        let v5 = json!({"image_processor": {"image_processor_type": "LlavaImageProcessorPil"}});
        assert_eq!(
            Family::detect(None, Some((&v5, "p")), None).unwrap(),
            Family::Llava
        );
        assert_eq!(Family::detect(None, None, None).unwrap(), Family::Idefics3);
        let qwen = json!({"image_processor_type": "Qwen2VLImageProcessorFast"});
        let f = Family::detect(None, None, Some((&qwen, "pp"))).unwrap();
        assert_eq!(f, Family::Qwen2Vl);
        let qwen25 = json!({"model_type": "qwen2_5_vl"});
        let f = Family::detect(Some((&qwen25, "c")), None, None).unwrap();
        assert_eq!(f, Family::Qwen2Vl);
    }

    #[test]
    fn unsupported_families_list_the_supported_ones() {
        let next = json!({"model_type": "llava_next"});
        let e = Family::detect(Some((&next, "dir/config.json")), None, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dir/config.json") && e.contains("llava_next") && e.contains("idefics3"),
            "{e}"
        );
        let pali = json!({"processor_class": "PaliGemmaProcessor"});
        let e = Family::detect(None, Some((&pali, "p.json")), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("PaliGemmaProcessor") && e.contains("qwen2_vl"),
            "{e}"
        );
    }
}
