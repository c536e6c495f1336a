//! LLaVA's CLIP vision tower (`vision_tower.vision_model`, HF `CLIPVisionModel`): a bias-free
//! patch convolution, a learned class embedding prepended to the patches, learned position
//! embeddings, `pre_layrnorm` (HF's spelling), pre-LayerNorm encoder layers with quick_gelu MLPs
//! (the [`EncoderLayer`]s the SigLIP tower uses), and `post_layernorm`, which HF applies only to
//! the pooled class token — LLaVA never reads it, so it is loaded and saved but not run.
//!
//! LLaVA reads the hidden states HF's `output_hidden_states` gives: index 0 is the
//! `pre_layrnorm` output, index `i` the output of layer `i - 1`. [`ClipVisionTransformer::forward`]
//! runs only the layers the requested indices need (LLaVA-1.5's `-2` skips the last one).

use burn::module::{Initializer, Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::{ModelError, Result};
use crate::llava::config::ClipVisionConfig;
use crate::precision;
use crate::vision_transformer::{
    layer_norm, vision_layer_norm, Encoder, EncoderLayer, EncoderLayerShape, PatchEmbedding,
};

/// Patch, class and position embeddings (`embeddings`).
#[derive(Module, Debug)]
pub struct ClipEmbeddings<B: Backend> {
    /// The learned class token, `[hidden]`.
    pub class_embedding: Param<Tensor<B, 1>>,
    /// The patch convolution, without bias.
    pub patch_embedding: PatchEmbedding<B>,
    /// One learned vector per position (class token first).
    pub position_embedding: Embedding<B>,
}

impl<B: Backend> ClipEmbeddings<B> {
    /// `[N, C, H, W]` → `[N, 1 + patches, hidden]`.
    fn forward(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        let patches = self.patch_embedding.forward(pixels);
        let [n, _, width] = patches.dims();
        let class = precision::at_use(self.class_embedding.val(), &patches)
            .reshape([1, 1, width])
            .expand([n, 1, width]);
        let tokens = Tensor::cat(vec![class, patches], 1);
        let positions = precision::at_use(self.position_embedding.weight.val(), &tokens);
        tokens + positions.unsqueeze::<3>()
    }
}

/// The tower proper (`vision_model`).
#[derive(Module, Debug)]
pub struct ClipVisionTransformer<B: Backend> {
    /// Embeddings.
    pub embeddings: ClipEmbeddings<B>,
    /// LayerNorm before the encoder (HF's `pre_layrnorm`, typo included).
    pub pre_layrnorm: LayerNorm<B>,
    /// Encoder layers.
    pub encoder: Encoder<B>,
    /// LayerNorm of the pooled class token (unused by LLaVA).
    pub post_layernorm: LayerNorm<B>,
    image_size: usize,
    channels: usize,
    layer_norm_eps: f64,
}

/// `CLIPVisionModel` (`vision_tower`): the tower under its `vision_model` name.
#[derive(Module, Debug)]
pub struct ClipVisionModel<B: Backend> {
    /// The tower.
    pub vision_model: ClipVisionTransformer<B>,
}

impl<B: Backend> ClipVisionModel<B> {
    /// A placeholder tower of `config` (zeros, allocated lazily).
    pub fn new(config: &ClipVisionConfig, device: &B::Device) -> Self {
        let d = config.hidden_size;
        let shape = EncoderLayerShape {
            hidden_size: d,
            intermediate_size: config.intermediate_size,
            heads: config.num_attention_heads,
            layer_norm_eps: config.layer_norm_eps,
            activation: config.hidden_act,
        };
        let layers = (0..config.num_hidden_layers)
            .map(|_| EncoderLayer::new(&shape, device))
            .collect();
        let norm = || vision_layer_norm(d, config.layer_norm_eps, device);
        let embeddings = ClipEmbeddings {
            class_embedding: Initializer::Zeros.init([d], device),
            patch_embedding: PatchEmbedding::new(
                config.num_channels,
                d,
                config.patch_size,
                false,
                device,
            ),
            position_embedding: EmbeddingConfig::new(config.num_positions(), d).init(device),
        };
        Self {
            vision_model: ClipVisionTransformer {
                embeddings,
                pre_layrnorm: norm(),
                encoder: Encoder { layers },
                post_layernorm: norm(),
                image_size: config.image_size,
                channels: config.num_channels,
                layer_norm_eps: config.layer_norm_eps,
            },
        }
    }
}

impl<B: Backend> ClipVisionTransformer<B> {
    /// The hidden states `indices` name (0 = `pre_layrnorm` output, `i` = layer `i - 1`'s
    /// output), each `[N, 1 + patches, hidden]`, for images `[N, C, image_size, image_size]`.
    pub fn forward(&self, pixels: Tensor<B, 4>, indices: &[usize]) -> Result<Vec<Tensor<B, 3>>> {
        let [_, c, h, w] = pixels.dims();
        if c != self.channels || h != self.image_size || w != self.image_size {
            return Err(ModelError::input(
                "pixel_values",
                format!(
                    "images must be [N, {}, {}, {}], got {:?}",
                    self.channels,
                    self.image_size,
                    self.image_size,
                    pixels.dims()
                ),
            ));
        }
        let last = indices.iter().copied().max().unwrap_or(0);
        let eps = self.layer_norm_eps;
        let mut x = layer_norm(&self.pre_layrnorm, self.embeddings.forward(pixels), eps);
        let mut states = vec![x.clone()];
        for layer in self.encoder.layers.iter().take(last) {
            x = layer.forward(x, eps);
            states.push(x.clone());
        }
        Ok(indices.iter().map(|&i| states[i].clone()).collect())
    }
}
