//! What the registry asks of a Qwen2-VL or Qwen2.5-VL config beyond parsing: a small config to
//! train from scratch, the architecture in words (`safeaware inspect`), the shapes of the
//! LoRA-targetable layers and of the vision tower (`safeaware plan`), and the parameter counts.
//!
//! Both take images at their own resolution; where a fixed size is asked for (the plan, the
//! benchmark's synthetic inputs), the image is [`PLAN_IMAGE_SIDE`] pixels square.

use serde_json::Value;

use crate::activation::Activation;
use crate::config::TextConfig;
use crate::error::Result;
use crate::params::{linear_params, vision_layer_params, ParamCounts};
use crate::qwen2_vl::config::{Qwen2VisionConfig, Qwen2VlConfig};
use crate::qwen2_vl::vision_config::{TowerVariant, WindowedTower};
use crate::registry::{ScratchSpec, VisionShape};
use crate::vlm::ModelPart;

/// Side of the square image assumed where one size must stand for all (448 px: a 32 × 32
/// patch grid, 256 tokens, at Qwen2-VL's patch 14 and merge 2).
pub const PLAN_IMAGE_SIDE: usize = 448;

impl Qwen2VlConfig {
    /// A small Qwen2-VL of `spec`'s dimensions, to train from scratch: 4 heads in both towers,
    /// 2 key/value heads, tower MLP 4× wide, merge 2, temporal patch 2, M-RoPE sections in
    /// Qwen2-VL's 16:24:24 proportion, a tied LM head (`spec.scale_factor` is Idefics3's and
    /// unused; the vision start/end and video token ids keep HF's defaults).
    pub fn scratch(spec: &ScratchSpec) -> Result<Self> {
        let variant = TowerVariant::Qwen2Vl { mlp_ratio: 4.0 };
        Self::scratch_with(spec, variant, Activation::QuickGelu)
    }

    /// A small Qwen2.5-VL of `spec`'s dimensions: as [`Self::scratch`], with a SwiGLU tower MLP
    /// 4× wide, windows of 2 × 2 merged tokens, and the last block attending over whole images.
    pub fn scratch_qwen2_5(spec: &ScratchSpec) -> Result<Self> {
        let variant = TowerVariant::Qwen2_5Vl(WindowedTower {
            intermediate_size: 4 * spec.vision_width,
            window_size: 2 * 2 * spec.patch_size,
            fullatt_block_indexes: vec![spec.vision_layers.saturating_sub(1)],
        });
        Self::scratch_with(spec, variant, Activation::Silu)
    }

    fn scratch_with(spec: &ScratchSpec, variant: TowerVariant, act: Activation) -> Result<Self> {
        let mut text = TextConfig::scratch(spec);
        text.qkv_bias = true;
        let half = text.head_dim / 2;
        let side = half * 3 / 8;
        text.mrope_section = Some(vec![half - 2 * side, side, side]);
        let config = Self {
            image_token_id: spec.image_token_id,
            video_token_id: 151_656,
            vision_start_token_id: 151_652,
            vision_end_token_id: 151_653,
            tie_word_embeddings: true,
            vision: Qwen2VisionConfig {
                depth: spec.vision_layers,
                embed_dim: spec.vision_width,
                hidden_size: spec.text_width,
                num_heads: 4,
                in_channels: 3,
                patch_size: spec.patch_size,
                spatial_merge_size: 2,
                temporal_patch_size: 2,
                hidden_act: act,
                initializer_range: 0.02,
                rope_theta: 10_000.0,
                variant,
            },
            text,
            raw: Value::Null,
        };
        config.validate()?;
        Ok(config)
    }

    /// Patches along one side of the [`PLAN_IMAGE_SIDE`] image (a multiple of the merge size).
    pub fn plan_patches_per_side(&self) -> usize {
        let v = &self.vision;
        let side = PLAN_IMAGE_SIDE / v.patch_size.max(1);
        (side / v.spatial_merge_size).max(1) * v.spatial_merge_size
    }

