//! `vision_config` of a Qwen2-VL or Qwen2.5-VL checkpoint: one struct for both towers, whose
//! [`TowerVariant`] holds what sets Qwen2.5-VL's apart (RMSNorms, a SwiGLU MLP of explicit
//! width, window attention), parsed with HF's defaults (`Qwen2VLVisionConfig`,
//! `Qwen2_5_VLVisionConfig`) and field-named errors, validated, and written back in HF's names.
//!
//! The two configs name the same widths differently: Qwen2-VL's tower width is `embed_dim` and
//! its merger's output `hidden_size`; Qwen2.5-VL's are `hidden_size` and `out_hidden_size`.
//! Here they are always [`Qwen2VisionConfig::embed_dim`] and [`Qwen2VisionConfig::hidden_size`].

use serde_json::{json, Value};

use crate::activation::Activation;
use crate::config::{as_object, parse_activation, Fields};
use crate::error::{ModelError, Result};

/// What distinguishes the two towers.
#[derive(Debug, Clone, PartialEq)]
pub enum TowerVariant {
    /// Qwen2-VL: LayerNorms, an `fc1 → act → fc2` MLP `mlp_ratio · embed_dim` wide, a LayerNorm
    /// before the merger, attention within each image.
    Qwen2Vl {
        /// MLP width over `embed_dim`.
        mlp_ratio: f64,
    },
    /// Qwen2.5-VL: RMSNorms, a SwiGLU MLP with biases, an RMSNorm before the merger, and
    /// attention within windows except in the full-attention blocks.
    Qwen2_5Vl(WindowedTower),
}

/// Qwen2.5-VL's tower specifics.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowedTower {
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Side of an attention window in pixels (`window_size`).
    pub window_size: usize,
    /// The blocks that attend over the whole image rather than within windows.
    pub fullatt_block_indexes: Vec<usize>,
}

/// `vision_config`: the vision tower (`visual`).
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
    /// Input channels (3).
    pub in_channels: usize,
    /// Side of a patch in pixels.
    pub patch_size: usize,
    /// Side of the square of patches the merger folds into one token.
    pub spatial_merge_size: usize,
    /// Frames per patch (a still image is repeated to this many).
    pub temporal_patch_size: usize,
    /// The MLP's activation (`quick_gelu` for Qwen2-VL, `silu` for Qwen2.5-VL).
    pub hidden_act: Activation,
    /// Std of the normal initialisation.
    pub initializer_range: f64,
    /// Base of the 2-D rotary embedding.
    pub rope_theta: f64,
    /// Qwen2-VL's or Qwen2.5-VL's tower.
    pub variant: TowerVariant,
}

impl Qwen2VisionConfig {
    /// Width of the MLP: `int(embed_dim · mlp_ratio)` (Qwen2-VL, as HF computes it) or
    /// `intermediate_size` (Qwen2.5-VL).
    pub fn intermediate_size(&self) -> usize {
        match &self.variant {
            TowerVariant::Qwen2Vl { mlp_ratio } => (self.embed_dim as f64 * mlp_ratio) as usize,
            TowerVariant::Qwen2_5Vl(w) => w.intermediate_size,
        }
    }

    /// Qwen2.5-VL's window settings (`None` for Qwen2-VL).
    pub fn windows(&self) -> Option<&WindowedTower> {
        match &self.variant {
            TowerVariant::Qwen2Vl { .. } => None,
            TowerVariant::Qwen2_5Vl(w) => Some(w),
        }
    }

    /// Merged tokens along one side of a window (HF's `window_size // spatial_merge_size //
    /// patch_size`), `None` for Qwen2-VL.
    pub fn window_tokens(&self) -> Option<usize> {
        let w = self.windows()?;
        Some(w.window_size / self.spatial_merge_size.max(1) / self.patch_size.max(1))
    }

    /// Whether block `index` attends over each whole image (every Qwen2-VL block).
    pub fn full_attention(&self, index: usize) -> bool {
        self.windows()
            .is_none_or(|w| w.fullatt_block_indexes.contains(&index))
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

    /// Checks the constraints the tower needs; errors name the `vision_config` field.
    pub(crate) fn validate(&self) -> Result<()> {
        let field = |name: &str| format!("vision_config.{name}");
        let (width, mlp) = match self.variant {
            TowerVariant::Qwen2Vl { .. } => ("embed_dim", "mlp_ratio"),
            TowerVariant::Qwen2_5Vl(_) => ("hidden_size", "intermediate_size"),
        };
        for (name, value) in [
            (width, self.embed_dim),
            (self.out_width_name(), self.hidden_size),
            ("num_heads", self.num_heads),
            ("in_channels", self.in_channels),
            ("patch_size", self.patch_size),
            ("spatial_merge_size", self.spatial_merge_size),
            ("temporal_patch_size", self.temporal_patch_size),
            (mlp, self.intermediate_size()),
        ] {
            if value == 0 {
                return Err(ModelError::field(field(name), "must be positive"));
            }
        }
        if !self.embed_dim.is_multiple_of(self.num_heads) || !self.head_dim().is_multiple_of(4) {
            return Err(ModelError::field(
                field("num_heads"),
                format!(
                    "{width} {} / num_heads {} must be a multiple of 4 (2-D rotary embedding)",
                    self.embed_dim, self.num_heads
                ),
            ));
        }
        self.validate_windows()
    }

    fn validate_windows(&self) -> Result<()> {
        let Some(w) = self.windows() else {
            return Ok(());
        };
        let unit = self.spatial_merge_size * self.patch_size;
        if w.window_size < unit {
            return Err(ModelError::field(
                "vision_config.window_size",
                format!(
                    "{} is less than one merged token (spatial_merge_size · patch_size = {unit} pixels)",
                    w.window_size
                ),
            ));
        }
        if let Some(bad) = w.fullatt_block_indexes.iter().find(|&&i| i >= self.depth) {
            return Err(ModelError::field(
                "vision_config.fullatt_block_indexes",
                format!("block {bad} is beyond the tower's depth {}", self.depth),
            ));
        }
        Ok(())
    }

    /// HF's name of the merger's output width.
    fn out_width_name(&self) -> &'static str {
        match self.variant {
            TowerVariant::Qwen2Vl { .. } => "hidden_size",
            TowerVariant::Qwen2_5Vl(_) => "out_hidden_size",
        }
    }

