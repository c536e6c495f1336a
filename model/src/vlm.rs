//! What the trainer and the evaluator need from a vision-language model, as a trait: the loss
//! for training, prefill / decode / generate for answering, HF-folder save and load, and which
//! part (vision tower, connector, language model) each parameter belongs to. Idefics3 /
//! SmolVLM implements it; another family (Qwen2-VL, LLaVA) would implement it too and the
//! trainer and evaluator would run it unchanged.
//!
//! Implementations compute their matrix products through [`crate::precision`] (so that
//! `autocast` gives mixed precision) and their loss in f32, and take LoRA adapters in PEFT's
//! format ([`crate::lora`], [`crate::peft`]).

use std::fmt;
use std::path::Path;

use burn::module::{AutodiffModule, Module, ParamId};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::generation::{GeneratedSequence, GenerationConfig};
use crate::lora::LoraSpec;
use crate::loss::LossOutput;
use crate::peft::AdapterSpec;
use crate::safetensors_io::FloatDtype;
use crate::vision_language_model::VlmInput;

/// The separately trainable parts of a vision-language model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelPart {
    /// The vision encoder.
    Vision,
    /// The connector (projection) from vision features to text embeddings.
    Connector,
    /// The language model, embeddings and head included.
    Text,
}

impl ModelPart {
    /// All parts, in model order.
    pub const ALL: [ModelPart; 3] = [ModelPart::Vision, ModelPart::Connector, ModelPart::Text];

    /// Lower-case name as written in recipes.
    pub fn name(self) -> &'static str {
        match self {
            ModelPart::Vision => "vision",
            ModelPart::Connector => "connector",
            ModelPart::Text => "text",
        }
    }
}

impl fmt::Display for ModelPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One float parameter: its name in the HF checkpoint (a LoRA factor: its name in PEFT's
/// adapter file, without the `base_model.model.` prefix), its part, its id in this process and
/// its size. A parameter shared by two modules (a tied LM head) is listed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamPart {
    /// The HF tensor name, e.g. `model.vision_model.embeddings.patch_embedding.weight`.
    pub name: String,
    /// The part it belongs to, decided by the model from its module structure.
    pub part: ModelPart,
    /// Its Burn parameter id.
    pub id: ParamId,
    /// Number of elements.
    pub numel: usize,
    /// Whether it is a LoRA factor (not a weight of the base model).
    pub adapter: bool,
}

/// A vision-language model as the trainer and evaluator use it.
pub trait VisionLanguageModel<B: Backend>: Module<B> + Sync + Sized {
    /// The key/value cache that continues a prefilled batch.
    type Cache;

    /// Loads an HF model folder (config.json + safetensors) onto `device`.
    fn load(dir: &Path, device: &B::Device) -> Result<Self>;

    /// Writes the model as an HF folder (config.json + model.safetensors) in `dtype`.
    fn save(&self, dir: &Path, dtype: FloatDtype) -> Result<()>;

    /// The device the parameters live on.
    fn device(&self) -> B::Device;

    /// Token ids that end generation, from the model's config.
    fn eos_token_ids(&self) -> Vec<u32>;

    /// The context: the most positions (prompt and generated tokens) one sequence may hold,
    /// the text config's `max_position_embeddings`. Longer inputs are an error.
    fn context_length(&self) -> usize;

    /// Next-token cross-entropy of `input` against `labels [B, T]` (HF's alignment: position
    /// `t` predicts `labels[t + 1]`, -100 ignored), summed, with the target count.
    fn forward_loss(
        &self,
        input: &VlmInput<B>,
        labels: &Tensor<B, 2, Int>,
    ) -> Result<LossOutput<B>>;

    /// [`VisionLanguageModel::forward_loss`] per row: each row's summed cross-entropy over its
    /// own targets, with their count (sequence log-probabilities, as DPO scores answers).
    fn forward_row_losses(
        &self,
        input: &VlmInput<B>,
        labels: &Tensor<B, 2, Int>,
    ) -> Result<Vec<LossOutput<B>>>;

    /// Runs a (left-padded) prompt batch: the last position's logits `[B, vocab]` and the cache.
    fn prefill(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 2>, Self::Cache)>;

    /// Feeds one token per row and returns the next logits `[B, vocab]`.
    fn decode_step(&self, tokens: &[u32], cache: &mut Self::Cache) -> Result<Tensor<B, 2>>;

    /// Generates up to `config.max_new_tokens` per row; `stop(row, tokens)` may end a row early.
    fn generate(
        &self,
        input: &VlmInput<B>,
        config: &GenerationConfig,
        stop: impl FnMut(usize, &[u32]) -> bool,
    ) -> Result<Vec<GeneratedSequence>>;

    /// Every float parameter with its part, in module order.
    fn param_parts(&self) -> Vec<ParamPart>;

    /// The model with a fresh LoRA adapter (seeded by `seed`) on every layer `spec` targets;
    /// an unknown target is an error that lists the valid ones.
    fn with_lora(self, spec: &LoraSpec, seed: u64) -> Result<Self>;

    /// The model with every adapter folded into its layer's weight.
    fn merge_lora(self) -> Self;

    /// The model with every adapter removed: the base it adapts (weights shared, not copied),
    /// e.g. DPO's reference under LoRA.
    fn without_lora(self) -> Self;

    /// Writes the adapters (and the parts `spec` trains in full) as a PEFT adapter folder.
    fn save_adapter(&self, dir: &Path, spec: &AdapterSpec, dtype: FloatDtype) -> Result<()>;

    /// Applies a PEFT adapter folder to this (base) model.
    fn load_adapter(self, dir: &Path) -> Result<Self>;
}

/// A model that trains on autodiff backend `B` and evaluates (its `valid()` copy) on the inner
/// backend. Every [`VisionLanguageModel`] whose inner module is one too is such a model.
pub trait TrainableModel<B: AutodiffBackend>:
    VisionLanguageModel<B> + AutodiffModule<B, InnerModule = Self::Inference>
{
    /// The model without autodiff, for evaluation inside a run.
    type Inference: VisionLanguageModel<B::InnerBackend>;
}

impl<B, M> TrainableModel<B> for M
where
    B: AutodiffBackend,
    M: VisionLanguageModel<B> + AutodiffModule<B>,
    M::InnerModule: VisionLanguageModel<B::InnerBackend>,
{
    type Inference = M::InnerModule;
}
