//! The HF `config.json` of a Qwen2-VL checkpoint (`model_type: "qwen2_vl"`,
//! `Qwen2VLForConditionalGeneration`): parsing with HF's defaults (`Qwen2VLConfig`,
//! `Qwen2VLVisionConfig`, `Qwen2VLTextConfig`) and field-named errors, validation, and
//! serialisation back to a config.json HF transformers loads.
//!
//! The text fields sit at the top level in the hub checkpoints and under `text_config` in
//! transformers 5's saves; M-RoPE's `mrope_section` is in `rope_scaling` (hub) or
//! `rope_parameters` (transformers 5), of the text config or the top level. Unknown fields are
//! kept verbatim ([`Qwen2VlConfig::raw`]) and written back where they were.

use std::path::Path;

use safeaware_common::fsio::write_atomic;
use serde_json::{json, Map, Value};

use crate::activation::Activation;
use crate::config::{
    as_object, parse_activation, parse_eos_token_ids, validate_text, Fields, TextConfig,
};
use crate::error::{ModelError, Result};

/// The HF `model_type` of the family.
pub const QWEN2_VL_MODEL_TYPE: &str = "qwen2_vl";
/// The HF class of the family.
pub const QWEN2_VL_ARCHITECTURE: &str = "Qwen2VLForConditionalGeneration";
/// HF's `mrope_section` when a config names none.
const DEFAULT_MROPE_SECTION: [usize; 3] = [16, 24, 24];

/// `vision_config`: the Qwen2-VL vision tower (`visual`).
#[derive(Debug, Clone, PartialEq)]
pub struct Qwen2VisionConfig {
    /// Vision blocks.
    pub depth: usize,
    /// Width of the tower.
    pub embed_dim: usize,
    /// Width of the merger's output (the language model's width).
    pub hidden_size: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// MLP width over `embed_dim`.
    pub mlp_ratio: f64,
    /// Input channels (3).
    pub in_channels: usize,
    /// Side of a patch in pixels.
    pub patch_size: usize,
    /// Side of the square of patches the merger folds into one token.
    pub spatial_merge_size: usize,
    /// Frames per patch (a still image is repeated to this many).
    pub temporal_patch_size: usize,
    /// The MLP's activation (`quick_gelu`).
    pub hidden_act: Activation,
    /// Std of the normal initialisation.
    pub initializer_range: f64,
    /// Base of the 2-D rotary embedding.
    pub rope_theta: f64,
}

impl Qwen2VisionConfig {
    /// Width of the MLP: `int(embed_dim · mlp_ratio)`, as HF computes it.
    pub fn intermediate_size(&self) -> usize {
        (self.embed_dim as f64 * self.mlp_ratio) as usize
    }

    /// Values in one flattened patch: `C · T · P · P`.
    pub fn patch_values(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads.max(1)
    }

    /// Width of the merger's input: `embed_dim · spatial_merge_size²`.
    pub fn merged_width(&self) -> usize {
        self.embed_dim * self.spatial_merge_size.pow(2)
    }
}

/// A parsed and validated Qwen2-VL config.
#[derive(Debug, Clone, PartialEq)]
pub struct Qwen2VlConfig {
    /// `<|image_pad|>`: the token whose embeddings image features replace.
    pub image_token_id: u32,
    /// `<|video_pad|>` (videos are not supported; kept for the config).
    pub video_token_id: u32,
    /// `<|vision_start|>`.
    pub vision_start_token_id: u32,
    /// `<|vision_end|>`.
    pub vision_end_token_id: u32,
    /// Whether the LM head shares `embed_tokens`' weight.
    pub tie_word_embeddings: bool,
    /// The vision tower.
    pub vision: Qwen2VisionConfig,
    /// The Qwen2 language model (q/k/v biases, M-RoPE).
    pub text: TextConfig,
    /// The JSON this config was parsed from (`Value::Null` for configs built in code).
    pub raw: Value,
}

