//! The HF `config.json` of an Idefics3 / SmolVLM checkpoint: parsing with field-named errors,
//! validation of what this implementation supports, and serialisation back to a config.json
//! that HF transformers loads.
//!
//! Unknown fields of a parsed config are kept verbatim (in [`Idefics3Config::raw`]) and written
//! back on save, so a round trip loses nothing transformers or the processor rely on.

use std::path::Path;

use safeaware_common::fsio::write_atomic;
use serde_json::{json, Map, Value};

use crate::activation::Activation;
use crate::error::{ModelError, Result};
use crate::vlm::ModelPart;

/// The checkpoint family, from the top-level `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFamily {
    /// `model_type: "idefics3"`.
    Idefics3,
    /// `model_type: "smolvlm"` (same architecture, different processor).
    SmolVlm,
}

impl ModelFamily {
    /// The HF `model_type` string.
    pub fn model_type(self) -> &'static str {
        match self {
            Self::Idefics3 => "idefics3",
            Self::SmolVlm => "smolvlm",
        }
    }

    fn architecture(self) -> &'static str {
        match self {
            Self::Idefics3 => "Idefics3ForConditionalGeneration",
            Self::SmolVlm => "SmolVLMForConditionalGeneration",
        }
    }

    fn vision_model_type(self) -> &'static str {
        match self {
            Self::Idefics3 => "idefics3_vision",
            Self::SmolVlm => "smolvlm_vision",
        }
    }
}

/// `vision_config`: the SigLIP-style vision tower.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
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
    /// Side of a (square) image tile in pixels.
    pub image_size: usize,
    /// Side of a (square) patch in pixels.
    pub patch_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Std of the normal initialisation.
    pub initializer_range: f64,
}

/// `text_config`: the Llama language model.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    /// Vocabulary size (rows of `embed_tokens` and `lm_head`).
    pub vocab_size: usize,
    /// Width of the language model.
    pub hidden_size: usize,
    /// Width of the gated MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (GQA when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Per-head width.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// Longest sequence the model was trained for (informational).
    pub max_position_embeddings: usize,
    /// Std of the normal initialisation.
    pub initializer_range: f64,
    /// `bos_token_id`, when set.
    pub bos_token_id: Option<u32>,
    /// `eos_token_id` (a number or a list), possibly empty.
    pub eos_token_ids: Vec<u32>,
    /// `pad_token_id`, when set.
    pub pad_token_id: Option<u32>,
    /// Whether `q_proj`, `k_proj` and `v_proj` have biases (Qwen2; Llama has none).
    pub qkv_bias: bool,
    /// M-RoPE's `mrope_section` (Qwen2-VL): how many rotary frequencies follow the temporal,
    /// height and width position; `None` is plain 1-D RoPE.
    pub mrope_section: Option<Vec<usize>>,
}

/// The JSON of the file `path` (a config.json), errors naming the file.
pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(ModelError::io("reading", path))?;
    serde_json::from_str(&text).map_err(|cause| ModelError::Json {
        path: path.to_owned(),
        cause,
    })
}

impl TextConfig {
    /// One line: layers, widths, heads, vocabulary and RoPE base.
    pub fn describe(&self) -> String {
        format!(
            "{} layers, hidden {}, mlp {}, {} heads / {} kv heads, head dim {}, vocab {}, rope theta {}",
            self.num_hidden_layers,
            self.hidden_size,
            self.intermediate_size,
            self.num_attention_heads,
            self.num_key_value_heads,
            self.head_dim,
            self.vocab_size,
            self.rope_theta
        )
    }

    /// The Llama of a from-scratch model: 4 query heads, 2 key/value heads, MLP 3× wide.
    pub fn scratch(spec: &crate::registry::ScratchSpec) -> Self {
        TextConfig {
            vocab_size: spec.vocab_size,
            hidden_size: spec.text_width,
            intermediate_size: spec.text_width * 3,
            num_hidden_layers: spec.text_layers,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: spec.text_width / 4,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            max_position_embeddings: 2048,
            initializer_range: 0.02,
            bos_token_id: Some(spec.bos_token_id),
            eos_token_ids: vec![spec.eos_token_id],
            pad_token_id: Some(spec.pad_token_id),
            qkv_bias: false,
            mrope_section: None,
        }
    }

