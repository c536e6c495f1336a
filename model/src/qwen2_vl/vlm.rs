//! Qwen2-VL as a [`VisionLanguageModel`]: the trait's calls map onto the model's own loading,
//! loss and generation, and each parameter's part follows the module tree — `visual.merger.*`
//! is the connector, the rest of `visual.*` the vision tower, everything else (the language
//! model and its head) the text part. Names are hub-layout names.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::error::Result;
use crate::generation::{self, GeneratedSequence, GenerationConfig};
use crate::kv_cache::KvCache;
use crate::lora::LoraSpec;
use crate::loss::LossOutput;
use crate::peft::AdapterSpec;
use crate::qwen2_vl::model::Qwen2Vl;
use crate::safetensors_io::FloatDtype;
use crate::vision_language_model::VlmInput;
use crate::vlm::{ModelPart, ParamPart, VisionLanguageModel};
use crate::weights::param_parts;

/// The part of the Qwen2-VL parameter or module with hub name `name`.
pub fn qwen2_vl_part(name: &str) -> ModelPart {
    if name.starts_with("visual.merger") {
        ModelPart::Connector
    } else if name.starts_with("visual.") {
        ModelPart::Vision
    } else {
        ModelPart::Text
    }
}

impl<B: Backend> VisionLanguageModel<B> for Qwen2Vl<B> {
    type Cache = KvCache<B>;

    fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        Qwen2Vl::load(dir, device)
    }

    fn save(&self, dir: &Path, dtype: FloatDtype) -> Result<()> {
        Qwen2Vl::save(self, dir, dtype)
    }

    fn device(&self) -> B::Device {
        self.model.embed_tokens.weight.device()
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
        crate::text_decoder::forward_loss(self, input, labels)
    }

    fn forward_row_losses(
        &self,
        input: &VlmInput<B>,
        labels: &Tensor<B, 2, Int>,
    ) -> Result<Vec<LossOutput<B>>> {
        crate::text_decoder::forward_row_losses(self, input, labels)
    }

    fn prefill(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 2>, KvCache<B>)> {
        generation::prefill(self, input)
    }

    fn decode_step(&self, tokens: &[u32], cache: &mut KvCache<B>) -> Result<Tensor<B, 2>> {
        generation::decode_step(self, tokens, cache)
    }

    fn generate(
        &self,
        input: &VlmInput<B>,
        config: &GenerationConfig,
        stop: impl FnMut(usize, &[u32]) -> bool,
    ) -> Result<Vec<GeneratedSequence>> {
        generation::generate(self, input, config, stop)
    }

    fn param_parts(&self) -> Vec<ParamPart> {
        param_parts::<B, _, _>(self, qwen2_vl_part)
    }

    fn with_lora(self, spec: &LoraSpec, seed: u64) -> Result<Self> {
        crate::adapters::with_lora(self, spec, seed)
    }

    fn merge_lora(self) -> Self {
        crate::adapters::merge_lora(self)
    }

    fn without_lora(self) -> Self {
        crate::adapters::without_lora(self)
    }

    fn save_adapter(&self, dir: &Path, spec: &AdapterSpec, dtype: FloatDtype) -> Result<()> {
        crate::adapters::save_adapter(self, dir, spec, dtype)
    }

    fn load_adapter(self, dir: &Path) -> Result<Self> {
        crate::adapters::load_adapter(self, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_follow_the_module_tree() {
        assert_eq!(
            qwen2_vl_part("visual.blocks.0.attn.qkv.weight"),
            ModelPart::Vision
        );
        assert_eq!(
            qwen2_vl_part("visual.patch_embed.proj.weight"),
            ModelPart::Vision
        );
        assert_eq!(
            qwen2_vl_part("visual.merger.mlp.2.bias"),
            ModelPart::Connector
        );
        assert_eq!(
            qwen2_vl_part("model.layers.0.mlp.up_proj.weight"),
            ModelPart::Text
        );
        assert_eq!(qwen2_vl_part("lm_head.weight"), ModelPart::Text);
    }
}
