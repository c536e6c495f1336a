//! LLaVA's parameter counts by part, from the config alone (a config-only folder such as
//! LLaVA-1.5-7B can be described without its weights): the CLIP tower (post_layernorm
//! included, as HF counts it), the projector, the Llama text model and its head.

use crate::llava::config::LlavaConfig;
use crate::params::{linear_params, vision_layer_params, ParamCounts};

impl ParamCounts {
    /// Counts for the LLaVA architecture `config` describes.
    pub fn from_llava_config(config: &LlavaConfig) -> Self {
        let v = &config.vision;
        let d = v.hidden_size;
        let vision = v.num_channels * v.patch_size * v.patch_size * d
            + d
            + v.num_positions() * d
            + v.num_hidden_layers * vision_layer_params(d, v.intermediate_size)
            + 2 * 2 * d;
        let (t, bias) = (config.text.hidden_size, config.multimodal_projector_bias);
        let connector =
            linear_params(config.projector_input_size(), t, bias) + linear_params(t, t, bias);
        Self::with_text(vision, connector, &config.text, config.tie_word_embeddings)
    }
}
