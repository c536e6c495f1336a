//! The model registry: the one place that maps an HF folder's `config.json` `model_type` to a
//! model family — its config ([`ModelConfig`]), its model ([`Vlm`]), its parameter parts, its
//! LoRA targets and the shapes `safeaware plan` needs. Everything outside this crate (trainer,
//! evaluator, CLI) holds a [`Vlm`] and a [`ModelConfig`] and never names a concrete family.
//!
//! Adding a family: a folder in `model/` implementing [`VisionLanguageModel`], a processor in
//! `data/`, and one variant in each enum below.

use std::fmt;
use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde_json::Value;

use crate::config::{Idefics3Config, TextConfig};
use crate::error::{ModelError, Result};
use crate::generation::{GeneratedSequence, GenerationConfig};
use crate::idefics3_adapters::IDEFICS3_LORA_TARGETS;
use crate::kv_cache::KvCache;
use crate::llava::adapters::{check_llava_adapter_spec, LLAVA_LORA_TARGETS};
use crate::llava::{Llava, LlavaConfig};
use crate::lora::LoraSpec;
use crate::loss::LossOutput;
use crate::params::ParamCounts;
use crate::peft::AdapterSpec;
use crate::qwen2_vl::adapters::{
    check_qwen2_vl_adapter_spec, QWEN2_5_VL_LORA_TARGETS, QWEN2_VL_LORA_TARGETS,
};
use crate::qwen2_vl::{Qwen2Vl, Qwen2VlConfig};
use crate::safetensors_io::FloatDtype;
use crate::vision_language_model::{Idefics3, VlmInput};
use crate::vlm::{ModelPart, ParamPart, VisionLanguageModel};
use crate::weights::CONFIG_FILE;

/// A model family this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Idefics3 / SmolVLM (`model_type` `idefics3` or `smolvlm`).
    Idefics3,
    /// LLaVA-1.5 (`model_type` `llava`).
    Llava,
    /// Qwen2-VL (`model_type` `qwen2_vl`).
    Qwen2Vl,
    /// Qwen2.5-VL (`model_type` `qwen2_5_vl`): Qwen2-VL with a windowed tower (the same
    /// [`Qwen2Vl`] model and [`ModelConfig::Qwen2Vl`] config).
    Qwen2_5Vl,
}

impl Family {
    /// Every registered family.
    pub const ALL: [Family; 4] = [
        Family::Idefics3,
        Family::Llava,
        Family::Qwen2Vl,
        Family::Qwen2_5Vl,
    ];

