//! The HF `config.json` of a Qwen2-VL (`model_type: "qwen2_vl"`,
//! `Qwen2VLForConditionalGeneration`) or Qwen2.5-VL (`model_type: "qwen2_5_vl"`,
//! `Qwen2_5_VLForConditionalGeneration`) checkpoint: parsing with HF's defaults (`Qwen2VLConfig`,
//! `Qwen2VLTextConfig`, `Qwen2_5_VLConfig`, `Qwen2_5_VLTextConfig`; the vision config in
//! `vision_config.rs`) and field-named errors, validation, and serialisation back to a
//! config.json HF transformers loads. The two share the text model and its defaults; their
//! towers differ ([`TowerVariant`]), and the variant decides the `model_type` written back.
//!
//! The text fields sit at the top level in the hub checkpoints and under `text_config` in
//! transformers 5's saves; M-RoPE's `mrope_section` is in `rope_scaling` (hub) or
//! `rope_parameters` (transformers 5), of the text config or the top level. Unknown fields are
//! kept verbatim ([`Qwen2VlConfig::raw`]) and written back where they were.

use std::path::Path;

use safeaware_common::fsio::write_atomic;
use serde_json::{json, Map, Value};

use crate::config::{as_object, parse_eos_token_ids, validate_text, Fields, TextConfig};
use crate::error::{ModelError, Result};
use crate::qwen2_vl::vision_config::parse_vision;
pub use crate::qwen2_vl::vision_config::{Qwen2VisionConfig, TowerVariant, WindowedTower};

/// The HF `model_type` of Qwen2-VL.
pub const QWEN2_VL_MODEL_TYPE: &str = "qwen2_vl";
/// The HF class of Qwen2-VL.
pub const QWEN2_VL_ARCHITECTURE: &str = "Qwen2VLForConditionalGeneration";
/// The HF `model_type` of Qwen2.5-VL.
pub const QWEN2_5_VL_MODEL_TYPE: &str = "qwen2_5_vl";
/// The HF class of Qwen2.5-VL.
pub const QWEN2_5_VL_ARCHITECTURE: &str = "Qwen2_5_VLForConditionalGeneration";
/// HF's `mrope_section` when a config names none.
const DEFAULT_MROPE_SECTION: [usize; 3] = [16, 24, 24];

/// A parsed and validated Qwen2-VL or Qwen2.5-VL config.
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
    /// The vision tower (its variant says which of the two models this is).
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

    /// Parses and validates an HF Qwen2-VL or Qwen2.5-VL config given as JSON (Qwen2-VL when
    /// it names no `model_type`).
    pub fn from_value(raw: Value) -> Result<Self> {
        let top = Fields::new(&raw, "")?;
        let qwen2_5 = match top.opt_str("model_type")?.as_deref() {
            None | Some(QWEN2_VL_MODEL_TYPE) => false,
            Some(QWEN2_5_VL_MODEL_TYPE) => true,
            Some(other) => {
                let expected = format!("`{QWEN2_VL_MODEL_TYPE}` or `{QWEN2_5_VL_MODEL_TYPE}`");
                let message = format!("`{other}` is not supported (expected {expected})");
                return Err(top.error("model_type", message));
            }
        };
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
            vision: parse_vision(&vision_fields, qwen2_5)?,
            text,
            raw,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the cross-field constraints the architecture needs.
    pub fn validate(&self) -> Result<()> {
        self.vision.validate()?;
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

    /// Whether this is Qwen2.5-VL (its tower's variant).
    pub fn is_qwen2_5(&self) -> bool {
        matches!(self.vision.variant, TowerVariant::Qwen2_5Vl(_))
    }

    /// The HF `model_type`: `qwen2_vl` or `qwen2_5_vl`.
    pub fn model_type(&self) -> &'static str {
        if self.is_qwen2_5() {
            QWEN2_5_VL_MODEL_TYPE
        } else {
            QWEN2_VL_MODEL_TYPE
        }
    }

    /// The HF class: `Qwen2VLForConditionalGeneration` or `Qwen2_5_VLForConditionalGeneration`.
    pub fn architecture(&self) -> &'static str {
        if self.is_qwen2_5() {
            QWEN2_5_VL_ARCHITECTURE
        } else {
            QWEN2_VL_ARCHITECTURE
        }
    }

    /// The config as HF `config.json` JSON: the parsed original with every interpreted field
    /// overwritten by this struct's values, the text fields where they were (top level in
    /// the hub layout, `text_config` otherwise; a config built in code gets transformers 5's).
    pub fn to_hf_json(&self) -> Value {
        let mut top = as_object(&self.raw);
        top.insert("model_type".into(), json!(self.model_type()));
        top.insert("architectures".into(), json!([self.architecture()]));
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
        let vision = self.vision.to_json(top.get("vision_config"));
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
            into.insert(
                "model_type".into(),
                json!(format!("{}_text", self.model_type())),
            );
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

    /// Writes [`Self::to_hf_json`] to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text =
            serde_json::to_string_pretty(&self.to_hf_json()).expect("JSON values always serialise");
        write_atomic(path, text.as_bytes()).map_err(ModelError::io("writing", path))
    }
}