    /// `(in, out, how many)` of the Llama linear layers named `name`.
    pub fn linear_dims(&self, name: &str) -> (usize, usize, usize) {
        let (h, layers, m) = (
            self.hidden_size,
            self.num_hidden_layers,
            self.intermediate_size,
        );
        let (q, kv) = (
            self.num_attention_heads * self.head_dim,
            self.num_key_value_heads * self.head_dim,
        );
        match name {
            "q_proj" => (h, q, layers),
            "k_proj" | "v_proj" => (h, kv, layers),
            "o_proj" => (q, h, layers),
            "down_proj" => (m, h, layers),
            _ => (h, m, layers),
        }
    }
}

/// A parsed and validated Idefics3 / SmolVLM config.
#[derive(Debug, Clone, PartialEq)]
pub struct Idefics3Config {
    /// `model_type`.
    pub family: ModelFamily,
    /// Token id whose embeddings are replaced by image features.
    pub image_token_id: u32,
    /// Pixel-shuffle factor of the connector.
    pub scale_factor: usize,
    /// Whether `lm_head` shares `embed_tokens`' weight.
    pub tie_word_embeddings: bool,
    /// The vision tower.
    pub vision: VisionConfig,
    /// The language model.
    pub text: TextConfig,
    /// The JSON this config was parsed from (`Value::Null` for configs built in code); fields
    /// this crate does not interpret are written back unchanged.
    pub raw: Value,
}

