//! The processor's JSON configuration files, typed: preprocessor_config.json (the Idefics3 image
//! processor), processor_config.json (`image_seq_len`) and tokenizer_config.json (special token
//! names). Keys we do not interpret are kept in `extra` and written back unchanged, so a folder
//! survives a load/save round trip. Defaults are HF's Idefics3 defaults.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::error::{ProcessorError, Result};
use super::resample::Resample;

/// A size entry (`size`, `max_image_size`, `crop_size`): `{"longest_edge": n}`,
/// `{"shortest_edge": n}` (CLIP) or `{"height", "width"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Size {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_edge: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortest_edge: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
}

impl Size {
    /// `{"longest_edge": n}`.
    pub fn longest_edge(n: u32) -> Self {
        Size {
            longest_edge: Some(n),
            ..Size::default()
        }
    }

    /// `{"shortest_edge": n}`.
    pub fn shortest_edge(n: u32) -> Self {
        Size {
            shortest_edge: Some(n),
            ..Size::default()
        }
    }

    /// `{"height": h, "width": w}`.
    pub fn exact(height: u32, width: u32) -> Self {
        Size {
            height: Some(height),
            width: Some(width),
            ..Size::default()
        }
    }
}

/// preprocessor_config.json of an Idefics3/SmolVLM image processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageProcessorConfig {
    pub do_convert_rgb: bool,
    pub do_resize: bool,
    /// Target of the first resize: the longest edge (aspect kept, made even) or an exact size.
    pub size: Size,
    pub resample: Resample,
    pub do_image_splitting: bool,
    /// Tile size: `longest_edge` is the side of every square tile the vision encoder sees.
    pub max_image_size: Size,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    #[serde(deserialize_with = "channels", serialize_with = "channels_out")]
    pub image_mean: [f64; 3],
    #[serde(deserialize_with = "channels", serialize_with = "channels_out")]
    pub image_std: [f64; 3],
    /// Batch padding; one conversation's tiles are all the same size, so it never changes them.
    pub do_pad: bool,
    /// Keys we do not interpret (`image_processor_type`, `processor_class`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for ImageProcessorConfig {
    fn default() -> Self {
        ImageProcessorConfig {
            do_convert_rgb: true,
            do_resize: true,
            size: Size::longest_edge(4 * 364),
            resample: Resample::Lanczos,
            do_image_splitting: true,
            max_image_size: Size::longest_edge(364),
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            do_pad: true,
            extra: Map::new(),
        }
    }
}

impl ImageProcessorConfig {
    /// SmolVLM's settings with tiles of `tile` pixels and images resized to `longest_edge`.
    pub fn smolvlm(tile: u32, longest_edge: u32) -> Self {
        ImageProcessorConfig {
            size: Size::longest_edge(longest_edge),
            max_image_size: Size::longest_edge(tile),
            ..Default::default()
        }
    }

    /// The tile side (`max_image_size.longest_edge`).
    pub fn tile_size(&self) -> u32 {
        self.max_image_size.longest_edge.unwrap_or(0)
    }

    /// Checks the values the pipeline relies on; `origin` names the file in errors.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |reason: String| Err(ProcessorError::config(origin, reason));
        match self.max_image_size.longest_edge {
            Some(n) if n > 0 => {}
            _ => return bad("max_image_size.longest_edge must be a positive integer".into()),
        }
        if self.do_resize {
            let s = self.size;
            let ok = matches!(s.longest_edge, Some(n) if n > 0)
                || matches!((s.height, s.width), (Some(h), Some(w)) if h > 0 && w > 0);
            if !ok {
                return bad("size must have a positive longest_edge or height and width".into());
            }
        }
        if !self.rescale_factor.is_finite() {
            return bad(format!(
                "rescale_factor {} is not finite",
                self.rescale_factor
            ));
        }
        if self.image_std.iter().any(|s| *s == 0.0 || !s.is_finite())
            || self.image_mean.iter().any(|m| !m.is_finite())
        {
            return bad("image_mean/image_std must be finite and image_std non-zero".into());
        }
        Ok(())
    }
}

/// `image_mean`/`image_std`: one number for all channels or a list of three.
pub(crate) fn channels<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<[f64; 3], D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(f64),
        Many(Vec<f64>),
    }
    match Raw::deserialize(d)? {
        Raw::One(v) => Ok([v; 3]),
        Raw::Many(v) if v.len() == 3 => Ok([v[0], v[1], v[2]]),
        Raw::Many(v) => Err(de::Error::custom(format!(
            "expected 3 channel values, got {}",
            v.len()
        ))),
    }
}

pub(crate) fn channels_out<S: Serializer>(
    v: &[f64; 3],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    v.serialize(s)
}

/// processor_config.json: how many `<image>` tokens stand for one tile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessorConfig {
    /// `(image_size / patch_size)^2 / scale_factor^2` of the model (see [`image_seq_len`]).
    pub image_seq_len: usize,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for ProcessorConfig {
    /// HF's default `image_seq_len` (169).
    fn default() -> Self {
        ProcessorConfig {
            image_seq_len: 169,
            extra: Map::new(),
        }
    }
}

impl ProcessorConfig {
    /// A config with the given `image_seq_len`.
    pub fn with_image_seq_len(image_seq_len: usize) -> Self {
        ProcessorConfig {
            image_seq_len,
            extra: Map::new(),
        }
    }
}

