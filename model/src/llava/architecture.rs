//! What the registry asks of a LLaVA config beyond parsing: a small config to train from
//! scratch, the architecture in words (`safeaware inspect`), the shapes of the LoRA-targetable
//! layers and of the vision tower (`safeaware plan`).

use serde_json::Value;

use crate::activation::Activation;
use crate::config::TextConfig;
use crate::error::Result;
use crate::llava::config::{ClipVisionConfig, FeatureLayers, FeatureSelect, LlavaConfig};
use crate::registry::{ScratchSpec, VisionShape};
use crate::vlm::ModelPart;

impl LlavaConfig {
    /// A small LLaVA of `spec`'s dimensions, to train from scratch: 4 heads in the tower, MLP
    /// 4× wide, LLaVA-1.5's feature choice (layer -2, class token dropped, exact-gelu
    /// projector with biases), a tied LM head (`spec.scale_factor` is Idefics3's and unused).
    pub fn scratch(spec: &ScratchSpec) -> Result<Self> {
        let patches = (spec.image_size / spec.patch_size.max(1)).pow(2);
        let config = Self {
            image_token_index: spec.image_token_id,
            image_seq_length: patches,
            projector_hidden_act: Activation::Gelu,
            multimodal_projector_bias: true,
            vision_feature_select_strategy: FeatureSelect::Default,
            vision_feature_layer: FeatureLayers::One(if spec.vision_layers > 1 { -2 } else { -1 }),
            tie_word_embeddings: true,
            vision: ClipVisionConfig {
                hidden_size: spec.vision_width,
                intermediate_size: spec.vision_width * 4,
                num_hidden_layers: spec.vision_layers,
                num_attention_heads: 4,
                num_channels: 3,
                image_size: spec.image_size,
                patch_size: spec.patch_size,
                layer_norm_eps: 1e-5,
                hidden_act: Activation::QuickGelu,
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
        let v = &self.vision;
        vec![
            (
                "vision",
                format!(
                    "CLIP, {} layers, hidden {}, mlp {}, {} heads, {}px images, {}px patches, {}",
                    v.num_hidden_layers,
                    v.hidden_size,
                    v.intermediate_size,
                    v.num_attention_heads,
                    v.image_size,
                    v.patch_size,
                    v.hidden_act.hf_name()
                ),
            ),
            (
                "connector",
                format!(
                    "layers {:?} ({}), {} -> {} -> {}, {}",
                    self.vision_feature_layer.indices(),
                    self.vision_feature_select_strategy.hf_name(),
                    self.projector_input_size(),
                    self.text.hidden_size,
                    self.text.hidden_size,
                    self.projector_hidden_act.hf_name()
                ),
            ),
            ("text", self.text.describe()),
            (
                "tokens per image",
                format!(
                    "{} (image token id {})",
                    self.tokens_per_image(),
                    self.image_token_index
                ),
            ),
        ]
    }

    /// `(in, out, how many)` of the LoRA-targetable linear layers named `name` in `part`.
    pub fn linear_dims(&self, part: ModelPart, name: &str) -> (usize, usize, usize) {
        let v = &self.vision;
        let (vd, vl, t) = (v.hidden_size, v.num_hidden_layers, self.text.hidden_size);
        match (part, name) {
            (ModelPart::Vision, "fc1") => (vd, v.intermediate_size, vl),
            (ModelPart::Vision, "fc2") => (v.intermediate_size, vd, vl),
            (ModelPart::Vision, _) => (vd, vd, vl),
            (ModelPart::Connector, "linear_1") => (self.projector_input_size(), t, 1),
            (ModelPart::Connector, _) => (t, t, 1),
            (ModelPart::Text, _) => self.text.linear_dims(name),
        }
    }

    /// The vision tower's shape for the memory plan: only the layers up to the deepest feature
    /// layer run.
    pub fn vision_shape(&self) -> VisionShape {
        let v = &self.vision;
        let layers = self
            .hidden_state_indices()
            .ok()
            .and_then(|indices| indices.into_iter().max())
            .unwrap_or(v.num_hidden_layers);
        VisionShape {
            hidden_size: v.hidden_size,
            intermediate_size: v.intermediate_size,
            layers,
            heads: v.num_attention_heads,
            positions: v.num_positions(),
            connector_floats: self.tokens_per_image() * self.projector_input_size(),
        }
    }
}