impl Idefics3Config {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(crate::config::read_json(path)?)
    }

    /// Parses and validates an HF config given as JSON.
    pub fn from_value(raw: Value) -> Result<Self> {
        let top = Fields::new(&raw, "")?;
        let family = match top.str("model_type", None)?.as_str() {
            "idefics3" => ModelFamily::Idefics3,
            "smolvlm" => ModelFamily::SmolVlm,
            other => {
                return Err(ModelError::field(
                    "model_type",
                    format!("`{other}` is not supported (expected `idefics3` or `smolvlm`)"),
                ))
            }
        };
        let vision = parse_vision(&top.child("vision_config")?)?;
        let text_fields = top.child("text_config")?;
        let text = parse_text(&text_fields)?;
        let tie_word_embeddings = match top.opt_bool("tie_word_embeddings")? {
            Some(tied) => tied,
            None => text_fields
                .opt_bool("tie_word_embeddings")?
                .unwrap_or(false),
        };
        let config = Self {
            family,
            image_token_id: top.u32("image_token_id", Some(128_257))?,
            scale_factor: top.usize("scale_factor", Some(2))?,
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
        let t = &self.text;
        let positive = [
            ("vision_config.hidden_size", v.hidden_size),
            ("vision_config.intermediate_size", v.intermediate_size),
            ("vision_config.num_attention_heads", v.num_attention_heads),
            ("vision_config.num_channels", v.num_channels),
            ("vision_config.patch_size", v.patch_size),
            ("scale_factor", self.scale_factor),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ModelError::field(field, "must be positive"));
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
        // Like HF's stride-p convolution, a remainder of pixels is dropped (SmolVLM-Instruct:
        // 384 px in 27 patches of 14).
        if v.image_size < v.patch_size {
            return Err(ModelError::field(
                "vision_config.image_size",
                format!(
                    "{} is smaller than patch_size {}",
                    v.image_size, v.patch_size
                ),
            ));
        }
        let side = v.image_size / v.patch_size;
        if !side.is_multiple_of(self.scale_factor) {
            return Err(ModelError::field(
                "scale_factor",
                format!(
                    "{} does not divide the {side} patches per tile side",
                    self.scale_factor
                ),
            ));
        }
        validate_text(t)?;
        if self.image_token_id as usize >= t.vocab_size {
            return Err(ModelError::field(
                "image_token_id",
                format!(
                    "{} is outside the vocabulary of {}",
                    self.image_token_id, t.vocab_size
                ),
            ));
        }
        Ok(())
    }

    /// Patches along one side of a tile.
    pub fn patches_per_side(&self) -> usize {
        self.vision.image_size / self.vision.patch_size
    }

    /// Image tokens (text positions) each tile occupies after the pixel shuffle.
    pub fn tokens_per_tile(&self) -> usize {
        let side = self.patches_per_side() / self.scale_factor;
        side * side
    }

    /// A small Idefics3 of `spec`'s dimensions, to train from scratch: 4 heads in both towers,
    /// 2 key/value heads, MLPs 4× (vision) and 3× (text) wide, tied LM head.
    pub fn scratch(spec: &crate::registry::ScratchSpec) -> Result<Self> {
        let config = Self {
            family: ModelFamily::Idefics3,
            image_token_id: spec.image_token_id,
            scale_factor: spec.scale_factor,
            tie_word_embeddings: true,
            vision: VisionConfig {
                hidden_size: spec.vision_width,
                intermediate_size: spec.vision_width * 4,
                num_hidden_layers: spec.vision_layers,
                num_attention_heads: 4,
                num_channels: 3,
                image_size: spec.image_size,
                patch_size: spec.patch_size,
                layer_norm_eps: 1e-6,
                initializer_range: 0.02,
            },
            text: TextConfig::scratch(spec),
            raw: Value::Null,
        };
        config.validate()?;
        Ok(config)
    }

    /// The architecture, line by line, as `safeaware inspect` prints it.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let (v, t, sf) = (&self.vision, &self.text, self.scale_factor);
        vec![
            (
                "vision",
                format!(
                    "{} layers, hidden {}, mlp {}, {} heads, {}px tiles, {}px patches",
                    v.num_hidden_layers,
                    v.hidden_size,
                    v.intermediate_size,
                    v.num_attention_heads,
                    v.image_size,
                    v.patch_size
                ),
            ),
            (
                "connector",
                format!(
                    "pixel shuffle x{sf}, {} -> {}",
                    v.hidden_size * sf * sf,
                    t.hidden_size
                ),
            ),
            ("text", t.describe()),
            (
                "tokens per tile",
                format!(
                    "{} (image token id {})",
                    self.tokens_per_tile(),
                    self.image_token_id
                ),
            ),
        ]
    }

    /// `(in, out, how many)` of the LoRA-targetable linear layers named `name` in `part`.
    pub fn linear_dims(&self, part: ModelPart, name: &str) -> (usize, usize, usize) {
        let (v, t) = (&self.vision, &self.text);
        let (vd, vl) = (v.hidden_size, v.num_hidden_layers);
        match (part, name) {
            (ModelPart::Vision, "fc1") => (vd, v.intermediate_size, vl),
            (ModelPart::Vision, "fc2") => (v.intermediate_size, vd, vl),
            (ModelPart::Vision, _) => (vd, vd, vl),
            (ModelPart::Connector, _) => (vd * self.scale_factor.pow(2), t.hidden_size, 1),
            (ModelPart::Text, _) => t.linear_dims(name),
        }
    }

    /// The config as HF `config.json` JSON: the parsed original with every interpreted field
    /// overwritten by this struct's values (or a complete fresh config when built in code).
    pub fn to_hf_json(&self) -> Value {
        let mut top = as_object(&self.raw);
        let v = &self.vision;
        let t = &self.text;
        top.insert("model_type".into(), json!(self.family.model_type()));
        top.entry("architectures")
            .or_insert_with(|| json!([self.family.architecture()]));
        top.insert("image_token_id".into(), json!(self.image_token_id));
        top.insert("scale_factor".into(), json!(self.scale_factor));
        top.insert(
            "tie_word_embeddings".into(),
            json!(self.tie_word_embeddings),
        );

        let mut vision = as_object(top.get("vision_config").unwrap_or(&Value::Null));
        vision
            .entry("model_type")
            .or_insert_with(|| json!(self.family.vision_model_type()));
        for (key, value) in [
            ("hidden_size", json!(v.hidden_size)),
            ("intermediate_size", json!(v.intermediate_size)),
            ("num_hidden_layers", json!(v.num_hidden_layers)),
            ("num_attention_heads", json!(v.num_attention_heads)),
            ("num_channels", json!(v.num_channels)),
            ("image_size", json!(v.image_size)),
            ("patch_size", json!(v.patch_size)),
            ("hidden_act", json!("gelu_pytorch_tanh")),
            ("layer_norm_eps", json!(v.layer_norm_eps)),
            ("initializer_range", json!(v.initializer_range)),
        ] {
            vision.insert(key.into(), value);
        }
        top.insert("vision_config".into(), Value::Object(vision));

        let text = text_config_json(t, self.tie_word_embeddings, top.get("text_config"));
        top.insert("text_config".into(), text);
        Value::Object(top)
    }

    /// Writes [`Self::to_hf_json`] to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text =
            serde_json::to_string_pretty(&self.to_hf_json()).expect("JSON values always serialise");
        write_atomic(path, text.as_bytes()).map_err(ModelError::io("writing", path))
    }
}

