//! The whole LLaVA-1.5 model (`LlavaForConditionalGeneration`): CLIP tower → the chosen hidden
//! states (class token dropped for the `default` strategy, layers concatenated on channels) →
//! projector → image features written into the rows of `image_token_index` tokens, in order →
//! Llama → LM head (own weight or tied). Modules are named as in the hub checkpoints
//! (`vision_tower`, `multi_modal_projector`, `language_model.model`, `language_model.lm_head`),
//! so a parameter's module path is its hub tensor name.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{s, Int, Tensor};

use crate::error::{ModelError, Result};
use crate::generation::{self, GeneratedSequence, GenerationConfig};
use crate::init::init_params;
use crate::kv_cache::KvCache;
use crate::language_model::TextModel;
use crate::linear::Linear;
use crate::llava::clip::ClipVisionModel;
use crate::llava::config::{FeatureSelect, LlavaConfig};
use crate::llava::projector::MultiModalProjector;
use crate::loss::LossOutput;
use crate::precision;
use crate::text_decoder::{self, check_token_ids, splice_image_features, TextDecoder};
use crate::vision_language_model::{int_values, validity, VlmInput};

/// The language model with its head (`language_model`, HF's `LlamaForCausalLM`).
#[derive(Module, Debug)]
pub struct LlavaLanguageModel<B: Backend> {
    /// `language_model.model`.
    pub model: TextModel<B>,
    /// `language_model.lm_head`; `None` when tied to `model.embed_tokens`.
    pub lm_head: Option<Linear<B>>,
}

/// LLaVA-1.5.
#[derive(Module, Debug)]
pub struct Llava<B: Backend> {
    /// `vision_tower` (CLIP).
    pub vision_tower: ClipVisionModel<B>,
    /// `multi_modal_projector`.
    pub multi_modal_projector: MultiModalProjector<B>,
    /// `language_model`.
    pub language_model: LlavaLanguageModel<B>,
    #[module(skip)]
    config: LlavaConfig,
}

impl<B: Backend> Llava<B> {
    /// The architecture of `config` with lazily-allocated placeholder parameters (zeros): use
    /// [`Llava::init_random`] or [`Llava::load`] to get a working model.
    pub fn new(config: &LlavaConfig, device: &B::Device) -> Self {
        let t = &config.text;
        let lm_head = (!config.tie_word_embeddings)
            .then(|| Linear::new(t.hidden_size, t.vocab_size, false, device));
        Self {
            vision_tower: ClipVisionModel::new(&config.vision, device),
            multi_modal_projector: MultiModalProjector::new(config, device),
            language_model: LlavaLanguageModel {
                model: TextModel::new(t, device),
                lm_head,
            },
            config: config.clone(),
        }
    }

    /// A freshly initialised model of `config`, deterministic for `seed` (as
    /// [`crate::Idefics3::init_random`]: matrices ~ N(0, initializer_range²) — the tower's range
    /// for `vision_tower.*` — biases 0, norm scales 1, the padding token's embedding row 0),
    /// except the projector: its matrices start at LeCun's spread, std 1/√fan_in (HF's SigLIP
    /// init, JAX's default), which keeps the features' scale through both layers. At 0.02 each
    /// layer of a small model scales its input by 0.02·√fan_in (0.16–0.23 in the quickstart),
    /// and a tiny model trained from scratch learns to ignore the image (issue 25: the LLaVA
    /// quickstart named the background of 24% of validation images after 500 steps, 82% with
    /// the projector at a 0.1 spread).
    pub fn init_random(config: &LlavaConfig, seed: u64, device: &B::Device) -> Self {
        let std = |name: &str| {
            if name.starts_with("vision_tower.") {
                config.vision.initializer_range
            } else if name.starts_with("multi_modal_projector.linear_1.") {
                lecun_std(config.projector_input_size())
            } else if name.starts_with("multi_modal_projector.linear_2.") {
                lecun_std(config.text.hidden_size)
            } else {
                config.text.initializer_range
            }
        };
        let pad_row = config
            .text
            .pad_token_id
            .map(|pad| ("language_model.model.embed_tokens.weight", pad));
        init_params(Self::new(config, device), seed, std, pad_row)
    }

    /// The config this model was built from.
    pub fn config(&self) -> &LlavaConfig {
        &self.config
    }