impl Qwen2VlConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(crate::config::read_json(path)?)
    }

    /// Parses and validates an HF Qwen2-VL config given as JSON.
    pub fn from_value(raw: Value) -> Result<Self> {
        let top = Fields::new(&raw, "")?;
        top.expect_str("model_type", QWEN2_VL_MODEL_TYPE)?;
        let empty = json!({});
        let vision_fields = match top.present("vision_config") {
            Some(_) => top.child("vision_config")?,
            None => Fields::new(&empty, "vision_config")?,
        };
        let text_fields = match top.present("text_config") {
            Some(_) => top.child("text_config")?,
            None => Fields::new(&raw, "")?,
        };
        let mut text = parse_qwen2_text(&text_fields)?;
        text.mrope_section = Some(mrope_section(&[&text_fields, &top])?);
        let tie_word_embeddings = top.opt_bool("tie_word_embeddings")?.unwrap_or(false)
            || text_fields
                .opt_bool("tie_word_embeddings")?
                .unwrap_or(false);
        let config = Self {
            image_token_id: top.u32("image_token_id", Some(151_655))?,
            video_token_id: top.u32("video_token_id", Some(151_656))?,
            vision_start_token_id: top.u32("vision_start_token_id", Some(151_652))?,
            vision_end_token_id: top.u32("vision_end_token_id", Some(151_653))?,
            tie_word_embeddings,
            vision: parse_vision(&vision_fields)?,
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
            ("embed_dim", v.embed_dim),
            ("hidden_size", v.hidden_size),
            ("num_heads", v.num_heads),
            ("in_channels", v.in_channels),
            ("patch_size", v.patch_size),
            ("spatial_merge_size", v.spatial_merge_size),
            ("temporal_patch_size", v.temporal_patch_size),
            ("mlp_ratio", v.intermediate_size()),
        ] {
            if value == 0 {
                let field = format!("vision_config.{field}");
                return Err(ModelError::field(field, "must be positive"));
            }
        }
        if !v.embed_dim.is_multiple_of(v.num_heads) || !v.head_dim().is_multiple_of(4) {
            return Err(ModelError::field(
                "vision_config.num_heads",
                format!(
                    "embed_dim {} / num_heads {} must be a multiple of 4 (2-D rotary embedding)",
                    v.embed_dim, v.num_heads
                ),
            ));
        }
        validate_text(&self.text)?;
        self.validate_mrope()?;
        if self.image_token_id as usize >= self.text.vocab_size {
            return Err(ModelError::field(
                "image_token_id",
                format!(
                    "{} is outside the vocabulary of {}",
                    self.image_token_id, self.text.vocab_size
                ),
            ));
        }
        Ok(())
    }

    fn validate_mrope(&self) -> Result<()> {
        let section = self.text.mrope_section.as_deref().unwrap_or_default();
        let half = self.text.head_dim / 2;
        if section.iter().sum::<usize>() != half {
            return Err(ModelError::field(
                "rope_scaling.mrope_section",
                format!("{section:?} must sum to head_dim / 2 = {half}"),
            ));
        }
        Ok(())
    }

    /// The config as HF `config.json` JSON: the parsed original with every interpreted field
    /// overwritten by this struct's values, the text fields where they were (top level in
    /// the hub layout, `text_config` otherwise; a config built in code gets transformers 5's).
    pub fn to_hf_json(&self) -> Value {
        let mut top = as_object(&self.raw);
        top.insert("model_type".into(), json!(QWEN2_VL_MODEL_TYPE));
        top.insert("architectures".into(), json!([QWEN2_VL_ARCHITECTURE]));
        for (key, value) in [
            ("image_token_id", self.image_token_id),
            ("video_token_id", self.video_token_id),
            ("vision_start_token_id", self.vision_start_token_id),
            ("vision_end_token_id", self.vision_end_token_id),
        ] {
            top.insert(key.into(), json!(value));
        }
        top.insert(
            "tie_word_embeddings".into(),
            json!(self.tie_word_embeddings),
        );
        let vision = self.vision_json(top.get("vision_config"));
        top.insert("vision_config".into(), vision);
        let nested = self.raw.is_null() || top.contains_key("text_config");
        if nested {
            let existing = as_object(top.get("text_config").unwrap_or(&Value::Null));
            let text = self.text_json(existing, true);
            top.insert("text_config".into(), Value::Object(text));
            Value::Object(top)
        } else {
            Value::Object(self.text_json(top, false))
        }
    }

    /// `into` with the text model's fields written in: M-RoPE in `rope_parameters` (nested,
    /// transformers 5) or `rope_scaling` + `rope_theta` (the hub's top level).
    fn text_json(&self, mut into: Map<String, Value>, nested: bool) -> Map<String, Value> {
        let t = &self.text;
        if nested {
            into.insert("model_type".into(), json!("qwen2_vl_text"));
        }
        for (key, value) in [
            ("vocab_size", json!(t.vocab_size)),
            ("hidden_size", json!(t.hidden_size)),
            ("intermediate_size", json!(t.intermediate_size)),
            ("num_hidden_layers", json!(t.num_hidden_layers)),
            ("num_attention_heads", json!(t.num_attention_heads)),
            ("num_key_value_heads", json!(t.num_key_value_heads)),
            ("hidden_act", json!("silu")),
            ("rms_norm_eps", json!(t.rms_norm_eps)),
            ("max_position_embeddings", json!(t.max_position_embeddings)),
            ("initializer_range", json!(t.initializer_range)),
            ("bos_token_id", json!(t.bos_token_id)),
            ("eos_token_id", eos_json(&t.eos_token_ids)),
            ("pad_token_id", json!(t.pad_token_id)),
        ] {
            into.insert(key.into(), value);
        }
        let section = json!(t.mrope_section);
        if nested {
            let rope = json!({"rope_type": "default", "type": "mrope",
                              "rope_theta": t.rope_theta, "mrope_section": section});
            into.insert("rope_parameters".into(), rope);
        } else {
            into.insert("rope_theta".into(), json!(t.rope_theta));
            let rope = json!({"type": "mrope", "mrope_section": section});
            into.insert("rope_scaling".into(), rope);
        }
        into
    }

    fn vision_json(&self, existing: Option<&Value>) -> Value {
        let v = &self.vision;
        let mut vision = as_object(existing.unwrap_or(&Value::Null));
        vision.insert("model_type".into(), json!("qwen2_vl_vision"));
        for (key, value) in [
            ("depth", json!(v.depth)),
            ("embed_dim", json!(v.embed_dim)),
            ("hidden_size", json!(v.hidden_size)),
            ("num_heads", json!(v.num_heads)),
            ("mlp_ratio", number(v.mlp_ratio)),
            ("in_channels", json!(v.in_channels)),
            ("patch_size", json!(v.patch_size)),
            ("spatial_merge_size", json!(v.spatial_merge_size)),
            ("temporal_patch_size", json!(v.temporal_patch_size)),
            ("hidden_act", json!(v.hidden_act.hf_name())),
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

/// `value` as a JSON integer when it is whole (HF types `mlp_ratio` as an int), else a float.
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        json!(value as i64)
    } else {
        json!(value)
    }
}