fn eos_json(ids: &[u32]) -> Value {
    match ids {
        [] => Value::Null,
        [one] => json!(one),
        many => json!(many),
    }
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
            if rope.present("mrope_section").is_some() {
                return rope.usize_list("mrope_section", None);
            }
        }
    }
    Ok(DEFAULT_MROPE_SECTION.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;

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
                Box::new(|v| v["model_type"] = json!("qwen3_vl")),
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

    /// Qwen2.5-VL-7B-Instruct's config.json layout (the hub's: flat text fields, `in_chans`).
    fn hub_2_5() -> Value {
        json!({
            "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
            "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
            "num_attention_heads": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0, "max_position_embeddings": 128000, "vocab_size": 152064,
            "tie_word_embeddings": false, "image_token_id": 151655,
            "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
            "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280,
                              "intermediate_size": 3420, "num_heads": 16, "in_chans": 3,
                              "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2,
                              "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
                              "tokens_per_second": 2, "temporal_patch_size": 2}
        })
    }

    #[test]
    fn qwen2_5_parses_its_own_vision_names_and_writes_them_back() {
        let c = Qwen2VlConfig::from_value(hub_2_5()).unwrap();
        assert!(c.is_qwen2_5());
        assert_eq!((c.vision.embed_dim, c.vision.hidden_size), (1280, 3584));
        assert_eq!(c.vision.intermediate_size(), 3420);
        assert_eq!(c.vision.window_tokens(), Some(4));
        assert!(c.vision.full_attention(7) && !c.vision.full_attention(6));
        assert_eq!(c.vision.hidden_act, Activation::Silu);
        assert_eq!(c.text.num_key_value_heads, 4);
        let out = c.to_hf_json();
        assert_eq!(out["model_type"], json!("qwen2_5_vl"));
        assert_eq!(
            out["architectures"],
            json!(["Qwen2_5_VLForConditionalGeneration"])
        );
        assert_eq!(out["vision_config"]["out_hidden_size"], json!(3584));
        assert_eq!(out["vision_config"]["tokens_per_second"], json!(2));
        assert!(out["vision_config"].get("embed_dim").is_none());
        let strip = |c: Qwen2VlConfig| Qwen2VlConfig {
            raw: Value::Null,
            ..c
        };
        let again = Qwen2VlConfig::from_value(out).unwrap();
        assert_eq!(strip(again), strip(c.clone()));
        let nested = strip(c).to_hf_json();
        assert_eq!(
            nested["text_config"]["model_type"],
            json!("qwen2_5_vl_text")
        );
        assert_eq!(
            nested["vision_config"]["model_type"],
            json!("qwen2_5_vl_vision")
        );
    }

    #[test]
    fn invalid_qwen2_5_vision_values_name_their_field() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "vision_config.window_size",
                Box::new(|v| v["vision_config"]["window_size"] = json!(27)),
            ),
            (
                "vision_config.fullatt_block_indexes",
                Box::new(|v| v["vision_config"]["fullatt_block_indexes"] = json!([7, 32])),
            ),
            (
                "vision_config.fullatt_block_indexes",
                Box::new(|v| v["vision_config"]["fullatt_block_indexes"] = json!("7")),
            ),
            (
                "vision_config.intermediate_size",
                Box::new(|v| v["vision_config"]["intermediate_size"] = json!(0)),
            ),
            (
                "vision_config.hidden_act",
                Box::new(|v| v["vision_config"]["hidden_act"] = json!("gelu")),
            ),
            (
                "vision_config.model_type",
                Box::new(|v| v["vision_config"]["model_type"] = json!("qwen2_vl_vision")),
            ),
            (
                "vision_config.out_hidden_size",
                Box::new(|v| v["vision_config"]["out_hidden_size"] = json!(-1)),
            ),
        ];
        for (field, mutate) in cases {
            let mut v = hub_2_5();
            mutate(&mut v);
            assert_eq!(error_field(v), field);
        }
    }
}
