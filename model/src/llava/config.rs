//! The HF `config.json` of a LLaVA-1.5 checkpoint (`model_type: "llava"`,
//! `LlavaForConditionalGeneration`): parsing with HF's defaults (`LlavaConfig`,
//! `CLIPVisionConfig`, `LlamaConfig`) and field-named errors, validation of what this
//! implementation supports, and serialisation back to a config.json HF transformers loads.
//! The Llama `text_config` is the one Idefics3 uses ([`TextConfig`]); unknown fields are kept
//! verbatim ([`LlavaConfig::raw`]) and written back on save.

use std::path::Path;

use safeaware_common::fsio::write_atomic;
use serde_json::{json, Value};

use crate::activation::Activation;
use crate::config::{
    as_object, parse_activation, parse_text, text_config_json, validate_text, Fields, TextConfig,
};
use crate::error::{ModelError, Result};

/// The HF `model_type` of the family.
pub const LLAVA_MODEL_TYPE: &str = "llava";
/// The HF class of the family.
pub const LLAVA_ARCHITECTURE: &str = "LlavaForConditionalGeneration";

/// `vision_config`: the CLIP vision tower (`clip_vision_model`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClipVisionConfig {
    /// Width of the vision transformer.
    pub hidden_size: usize,
    /// Width of the vision MLP.
    pub intermediate_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads.
    pub num_attention_heads: usize,
    /// Input channels (3).
    pub num_channels: usize,
    /// Side of the (square) input image in pixels.
    pub image_size: usize,
    /// Side of a (square) patch in pixels.
    pub patch_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// The MLP's activation (`quick_gelu` for CLIP).
    pub hidden_act: Activation,
    /// Std of the normal initialisation.
    pub initializer_range: f64,
}

impl ClipVisionConfig {
    /// Patches along one side of the image.
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Positions of the tower's sequence: one per patch plus the class token.
    pub fn num_positions(&self) -> usize {
        self.patches_per_side().pow(2) + 1
    }
}

/// `vision_feature_select_strategy`: which positions of the chosen CLIP layer are image tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureSelect {
    /// `default`: the patches, the class token dropped.
    Default,
    /// `full`: the class token and the patches.
    Full,
}

impl FeatureSelect {
    /// HF's name.
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Full => "full",
        }
    }
}

/// `vision_feature_layer`: an index into the tower's hidden states (0 = the `pre_layrnorm`
/// output, `-1` = the last layer's output), or a list of them whose features are concatenated
/// on the channel dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureLayers {
    /// One layer (an int in config.json).
    One(i64),
    /// Several layers (a list in config.json).
    Many(Vec<i64>),
}

impl FeatureLayers {
    /// The indices, in order.
    pub fn indices(&self) -> &[i64] {
        match self {
            Self::One(index) => std::slice::from_ref(index),
            Self::Many(indices) => indices,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Self::One(index) => json!(index),
            Self::Many(indices) => json!(indices),
        }
    }
}

/// A parsed and validated LLaVA config.
#[derive(Debug, Clone, PartialEq)]
pub struct LlavaConfig {
    /// Token id whose embeddings are replaced by image features (`image_token_index`).
    pub image_token_index: u32,
    /// Image tokens per image the processor inserts (informational, `image_seq_length`).
    pub image_seq_length: usize,
    /// The projector's activation (`projector_hidden_act`).
    pub projector_hidden_act: Activation,
    /// Whether the projector's linears have biases (`multimodal_projector_bias`).
    pub multimodal_projector_bias: bool,
    /// Which positions become image tokens.
    pub vision_feature_select_strategy: FeatureSelect,
    /// Which CLIP hidden states feed the projector.
    pub vision_feature_layer: FeatureLayers,
    /// Whether the LM head shares `embed_tokens`' weight.
    pub tie_word_embeddings: bool,
    /// The CLIP vision tower.
    pub vision: ClipVisionConfig,
    /// The Llama language model.
    pub text: TextConfig,
    /// The JSON this config was parsed from (`Value::Null` for configs built in code).
    pub raw: Value,
}