fn eos_json(ids: &[u32]) -> Value {
    match ids {
        [] => Value::Null,
        [one] => json!(one),
        many => json!(many),
    }
}

fn parse_vision(f: &Fields) -> Result<Qwen2VisionConfig> {
    if let Some(model_type) = f.opt_str("model_type")? {
        if model_type != "qwen2_vl" && model_type != "qwen2_vl_vision" {
            return Err(f.error(
                "model_type",
                format!("`{model_type}` is not supported (expected `qwen2_vl_vision`)"),
            ));
        }
    }
    let in_channels = match f.present("in_channels") {
        Some(_) => f.usize("in_channels", None)?,
        None => f.usize("in_chans", Some(3))?,
    };
    let rope_theta = match f.get("rope_parameters").filter(|v| !v.is_null()) {
        Some(_) => f
            .child("rope_parameters")?
            .f64("rope_theta", Some(10_000.0))?,
        None => 10_000.0,
    };
    Ok(Qwen2VisionConfig {
        depth: f.usize("depth", Some(32))?,
        embed_dim: f.usize("embed_dim", Some(1280))?,
        hidden_size: f.usize("hidden_size", Some(3584))?,
        num_heads: f.usize("num_heads", Some(16))?,
        mlp_ratio: f.f64("mlp_ratio", Some(4.0))?,
        in_channels,
        patch_size: f.usize("patch_size", Some(14))?,
        spatial_merge_size: f.usize("spatial_merge_size", Some(2))?,
        temporal_patch_size: f.usize("temporal_patch_size", Some(2))?,
        hidden_act: parse_activation(f, "hidden_act", "quick_gelu")?,
        initializer_range: f.f64("initializer_range", Some(0.02))?,
        rope_theta,
    })
}