/// The Llama text model's own constraints (sizes positive, GQA groups whole, rotary head
/// width even), errors naming the `text_config.` field.
pub(crate) fn validate_text(t: &TextConfig) -> Result<()> {
    let positive = [
        ("vocab_size", t.vocab_size),
        ("hidden_size", t.hidden_size),
        ("intermediate_size", t.intermediate_size),
        ("num_attention_heads", t.num_attention_heads),
        ("num_key_value_heads", t.num_key_value_heads),
        ("head_dim", t.head_dim),
    ];
    for (field, value) in positive {
        if value == 0 {
            return Err(ModelError::field(
                format!("text_config.{field}"),
                "must be positive",
            ));
        }
    }
    if !t.num_attention_heads.is_multiple_of(t.num_key_value_heads) {
        return Err(ModelError::field(
            "text_config.num_key_value_heads",
            format!(
                "{} does not divide num_attention_heads {}",
                t.num_key_value_heads, t.num_attention_heads
            ),
        ));
    }
    if !t.head_dim.is_multiple_of(2) {
        return Err(ModelError::field(
            "text_config.head_dim",
            "must be even for rotary embeddings",
        ));
    }
    Ok(())
}

/// `text_config` as HF writes it for the Llama model `t`: `existing` (the parsed original, or
/// null) with every interpreted field overwritten.
pub(crate) fn text_config_json(t: &TextConfig, tied: bool, existing: Option<&Value>) -> Value {
    let mut text = as_object(existing.unwrap_or(&Value::Null));
    text.entry("model_type").or_insert_with(|| json!("llama"));
    let eos = match t.eos_token_ids.as_slice() {
        [] => Value::Null,
        [one] => json!(one),
        many => json!(many),
    };
    for (key, value) in [
        ("vocab_size", json!(t.vocab_size)),
        ("hidden_size", json!(t.hidden_size)),
        ("intermediate_size", json!(t.intermediate_size)),
        ("num_hidden_layers", json!(t.num_hidden_layers)),
        ("num_attention_heads", json!(t.num_attention_heads)),
        ("num_key_value_heads", json!(t.num_key_value_heads)),
        ("head_dim", json!(t.head_dim)),
        ("hidden_act", json!("silu")),
        ("rms_norm_eps", json!(t.rms_norm_eps)),
        ("rope_theta", json!(t.rope_theta)),
        (
            "rope_parameters",
            json!({"rope_type": "default", "rope_theta": t.rope_theta}),
        ),
        ("max_position_embeddings", json!(t.max_position_embeddings)),
        ("initializer_range", json!(t.initializer_range)),
        ("attention_bias", json!(false)),
        ("mlp_bias", json!(false)),
        ("tie_word_embeddings", json!(tied)),
        ("bos_token_id", json!(t.bos_token_id)),
        ("eos_token_id", eos),
        ("pad_token_id", json!(t.pad_token_id)),
    ] {
        text.insert(key.into(), value);
    }
    text.remove("rope_scaling");
    Value::Object(text)
}

