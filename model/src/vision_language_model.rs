//! The full Idefics3 / SmolVLM model (`Idefics3ForConditionalGeneration`): vision tower →
//! connector → image features spliced into the token embeddings at `image_token_id` positions
//! (in order) → Llama → LM head (own weight or tied to the embeddings).

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::config::Idefics3Config;
use crate::connector::Connector;
use crate::error::{ModelError, Result};
use crate::kv_cache::KvCache;
use crate::language_model::TextModel;
use crate::linear::Linear;
use crate::loss::LossOutput;
use crate::precision;
use crate::text_decoder::{self, check_token_ids, splice_image_features, TextDecoder};
use crate::vision_transformer::VisionTransformer;

/// A batch for the model.
#[derive(Debug, Clone)]
pub struct VlmInput<B: Backend> {
    /// Token ids `[B, T]`.
    pub input_ids: Tensor<B, 2, Int>,
    /// `[B, T]`, 1 = real token, 0 = padding (left padding for generation); `None` = all real.
    pub attention_mask: Option<Tensor<B, 2, Int>>,
    /// Every image tile of the batch, in batch order: `[total_tiles, C, H, W]`. Qwen2-VL takes
    /// its flattened patches, HF's `pixel_values` `[patches, C·T·P·P]`, as `[patches, 1, 1,
    /// C·T·P·P]` (any 4-D shape with one patch per first-axis row).
    pub pixel_values: Option<Tensor<B, 4>>,
    /// Per image, in batch order: its patch grid `[t, h, w]` (HF's `image_grid_thw`; Qwen2-VL's
    /// dynamic resolution). `None` for families with fixed-size images.
    pub image_grid_thw: Option<Vec<[usize; 3]>>,
}

impl<B: Backend> VlmInput<B> {
    /// A text-and-image batch without padding.
    pub fn new(input_ids: Tensor<B, 2, Int>, pixel_values: Option<Tensor<B, 4>>) -> Self {
        Self {
            input_ids,
            attention_mask: None,
            pixel_values,
            image_grid_thw: None,
        }
    }
}

/// The backbone (`model`): vision tower, connector and language model.
#[derive(Module, Debug)]
pub struct Idefics3Model<B: Backend> {
    /// `model.vision_model`.
    pub vision_model: VisionTransformer<B>,
    /// `model.connector`.
    pub connector: Connector<B>,
    /// `model.text_model`.
    pub text_model: TextModel<B>,
}

/// The model with its LM head.
#[derive(Module, Debug)]
pub struct Idefics3<B: Backend> {
    /// The backbone.
    pub model: Idefics3Model<B>,
    /// `lm_head`; `None` when tied to `model.text_model.embed_tokens`.
    pub lm_head: Option<Linear<B>>,
    #[module(skip)]
    config: Idefics3Config,
}

impl<B: Backend> Idefics3<B> {
    /// The architecture of `config` with lazily-allocated placeholder parameters (zeros): use
    /// [`Idefics3::init_random`] or [`Idefics3::load`] to get a working model.
    pub fn new(config: &Idefics3Config, device: &B::Device) -> Self {
        let (v, t) = (&config.vision, &config.text);
        let lm_head = (!config.tie_word_embeddings)
            .then(|| Linear::new(t.hidden_size, t.vocab_size, false, device));
        Self {
            model: Idefics3Model {
                vision_model: VisionTransformer::new(v, device),
                connector: Connector::new(
                    v.hidden_size,
                    t.hidden_size,
                    config.scale_factor,
                    device,
                ),
                text_model: TextModel::new(t, device),
            },
            lm_head,
            config: config.clone(),
        }
    }

    /// The config this model was built from.
    pub fn config(&self) -> &Idefics3Config {
        &self.config
    }

    /// Image features `[tiles · tokens_per_tile, text_hidden]` for tiles `[N, C, H, W]`.
    pub fn image_features(&self, pixel_values: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        let encoded = self.model.vision_model.forward(pixel_values)?;
        let features = self.model.connector.forward(encoded);
        let [n, tokens, width] = features.dims();
        Ok(features.reshape([n * tokens, width]))
    }