    /// The `model_type` values of this family's config.json.
    pub fn model_types(self) -> &'static [&'static str] {
        match self {
            Family::Idefics3 => &["idefics3", "smolvlm"],
            Family::Llava => &["llava"],
            Family::Qwen2Vl => &["qwen2_vl"],
            Family::Qwen2_5Vl => &["qwen2_5_vl"],
        }
    }

    /// The family's display name.
    pub fn name(self) -> &'static str {
        match self {
            Family::Idefics3 => "Idefics3/SmolVLM",
            Family::Llava => "LLaVA-1.5",
            Family::Qwen2Vl => "Qwen2-VL",
            Family::Qwen2_5Vl => "Qwen2.5-VL",
        }
    }

    /// Every supported `model_type`, comma-separated (for error messages).
    pub fn supported_model_types() -> String {
        Self::ALL
            .iter()
            .flat_map(|f| f.model_types().iter().copied())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The family of a `model_type`; an unknown one is an error listing the supported ones.
    pub fn from_model_type(model_type: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.model_types().contains(&model_type))
            .ok_or_else(|| {
                ModelError::field(
                    "model_type",
                    format!(
                        "`{model_type}` is not a supported model family (supported: {})",
                        Self::supported_model_types()
                    ),
                )
            })
    }

    /// The family of the HF model folder `dir`, from its config.json.
    pub fn of_folder(dir: &Path) -> Result<Self> {
        Ok(ModelConfig::from_file(&dir.join(CONFIG_FILE))?.family())
    }

    /// The layers LoRA may adapt, per part, by HF module name.
    pub fn lora_targets(self) -> &'static [(ModelPart, &'static [&'static str])] {
        match self {
            Family::Idefics3 => &IDEFICS3_LORA_TARGETS,
            Family::Llava => &LLAVA_LORA_TARGETS,
            Family::Qwen2Vl => &QWEN2_VL_LORA_TARGETS,
            Family::Qwen2_5Vl => &QWEN2_5_VL_LORA_TARGETS,
        }
    }

    /// Errors unless every target of `spec` names a layer of one of its parts.
    pub fn check_lora_targets(self, spec: &LoraSpec) -> Result<()> {
        crate::lora::check_targets(spec, self.lora_targets())
    }

    /// Errors unless some family accepts every target of `spec` (for checks made before the
    /// model, and so its family, is known); the error is the first family's.
    pub fn check_lora_targets_of_any(spec: &LoraSpec) -> Result<()> {
        let mut first = None;
        for family in Self::ALL {
            match family.check_lora_targets(spec) {
                Ok(()) => return Ok(()),
                Err(err) => {
                    first.get_or_insert(err);
                }
            }
        }
        Err(first.expect("at least one family"))
    }

    /// The config of a small model of this family, initialised from scratch (a preset).
    pub fn scratch_config(self, spec: &ScratchSpec) -> Result<ModelConfig> {
        match self {
            Family::Idefics3 => Ok(Idefics3Config::scratch(spec)?.into()),
            Family::Llava => Ok(LlavaConfig::scratch(spec)?.into()),
            Family::Qwen2Vl => Ok(Qwen2VlConfig::scratch(spec)?.into()),
            Family::Qwen2_5Vl => Ok(Qwen2VlConfig::scratch_qwen2_5(spec)?.into()),
        }
    }

    /// Errors unless `spec` can be written as a PEFT folder of this family.
    pub fn check_adapter_spec(self, spec: &AdapterSpec) -> std::result::Result<(), String> {
        match self {
            Family::Idefics3 => crate::idefics3_adapters::check_adapter_spec(spec),
            Family::Llava => check_llava_adapter_spec(spec),
            Family::Qwen2Vl | Family::Qwen2_5Vl => check_qwen2_vl_adapter_spec(spec),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The dimensions of a small model trained from scratch (`model.preset`), whatever its family.
#[derive(Debug, Clone, PartialEq)]
pub struct ScratchSpec {
    /// Width of the vision tower.
    pub vision_width: usize,
    /// Encoder layers of the vision tower.
    pub vision_layers: usize,
    /// Width of the language model.
    pub text_width: usize,
    /// Decoder layers of the language model.
    pub text_layers: usize,
    /// Side of the square input image.
    pub image_size: usize,
    /// Side of a patch.
    pub patch_size: usize,
    /// Pixel-shuffle factor (Idefics3's connector; ignored by families without one).
    pub scale_factor: usize,
    /// Vocabulary size of the tokenizer.
    pub vocab_size: usize,
    /// The image placeholder token.
    pub image_token_id: u32,
    /// Beginning-of-sequence token.
    pub bos_token_id: u32,
    /// End-of-turn token that ends generation.
    pub eos_token_id: u32,
    /// Padding token.
    pub pad_token_id: u32,
}

/// The vision tower's shape, as the memory plan sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisionShape {
    /// Width of the tower.
    pub hidden_size: usize,
    /// Width of its MLP.
    pub intermediate_size: usize,
    /// Encoder layers that run.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Positions in one image (or tile) through the tower.
    pub positions: usize,
    /// Floats per image the connector keeps (its input).
    pub connector_floats: usize,
}

/// A parsed, validated config.json of any registered family.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// Idefics3 / SmolVLM.
    Idefics3(Idefics3Config),
    /// LLaVA-1.5.
    Llava(LlavaConfig),
    /// Qwen2-VL or Qwen2.5-VL (the config's tower variant says which).
    Qwen2Vl(Qwen2VlConfig),
}