/// The JSON object `value` as a map (empty for anything else).
pub(crate) fn as_object(value: &Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    }
}

fn parse_vision(f: &Fields) -> Result<VisionConfig> {
    f.expect_str("hidden_act", "gelu_pytorch_tanh")?;
    Ok(VisionConfig {
        hidden_size: f.usize("hidden_size", Some(1152))?,
        intermediate_size: f.usize("intermediate_size", Some(3072))?,
        num_hidden_layers: f.usize("num_hidden_layers", Some(12))?,
        num_attention_heads: f.usize("num_attention_heads", Some(16))?,
        num_channels: f.usize("num_channels", Some(3))?,
        image_size: f.usize("image_size", Some(224))?,
        patch_size: f.usize("patch_size", Some(32))?,
        layer_norm_eps: f.f64("layer_norm_eps", Some(1e-6))?,
        initializer_range: f.f64("initializer_range", Some(0.02))?,
    })
}

/// Parses a Llama `text_config` (HF's `LlamaConfig` defaults), refusing what the text model
/// does not implement.
pub(crate) fn parse_text(f: &Fields) -> Result<TextConfig> {
    if let Some(model_type) = f.opt_str("model_type")? {
        if model_type != "llama" {
            return Err(f.error(
                "model_type",
                format!("`{model_type}` is not supported (expected `llama`)"),
            ));
        }
    }
    f.expect_str("hidden_act", "silu")?;
    for flag in [
        "attention_bias",
        "mlp_bias",
        "qk_layer_norms",
        "use_resampler",
        "rope_interleaved",
    ] {
        if f.opt_bool(flag)? == Some(true) {
            return Err(f.error(flag, "`true` is not supported"));
        }
    }
    if !f.get("rope_scaling").is_none_or(Value::is_null) {
        return Err(f.error(
            "rope_scaling",
            "RoPE scaling is not supported (must be null)",
        ));
    }
    let rope_theta = match f.get("rope_parameters").filter(|v| !v.is_null()) {
        Some(_) => {
            let rope = f.child("rope_parameters")?;
            if let Some(kind) = rope.opt_str("rope_type")? {
                if kind != "default" {
                    return Err(rope.error(
                        "rope_type",
                        format!("`{kind}` is not supported (expected `default`)"),
                    ));
                }
            }
            let extra: Vec<&String> = rope
                .obj
                .keys()
                .filter(|k| !matches!(k.as_str(), "rope_type" | "rope_theta"))
                .collect();
            if let Some(key) = extra.first() {
                return Err(rope.error(key, "RoPE scaling parameters are not supported"));
            }
            match rope.opt_f64("rope_theta")? {
                Some(theta) => theta,
                None => f.f64("rope_theta", Some(10_000.0))?,
            }
        }
        None => f.f64("rope_theta", Some(10_000.0))?,
    };
    let hidden_size = f.usize("hidden_size", Some(4096))?;
    let num_attention_heads = f.usize("num_attention_heads", Some(32))?;
    if num_attention_heads == 0 {
        return Err(f.error("num_attention_heads", "must be positive"));
    }
    let head_dim = match f.get("head_dim").filter(|v| !v.is_null()) {
        Some(_) => f.usize("head_dim", None)?,
        None => hidden_size / num_attention_heads,
    };
    let num_key_value_heads = match f.get("num_key_value_heads").filter(|v| !v.is_null()) {
        Some(_) => f.usize("num_key_value_heads", None)?,
        None => num_attention_heads,
    };
    let eos_token_ids = parse_eos_token_ids(f)?;
    Ok(TextConfig {
        vocab_size: f.usize("vocab_size", Some(32_000))?,
        hidden_size,
        intermediate_size: f.usize("intermediate_size", Some(11_008))?,
        num_hidden_layers: f.usize("num_hidden_layers", Some(32))?,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        rms_norm_eps: f.f64("rms_norm_eps", Some(1e-6))?,
        rope_theta,
        max_position_embeddings: f.usize("max_position_embeddings", Some(2048))?,
        initializer_range: f.f64("initializer_range", Some(0.02))?,
        bos_token_id: f.opt_u32("bos_token_id")?,
        eos_token_ids,
        pad_token_id: f.opt_u32("pad_token_id")?,
        qkv_bias: false,
        mrope_section: None,
    })
}