impl LlavaConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(crate::config::read_json(path)?)
    }

    /// Parses and validates an HF LLaVA config given as JSON.
    pub fn from_value(raw: Value) -> Result<Self> {
        let top = Fields::new(&raw, "")?;
        let model_type = top.str("model_type", None)?;
        if model_type != LLAVA_MODEL_TYPE {
            return Err(top.error(
                "model_type",
                format!("`{model_type}` is not supported (expected `llava`)"),
            ));
        }
        let vision = match top.present("vision_config") {
            Some(_) => parse_clip(&top.child("vision_config")?, &ClipDefaults::CLIP)?,
            None => parse_clip(
                &Fields::new(&json!({}), "vision_config")?,
                &ClipDefaults::LLAVA,
            )?,
        };
        let empty = json!({});
        let text_fields = match top.present("text_config") {
            Some(_) => top.child("text_config")?,
            None => Fields::new(&empty, "text_config")?,
        };
        let text = parse_text(&text_fields)?;
        let tie_word_embeddings = top.opt_bool("tie_word_embeddings")?.unwrap_or(false)
            || text_fields
                .opt_bool("tie_word_embeddings")?
                .unwrap_or(false);
        let config = Self {
            image_token_index: image_token_index(&top)?,
            image_seq_length: top.usize("image_seq_length", Some(576))?,
            projector_hidden_act: parse_activation(&top, "projector_hidden_act", "gelu")?,
            multimodal_projector_bias: top.opt_bool("multimodal_projector_bias")?.unwrap_or(true),
            vision_feature_select_strategy: feature_select(&top)?,
            vision_feature_layer: feature_layers(&top)?,
            tie_word_embeddings,
            vision,
            text,
            raw,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the cross-field constraints the architecture needs.
    pub fn validate(&self) -> Result<()> {
        let v = &self.vision;
        for (field, value) in [
            ("hidden_size", v.hidden_size),
            ("intermediate_size", v.intermediate_size),
            ("num_attention_heads", v.num_attention_heads),
            ("num_channels", v.num_channels),
            ("patch_size", v.patch_size),
        ] {
            if value == 0 {
                return Err(ModelError::field(
                    format!("vision_config.{field}"),
                    "must be positive",
                ));
            }
        }
        if !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Err(ModelError::field(
                "vision_config.num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    v.num_attention_heads, v.hidden_size
                ),
            ));
        }
        if v.image_size < v.patch_size {
            return Err(ModelError::field(
                "vision_config.image_size",
                format!(
                    "{} is smaller than patch_size {}",
                    v.image_size, v.patch_size
                ),
            ));
        }
        self.hidden_state_indices()?;
        validate_text(&self.text)?;
        if self.image_token_index as usize >= self.text.vocab_size {
            return Err(ModelError::field(
                "image_token_index",
                format!(
                    "{} is outside the vocabulary of {}",
                    self.image_token_index, self.text.vocab_size
                ),
            ));
        }
        Ok(())
    }

    /// The tower's hidden states that feed the projector, as indices into
    /// `[pre_layrnorm output, layer 0 output, …, layer N-1 output]` (negative ones resolved).
    pub fn hidden_state_indices(&self) -> Result<Vec<usize>> {
        let count = self.vision.num_hidden_layers as i64 + 1;
        let indices = self.vision_feature_layer.indices();
        if indices.is_empty() {
            return Err(ModelError::field(
                "vision_feature_layer",
                "the list is empty",
            ));
        }
        indices
            .iter()
            .map(|&index| {
                let resolved = if index < 0 { count + index } else { index };
                if (0..count).contains(&resolved) {
                    Ok(resolved as usize)
                } else {
                    Err(ModelError::field(
                        "vision_feature_layer",
                        format!(
                            "{index} is not a hidden state of a {}-layer tower (-{count}..{})",
                            count - 1,
                            count - 1
                        ),
                    ))
                }
            })
            .collect()
    }

    /// Image tokens (text positions) one image occupies.
    pub fn tokens_per_image(&self) -> usize {
        let patches = self.vision.patches_per_side().pow(2);
        match self.vision_feature_select_strategy {
            FeatureSelect::Default => patches,
            FeatureSelect::Full => patches + 1,
        }
    }

    /// The projector's input width: the tower's width times the number of feature layers.
    pub fn projector_input_size(&self) -> usize {
        self.vision.hidden_size * self.vision_feature_layer.indices().len()
    }

    /// The config as HF `config.json` JSON: the parsed original with every interpreted field
    /// overwritten by this struct's values (or a complete fresh config when built in code).
    pub fn to_hf_json(&self) -> Value {
        let mut top = as_object(&self.raw);
        top.insert("model_type".into(), json!(LLAVA_MODEL_TYPE));
        top.insert("architectures".into(), json!([LLAVA_ARCHITECTURE]));
        top.remove("image_token_id");
        for (key, value) in [
            ("image_token_index", json!(self.image_token_index)),
            ("image_seq_length", json!(self.image_seq_length)),
            (
                "projector_hidden_act",
                json!(self.projector_hidden_act.hf_name()),
            ),
            (
                "multimodal_projector_bias",
                json!(self.multimodal_projector_bias),
            ),
            (
                "vision_feature_select_strategy",
                json!(self.vision_feature_select_strategy.hf_name()),
            ),
            ("vision_feature_layer", self.vision_feature_layer.to_json()),
            ("tie_word_embeddings", json!(self.tie_word_embeddings)),
        ] {
            top.insert(key.into(), value);
        }
        top.insert(
            "vision_config".into(),
            self.vision_json(top.get("vision_config")),
        );
        let text = text_config_json(&self.text, self.tie_word_embeddings, top.get("text_config"));
        top.insert("text_config".into(), text);
        Value::Object(top)
    }

    fn vision_json(&self, existing: Option<&Value>) -> Value {
        let v = &self.vision;
        let mut vision = as_object(existing.unwrap_or(&Value::Null));
        vision.insert("model_type".into(), json!("clip_vision_model"));
        for (key, value) in [
            ("hidden_size", json!(v.hidden_size)),
            ("intermediate_size", json!(v.intermediate_size)),
            ("num_hidden_layers", json!(v.num_hidden_layers)),
            ("num_attention_heads", json!(v.num_attention_heads)),
            ("num_channels", json!(v.num_channels)),
            ("image_size", json!(v.image_size)),
            ("patch_size", json!(v.patch_size)),
            ("hidden_act", json!(v.hidden_act.hf_name())),
            ("layer_norm_eps", json!(v.layer_norm_eps)),
            ("initializer_range", json!(v.initializer_range)),
        ] {
            vision.insert(key.into(), value);
        }
        Value::Object(vision)
    }

    /// Writes [`Self::to_hf_json`] to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text =
            serde_json::to_string_pretty(&self.to_hf_json()).expect("JSON values always serialise");
        write_atomic(path, text.as_bytes()).map_err(ModelError::io("writing", path))
    }
}