impl From<Idefics3Config> for ModelConfig {
    fn from(config: Idefics3Config) -> Self {
        ModelConfig::Idefics3(config)
    }
}

impl From<LlavaConfig> for ModelConfig {
    fn from(config: LlavaConfig) -> Self {
        ModelConfig::Llava(config)
    }
}

impl From<Qwen2VlConfig> for ModelConfig {
    fn from(config: Qwen2VlConfig) -> Self {
        ModelConfig::Qwen2Vl(config)
    }
}

impl ModelConfig {
    /// Reads and validates `config.json` of any registered family.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(crate::config::read_json(path)?)
    }

    /// Parses and validates an HF config given as JSON, by its `model_type`.
    pub fn from_value(raw: Value) -> Result<Self> {
        let model_type = raw
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| ModelError::field("model_type", "missing or not a string"))?;
        match Family::from_model_type(model_type)? {
            Family::Idefics3 => Ok(Idefics3Config::from_value(raw)?.into()),
            Family::Llava => Ok(LlavaConfig::from_value(raw)?.into()),
            Family::Qwen2Vl | Family::Qwen2_5Vl => Ok(Qwen2VlConfig::from_value(raw)?.into()),
        }
    }

    /// Writes config.json.
    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            ModelConfig::Idefics3(c) => c.save(path),
            ModelConfig::Llava(c) => c.save(path),
            ModelConfig::Qwen2Vl(c) => c.save(path),
        }
    }

    /// The family.
    pub fn family(&self) -> Family {
        match self {
            ModelConfig::Idefics3(_) => Family::Idefics3,
            ModelConfig::Llava(_) => Family::Llava,
            ModelConfig::Qwen2Vl(c) => qwen2_vl_family(c),
        }
    }

    /// The `model_type` written in config.json.
    pub fn model_type(&self) -> &'static str {
        match self {
            ModelConfig::Idefics3(c) => c.family.model_type(),
            ModelConfig::Llava(_) => crate::llava::config::LLAVA_MODEL_TYPE,
            ModelConfig::Qwen2Vl(c) => c.model_type(),
        }
    }

    /// The language model's config.
    pub fn text(&self) -> &TextConfig {
        match self {
            ModelConfig::Idefics3(c) => &c.text,
            ModelConfig::Llava(c) => &c.text,
            ModelConfig::Qwen2Vl(c) => &c.text,
        }
    }

    /// Whether the LM head shares the token embeddings.
    pub fn tie_word_embeddings(&self) -> bool {
        match self {
            ModelConfig::Idefics3(c) => c.tie_word_embeddings,
            ModelConfig::Llava(c) => c.tie_word_embeddings,
            ModelConfig::Qwen2Vl(c) => c.tie_word_embeddings,
        }
    }

    /// Sets whether the LM head shares the token embeddings (resolved against weights on disk).
    pub fn set_tie_word_embeddings(&mut self, tied: bool) {
        match self {
            ModelConfig::Idefics3(c) => c.tie_word_embeddings = tied,
            ModelConfig::Llava(c) => c.tie_word_embeddings = tied,
            ModelConfig::Qwen2Vl(c) => c.tie_word_embeddings = tied,
        }
    }

    /// The token id whose embeddings image features replace.
    pub fn image_token_id(&self) -> u32 {
        match self {
            ModelConfig::Idefics3(c) => c.image_token_id,
            ModelConfig::Llava(c) => c.image_token_index,
            ModelConfig::Qwen2Vl(c) => c.image_token_id,
        }
    }

    /// Text positions one image (a tile, for Idefics3) occupies (Qwen2-VL: one of its
    /// `PLAN_IMAGE_SIDE` pixels square; [`Self::tokens_per_image_at`] follows the image's size).
    pub fn tokens_per_image(&self) -> usize {
        self.tokens_per_image_at(None)
    }

    /// [`Self::tokens_per_image`] for an image of `grid` patches (rows, columns) in a family
    /// that takes images at their own resolution (Qwen2-VL); the others ignore it.
    pub fn tokens_per_image_at(&self, grid: Option<[usize; 2]>) -> usize {
        match self {
            ModelConfig::Idefics3(c) => c.tokens_per_tile(),
            ModelConfig::Llava(c) => c.tokens_per_image(),
            ModelConfig::Qwen2Vl(c) => c.tokens_per_image(grid),
        }
    }

    /// Side of the (square) image the vision tower takes, in pixels (Qwen2-VL takes any size:
    /// `PLAN_IMAGE_SIDE`).
    pub fn image_size(&self) -> usize {
        match self {
            ModelConfig::Idefics3(c) => c.vision.image_size,
            ModelConfig::Llava(c) => c.vision.image_size,
            ModelConfig::Qwen2Vl(_) => crate::qwen2_vl::architecture::PLAN_IMAGE_SIDE,
        }
    }

    /// The most tiles (vision-tower inputs) one image becomes: Idefics3 splits an image up to
    /// `vision_config.size.longest_edge` into tiles plus a global view.
    pub fn max_tiles_per_image(&self) -> usize {
        match self {
            ModelConfig::Idefics3(c) => {
                let longest = c.raw["vision_config"]["size"]["longest_edge"].as_u64();
                let tile = c.vision.image_size as u64;
                match longest {
                    Some(edge) if edge > tile => (edge.div_ceil(tile).pow(2) + 1) as usize,
                    _ => 1,
                }
            }
            ModelConfig::Llava(_) | ModelConfig::Qwen2Vl(_) => 1,
        }
    }

    /// Colour channels of the images the tower takes.
    pub fn num_channels(&self) -> usize {
        match self {
            ModelConfig::Idefics3(c) => c.vision.num_channels,
            ModelConfig::Llava(c) => c.vision.num_channels,
            ModelConfig::Qwen2Vl(c) => c.vision.in_channels,
        }
    }

    /// The vision tower's shape for the memory plan.
    pub fn vision_shape(&self) -> VisionShape {
        self.vision_shape_at(None)
    }

    /// [`Self::vision_shape`] for an image of `grid` patches (rows, columns) in a family that
    /// takes images at their own resolution (Qwen2-VL); the others ignore it.
    pub fn vision_shape_at(&self, grid: Option<[usize; 2]>) -> VisionShape {
        match self {
            ModelConfig::Idefics3(c) => VisionShape {
                hidden_size: c.vision.hidden_size,
                intermediate_size: c.vision.intermediate_size,
                layers: c.vision.num_hidden_layers,
                heads: c.vision.num_attention_heads,
                positions: c.patches_per_side().pow(2),
                connector_floats: c.patches_per_side().pow(2) * c.vision.hidden_size,
            },
            ModelConfig::Llava(c) => c.vision_shape(),
            ModelConfig::Qwen2Vl(c) => c.vision_shape(grid),
        }
    }

    /// The architecture, line by line (`vision`, `connector`, `text`, tokens per image), as
    /// `safeaware inspect` prints it.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        match self {
            ModelConfig::Idefics3(c) => c.describe(),
            ModelConfig::Llava(c) => c.describe(),
            ModelConfig::Qwen2Vl(c) => c.describe(),
        }
    }

    /// Parameter counts by part.
    pub fn param_counts(&self) -> ParamCounts {
        match self {
            ModelConfig::Idefics3(c) => ParamCounts::from_config(c),
            ModelConfig::Llava(c) => ParamCounts::from_llava_config(c),
            ModelConfig::Qwen2Vl(c) => c.param_counts(),
        }
    }

    /// `(in, out, how many)` of the LoRA-targetable linear layers named `name` in `part`.
    pub fn linear_dims(&self, part: ModelPart, name: &str) -> (usize, usize, usize) {
        match self {
            ModelConfig::Idefics3(c) => c.linear_dims(part, name),
            ModelConfig::Llava(c) => c.linear_dims(part, name),
            ModelConfig::Qwen2Vl(c) => c.linear_dims(part, name),
        }
    }
}

