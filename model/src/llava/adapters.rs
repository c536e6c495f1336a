//! LoRA on LLaVA, for the family-independent machinery in [`crate::adapters`]: the layers that
//! take adapters (the text model's `q/k/v/o_proj`, `gate/up/down_proj`; CLIP's
//! `q/k/v/out_proj`, `fc1`, `fc2`; the projector's `linear_1`, `linear_2`), each part's module
//! paths as PEFT sees them on a transformers ≥ 4.52 `LlavaForConditionalGeneration`
//! (`model.language_model.…`, `model.vision_tower.…`, `model.multi_modal_projector.…`), which
//! are also the names PEFT writes adapter tensors under; `vision_tower` and
//! `multi_modal_projector` are the `modules_to_save` of parts trained in full.

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::adapters::{self, AdaptableModel, LoraTargets};
use crate::error::Result;
use crate::linear::Linear;
use crate::llava::model::Llava;
use crate::llava::vlm::llava_part;
use crate::llava::weights::{hub_name, module_name};
use crate::lora::LoraSpec;
use crate::peft::AdapterSpec;
use crate::safetensors_io::FloatDtype;
use crate::vlm::ModelPart;

/// The layers LoRA may adapt, per part, by HF module name (the LM head is left out).
pub const LLAVA_LORA_TARGETS: [(ModelPart, &[&str]); 3] = [
    (
        ModelPart::Vision,
        &["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    ),
    (ModelPart::Connector, &["linear_1", "linear_2"]),
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

/// The module of a part as PEFT's `modules_to_save` names it (none for the language model,
/// whose embeddings may be tied to the head).
pub fn llava_part_module(part: ModelPart) -> Option<&'static str> {
    match part {
        ModelPart::Vision => Some("vision_tower"),
        ModelPart::Connector => Some("multi_modal_projector"),
        ModelPart::Text => None,
    }
}

/// Errors unless every target of `spec` names a LLaVA layer of one of its parts.
pub fn check_llava_lora_targets(spec: &LoraSpec) -> Result<()> {
    adapters::check_lora_targets(&LLAVA_LORA_TARGETS, spec)
}

/// Errors unless `spec` can be written as a PEFT folder for LLaVA.
pub fn check_llava_adapter_spec(spec: &AdapterSpec) -> std::result::Result<(), String> {
    adapters::check_adapter_spec(llava_part_module, spec)
}

impl<B: Backend> AdaptableModel<B> for Llava<B> {
    fn lora_targets(&self) -> &'static LoraTargets {
        &LLAVA_LORA_TARGETS
    }

    fn for_each_linear_mut(&mut self, f: impl FnMut(&str, &mut Linear<B>)) {
        Llava::for_each_linear_mut(self, f)
    }

    fn part_of(name: &str) -> ModelPart {
        llava_part(name)
    }

    fn part_module(part: ModelPart) -> Option<&'static str> {
        llava_part_module(part)
    }

    /// The projector's pattern has no trailing `\.`: its layers sit directly under it, and
    /// [`adapters::adapter_config`] puts `.*\.` between pattern and layer name.
    fn part_pattern(part: ModelPart) -> &'static str {
        match part {
            ModelPart::Vision => r"model\.vision_tower\.",
            ModelPart::Connector => r"model\.multi_modal_projector",
            ModelPart::Text => r"model\.language_model\.",
        }
    }

    fn peft_module_name(name: &str) -> String {
        module_name(name)
    }

    fn checkpoint_name(name: &str) -> String {
        hub_name(name)
    }

    fn param_device(&self) -> B::Device {
        self.language_model.model.embed_tokens.weight.device()
    }
}

impl<B: Backend> Llava<B> {
    /// Calls `f` with every linear layer and its module path (hub layout), in module order.
    pub fn for_each_linear_mut(&mut self, mut f: impl FnMut(&str, &mut Linear<B>)) {
        self.vision_tower
            .vision_model
            .encoder
            .for_each_linear_mut("vision_tower.vision_model.encoder", &mut f);
        let projector = &mut self.multi_modal_projector;
        f("multi_modal_projector.linear_1", &mut projector.linear_1);
        f("multi_modal_projector.linear_2", &mut projector.linear_2);
        self.language_model
            .model
            .for_each_linear_mut("language_model.model", &mut f);
        if let Some(head) = &mut self.language_model.lm_head {
            f("language_model.lm_head", head);
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

    /// Writes the PEFT adapter folder of this adapted model (adapters and the parts trained in
    /// full, under PEFT's names for `LlavaForConditionalGeneration`, `dtype` on disk).
    pub fn save_adapter(&self, dir: &Path, spec: &AdapterSpec, dtype: FloatDtype) -> Result<()> {
        adapters::save_adapter(self, dir, spec, dtype)
    }

    /// Applies the PEFT adapter folder `dir` (tensor names in either layout).
    pub fn load_adapter(self, dir: &Path) -> Result<Self> {
        adapters::load_adapter(self, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::{adapted, adapter_config};
    use burn::backend::NdArray;

    type M = Llava<NdArray>;

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
    fn layers_are_chosen_by_part_and_name() {
        let s = spec(
            &["q_proj", "linear_1"],
            &[ModelPart::Text, ModelPart::Connector],
        );
        assert!(adapted::<NdArray, M>(
            &s,
            "language_model.model.layers.0.self_attn.q_proj"
        ));
        assert!(adapted::<NdArray, M>(&s, "multi_modal_projector.linear_1"));
        assert!(!adapted::<NdArray, M>(
            &s,
            "vision_tower.vision_model.encoder.layers.0.self_attn.q_proj"
        ));
        assert!(check_llava_lora_targets(&spec(&["proj"], &[ModelPart::Connector])).is_err());
    }

    #[test]
    fn the_target_regex_uses_peft_module_paths() {
        let config = adapter_config::<NdArray, M>(&AdapterSpec {
            base: "/b".into(),
            lora: spec(
                &["linear_1", "q_proj"],
                &[ModelPart::Connector, ModelPart::Text],
            ),
            train_parts: vec![ModelPart::Vision],
        });
        assert_eq!(
            config.target_modules,
            r"(?:model\.multi_modal_projector|model\.language_model\.).*\.(?:linear_1|q_proj)"
        );
        assert_eq!(config.modules_to_save, ["vision_tower"]);
    }
}