/// Defaults of a `vision_config`: `CLIPVisionConfig`'s when the key is there, the CLIP-L/336
/// tower `LlavaConfig` builds when it is absent.
struct ClipDefaults {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    image_size: usize,
    patch_size: usize,
}

impl ClipDefaults {
    const CLIP: Self = Self {
        hidden_size: 768,
        intermediate_size: 3072,
        num_hidden_layers: 12,
        num_attention_heads: 12,
        image_size: 224,
        patch_size: 32,
    };
    const LLAVA: Self = Self {
        hidden_size: 1024,
        intermediate_size: 4096,
        num_hidden_layers: 24,
        num_attention_heads: 16,
        image_size: 336,
        patch_size: 14,
    };
}

fn parse_clip(f: &Fields, d: &ClipDefaults) -> Result<ClipVisionConfig> {
    if let Some(model_type) = f.opt_str("model_type")? {
        if model_type != "clip_vision_model" {
            return Err(f.error(
                "model_type",
                format!("`{model_type}` is not supported (expected `clip_vision_model`)"),
            ));
        }
    }
    Ok(ClipVisionConfig {
        hidden_size: f.usize("hidden_size", Some(d.hidden_size))?,
        intermediate_size: f.usize("intermediate_size", Some(d.intermediate_size))?,
        num_hidden_layers: f.usize("num_hidden_layers", Some(d.num_hidden_layers))?,
        num_attention_heads: f.usize("num_attention_heads", Some(d.num_attention_heads))?,
        num_channels: f.usize("num_channels", Some(3))?,
        image_size: f.usize("image_size", Some(d.image_size))?,
        patch_size: f.usize("patch_size", Some(d.patch_size))?,
        layer_norm_eps: f.f64("layer_norm_eps", Some(1e-5))?,
        hidden_act: parse_activation(f, "hidden_act", "quick_gelu")?,
        initializer_range: f.f64("initializer_range", Some(0.02))?,
    })
}

/// `image_token_index`, or its alias `image_token_id`.
fn image_token_index(top: &Fields) -> Result<u32> {
    match top.present("image_token_index") {
        Some(_) => top.u32("image_token_index", None),
        None => top.u32("image_token_id", Some(32_000)),
    }
}

fn feature_select(top: &Fields) -> Result<FeatureSelect> {
    match top
        .str("vision_feature_select_strategy", Some("default"))?
        .as_str()
    {
        "default" => Ok(FeatureSelect::Default),
        "full" => Ok(FeatureSelect::Full),
        other => Err(top.error(
            "vision_feature_select_strategy",
            format!("`{other}` is not supported (expected `default` or `full`)"),
        )),
    }
}