/// The family of a Qwen2-VL-architecture config: Qwen2.5-VL when its tower is windowed.
fn qwen2_vl_family(config: &Qwen2VlConfig) -> Family {
    if config.is_qwen2_5() {
        Family::Qwen2_5Vl
    } else {
        Family::Qwen2Vl
    }
}

/// A model of any registered family, as the trainer and evaluator hold it.
// A process holds one or two models, so the variants' size difference (the modules' own
// bookkeeping, not their tensors) costs nothing; boxing would complicate every match.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Vlm<B: Backend> {
    /// Idefics3 / SmolVLM.
    Idefics3(Idefics3<B>),
    /// LLaVA-1.5.
    Llava(Llava<B>),
    /// Qwen2-VL or Qwen2.5-VL.
    Qwen2Vl(Qwen2Vl<B>),
}

/// Runs `$body` with `$m` bound to the inner model of `$self`, whatever its family.
macro_rules! each_family {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            Vlm::Idefics3($m) => $body,
            Vlm::Llava($m) => $body,
            Vlm::Qwen2Vl($m) => $body,
        }
    };
}

/// Maps the inner model of `$self` through `$body`, keeping the family.
macro_rules! map_family {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            Vlm::Idefics3($m) => Vlm::Idefics3($body),
            Vlm::Llava($m) => Vlm::Llava($body),
            Vlm::Qwen2Vl($m) => Vlm::Qwen2Vl($body),
        }
    };
}

