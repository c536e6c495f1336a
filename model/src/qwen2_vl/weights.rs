//! Qwen2-VL and Qwen2.5-VL checkpoints ⇄ the model. Module paths are the hub layout's tensor names
//! (`visual.*`, `model.*`, `lm_head.*`), so the generic mapping of [`crate::weights`] applies;
//! the Qwen2-VL-specific part is transformers ≥ 4.52's layout (in memory, in PEFT's adapter
//! names and in 4.52's saves): `model.visual.*`, `model.language_model.*`, `lm_head.*`. Loading
//! accepts both ([`hub_name`]); saving writes the hub layout.

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::error::Result;
use crate::qwen2_vl::config::Qwen2VlConfig;
use crate::qwen2_vl::model::Qwen2Vl;
use crate::safetensors_io::{FloatDtype, TensorStore};
use crate::weights::{load_params, save_params, swap_prefix, CONFIG_FILE};

/// Hub-layout prefix ⇄ in-memory (transformers ≥ 4.52) prefix.
const LAYOUTS: [(&str, &str); 2] = [
    ("visual.", "model.visual."),
    ("model.", "model.language_model."),
];

/// The hub-layout name of a tensor named in either layout.
pub fn hub_name(name: &str) -> String {
    swap_prefix(name, &LAYOUTS, true)
}

/// The name transformers ≥ 4.52 gives the tensor in memory (and PEFT in adapter files).
/// Accepts either layout.
pub fn module_name(name: &str) -> String {
    swap_prefix(&hub_name(name), &LAYOUTS, false)
}

impl<B: Backend> Qwen2Vl<B> {
    /// Loads an HF folder (`config.json` + `model.safetensors` or a sharded index) in either
    /// layout, converting f32/f16/bf16 weights to the backend's float type. A checkpoint
    /// without `lm_head.weight` loads as tied. A missing, unexpected or mis-shaped tensor is
    /// one error naming every such tensor (by its hub name) and the folder.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let mut config = Qwen2VlConfig::from_file(&dir.join(CONFIG_FILE))?;
        let store = TensorStore::open_dir(dir)?.renamed(hub_name)?;
        config.tie_word_embeddings = store.shape("lm_head.weight").is_none();
        load_params(dir, Self::new(&config, device), &store)
    }

    /// Saves `config.json` and `model.safetensors` (hub-layout names, `dtype` on disk) into
    /// `dir`, each file written atomically; `Qwen2VLForConditionalGeneration.from_pretrained`
    /// (`Qwen2_5_VLForConditionalGeneration` for Qwen2.5-VL) loads the result.
    pub fn save(&self, dir: &Path, dtype: FloatDtype) -> Result<()> {
        save_params(self, dir, dtype)?;
        self.config().save(&dir.join(CONFIG_FILE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts_map_to_the_hub_names() {
        for (memory, hub) in [
            (
                "model.visual.blocks.0.attn.qkv.weight",
                "visual.blocks.0.attn.qkv.weight",
            ),
            ("model.visual.merger.mlp.2.bias", "visual.merger.mlp.2.bias"),
            (
                "model.language_model.layers.1.self_attn.q_proj.bias",
                "model.layers.1.self_attn.q_proj.bias",
            ),
            (
                "model.language_model.embed_tokens.weight",
                "model.embed_tokens.weight",
            ),
            ("lm_head.weight", "lm_head.weight"),
        ] {
            assert_eq!(hub_name(memory), hub);
            assert_eq!(hub_name(hub), hub);
            assert_eq!(module_name(hub), memory);
            assert_eq!(module_name(memory), memory);
        }
    }
}