fn feature_layers(top: &Fields) -> Result<FeatureLayers> {
    let key = "vision_feature_layer";
    let bad = |value: &Value| {
        top.error(
            key,
            format!("expected an integer or a list of integers, found {value}"),
        )
    };
    match top.present(key) {
        None => Ok(FeatureLayers::One(-2)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_i64().ok_or_else(|| bad(item)))
            .collect::<Result<Vec<i64>>>()
            .map(FeatureLayers::Many),
        Some(value) => value
            .as_i64()
            .map(FeatureLayers::One)
            .ok_or_else(|| bad(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({
            "model_type": "llava",
            "image_token_index": 60,
            "vision_config": {"model_type": "clip_vision_model", "hidden_size": 16,
                              "intermediate_size": 32, "num_hidden_layers": 3,
                              "num_attention_heads": 2, "image_size": 28, "patch_size": 14},
            "text_config": {"model_type": "llama", "vocab_size": 64, "hidden_size": 32,
                            "intermediate_size": 48, "num_hidden_layers": 2,
                            "num_attention_heads": 4, "num_key_value_heads": 2,
                            "some_unknown_field": 1}
        })
    }

    fn error_field(value: Value) -> String {
        match LlavaConfig::from_value(value) {
            Err(ModelError::ConfigField { field, .. }) => field,
            other => panic!("expected a config field error, got {other:?}"),
        }
    }

    #[test]
    fn parses_hf_defaults() {
        let c = LlavaConfig::from_value(base()).unwrap();
        assert_eq!(c.vision_feature_layer, FeatureLayers::One(-2));
        assert_eq!(c.hidden_state_indices().unwrap(), vec![2]);
        assert_eq!(c.vision_feature_select_strategy, FeatureSelect::Default);
        assert_eq!(c.projector_hidden_act, Activation::Gelu);
        assert_eq!(c.vision.hidden_act, Activation::QuickGelu);
        assert_eq!(c.vision.layer_norm_eps, 1e-5);
        assert!(c.multimodal_projector_bias && !c.tie_word_embeddings);
        assert_eq!(c.tokens_per_image(), 4);
        assert_eq!(c.vision.num_positions(), 5);
        let mut full = base();
        full["vision_feature_select_strategy"] = json!("full");
        full["vision_feature_layer"] = json!([-3, -1]);
        let c = LlavaConfig::from_value(full).unwrap();
        assert_eq!(c.tokens_per_image(), 5);
        assert_eq!(c.hidden_state_indices().unwrap(), vec![1, 3]);
        assert_eq!(c.projector_input_size(), 32);
    }

    #[test]
    fn a_missing_vision_config_is_llavas_clip_l_336() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("vision_config");
        v["image_token_index"] = json!(32000);
        v["text_config"]["vocab_size"] = json!(32064);
        let c = LlavaConfig::from_value(v).unwrap();
        assert_eq!(
            (c.vision.hidden_size, c.vision.num_hidden_layers),
            (1024, 24)
        );
        assert_eq!(c.tokens_per_image(), 576);
    }

    #[test]
    fn unsupported_values_name_their_field() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "model_type",
                Box::new(|v| v["model_type"] = json!("idefics3")),
            ),
            (
                "vision_feature_layer",
                Box::new(|v| v["vision_feature_layer"] = json!(-5)),
            ),
            (
                "vision_feature_layer",
                Box::new(|v| v["vision_feature_layer"] = json!("x")),
            ),
            (
                "vision_feature_select_strategy",
                Box::new(|v| v["vision_feature_select_strategy"] = json!("cls")),
            ),
            (
                "projector_hidden_act",
                Box::new(|v| v["projector_hidden_act"] = json!("tanh")),
            ),
            (
                "vision_config.hidden_act",
                Box::new(|v| v["vision_config"]["hidden_act"] = json!("swish")),
            ),
            (
                "vision_config.model_type",
                Box::new(|v| v["vision_config"]["model_type"] = json!("siglip_vision_model")),
            ),
            (
                "image_token_index",
                Box::new(|v| v["image_token_index"] = json!(64)),
            ),
            (
                "text_config.hidden_act",
                Box::new(|v| v["text_config"]["hidden_act"] = json!("gelu")),
            ),
            (
                "vision_config.num_attention_heads",
                Box::new(|v| v["vision_config"]["num_attention_heads"] = json!(3)),
            ),
        ];
        for (field, mutate) in cases {
            let mut v = base();
            mutate(&mut v);
            assert_eq!(error_field(v), field);
        }
    }

    #[test]
    fn hf_json_round_trips_and_keeps_unknown_fields() {
        let mut v = base();
        v["vision_feature_layer"] = json!([-3, -1]);
        v["text_config"]["tie_word_embeddings"] = json!(true);
        let c = LlavaConfig::from_value(v).unwrap();
        assert!(c.tie_word_embeddings);
        let out = c.to_hf_json();
        assert_eq!(out["text_config"]["some_unknown_field"], json!(1));
        assert_eq!(out["vision_feature_layer"], json!([-3, -1]));
        assert_eq!(out["architectures"], json!([LLAVA_ARCHITECTURE]));
        let again = LlavaConfig::from_value(out).unwrap();
        let strip = |c: LlavaConfig| LlavaConfig {
            raw: Value::Null,
            ..c
        };
        assert_eq!(strip(again), strip(c));
    }
}