    /// Token embeddings with image features spliced in, plus per-row token validity.
    pub fn embed(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 3>, Vec<Vec<bool>>)> {
        let [batch, seq] = input.input_ids.dims();
        let ids = int_values(&input.input_ids);
        check_token_ids(&ids, self.config().text.vocab_size)?;
        let valid = validity(input.attention_mask.as_ref(), batch, seq)?;
        let embeds = precision::embed(&self.model.text_model.embed_tokens, input.input_ids.clone());
        let image_token = self.config().image_token_id as i64;
        let image_positions = ids.iter().filter(|&&id| id == image_token).count();
        let tiles = input.pixel_values.as_ref().map_or(0, |p| p.dims()[0]);
        let tokens_per_tile = self.config().tokens_per_tile();
        if image_positions != tiles * tokens_per_tile {
            return Err(ModelError::ImageTokenMismatch {
                image_tokens: image_positions,
                image_token_id: self.config().image_token_id,
                tiles,
                tokens_per_tile,
                expected: tiles * tokens_per_tile,
            });
        }
        let Some(pixels) = input.pixel_values.clone().filter(|_| tiles > 0) else {
            return Ok((embeds, valid));
        };
        let features = self.image_features(pixels)?;
        Ok((
            splice_image_features(embeds, &ids, image_token, features),
            valid,
        ))
    }

    /// Final hidden states `[B, T, hidden]`, continuing and extending `cache` when given.
    pub fn forward_hidden(
        &self,
        input: &VlmInput<B>,
        cache: Option<&mut KvCache<B>>,
    ) -> Result<Tensor<B, 3>> {
        text_decoder::forward_hidden(self, input, cache)
    }

    /// LM-head logits for hidden states `[..., hidden]`.
    pub fn logits<const D: usize>(&self, hidden: Tensor<B, D>) -> Tensor<B, D> {
        text_decoder::logits(self, hidden)
    }

    /// Causal LM logits `[B, T, vocab]`.
    pub fn forward(&self, input: &VlmInput<B>) -> Result<Tensor<B, 3>> {
        text_decoder::forward(self, input)
    }

    /// Next-token cross-entropy against `labels [B, T]` (aligned with `input_ids`, as in HF:
    /// position `t` predicts `labels[t + 1]`; -100 is ignored). Only positions with a target
    /// go through the LM head.
    pub fn forward_loss(
        &self,
        input: &VlmInput<B>,
        labels: &Tensor<B, 2, Int>,
    ) -> Result<LossOutput<B>> {
        text_decoder::forward_loss(self, input, labels)
    }
}

impl<B: Backend> TextDecoder<B> for Idefics3<B> {
    fn text_model(&self) -> &TextModel<B> {
        &self.model.text_model
    }

    fn lm_head(&self) -> Option<&Linear<B>> {
        self.lm_head.as_ref()
    }

    fn embed(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 3>, Vec<Vec<bool>>)> {
        Idefics3::embed(self, input)
    }
}

/// The values of an int tensor as i64, row-major.
pub(crate) fn int_values<B: Backend, const D: usize>(tensor: &Tensor<B, D, Int>) -> Vec<i64> {
    tensor
        .to_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("converted to i64")
}

/// Per-row validity from an optional 0/1 attention mask.
pub(crate) fn validity<B: Backend>(
    mask: Option<&Tensor<B, 2, Int>>,
    batch: usize,
    seq: usize,
) -> Result<Vec<Vec<bool>>> {
    let Some(mask) = mask else {
        return Ok(vec![vec![true; seq]; batch]);
    };
    if mask.dims() != [batch, seq] {
        return Err(ModelError::input(
            "attention_mask",
            format!(
                "shape {:?} differs from input_ids [{batch}, {seq}]",
                mask.dims()
            ),
        ));
    }
    let values = int_values(mask);
    if let Some(bad) = values.iter().find(|&&v| v != 0 && v != 1) {
        return Err(ModelError::input(
            "attention_mask",
            format!("values must be 0 or 1, found {bad}"),
        ));
    }
    Ok((0..batch)
        .map(|b| {
            values[b * seq..(b + 1) * seq]
                .iter()
                .map(|&v| v == 1)
                .collect()
        })
        .collect())
}
