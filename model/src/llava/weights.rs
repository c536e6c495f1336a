//! LLaVA checkpoints ⇄ the model. Module paths are the hub layout's tensor names
//! (`language_model.model.*`, `language_model.lm_head.*`, `vision_tower.vision_model.*`,
//! `multi_modal_projector.*`), so the generic mapping of [`crate::weights`] applies; the only
//! LLaVA-specific part is the other layouts: transformers ≥ 4.52 in memory (and 4.52 on disk)
//! uses `model.language_model.*`, `model.vision_tower.*`, `model.multi_modal_projector.*`,
//! `lm_head.*`, and transformers 5 drops the tower's `vision_model.` level (its saves hold
//! `vision_tower.encoder.*`). Loading accepts all of them ([`hub_name`]); saving writes the hub
//! layout; PEFT's adapter names follow transformers 5's in-memory layout ([`module_name`]).

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::error::Result;
use crate::llava::config::LlavaConfig;
use crate::llava::model::Llava;
use crate::safetensors_io::{FloatDtype, TensorStore};
use crate::weights::{load_params, save_params, swap_prefix, CONFIG_FILE};

/// Hub-layout prefix ⇄ in-memory (transformers ≥ 4.52) prefix.
const LAYOUTS: [(&str, &str); 4] = [
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
    ("vision_tower.", "model.vision_tower."),
    ("multi_modal_projector.", "model.multi_modal_projector."),
];

/// The hub-layout name of a tensor named in any of the layouts: the hub's, transformers
/// 4.52's (`model.*`, `lm_head.*`), or transformers 5's, which also drops `CLIPVisionModel`'s
/// `vision_model.` level (`vision_tower.encoder.…`, `model.vision_tower.encoder.…`).
pub fn hub_name(name: &str) -> String {
    let name = swap_prefix(name, &LAYOUTS, true);
    match name.strip_prefix("vision_tower.") {
        Some(rest) if !rest.starts_with("vision_model.") => {
            format!("vision_tower.vision_model.{rest}")
        }
        _ => name,
    }
}

/// The name transformers 5 gives the tensor in memory (and PEFT in adapter files): the
/// `model.*` / `lm_head.*` layout without the tower's `vision_model.` level. Accepts any layout.
pub fn module_name(name: &str) -> String {
    let hub = hub_name(name);
    let hub = match hub.strip_prefix("vision_tower.vision_model.") {
        Some(rest) => format!("vision_tower.{rest}"),
        None => hub,
    };
    swap_prefix(&hub, &LAYOUTS, false)
}

impl<B: Backend> Llava<B> {
    /// Loads an HF folder (`config.json` + `model.safetensors` or a sharded index) in either
    /// layout, converting f32/f16/bf16 weights to the backend's float type. A checkpoint
    /// without an LM head tensor loads as tied. A missing, unexpected or mis-shaped tensor is
    /// one error naming every such tensor (by its hub name) and the folder.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let mut config = LlavaConfig::from_file(&dir.join(CONFIG_FILE))?;
        let store = TensorStore::open_dir(dir)?.renamed(hub_name)?;
        config.tie_word_embeddings = store.shape("language_model.lm_head.weight").is_none();
        load_params(dir, Self::new(&config, device), &store)
    }

    /// Saves `config.json` and `model.safetensors` (hub-layout names, `dtype` on disk) into
    /// `dir`, each file written atomically; `LlavaForConditionalGeneration.from_pretrained`
    /// loads the result.
    pub fn save(&self, dir: &Path, dtype: FloatDtype) -> Result<()> {
        save_params(self, dir, dtype)?;
        self.config().save(&dir.join(CONFIG_FILE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_maps_to_the_hub_names() {
        let v5_saved = "vision_tower.encoder.layers.1.mlp.fc1.weight";
        let hub = "vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight";
        assert_eq!(hub_name(v5_saved), hub);
        let v4_52 = "model.vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight";
        assert_eq!(hub_name(v4_52), hub);
        for (memory, hub) in [
            (
                "model.language_model.layers.0.self_attn.q_proj.weight",
                "language_model.model.layers.0.self_attn.q_proj.weight",
            ),
            ("lm_head.weight", "language_model.lm_head.weight"),
            (
                "model.vision_tower.pre_layrnorm.weight",
                "vision_tower.vision_model.pre_layrnorm.weight",
            ),
            (
                "model.multi_modal_projector.linear_1.bias",
                "multi_modal_projector.linear_1.bias",
            ),
        ] {
            assert_eq!(hub_name(memory), hub);
            assert_eq!(hub_name(hub), hub);
            assert_eq!(module_name(hub), memory);
            assert_eq!(module_name(memory), memory);
        }
    }
}
