//! LoRA on Qwen2-VL and Qwen2.5-VL, for the family-independent machinery in
//! [`crate::adapters`]: the layers that take adapters (the text model's `q/k/v/o_proj`,
//! `gate/up/down_proj`; the tower's `qkv`, `proj` and its MLP's `fc1`, `fc2` (Qwen2-VL) or
//! `gate/up/down_proj` (Qwen2.5-VL)), each part's module paths as PEFT sees them on a
//! transformers ≥ 4.52 model (`model.language_model.…`, `model.visual.blocks.…`,
//! `model.visual.merger.…`), which are also the names PEFT writes adapter tensors under. The
//! merger (the connector) trains in full as PEFT's `modules_to_save` `merger`; the tower has no
//! single module PEFT could save without the merger, so it takes adapters or stays frozen.

use burn::tensor::backend::Backend;

use crate::adapters::{AdaptableModel, LoraTargets};
use crate::linear::Linear;
use crate::qwen2_vl::model::Qwen2Vl;
use crate::qwen2_vl::vlm::qwen2_vl_part;
use crate::qwen2_vl::weights::{hub_name, module_name};
use crate::vlm::ModelPart;

/// The layers LoRA may adapt, per part, by HF module name (the LM head and the merger's
/// numbered linears are left out).
pub const QWEN2_VL_LORA_TARGETS: [(ModelPart, &[&str]); 3] = [
    (ModelPart::Vision, &["qkv", "proj", "fc1", "fc2"]),
    (ModelPart::Connector, &[]),
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

/// Qwen2.5-VL's: the tower's MLP is a SwiGLU.
pub const QWEN2_5_VL_LORA_TARGETS: [(ModelPart, &[&str]); 3] = [
    (
        ModelPart::Vision,
        &["qkv", "proj", "gate_proj", "up_proj", "down_proj"],
    ),
    QWEN2_VL_LORA_TARGETS[1],
    QWEN2_VL_LORA_TARGETS[2],
];

/// The module of a part as PEFT's `modules_to_save` names it: the merger only.
pub fn qwen2_vl_part_module(part: ModelPart) -> Option<&'static str> {
    match part {
        ModelPart::Connector => Some("merger"),
        ModelPart::Vision | ModelPart::Text => None,
    }
}

/// Errors unless `spec` can be written as a PEFT folder for Qwen2-VL.
pub fn check_qwen2_vl_adapter_spec(spec: &crate::peft::AdapterSpec) -> Result<(), String> {
    crate::adapters::check_adapter_spec(qwen2_vl_part_module, spec)
}

impl<B: Backend> AdaptableModel<B> for Qwen2Vl<B> {
    fn lora_targets(&self) -> &'static LoraTargets {
        if self.config().is_qwen2_5() {
            &QWEN2_5_VL_LORA_TARGETS
        } else {
            &QWEN2_VL_LORA_TARGETS
        }
    }

    fn for_each_linear_mut(&mut self, mut f: impl FnMut(&str, &mut Linear<B>)) {
        for (i, block) in self.visual.blocks.iter_mut().enumerate() {
            let prefix = format!("visual.blocks.{i}");
            f(&format!("{prefix}.attn.qkv"), &mut block.attn.qkv);
            f(&format!("{prefix}.attn.proj"), &mut block.attn.proj);
            block
                .mlp
                .for_each_linear_mut(&format!("{prefix}.mlp"), &mut f);
        }
        for (i, slot) in self.visual.merger.mlp.iter_mut().enumerate() {
            if let Some(linear) = slot {
                f(&format!("visual.merger.mlp.{i}"), linear);
            }
        }
        self.model.for_each_linear_mut("model", &mut f);
        if let Some(head) = &mut self.lm_head {
            f("lm_head", head);
        }
    }

    fn part_of(name: &str) -> ModelPart {
        qwen2_vl_part(name)
    }

    fn part_module(part: ModelPart) -> Option<&'static str> {
        qwen2_vl_part_module(part)
    }

    fn part_pattern(part: ModelPart) -> &'static str {
        match part {
            ModelPart::Vision => r"model\.visual\.blocks\.",
            ModelPart::Connector => r"model\.visual\.merger",
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
        self.model.embed_tokens.weight.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::{adapted, adapter_config};
    use crate::lora::LoraSpec;
    use crate::peft::AdapterSpec;
    use burn::backend::NdArray;

    type M = Qwen2Vl<NdArray>;

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
        let s = spec(&["qkv", "q_proj"], &[ModelPart::Vision, ModelPart::Text]);
        assert!(adapted::<NdArray, M>(&s, "visual.blocks.1.attn.qkv"));
        assert!(adapted::<NdArray, M>(&s, "model.layers.0.self_attn.q_proj"));
        assert!(!adapted::<NdArray, M>(&s, "visual.merger.mlp.0"));
        let config = adapter_config::<NdArray, M>(&AdapterSpec {
            base: "/b".into(),
            lora: s,
            train_parts: vec![ModelPart::Connector],
        });
        assert_eq!(
            config.target_modules,
            r"(?:model\.visual\.blocks\.|model\.language_model\.).*\.(?:qkv|q_proj)"
        );
        assert_eq!(config.modules_to_save, ["merger"]);
    }
}
