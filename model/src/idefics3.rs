//! Idefics3 / SmolVLM as a [`VisionLanguageModel`]: the trait's calls map onto the model's own
//! loading, loss and generation, and each parameter's part follows the module tree —
//! `model.vision_model.*` is the vision tower, `model.connector.*` the connector, everything
//! else (`model.text_model.*`, `lm_head`) the language model.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::error::Result;
use crate::generation::{GeneratedSequence, GenerationConfig};
use crate::kv_cache::KvCache;
use crate::lora::LoraSpec;
use crate::loss::LossOutput;
use crate::peft::AdapterSpec;
use crate::safetensors_io::FloatDtype;
use crate::vision_language_model::{Idefics3, VlmInput};
use crate::vlm::{ModelPart, ParamPart, VisionLanguageModel};
use crate::weights::param_parts;

/// The part of the Idefics3 parameter with HF name `name`.
pub fn idefics3_part(name: &str) -> ModelPart {
    let mut segments = name.split('.');
    match (segments.next(), segments.next()) {
        (Some("model"), Some("vision_model")) => ModelPart::Vision,
        (Some("model"), Some("connector")) => ModelPart::Connector,
        _ => ModelPart::Text,
    }
}

impl<B: Backend> VisionLanguageModel<B> for Idefics3<B> {
    type Cache = KvCache<B>;

    fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        Idefics3::load(dir, device)
    }

    fn save(&self, dir: &Path, dtype: FloatDtype) -> Result<()> {
        Idefics3::save(self, dir, dtype)
    }

    fn device(&self) -> B::Device {
        self.model.text_model.embed_tokens.weight.device()
    }

    fn eos_token_ids(&self) -> Vec<u32> {
        self.config().text.eos_token_ids.clone()
    }

    fn context_length(&self) -> usize {
        crate::text_decoder::TextDecoder::context_length(self)
    }

    fn forward_loss(
        &self,
        input: &VlmInput<B>,
        labels: &Tensor<B, 2, Int>,
    ) -> Result<LossOutput<B>> {
        Idefics3::forward_loss(self, input, labels)
    }

    fn forward_row_losses(
        &self,
        input: &VlmInput<B>,
        labels: &Tensor<B, 2, Int>,
    ) -> Result<Vec<LossOutput<B>>> {
        crate::text_decoder::forward_row_losses(self, input, labels)
    }

    fn prefill(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 2>, KvCache<B>)> {
        Idefics3::prefill(self, input)
    }

    fn decode_step(&self, tokens: &[u32], cache: &mut KvCache<B>) -> Result<Tensor<B, 2>> {
        Idefics3::decode_step(self, tokens, cache)
    }

    fn generate(
        &self,
        input: &VlmInput<B>,
        config: &GenerationConfig,
        stop: impl FnMut(usize, &[u32]) -> bool,
    ) -> Result<Vec<GeneratedSequence>> {
        Idefics3::generate(self, input, config, stop)
    }

    fn param_parts(&self) -> Vec<ParamPart> {
        param_parts::<B, _, _>(self, idefics3_part)
    }

    fn with_lora(self, spec: &LoraSpec, seed: u64) -> Result<Self> {
        Idefics3::with_lora(self, spec, seed)
    }

    fn merge_lora(self) -> Self {
        Idefics3::merge_lora(self)
    }

    fn without_lora(self) -> Self {
        crate::adapters::without_lora(self)
    }

    fn save_adapter(&self, dir: &Path, spec: &AdapterSpec, dtype: FloatDtype) -> Result<()> {
        Idefics3::save_adapter(self, dir, spec, dtype)
    }

    fn load_adapter(self, dir: &Path) -> Result<Self> {
        Idefics3::load_adapter(self, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_follow_the_module_tree() {
        let vision = "model.vision_model.encoder.layers.0.mlp.fc1.weight";
        assert_eq!(idefics3_part(vision), ModelPart::Vision);
        let connector = "model.connector.modality_projection.proj.weight";
        assert_eq!(idefics3_part(connector), ModelPart::Connector);
        assert_eq!(
            idefics3_part("model.text_model.layers.3.self_attn.q_proj.weight"),
            ModelPart::Text
        );
        assert_eq!(idefics3_part("lm_head.weight"), ModelPart::Text);
        // A name merely containing "vision" elsewhere is not the vision tower.
        assert_eq!(
            idefics3_part("model.text_model.vision_gate.weight"),
            ModelPart::Text
        );
    }
}
