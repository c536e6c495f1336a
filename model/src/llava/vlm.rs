//! LLaVA as a [`VisionLanguageModel`]: the trait's calls map onto the model's own loading,
//! loss and generation, and each parameter's part follows the module tree — `vision_tower.*`
//! is the vision tower, `multi_modal_projector.*` the connector, everything else (the language
//! model and its head) the text part. Names are hub-layout names.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::error::Result;
use crate::generation::{GeneratedSequence, GenerationConfig};
use crate::kv_cache::KvCache;
use crate::llava::model::Llava;
use crate::lora::LoraSpec;
use crate::loss::LossOutput;
use crate::peft::AdapterSpec;
use crate::safetensors_io::FloatDtype;
use crate::vision_language_model::VlmInput;
use crate::vlm::{ModelPart, ParamPart, VisionLanguageModel};
use crate::weights::param_parts;

/// The part of the LLaVA parameter or module with hub name `name`.
pub fn llava_part(name: &str) -> ModelPart {
    match name.split('.').next() {
        Some("vision_tower") => ModelPart::Vision,
        Some("multi_modal_projector") => ModelPart::Connector,
        _ => ModelPart::Text,
    }
}

impl<B: Backend> VisionLanguageModel<B> for Llava<B> {
    type Cache = KvCache<B>;

    fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        Llava::load(dir, device)
    }

    fn save(&self, dir: &Path, dtype: FloatDtype) -> Result<()> {
        Llava::save(self, dir, dtype)
    }

    fn device(&self) -> B::Device {
        self.language_model.model.embed_tokens.weight.device()
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
        Llava::forward_loss(self, input, labels)
    }

    fn forward_row_losses(
        &self,
        input: &VlmInput<B>,
        labels: &Tensor<B, 2, Int>,
    ) -> Result<Vec<LossOutput<B>>> {
        crate::text_decoder::forward_row_losses(self, input, labels)
    }

    fn prefill(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 2>, KvCache<B>)> {
        Llava::prefill(self, input)
    }

    fn decode_step(&self, tokens: &[u32], cache: &mut KvCache<B>) -> Result<Tensor<B, 2>> {
        Llava::decode_step(self, tokens, cache)
    }

    fn generate(
        &self,
        input: &VlmInput<B>,
        config: &GenerationConfig,
        stop: impl FnMut(usize, &[u32]) -> bool,
    ) -> Result<Vec<GeneratedSequence>> {
        Llava::generate(self, input, config, stop)
    }

    fn param_parts(&self) -> Vec<ParamPart> {
        param_parts::<B, _, _>(self, llava_part)
    }

    fn with_lora(self, spec: &LoraSpec, seed: u64) -> Result<Self> {
        Llava::with_lora(self, spec, seed)
    }

    fn merge_lora(self) -> Self {
        Llava::merge_lora(self)
    }

    fn without_lora(self) -> Self {
        crate::adapters::without_lora(self)
    }

    fn save_adapter(&self, dir: &Path, spec: &AdapterSpec, dtype: FloatDtype) -> Result<()> {
        Llava::save_adapter(self, dir, spec, dtype)
    }

    fn load_adapter(self, dir: &Path) -> Result<Self> {
        Llava::load_adapter(self, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_follow_the_module_tree() {
        let vision = "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight";
        assert_eq!(llava_part(vision), ModelPart::Vision);
        assert_eq!(
            llava_part("multi_modal_projector.linear_2.bias"),
            ModelPart::Connector
        );
        assert_eq!(
            llava_part("language_model.model.layers.3.self_attn.q_proj.weight"),
            ModelPart::Text
        );
        assert_eq!(llava_part("language_model.lm_head.weight"), ModelPart::Text);
    }
}