    /// `existing` (the parsed `vision_config`, if any) with every interpreted field written in
    /// HF's names for the variant.
    pub(crate) fn to_json(&self, existing: Option<&Value>) -> Value {
        let mut vision = as_object(existing.unwrap_or(&Value::Null));
        let common = [
            ("depth", json!(self.depth)),
            ("num_heads", json!(self.num_heads)),
            ("in_channels", json!(self.in_channels)),
            ("patch_size", json!(self.patch_size)),
            ("spatial_merge_size", json!(self.spatial_merge_size)),
            ("temporal_patch_size", json!(self.temporal_patch_size)),
            ("hidden_act", json!(self.hidden_act.hf_name())),
            ("initializer_range", json!(self.initializer_range)),
        ];
        let specific = match &self.variant {
            TowerVariant::Qwen2Vl { mlp_ratio } => vec![
                ("model_type", json!("qwen2_vl_vision")),
                ("embed_dim", json!(self.embed_dim)),
                ("hidden_size", json!(self.hidden_size)),
                ("mlp_ratio", number(*mlp_ratio)),
            ],
            TowerVariant::Qwen2_5Vl(w) => vec![
                ("model_type", json!("qwen2_5_vl_vision")),
                ("hidden_size", json!(self.embed_dim)),
                ("out_hidden_size", json!(self.hidden_size)),
                ("intermediate_size", json!(w.intermediate_size)),
                ("window_size", json!(w.window_size)),
                ("fullatt_block_indexes", json!(w.fullatt_block_indexes)),
            ],
        };
        for (key, value) in common.into_iter().chain(specific) {
            vision.insert(key.into(), value);
        }
        Value::Object(vision)
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

/// Parses `vision_config` (`f`) of Qwen2-VL, or of Qwen2.5-VL when `qwen2_5`.
pub(crate) fn parse_vision(f: &Fields, qwen2_5: bool) -> Result<Qwen2VisionConfig> {
    let expected: &[&str] = if qwen2_5 {
        &["qwen2_5_vl", "qwen2_5_vl_vision"]
    } else {
        &["qwen2_vl", "qwen2_vl_vision"]
    };
    if let Some(model_type) = f.opt_str("model_type")? {
        if !expected.contains(&model_type.as_str()) {
            return Err(f.error(
                "model_type",
                format!(
                    "`{model_type}` is not supported (expected `{}`)",
                    expected[1]
                ),
            ));
        }
    }
    let in_channels = match f.present("in_channels") {
        Some(_) => f.usize("in_channels", None)?,
        None => f.usize("in_chans", Some(3))?,
    };
    let rope_theta = match f.present("rope_parameters") {
        Some(_) => f
            .child("rope_parameters")?
            .f64("rope_theta", Some(10_000.0))?,
        None => 10_000.0,
    };
    let (embed_dim, hidden_size, hidden_act, variant) = if qwen2_5 {
        parse_qwen2_5_specifics(f)?
    } else {
        let variant = TowerVariant::Qwen2Vl {
            mlp_ratio: f.f64("mlp_ratio", Some(4.0))?,
        };
        let act = parse_activation(f, "hidden_act", "quick_gelu")?;
        (
            f.usize("embed_dim", Some(1280))?,
            f.usize("hidden_size", Some(3584))?,
            act,
            variant,
        )
    };
    Ok(Qwen2VisionConfig {
        depth: f.usize("depth", Some(32))?,
        embed_dim,
        hidden_size,
        num_heads: f.usize("num_heads", Some(16))?,
        in_channels,
        patch_size: f.usize("patch_size", Some(14))?,
        spatial_merge_size: f.usize("spatial_merge_size", Some(2))?,
        temporal_patch_size: f.usize("temporal_patch_size", Some(2))?,
        hidden_act,
        initializer_range: f.f64("initializer_range", Some(0.02))?,
        rope_theta,
        variant,
    })
}

/// Qwen2.5-VL's widths, activation (the SwiGLU MLP is SiLU-gated) and window settings, with
/// `Qwen2_5_VLVisionConfig`'s defaults.
fn parse_qwen2_5_specifics(f: &Fields) -> Result<(usize, usize, Activation, TowerVariant)> {
    f.expect_str("hidden_act", "silu")?;
    let windows = WindowedTower {
        intermediate_size: f.usize("intermediate_size", Some(3420))?,
        window_size: f.usize("window_size", Some(112))?,
        fullatt_block_indexes: f.usize_list("fullatt_block_indexes", Some(&[7, 15, 23, 31]))?,
    };
    Ok((
        f.usize("hidden_size", Some(3584))?,
        f.usize("out_hidden_size", Some(3584))?,
        Activation::Silu,
        TowerVariant::Qwen2_5Vl(windows),
    ))
}
