//! Parameter counts by part (vision tower, connector, language model, LM head), computed from a
//! config alone (so a folder holding only config.json can be described) or from a built model;
//! tests check the two agree and match HF transformers' counts.

use burn::tensor::backend::Backend;

use crate::config::{Idefics3Config, TextConfig};
use crate::vlm::{ModelPart, VisionLanguageModel};

/// Parameters per part. A tied LM head has no parameters of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCounts {
    /// `model.vision_model.*`.
    pub vision: usize,
    /// `model.connector.*`.
    pub connector: usize,
    /// `model.text_model.*` (embeddings included).
    pub text: usize,
    /// `lm_head.*` (0 when tied).
    pub lm_head: usize,
    /// Whether the LM head is tied to the token embeddings.
    pub lm_head_tied: bool,
}

impl ParamCounts {
    /// All parameters (each tied tensor counted once, as HF's `num_parameters()` does).
    pub fn total(&self) -> usize {
        self.vision + self.connector + self.text + self.lm_head
    }

    /// Counts for the architecture `config` describes.
    pub fn from_config(config: &Idefics3Config) -> Self {
        let v = &config.vision;
        let t = &config.text;
        let (d, side) = (v.hidden_size, config.patches_per_side());
        let vision = linear_params(v.num_channels * v.patch_size * v.patch_size, d, true)
            + side * side * d
            + v.num_hidden_layers * vision_layer_params(d, v.intermediate_size)
            + 2 * d;
        let connector = linear_params(
            d * config.scale_factor * config.scale_factor,
            t.hidden_size,
            false,
        );
        Self::with_text(vision, connector, t, config.tie_word_embeddings)
    }

    /// Counts given the vision and connector counts and the text model `t` (with its head
    /// unless `tied`).
    pub fn with_text(vision: usize, connector: usize, t: &TextConfig, tied: bool) -> Self {
        let h = t.hidden_size;
        let (q, kv) = (
            t.num_attention_heads * t.head_dim,
            t.num_key_value_heads * t.head_dim,
        );
        let text_layer = linear_params(h, q, t.qkv_bias)
            + 2 * linear_params(h, kv, t.qkv_bias)
            + linear_params(q, h, false)
            + 2 * linear_params(h, t.intermediate_size, false)
            + linear_params(t.intermediate_size, h, false)
            + 2 * h;
        let text = t.vocab_size * h + t.num_hidden_layers * text_layer + h;
        Self {
            vision,
            connector,
            text,
            lm_head: if tied {
                0
            } else {
                linear_params(h, t.vocab_size, false)
            },
            lm_head_tied: tied,
        }
    }

    /// Counts of a built model, from the parts its parameters belong to (a separate LM head is
    /// the text part's `lm_head` tensors, `lm_head.*` or `language_model.lm_head.*`); LoRA factors are not the model's and are left out.
    pub fn of_model<B: Backend, M: VisionLanguageModel<B>>(model: &M) -> Self {
        let mut counts = Self {
            vision: 0,
            connector: 0,
            text: 0,
            lm_head: 0,
            lm_head_tied: true,
        };
        for param in model.param_parts().into_iter().filter(|p| !p.adapter) {
            let total = match param.part {
                ModelPart::Vision => &mut counts.vision,
                ModelPart::Connector => &mut counts.connector,
                ModelPart::Text if param.name.split('.').any(|s| s == "lm_head") => {
                    counts.lm_head_tied = false;
                    &mut counts.lm_head
                }
                ModelPart::Text => &mut counts.text,
            };
            *total += param.numel;
        }
        counts
    }
}

/// Parameters of an `i → o` linear layer.
pub fn linear_params(i: usize, o: usize, bias: bool) -> usize {
    i * o + if bias { o } else { 0 }
}

/// Parameters of a vision encoder layer of width `d` and MLP width `inter` (SigLIP and CLIP:
/// four biased projections, a biased two-layer MLP, two LayerNorms).
pub fn vision_layer_params(d: usize, inter: usize) -> usize {
    4 * linear_params(d, d, true)
        + linear_params(d, inter, true)
        + linear_params(inter, d, true)
        + 4 * d
}