/// Tokens per tile for a vision encoder of `image_size` pixels, `patch_size` patches and a
/// pixel-shuffle `scale_factor`, computed as HF does: `int((image_size // patch_size)^2 / scale_factor^2)`.
pub fn image_seq_len(image_size: usize, patch_size: usize, scale_factor: usize) -> usize {
    let side = image_size / patch_size.max(1);
    let scale = scale_factor.max(1);
    (side * side) / (scale * scale)
}

/// The special-token names of tokenizer_config.json (strings or `{"content": …}` objects).
/// Missing names are `None`; see [`TokenizerConfig::smolvlm`] for SmolVLM's.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenizerConfig {
    #[serde(
        deserialize_with = "token_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub bos_token: Option<String>,
    /// End of sequence; `<end_of_utterance>` when absent (SmolVLM's).
    #[serde(
        deserialize_with = "token_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub eos_token: Option<String>,
    /// Padding; the eos token when absent.
    #[serde(
        deserialize_with = "token_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub pad_token: Option<String>,
    #[serde(
        deserialize_with = "token_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub unk_token: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TokenizerConfig {
    /// SmolVLM's names: bos `<|im_start|>`, eos `<end_of_utterance>`, pad `<|im_end|>`.
    pub fn smolvlm() -> Self {
        let mut extra = Map::new();
        extra.insert(
            "tokenizer_class".into(),
            Value::from("PreTrainedTokenizerFast"),
        );
        TokenizerConfig {
            bos_token: Some("<|im_start|>".into()),
            eos_token: Some("<end_of_utterance>".into()),
            pad_token: Some("<|im_end|>".into()),
            unk_token: None,
            extra,
        }
    }

    /// LLaVA-1.5's (Llama's) names: bos `<s>`, eos `</s>`, pad `<pad>`.
    pub fn llava() -> Self {
        let mut extra = Map::new();
        extra.insert(
            "tokenizer_class".into(),
            Value::from("PreTrainedTokenizerFast"),
        );
        TokenizerConfig {
            bos_token: Some("<s>".into()),
            eos_token: Some("</s>".into()),
            pad_token: Some("<pad>".into()),
            unk_token: None,
            extra,
        }
    }

    /// The chat template stored in tokenizer_config.json, if any (a string, or the `default`
    /// entry of a list of named templates).
    pub fn chat_template(&self) -> Option<String> {
        match self.extra.get("chat_template")? {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => items.iter().find_map(|item| {
                (item.get("name")?.as_str()? == "default")
                    .then(|| item.get("template")?.as_str().map(str::to_string))
                    .flatten()
            }),
            _ => None,
        }
    }
}

fn token_name<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Object(map)) => match map.get("content") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => {
                return Err(de::Error::custom(
                    "token object without a string \"content\"",
                ))
            }
        },
        Some(Value::Null) | None => None,
        Some(other) => {
            return Err(de::Error::custom(format!(
                "expected a token string, got {other}"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smolvlm_preprocessor_config_parses_and_keeps_unknown_keys() {
        let json = r#"{"do_convert_rgb": true, "do_image_splitting": true, "do_normalize": true,
            "do_pad": true, "do_rescale": true, "do_resize": true, "image_mean": 0.5,
            "image_processor_type": "Idefics3ImageProcessor", "image_std": [0.5, 0.5, 0.5],
            "max_image_size": {"longest_edge": 512}, "processor_class": "Idefics3Processor",
            "resample": 1, "rescale_factor": 0.00392156862745098, "size": {"longest_edge": 2048}}"#;
        let c: ImageProcessorConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.tile_size(), 512);
        assert_eq!(c.size, Size::longest_edge(2048));
        assert_eq!(c.image_mean, [0.5; 3]);
        assert_eq!(c.resample, Resample::Lanczos);
        c.validate("test").unwrap();
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["image_processor_type"], "Idefics3ImageProcessor");
        assert_eq!(
            back["max_image_size"],
            serde_json::json!({"longest_edge": 512})
        );
    }

    #[test]
    fn bad_values_are_rejected_with_the_origin() {
        let c: ImageProcessorConfig =
            serde_json::from_str(r#"{"max_image_size": {"height": 3}}"#).unwrap();
        let e = c
            .validate("folder/preprocessor_config.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("folder/preprocessor_config.json") && e.contains("max_image_size"),
            "{e}"
        );
        let e = serde_json::from_str::<ImageProcessorConfig>(r#"{"image_mean": [0.5, 0.5]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("3 channel values"), "{e}");
    }

    #[test]
    fn tokenizer_config_reads_token_objects_and_named_templates() {
        let json = r#"{"eos_token": {"content": "<end_of_utterance>", "lstrip": false},
            "pad_token": "<|im_end|>", "chat_template": [{"name": "tool_use", "template": "x"},
            {"name": "default", "template": "y"}]}"#;
        let c: TokenizerConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.eos_token.as_deref(), Some("<end_of_utterance>"));
        assert_eq!(c.bos_token, None);
        assert_eq!(c.chat_template().as_deref(), Some("y"));
    }

    #[test]
    fn image_seq_len_matches_hf_formula() {
        assert_eq!(image_seq_len(512, 16, 4), 64); // SmolVLM-256M
        assert_eq!(image_seq_len(364, 14, 2), 169); // Idefics3 default
    }
}
