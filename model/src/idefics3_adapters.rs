//! LoRA on Idefics3 / SmolVLM: which linear layers take adapters (by HF module name, per part)
//! and the module paths of each part, for the family-independent machinery in
//! [`crate::adapters`] (attaching, merging, PEFT adapter folders). Parts trained in full are
//! PEFT's `modules_to_save` (`connector` = `model.connector`, `vision_model` =
//! `model.vision_model`).

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::adapters::{self, AdaptableModel, LoraTargets};
use crate::error::Result;
use crate::idefics3::idefics3_part;
use crate::linear::Linear;
use crate::lora::LoraSpec;
use crate::peft::AdapterSpec;
use crate::safetensors_io::FloatDtype;
use crate::vision_language_model::Idefics3;
use crate::vlm::ModelPart;

/// The layers LoRA may adapt, per part, by the name HF gives the module (the LM head is left
/// out, as PEFT's `all-linear` leaves it out).
pub const IDEFICS3_LORA_TARGETS: [(ModelPart, &[&str]); 3] = [
    (
        ModelPart::Vision,
        &["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    ),
    (ModelPart::Connector, &["proj"]),
    (
        ModelPart::Text,
        &[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    ),
];

/// The module of a part as PEFT's `modules_to_save` names it; the language model cannot be
/// saved that way (its embeddings may be tied to the head), so it has none.
pub fn idefics3_part_module(part: ModelPart) -> Option<&'static str> {
    match part {
        ModelPart::Vision => Some("vision_model"),
        ModelPart::Connector => Some("connector"),
        ModelPart::Text => None,
    }
}

/// Errors unless every target of `spec` names a layer of one of its parts.
pub fn check_lora_targets(spec: &LoraSpec) -> Result<()> {
    adapters::check_lora_targets(&IDEFICS3_LORA_TARGETS, spec)
}

/// Errors unless `spec` can be written as a PEFT folder: each part trained in full is a
/// module PEFT can save (`vision`, `connector`) and takes no adapters (PEFT would load its full
/// weights and drop them).
pub fn check_adapter_spec(spec: &AdapterSpec) -> std::result::Result<(), String> {
    adapters::check_adapter_spec(idefics3_part_module, spec)
}

impl<B: Backend> AdaptableModel<B> for Idefics3<B> {
    fn lora_targets(&self) -> &'static LoraTargets {
        &IDEFICS3_LORA_TARGETS
    }

    fn for_each_linear_mut(&mut self, f: impl FnMut(&str, &mut Linear<B>)) {
        Idefics3::for_each_linear_mut(self, f)
    }

    fn part_of(name: &str) -> ModelPart {
        idefics3_part(name)
    }

    fn part_module(part: ModelPart) -> Option<&'static str> {
        idefics3_part_module(part)
    }

    fn part_pattern(part: ModelPart) -> &'static str {
        match part {
            ModelPart::Vision => r"model\.vision_model\.",
            ModelPart::Connector => r"model\.connector\.",
            ModelPart::Text => r"model\.text_model\.",
        }
    }

    fn param_device(&self) -> B::Device {
        self.model.text_model.embed_tokens.weight.device()
    }
}

impl<B: Backend> Idefics3<B> {
    /// Calls `f` with every linear layer and its HF module path, in module order.
    pub fn for_each_linear_mut(&mut self, mut f: impl FnMut(&str, &mut Linear<B>)) {
        self.model
            .vision_model
            .encoder
            .for_each_linear_mut("model.vision_model.encoder", &mut f);
        let connector = &mut self.model.connector.modality_projection.proj;
        f("model.connector.modality_projection.proj", connector);
        self.model
            .text_model
            .for_each_linear_mut("model.text_model", &mut f);
        if let Some(head) = &mut self.lm_head {
            f("lm_head", head);
        }
    }

    /// The model with a fresh adapter (seeded by `seed`) on every layer `spec` targets.
    pub fn with_lora(self, spec: &LoraSpec, seed: u64) -> Result<Self> {
        adapters::with_lora(self, spec, seed)
    }

    /// The model with every adapter folded into its layer's weight (`W + A·B·scaling`).
    pub fn merge_lora(self) -> Self {
        adapters::merge_lora(self)
    }

    /// Writes the adapter folder of this adapted model: `adapter_config.json` and
    /// `adapter_model.safetensors` (adapters and the parts trained in full, `dtype` on disk).
    pub fn save_adapter(&self, dir: &Path, spec: &AdapterSpec, dtype: FloatDtype) -> Result<()> {
        adapters::save_adapter(self, dir, spec, dtype)
    }

    /// Applies the adapter folder `dir` (as PEFT saved it): attaches an adapter to each layer
    /// it has factors for (or reuses the one there) and loads every tensor it holds.
    pub fn load_adapter(self, dir: &Path) -> Result<Self> {
        adapters::load_adapter(self, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::adapter_config;
    use burn::backend::NdArray;

    fn adapted(spec: &LoraSpec, path: &str) -> bool {
        adapters::adapted::<NdArray, Idefics3<NdArray>>(spec, path)
    }

    fn spec(targets: &[&str], parts: &[ModelPart]) -> LoraSpec {
        LoraSpec {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: targets.iter().map(|t| t.to_string()).collect(),
            parts: parts.to_vec(),
        }
    }

    #[test]
    fn unknown_targets_list_the_valid_ones() {
        check_lora_targets(&spec(&["q_proj", "gate_proj"], &[ModelPart::Text])).unwrap();
        let err = check_lora_targets(&spec(&["fc1"], &[ModelPart::Text]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`fc1`"), "{err}");
        assert!(err.contains("down_proj, gate_proj, k_proj"), "{err}");
        check_lora_targets(&spec(&["fc1"], &[ModelPart::Vision, ModelPart::Text])).unwrap();
    }

    #[test]
    fn layers_are_chosen_by_part_and_name() {
        let s = spec(&["q_proj"], &[ModelPart::Text]);
        assert!(adapted(&s, "model.text_model.layers.3.self_attn.q_proj"));
        assert!(!adapted(
            &s,
            "model.vision_model.encoder.layers.3.self_attn.q_proj"
        ));
        assert!(!adapted(&s, "model.text_model.layers.3.self_attn.k_proj"));
        let head = spec(&["lm_head"], &[ModelPart::Text]);
        assert!(!adapted(&head, "lm_head"));
    }

    #[test]
    fn the_target_regex_selects_the_adapted_parts() {
        let config = adapter_config::<NdArray, Idefics3<NdArray>>(&AdapterSpec {
            base: "/b".into(),
            lora: spec(&["q_proj", "v_proj"], &[ModelPart::Text]),
            train_parts: vec![ModelPart::Connector],
        });
        assert_eq!(
            config.target_modules,
            r"(?:model\.text_model\.).*\.(?:q_proj|v_proj)"
        );
        assert_eq!(config.modules_to_save, ["connector"]);
    }
}