impl<B: Backend> Vlm<B> {
    /// A model of `config`'s architecture with seeded random weights.
    pub fn init_random(config: &ModelConfig, seed: u64, device: &B::Device) -> Self {
        match config {
            ModelConfig::Idefics3(c) => Vlm::Idefics3(Idefics3::init_random(c, seed, device)),
            ModelConfig::Llava(c) => Vlm::Llava(Llava::init_random(c, seed, device)),
            ModelConfig::Qwen2Vl(c) => Vlm::Qwen2Vl(Qwen2Vl::init_random(c, seed, device)),
        }
    }

    /// The config this model was built from.
    pub fn config(&self) -> ModelConfig {
        match self {
            Vlm::Idefics3(m) => m.config().clone().into(),
            Vlm::Llava(m) => m.config().clone().into(),
            Vlm::Qwen2Vl(m) => m.config().clone().into(),
        }
    }

    /// The family.
    pub fn family(&self) -> Family {
        match self {
            Vlm::Idefics3(_) => Family::Idefics3,
            Vlm::Llava(_) => Family::Llava,
            Vlm::Qwen2Vl(m) => qwen2_vl_family(m.config()),
        }
    }

    /// Causal LM logits `[B, T, vocab]`.
    pub fn forward(&self, input: &VlmInput<B>) -> Result<Tensor<B, 3>> {
        each_family!(self, m => m.forward(input))
    }
}

impl<B: Backend> VisionLanguageModel<B> for Vlm<B> {
    type Cache = KvCache<B>;

    fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        match Family::of_folder(dir)? {
            Family::Idefics3 => Ok(Vlm::Idefics3(Idefics3::load(dir, device)?)),
            Family::Llava => Ok(Vlm::Llava(Llava::load(dir, device)?)),
            Family::Qwen2Vl | Family::Qwen2_5Vl => Ok(Vlm::Qwen2Vl(Qwen2Vl::load(dir, device)?)),
        }
    }

    fn save(&self, dir: &Path, dtype: FloatDtype) -> Result<()> {
        each_family!(self, m => m.save(dir, dtype))
    }

    fn device(&self) -> B::Device {
        each_family!(self, m => VisionLanguageModel::device(m))
    }

    fn eos_token_ids(&self) -> Vec<u32> {
        each_family!(self, m => m.eos_token_ids())
    }

    fn context_length(&self) -> usize {
        each_family!(self, m => VisionLanguageModel::context_length(m))
    }

    fn forward_loss(
        &self,
        input: &VlmInput<B>,
        labels: &Tensor<B, 2, Int>,
    ) -> Result<LossOutput<B>> {
        each_family!(self, m => m.forward_loss(input, labels))
    }

    fn forward_row_losses(
        &self,
        input: &VlmInput<B>,
        labels: &Tensor<B, 2, Int>,
    ) -> Result<Vec<LossOutput<B>>> {
        each_family!(self, m => m.forward_row_losses(input, labels))
    }

    fn prefill(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 2>, KvCache<B>)> {
        each_family!(self, m => m.prefill(input))
    }

    fn decode_step(&self, tokens: &[u32], cache: &mut KvCache<B>) -> Result<Tensor<B, 2>> {
        each_family!(self, m => m.decode_step(tokens, cache))
    }

    fn generate(
        &self,
        input: &VlmInput<B>,
        config: &GenerationConfig,
        stop: impl FnMut(usize, &[u32]) -> bool,
    ) -> Result<Vec<GeneratedSequence>> {
        each_family!(self, m => m.generate(input, config, stop))
    }

    fn param_parts(&self) -> Vec<ParamPart> {
        each_family!(self, m => m.param_parts())
    }

    fn with_lora(self, spec: &LoraSpec, seed: u64) -> Result<Self> {
        Ok(map_family!(self, m => m.with_lora(spec, seed)?))
    }

    fn merge_lora(self) -> Self {
        map_family!(self, m => m.merge_lora())
    }

    fn without_lora(self) -> Self {
        map_family!(self, m => m.without_lora())
    }

    fn save_adapter(&self, dir: &Path, spec: &AdapterSpec, dtype: FloatDtype) -> Result<()> {
        each_family!(self, m => m.save_adapter(dir, spec, dtype))
    }

    fn load_adapter(self, dir: &Path) -> Result<Self> {
        Ok(map_family!(self, m => m.load_adapter(dir)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_model_type_lists_the_supported_ones() {
        let err = Family::from_model_type("blip2").unwrap_err().to_string();
        assert!(err.contains("`blip2`"), "{err}");
        assert!(err.contains("idefics3, smolvlm"), "{err}");
        assert_eq!(
            Family::from_model_type("smolvlm").unwrap(),
            Family::Idefics3
        );
        assert_eq!(Family::from_model_type("llava").unwrap(), Family::Llava);
        assert_eq!(
            Family::from_model_type("qwen2_vl").unwrap(),
            Family::Qwen2Vl
        );
        assert_eq!(
            Family::from_model_type("qwen2_5_vl").unwrap(),
            Family::Qwen2_5Vl
        );
        assert!(err.contains("qwen2_vl, qwen2_5_vl"), "{err}");
    }

    #[test]
    fn every_family_builds_a_valid_scratch_config() {
        let spec = ScratchSpec {
            vision_width: 32,
            vision_layers: 2,
            text_width: 64,
            text_layers: 2,
            image_size: 32,
            patch_size: 8,
            scale_factor: 2,
            vocab_size: 128,
            image_token_id: 127,
            bos_token_id: 1,
            eos_token_id: 2,
            pad_token_id: 0,
        };
        for family in Family::ALL {
            let config = family.scratch_config(&spec).unwrap();
            assert_eq!(config.family(), family);
            assert!(config.tokens_per_image() > 0);
            let again = ModelConfig::from_value(match &config {
                ModelConfig::Idefics3(c) => c.to_hf_json(),
                ModelConfig::Llava(c) => c.to_hf_json(),
                ModelConfig::Qwen2Vl(c) => c.to_hf_json(),
            })
            .unwrap();
            assert_eq!(again.param_counts(), config.param_counts(), "{family}");
        }
    }
}