/// `eos_token_id`: a token id or a list of them (empty when absent or null).
pub(crate) fn parse_eos_token_ids(f: &Fields) -> Result<Vec<u32>> {
    match f.get("eos_token_id") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_u64().and_then(|id| u32::try_from(id).ok()))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| f.error("eos_token_id", "expected a token id or a list of token ids")),
        Some(_) => Ok(vec![f.u32("eos_token_id", None)?]),
    }
}

/// The activation HF names in field `key` (`default` when absent), refusing unsupported ones.
pub(crate) fn parse_activation(f: &Fields, key: &str, default: &str) -> Result<Activation> {
    let name = f.str(key, Some(default))?;
    Activation::from_hf_name(&name).ok_or_else(|| {
        f.error(
            key,
            format!(
                "`{name}` is not supported (expected one of {})",
                Activation::supported_names()
            ),
        )
    })
}

/// A JSON object with typed, field-path-aware accessors.
pub(crate) struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(value: &'a Value, prefix: &str) -> Result<Self> {
        match value {
            Value::Object(obj) => Ok(Self {
                obj,
                prefix: prefix.to_owned(),
            }),
            _ => Err(ModelError::field(
                if prefix.is_empty() { "<root>" } else { prefix },
                "expected a JSON object",
            )),
        }
    }

    pub(crate) fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    pub(crate) fn error(&self, key: &str, message: impl Into<String>) -> ModelError {
        ModelError::field(self.path(key), message)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key)
    }

    pub(crate) fn child(&self, key: &str) -> Result<Fields<'a>> {
        match self.obj.get(key) {
            Some(value) => Fields::new(value, &self.path(key)),
            None => Err(self.error(key, "missing")),
        }
    }

    pub(crate) fn present(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn usize(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match self.present(key) {
            Some(value) => value
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    self.error(
                        key,
                        format!("expected a non-negative integer, found {value}"),
                    )
                }),
            None => default.ok_or_else(|| self.error(key, "missing")),
        }
    }

    /// A list of non-negative integers (`default` when absent).
    pub(crate) fn usize_list(&self, key: &str, default: Option<&[usize]>) -> Result<Vec<usize>> {
        let Some(value) = self.present(key) else {
            return default
                .map(<[usize]>::to_vec)
                .ok_or_else(|| self.error(key, "missing"));
        };
        value
            .as_array()
            .and_then(|items| {
                let each = |v: &Value| v.as_u64().and_then(|n| usize::try_from(n).ok());
                items.iter().map(each).collect()
            })
            .ok_or_else(|| self.error(key, format!("expected a list of integers, found {value}")))
    }

    pub(crate) fn u32(&self, key: &str, default: Option<u32>) -> Result<u32> {
        let value = self.usize(key, default.map(|d| d as usize))?;
        u32::try_from(value)
            .map_err(|_| self.error(key, format!("{value} does not fit a token id")))
    }

    pub(crate) fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.present(key).map(|_| self.u32(key, None)).transpose()
    }

    pub(crate) fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.present(key)
            .map(|value| {
                value
                    .as_f64()
                    .ok_or_else(|| self.error(key, format!("expected a number, found {value}")))
            })
            .transpose()
    }

    pub(crate) fn f64(&self, key: &str, default: Option<f64>) -> Result<f64> {
        self.opt_f64(key)?
            .or(default)
            .ok_or_else(|| self.error(key, "missing"))
    }

    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.present(key)
            .map(|value| {
                value.as_bool().ok_or_else(|| {
                    self.error(key, format!("expected true or false, found {value}"))
                })
            })
            .transpose()
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<String>> {
        self.present(key)
            .map(|value| {
                value
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.error(key, format!("expected a string, found {value}")))
            })
            .transpose()
    }

    pub(crate) fn str(&self, key: &str, default: Option<&str>) -> Result<String> {
        self.opt_str(key)?
            .or_else(|| default.map(str::to_owned))
            .ok_or_else(|| self.error(key, "missing"))
    }

    /// Fails unless `key` is absent or equal to `expected`.
    pub(crate) fn expect_str(&self, key: &str, expected: &str) -> Result<()> {
        match self.opt_str(key)? {
            Some(found) if found != expected => Err(self.error(
                key,
                format!("`{found}` is not supported (expected `{expected}`)"),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({
            "model_type": "idefics3",
            "image_token_id": 5,
            "scale_factor": 2,
            "vision_config": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                              "num_attention_heads": 2, "image_size": 16, "patch_size": 4},
            "text_config": {"vocab_size": 40, "hidden_size": 24, "intermediate_size": 48,
                            "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
                            "rope_theta": 500.0, "some_unknown_field": [1, 2]}
        })
    }

    fn error_field(value: Value) -> String {
        match Idefics3Config::from_value(value) {
            Err(ModelError::ConfigField { field, .. }) => field,
            other => panic!("expected a config field error, got {other:?}"),
        }
    }

    #[test]
    fn parses_defaults_and_derived_sizes() {
        let c = Idefics3Config::from_value(base()).unwrap();
        assert_eq!(c.text.head_dim, 6);
        assert_eq!(c.text.rope_theta, 500.0);
        assert_eq!(c.tokens_per_tile(), 4);
        assert!(!c.tie_word_embeddings);
    }

    #[test]
    fn rope_theta_and_tying_from_nested_locations() {
        let mut v = base();
        v["text_config"]["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 1234.0});
        v["text_config"]["tie_word_embeddings"] = json!(true);
        let c = Idefics3Config::from_value(v.clone()).unwrap();
        assert_eq!(c.text.rope_theta, 1234.0);
        assert!(c.tie_word_embeddings);
        v["tie_word_embeddings"] = json!(false);
        assert!(!Idefics3Config::from_value(v).unwrap().tie_word_embeddings);
    }

    #[test]
    fn unsupported_values_name_their_field() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("model_type", Box::new(|v| v["model_type"] = json!("llava"))),
            (
                "text_config.rope_scaling",
                Box::new(|v| v["text_config"]["rope_scaling"] = json!({"factor": 2.0})),
            ),
            (
                "text_config.hidden_act",
                Box::new(|v| v["text_config"]["hidden_act"] = json!("gelu")),
            ),
            (
                "text_config.attention_bias",
                Box::new(|v| v["text_config"]["attention_bias"] = json!(true)),
            ),
            (
                "text_config.mlp_bias",
                Box::new(|v| v["text_config"]["mlp_bias"] = json!(true)),
            ),
            (
                "vision_config.hidden_act",
                Box::new(|v| v["vision_config"]["hidden_act"] = json!("relu")),
            ),
            (
                "text_config.rope_parameters.rope_type",
                Box::new(|v| {
                    v["text_config"]["rope_parameters"] =
                        json!({"rope_type": "yarn", "rope_theta": 1.0})
                }),
            ),
            (
                "text_config.vocab_size",
                Box::new(|v| v["text_config"]["vocab_size"] = json!("many")),
            ),
            ("scale_factor", Box::new(|v| v["scale_factor"] = json!(3))),
            (
                "text_config",
                Box::new(|v| drop(v.as_object_mut().unwrap().remove("text_config"))),
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
        let c = Idefics3Config::from_value(base()).unwrap();
        let out = c.to_hf_json();
        assert_eq!(out["text_config"]["some_unknown_field"], json!([1, 2]));
        assert_eq!(
            out["text_config"]["rope_parameters"]["rope_theta"],
            json!(500.0)
        );
        let again = Idefics3Config::from_value(out).unwrap();
        assert_eq!(
            Idefics3Config {
                raw: Value::Null,
                ..again
            },
            Idefics3Config {
                raw: Value::Null,
                ..c
            }
        );
    }
}