    /// The architecture, line by line, as `safeaware inspect` prints it.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let v = &self.vision;
        let m = v.spatial_merge_size;
        vec![
            (
                "vision",
                format!(
                    "{} ViT, {} blocks, width {}, mlp {}, {} heads, {}px patches x {} frames, 2-D rope, {}",
                    self.tower_name(),
                    v.depth,
                    v.embed_dim,
                    v.intermediate_size(),
                    v.num_heads,
                    v.patch_size,
                    v.temporal_patch_size,
                    self.tower_detail()
                ),
            ),
            (
                "connector",
                format!(
                    "patch merger {m}x{m}, {} -> {} -> {}, gelu",
                    v.merged_width(),
                    v.merged_width(),
                    v.hidden_size
                ),
            ),
            (
                "text",
                format!(
                    "{}, q/k/v bias, M-RoPE sections {:?}",
                    self.text.describe(),
                    self.text.mrope_section.as_deref().unwrap_or_default()
                ),
            ),
            (
                "tokens per image",
                format!(
                    "dynamic: one per {m}x{m} patches ({} for a {PLAN_IMAGE_SIDE}px square; image token id {})",
                    self.tokens_per_image(None),
                    self.image_token_id
                ),
            ),
        ]
    }

    /// The tower's family name.
    fn tower_name(&self) -> &'static str {
        if self.is_qwen2_5() {
            "Qwen2.5-VL"
        } else {
            "Qwen2-VL"
        }
    }

    /// The tower's MLP and attention in words.
    fn tower_detail(&self) -> String {
        let v = &self.vision;
        match v.windows() {
            None => v.hidden_act.hf_name().to_string(),
            Some(w) => format!(
                "swiglu, rmsnorm, {}px windows, full attention in blocks {:?}",
                w.window_size, w.fullatt_block_indexes
            ),
        }
    }

    /// `(in, out, how many)` of the LoRA-targetable linear layers named `name` in `part`.
    pub fn linear_dims(&self, part: ModelPart, name: &str) -> (usize, usize, usize) {
        let v = &self.vision;
        let (d, m, n) = (v.embed_dim, v.intermediate_size(), v.depth);
        match (part, name) {
            (ModelPart::Vision, "qkv") => (d, 3 * d, n),
            (ModelPart::Vision, "fc1" | "gate_proj" | "up_proj") => (d, m, n),
            (ModelPart::Vision, "fc2" | "down_proj") => (m, d, n),
            (ModelPart::Vision, _) => (d, d, n),
            (ModelPart::Connector, _) => (v.merged_width(), v.hidden_size, 1),
            (ModelPart::Text, _) => self.text.linear_dims(name),
        }
    }

    /// The vision tower's shape for the memory plan: for an image of `grid` patches (rows,
    /// columns), by default the [`PLAN_IMAGE_SIDE`] image's.
    pub fn vision_shape(&self, grid: Option<[usize; 2]>) -> VisionShape {
        let v = &self.vision;
        let patches = self.plan_grid(grid).iter().product::<usize>();
        VisionShape {
            hidden_size: v.embed_dim,
            intermediate_size: v.intermediate_size(),
            layers: v.depth,
            heads: v.num_heads,
            positions: patches,
            connector_floats: patches * v.embed_dim,
        }
    }

    /// Language-model tokens of an image of `grid` patches, by default the
    /// [`PLAN_IMAGE_SIDE`] image's.
    pub fn tokens_per_image(&self, grid: Option<[usize; 2]>) -> usize {
        let patches: usize = self.plan_grid(grid).iter().product();
        patches / self.vision.spatial_merge_size.pow(2).max(1)
    }

    /// `grid`, or the [`PLAN_IMAGE_SIDE`] image's.
    fn plan_grid(&self, grid: Option<[usize; 2]>) -> [usize; 2] {
        grid.unwrap_or([self.plan_patches_per_side(); 2])
    }

    /// Parameter counts by part: the tower (patch embedding and blocks), the merger, the Qwen2
    /// text model (q/k/v biases) and its head.
    pub fn param_counts(&self) -> ParamCounts {
        let v = &self.vision;
        let (d, m, merged) = (v.embed_dim, v.intermediate_size(), v.merged_width());
        // Qwen2-VL's LayerNorms have a bias, Qwen2.5-VL's RMSNorms none.
        let (block, norm) = match v.variant {
            TowerVariant::Qwen2Vl { .. } => (vision_layer_params(d, m), 2 * d),
            TowerVariant::Qwen2_5Vl(_) => {
                let attention = linear_params(d, 3 * d, true) + linear_params(d, d, true);
                let mlp = 2 * linear_params(d, m, true) + linear_params(m, d, true);
                (attention + mlp + 2 * d, d)
            }
        };
        let vision = v.patch_values() * d + v.depth * block;
        let connector =
            norm + linear_params(merged, merged, true) + linear_params(merged, v.hidden_size, true);
        ParamCounts::with_text(vision, connector, &self.text, self.tie_word_embeddings)
    }
}