/// The Qwen2 text model's fields (`Qwen2VLTextConfig`'s defaults): a Llama with q/k/v biases
/// whose per-head width is `hidden_size / num_attention_heads`.
fn parse_qwen2_text(f: &Fields) -> Result<TextConfig> {
    f.expect_str("hidden_act", "silu")?;
    let hidden_size = f.usize("hidden_size", Some(8192))?;
    let num_attention_heads = f.usize("num_attention_heads", Some(64))?;
    if num_attention_heads == 0 {
        return Err(f.error("num_attention_heads", "must be positive"));
    }
    let num_key_value_heads = match f.get("num_key_value_heads").filter(|v| !v.is_null()) {
        Some(_) => f.usize("num_key_value_heads", None)?,
        None => num_attention_heads,
    };
    Ok(TextConfig {
        vocab_size: f.usize("vocab_size", Some(152_064))?,
        hidden_size,
        intermediate_size: f.usize("intermediate_size", Some(29_568))?,
        num_hidden_layers: f.usize("num_hidden_layers", Some(80))?,
        num_attention_heads,
        num_key_value_heads,
        head_dim: hidden_size / num_attention_heads,
        rms_norm_eps: f.f64("rms_norm_eps", Some(1e-5))?,
        rope_theta: rope_theta(f)?,
        max_position_embeddings: f.usize("max_position_embeddings", Some(32_768))?,
        initializer_range: f.f64("initializer_range", Some(0.02))?,
        bos_token_id: f.opt_u32("bos_token_id")?,
        eos_token_ids: parse_eos_token_ids(f)?,
        pad_token_id: f.opt_u32("pad_token_id")?,
        qkv_bias: true,
        mrope_section: None,
    })
}

fn rope_theta(f: &Fields) -> Result<f64> {
    match f.get("rope_parameters").filter(|v| !v.is_null()) {
        Some(_) => {
            let rope = f.child("rope_parameters")?;
            match rope.opt_f64("rope_theta")? {
                Some(theta) => Ok(theta),
                None => f.f64("rope_theta", Some(1_000_000.0)),
            }
        }
        None => f.f64("rope_theta", Some(1_000_000.0)),
    }
}