    /// Image features `[images · tokens_per_image, text_hidden]` for images `[N, C, H, W]`.
    pub fn image_features(&self, pixel_values: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        let indices = self.config.hidden_state_indices()?;
        let states = self
            .vision_tower
            .vision_model
            .forward(pixel_values, &indices)?;
        let selected: Vec<Tensor<B, 3>> = match self.config.vision_feature_select_strategy {
            FeatureSelect::Full => states,
            FeatureSelect::Default => states
                .into_iter()
                .map(|state| state.slice(s![.., 1.., ..]))
                .collect(),
        };
        let features = self.multi_modal_projector.forward(Tensor::cat(selected, 2));
        let [n, tokens, width] = features.dims();
        Ok(features.reshape([n * tokens, width]))
    }

    /// Token embeddings with image features spliced in, plus per-row token validity. The
    /// image tokens must number `images × tokens_per_image` ([`ModelError::ImageTokenMismatch`]).
    pub fn embed(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 3>, Vec<Vec<bool>>)> {
        let [batch, seq] = input.input_ids.dims();
        let ids = int_values(&input.input_ids);
        check_token_ids(&ids, self.config.text.vocab_size)?;
        let valid = validity(input.attention_mask.as_ref(), batch, seq)?;
        let embeds = precision::embed(
            &self.language_model.model.embed_tokens,
            input.input_ids.clone(),
        );
        let image_token = self.config.image_token_index as i64;
        let image_positions = ids.iter().filter(|&&id| id == image_token).count();
        let images = input.pixel_values.as_ref().map_or(0, |p| p.dims()[0]);
        let per_image = self.config.tokens_per_image();
        if image_positions != images * per_image {
            return Err(ModelError::ImageTokenMismatch {
                image_tokens: image_positions,
                image_token_id: self.config.image_token_index,
                tiles: images,
                tokens_per_tile: per_image,
                expected: images * per_image,
            });
        }
        let Some(pixels) = input.pixel_values.clone().filter(|_| images > 0) else {
            return Ok((embeds, valid));
        };
        let features = self.image_features(pixels)?;
        Ok((
            splice_image_features(embeds, &ids, image_token, features),
            valid,
        ))
    }

    /// LM-head logits for hidden states `[..., hidden]`.
    pub fn logits<const D: usize>(&self, hidden: Tensor<B, D>) -> Tensor<B, D> {
        text_decoder::logits(self, hidden)
    }

    /// Causal LM logits `[B, T, vocab]`.
    pub fn forward(&self, input: &VlmInput<B>) -> Result<Tensor<B, 3>> {
        text_decoder::forward(self, input)
    }

    /// Next-token cross-entropy against `labels [B, T]` (HF's alignment; -100 ignored).
    pub fn forward_loss(
        &self,
        input: &VlmInput<B>,
        labels: &Tensor<B, 2, Int>,
    ) -> Result<LossOutput<B>> {
        text_decoder::forward_loss(self, input, labels)
    }

    /// Runs the (left-padded) prompt batch: the last position's logits `[B, vocab]` and the
    /// cache to continue from.
    pub fn prefill(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 2>, KvCache<B>)> {
        generation::prefill(self, input)
    }

    /// Feeds one token per row (text only) and returns the next logits `[B, vocab]`.
    pub fn decode_step(&self, tokens: &[u32], cache: &mut KvCache<B>) -> Result<Tensor<B, 2>> {
        generation::decode_step(self, tokens, cache)
    }

    /// Generates up to `config.max_new_tokens` per row; `stop(row, tokens)` may end a row early.
    pub fn generate(
        &self,
        input: &VlmInput<B>,
        config: &GenerationConfig,
        stop: impl FnMut(usize, &[u32]) -> bool,
    ) -> Result<Vec<GeneratedSequence>> {
        generation::generate(self, input, config, stop)
    }
}

impl<B: Backend> TextDecoder<B> for Llava<B> {
    fn text_model(&self) -> &TextModel<B> {
        &self.language_model.model
    }

    fn lm_head(&self) -> Option<&Linear<B>> {
        self.language_model.lm_head.as_ref()
    }

    fn embed(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 3>, Vec<Vec<bool>>)> {
        Llava::embed(self, input)
    }
}

/// LeCun's normal spread for a layer of `fan_in` inputs: 1/√fan_in.
fn lecun_std(fan_in: usize) -> f64 {
    1.0 / (fan_in.max(1) as f64).sqrt()
}
