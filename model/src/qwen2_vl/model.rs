//! The whole Qwen2-VL or Qwen2.5-VL model (`Qwen2VLForConditionalGeneration`,
//! `Qwen2_5_VLForConditionalGeneration`; the config's tower variant says which): the vision
//! tower's merged features written into the rows of `image_token_id` tokens, in order → the
//! Qwen2 text model
//! (q/k/v biases) at M-RoPE positions ([`crate::qwen2_vl::rope_index`]) → LM head (own weight
//! or tied). Modules are named as in the hub checkpoints (`visual`, `model`, `lm_head`), so a
//! parameter's module path is its hub tensor name.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::{ModelError, Result};
use crate::init::init_params;
use crate::language_model::{RopePositions, TextModel};
use crate::linear::Linear;
use crate::precision;
use crate::qwen2_vl::config::Qwen2VlConfig;
use crate::qwen2_vl::rope_index::{rope_index, RopeInput};
use crate::qwen2_vl::vision::Qwen2VisionTransformer;
use crate::text_decoder::{self, check_token_ids, splice_image_features, TextDecoder};
use crate::vision_language_model::{int_values, validity, VlmInput};

/// Qwen2-VL or Qwen2.5-VL.
#[derive(Module, Debug)]
pub struct Qwen2Vl<B: Backend> {
    /// `visual`: the vision tower and its merger.
    pub visual: Qwen2VisionTransformer<B>,
    /// `model`: the Qwen2 text model.
    pub model: TextModel<B>,
    /// `lm_head`; `None` when tied to `model.embed_tokens`.
    pub lm_head: Option<Linear<B>>,
    #[module(skip)]
    config: Qwen2VlConfig,
}

impl<B: Backend> Qwen2Vl<B> {
    /// The architecture of `config` with lazily-allocated placeholder parameters (zeros): use
    /// [`Qwen2Vl::init_random`] or [`Qwen2Vl::load`] to get a working model.
    pub fn new(config: &Qwen2VlConfig, device: &B::Device) -> Self {
        let t = &config.text;
        let lm_head = (!config.tie_word_embeddings)
            .then(|| Linear::new(t.hidden_size, t.vocab_size, false, device));
        Self {
            visual: Qwen2VisionTransformer::new(&config.vision, device),
            model: TextModel::new(t, device),
            lm_head,
            config: config.clone(),
        }
    }

    /// A freshly initialised model of `config`, deterministic for `seed`: matrices ~ N(0,
    /// initializer_range²) (the tower's range for `visual.*`), biases 0, norm scales 1, the
    /// padding token's embedding row 0.
    pub fn init_random(config: &Qwen2VlConfig, seed: u64, device: &B::Device) -> Self {
        let std = |name: &str| {
            if name.starts_with("visual.") {
                config.vision.initializer_range
            } else {
                config.text.initializer_range
            }
        };
        let pad_row = config
            .text
            .pad_token_id
            .map(|pad| ("model.embed_tokens.weight", pad));
        init_params(Self::new(config, device), seed, std, pad_row)
    }

    /// The config this model was built from.
    pub fn config(&self) -> &Qwen2VlConfig {
        &self.config
    }

    /// The image grids of `input`: one per image, given exactly when pixels are.
    fn grids<'a>(&self, input: &'a VlmInput<B>) -> Result<&'a [[usize; 3]]> {
        match (&input.pixel_values, input.image_grid_thw.as_deref()) {
            (Some(_), Some(grids)) => Ok(grids),
            (None, None | Some([])) => Ok(&[]),
            (Some(_), None) => Err(ModelError::input(
                "image_grid_thw",
                "Qwen2-VL needs each image's patch grid next to pixel_values",
            )),
            (None, Some(grids)) => Err(ModelError::input(
                "pixel_values",
                format!(
                    "missing, while image_grid_thw names {} image(s)",
                    grids.len()
                ),
            )),
        }
    }

    /// Merged image features `[Σ t·h·w / merge², text_hidden]` for `pixel_values` (one
    /// flattened patch per first-axis row) of images with patch grids `grids`.
    pub fn image_features(
        &self,
        pixel_values: Tensor<B, 4>,
        grids: &[[usize; 3]],
    ) -> Result<Tensor<B, 2>> {
        let [n, a, b, c] = pixel_values.dims();
        let values = self.config.vision.patch_values();
        if a * b * c != values {
            return Err(ModelError::input(
                "pixel_values",
                format!(
                    "{:?} holds {} values per patch, the config's C·T·P·P is {values}",
                    [n, a, b, c],
                    a * b * c
                ),
            ));
        }
        self.visual
            .forward(pixel_values.reshape([n, values]), grids)
    }

    /// Token embeddings with image features spliced in, plus per-row token validity. The
    /// image tokens must number the grids' merged patches.
    pub fn embed(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 3>, Vec<Vec<bool>>)> {
        let [batch, seq] = input.input_ids.dims();
        let ids = int_values(&input.input_ids);
        check_token_ids(&ids, self.config.text.vocab_size)?;
        let valid = validity(input.attention_mask.as_ref(), batch, seq)?;
        let embeds = precision::embed(&self.model.embed_tokens, input.input_ids.clone());
        let grids = self.grids(input)?;
        let image_token = self.config.image_token_id as i64;
        let image_positions = ids.iter().filter(|&&id| id == image_token).count();
        let merge = self.config.vision.spatial_merge_size.pow(2);
        let expected: usize = grids.iter().map(|[t, h, w]| t * h * w / merge).sum();
        if image_positions != expected {
            return Err(ModelError::input(
                "input_ids",
                format!(
                    "{image_positions} image tokens (id {}), but image_grid_thw {grids:?} needs {expected}",
                    self.config.image_token_id
                ),
            ));
        }
        let Some(pixels) = input.pixel_values.clone().filter(|_| !grids.is_empty()) else {
            return Ok((embeds, valid));
        };
        let features = self.image_features(pixels, grids)?;
        Ok((
            splice_image_features(embeds, &ids, image_token, features),
            valid,
        ))
    }

    /// The M-RoPE positions of `input`'s tokens and each row's delta.
    pub fn rope_positions(
        &self,
        input: &VlmInput<B>,
        valid: &[Vec<bool>],
    ) -> Result<RopePositions> {
        let ids = int_values(&input.input_ids);
        rope_index(&RopeInput {
            ids: &ids,
            valid,
            image_token: self.config.image_token_id as i64,
            grids: self.grids(input)?,
            merge: self.config.vision.spatial_merge_size,
        })
    }

    /// Causal LM logits `[B, T, vocab]` (loss, prefill, decoding and generation: the
    /// [`crate::VisionLanguageModel`] implementation).
    pub fn forward(&self, input: &VlmInput<B>) -> Result<Tensor<B, 3>> {
        text_decoder::forward(self, input)
    }
}

impl<B: Backend> TextDecoder<B> for Qwen2Vl<B> {
    fn text_model(&self) -> &TextModel<B> {
        &self.model
    }

    fn lm_head(&self) -> Option<&Linear<B>> {
        self.lm_head.as_ref()
    }

    fn embed(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 3>, Vec<Vec<bool>>)> {
        Qwen2Vl::embed(self, input)
    }

    fn rope_positions(
        &self,
        input: &VlmInput<B>,
        valid: &[Vec<bool>],
    ) -> Result<Option<RopePositions>> {
        Qwen2Vl::rope_positions(self, input, valid).map(Some)
    }
}