/// `mrope_section` from the first of `rope_parameters` / `rope_scaling` of each of `sources`
/// that has one (HF's default when none does). Another RoPE type is refused.
fn mrope_section(sources: &[&Fields]) -> Result<Vec<usize>> {
    for f in sources {
        for key in ["rope_parameters", "rope_scaling"] {
            if f.get(key).is_none_or(Value::is_null) {
                continue;
            }
            let rope = f.child(key)?;
            if let Some(kind) = rope.opt_str("rope_type")? {
                if kind != "default" && kind != "mrope" {
                    let message = format!("`{kind}` is not supported (expected `default`)");
                    return Err(rope.error("rope_type", message));
                }
            }
            let Some(section) = rope.present("mrope_section") else {
                continue;
            };
            return section
                .as_array()
                .and_then(|items| {
                    items
                        .iter()
                        .map(|v| v.as_u64().map(|n| n as usize))
                        .collect()
                })
                .ok_or_else(|| rope.error("mrope_section", "expected a list of integers"));
        }
    }
    Ok(DEFAULT_MROPE_SECTION.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Qwen2-VL-2B-Instruct's config.json layout: the text fields at the top level, M-RoPE in
    /// `rope_scaling`, a tied head.
    fn hub() -> Value {
        json!({
            "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
            "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
            "num_attention_heads": 12, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0, "max_position_embeddings": 32768, "vocab_size": 151936,
            "bos_token_id": 151643, "eos_token_id": 151645, "tie_word_embeddings": true,
            "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652,
            "vision_end_token_id": 151653, "use_sliding_window": false, "some_unknown_field": 1,
            "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
            "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16,
                              "in_chans": 3, "hidden_size": 1536, "patch_size": 14,
                              "spatial_merge_size": 2, "temporal_patch_size": 2}
        })
    }

    fn error_field(value: Value) -> String {
        match Qwen2VlConfig::from_value(value) {
            Err(ModelError::ConfigField { field, .. }) => field,
            other => panic!("expected a config field error, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_hub_layout_with_hf_defaults() {
        let c = Qwen2VlConfig::from_value(hub()).unwrap();
        let t = &c.text;
        assert_eq!(
            (t.hidden_size, t.head_dim, t.num_key_value_heads),
            (1536, 128, 2)
        );
        assert!(t.qkv_bias && c.tie_word_embeddings);
        assert_eq!(t.mrope_section.as_deref(), Some(&[16, 24, 24][..]));
        assert_eq!(t.eos_token_ids, vec![151_645]);
        assert_eq!(c.vision.intermediate_size(), 5120);
        assert_eq!(c.vision.patch_values(), 1176);
        assert_eq!(c.vision.hidden_act, Activation::QuickGelu);
        assert_eq!(c.tokens_per_image(None), 256);
    }

    #[test]
    fn the_nested_text_config_of_transformers_5_parses_the_same() {
        let hub = Qwen2VlConfig::from_value(hub()).unwrap();
        let nested = hub.to_hf_json();
        let mut moved = as_object(&Value::Null);
        moved.insert("model_type".into(), json!("qwen2_vl"));
        for key in ["vision_config", "image_token_id", "tie_word_embeddings"] {
            moved.insert(key.into(), nested[key].clone());
        }
        let text = Qwen2VlConfig {
            raw: Value::Null,
            ..hub.clone()
        }
        .to_hf_json();
        moved.insert("text_config".into(), text["text_config"].clone());
        assert_eq!(
            text["text_config"]["rope_parameters"]["mrope_section"],
            json!([16, 24, 24])
        );
        let again = Qwen2VlConfig::from_value(Value::Object(moved)).unwrap();
        assert_eq!(again.text, hub.text);
        assert_eq!(again.vision, hub.vision);
    }

    #[test]
    fn hf_json_round_trips_in_place_and_keeps_unknown_fields() {
        let c = Qwen2VlConfig::from_value(hub()).unwrap();
        let out = c.to_hf_json();
        assert!(
            out.get("text_config").is_none(),
            "the hub layout stays flat"
        );
        assert_eq!(out["some_unknown_field"], json!(1));
        assert_eq!(out["rope_scaling"]["mrope_section"], json!([16, 24, 24]));
        let again = Qwen2VlConfig::from_value(out).unwrap();
        let strip = |c: Qwen2VlConfig| Qwen2VlConfig {
            raw: Value::Null,
            ..c
        };
        assert_eq!(strip(again), strip(c));
    }

    #[test]
    fn unsupported_values_name_their_field() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "model_type",
                Box::new(|v| v["model_type"] = json!("qwen2_5_vl")),
            ),
            ("hidden_act", Box::new(|v| v["hidden_act"] = json!("gelu"))),
            (
                "rope_scaling.mrope_section",
                Box::new(|v| v["rope_scaling"]["mrope_section"] = json!([16, 24, 16])),
            ),
            (
                "rope_scaling.rope_type",
                Box::new(|v| v["rope_scaling"]["rope_type"] = json!("yarn")),
            ),
            (
                "vision_config.num_heads",
                Box::new(|v| v["vision_config"]["num_heads"] = json!(3)),
            ),
            (
                "vision_config.hidden_act",
                Box::new(|v| v["vision_config"]["hidden_act"] = json!("swish")),
            ),
            (
                "image_token_id",
                Box::new(|v| v["image_token_id"] = json!(151_936)),
            ),
        ];
        for (field, mutate) in cases {
            let mut v = hub();
            mutate(&mut v);
            assert_eq!(error_field(v), field);
        }
    }
}
