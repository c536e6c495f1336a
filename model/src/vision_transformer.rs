//! The SigLIP-style vision tower (`model.vision_model`): patch embedding (a convolution whose
//! stride equals its kernel, computed as one batched matmul over flattened patches), learned
//! position embeddings, pre-LayerNorm bidirectional encoder layers with gelu-tanh MLPs, and a
//! final LayerNorm. Input tiles are full-size (the processor always produces them). Its encoder
//! layers ([`EncoderLayer`], [`Encoder`]) are CLIP's too, which LLaVA's tower reuses.

use burn::module::Initializer;
use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::activation::Activation;
use crate::attention::{attention, merge_heads, split_heads, AttentionMask};
use crate::config::VisionConfig;
use crate::error::{ModelError, Result};
use crate::fused;
use crate::linear::Linear;
use crate::precision;

/// A `Conv2d` with stride = kernel = `patch_size` and no padding (HF `patch_embedding`).
#[derive(Module, Debug)]
pub struct PatchEmbedding<B: Backend> {
    /// `[out_channels, in_channels, patch, patch]`, exactly as HF stores it.
    pub weight: Param<Tensor<B, 4>>,
    /// `[out_channels]` (SigLIP has one, CLIP does not).
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> PatchEmbedding<B> {
    /// A placeholder (zeros, allocated lazily) `channels → width` patch convolution.
    pub fn new(
        channels: usize,
        width: usize,
        patch: usize,
        bias: bool,
        device: &B::Device,
    ) -> Self {
        Self {
            weight: Initializer::Zeros.init([width, channels, patch, patch], device),
            bias: bias.then(|| Initializer::Zeros.init([width], device)),
        }
    }

    /// `[N, C, H, W]` → `[N, ⌊H/p⌋·⌊W/p⌋, width]`, patches in row-major order (the pixels past
    /// the last whole patch are dropped, as by a stride-p convolution).
    pub fn forward(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        let [n, c, h, w] = pixels.dims();
        let [width, _, p, _] = self.weight.dims();
        let (rows, cols) = (h / p, w / p);
        let pixels = if (h, w) == (rows * p, cols * p) {
            pixels
        } else {
            pixels.slice([0..n, 0..c, 0..rows * p, 0..cols * p])
        };
        let patches = pixels
            .reshape([n, c, rows, p, cols, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([n, rows * cols, c * p * p]);
        let kernel = self.weight.val().reshape([width, c * p * p]).transpose();
        precision::linear(patches, kernel, self.bias.as_ref().map(Param::val))
    }
}

/// Patch embedding plus learned position embedding (`model.vision_model.embeddings`).
#[derive(Module, Debug)]
pub struct VisionEmbeddings<B: Backend> {
    /// Patch projection.
    pub patch_embedding: PatchEmbedding<B>,
    /// One learned vector per patch position.
    pub position_embedding: Embedding<B>,
    /// Position-embedding row of each patch of a full tile.
    #[module(skip)]
    position_ids: Vec<i64>,
}

impl<B: Backend> VisionEmbeddings<B> {
    fn forward(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        let patches = self.patch_embedding.forward(pixels);
        let device = patches.device();
        let count = self.position_ids.len();
        let ids = Tensor::<B, 1, Int>::from_data(
            TensorData::new(self.position_ids.clone(), [count]),
            &device,
        );
        let positions = self.position_embedding.weight.val().select(0, ids);
        let positions = precision::at_use(positions, &patches);
        patches + positions.unsqueeze::<3>()
    }
}

/// Position-embedding rows of a full tile of `side × side` patches, reproducing HF's
/// fractional-coordinate bucketing (`Idefics3VisionEmbeddings.forward`) bit for bit, f32
/// rounding included: for most sides that are not powers of two some rows repeat or are skipped.
pub fn full_tile_position_ids(side: usize) -> Vec<i64> {
    let boundaries = torch_arange_f32(1.0 / side as f64, 1.0, 1.0 / side as f64);
    // Fractional coordinates i * (1/side) in f32, clamped below 1, bucketized with right=True.
    let step_f32 = 1.0f32 / side as f32;
    let limit = (1.0f64 - 1e-6) as f32;
    let bucket = |i: usize| {
        let x = (i as f32 * step_f32).min(limit);
        boundaries.iter().take_while(|&&b| b <= x).count() as i64
    };
    let buckets: Vec<i64> = (0..side).map(bucket).collect();
    let mut ids = Vec::with_capacity(side * side);
    for &row in &buckets {
        for &col in &buckets {
            ids.push(row * side as i64 + col);
        }
    }
    ids
}

/// The values of `torch.arange(start, end, step)` as float32 on x86 CPUs. The length is
/// `ceil((end - start) / step)` in f64. PyTorch's CPU kernel fills blocks of two 8-lane vectors
/// as `f32(f32(start + step·base) + i·step)` for lane `i` of the vector starting at `base`
/// (sums in f64), and the remaining tail element-wise as `f32(start + step·j)`. The low bits
/// matter: they decide the bucket boundaries above (checked against torch for sides 1..300).
fn torch_arange_f32(start: f64, end: f64, step: f64) -> Vec<f32> {
    const LANES: usize = 8;
    let len = ((end - start) / step).ceil().max(0.0) as usize;
    let vectorised = len / (2 * LANES) * (2 * LANES);
    (0..len)
        .map(|j| {
            if j < vectorised {
                let base = j - j % LANES;
                let first = (start + step * base as f64) as f32;
                (first as f64 + (j - base) as f64 * step) as f32
            } else {
                (start + step * j as f64) as f32
            }
        })
        .collect()
}

/// Bidirectional multi-head self-attention with biases (`self_attn`).
#[derive(Module, Debug)]
pub struct VisionAttention<B: Backend> {
    /// Query projection.
    pub q_proj: Linear<B>,
    /// Key projection.
    pub k_proj: Linear<B>,
    /// Value projection.
    pub v_proj: Linear<B>,
    /// Output projection.
    pub out_proj: Linear<B>,
    heads: usize,
    head_dim: usize,
}

impl<B: Backend> VisionAttention<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let q = split_heads(self.q_proj.forward(x.clone()), self.heads, self.head_dim);
        let k = split_heads(self.k_proj.forward(x.clone()), self.heads, self.head_dim);
        let v = split_heads(self.v_proj.forward(x), self.heads, self.head_dim);
        let context = attention(q, k, v, &AttentionMask::Bidirectional);
        self.out_proj.forward(merge_heads(context))
    }
}

/// `fc2(gelu_tanh(fc1(x)))` (`mlp`).
#[derive(Module, Debug)]
pub struct VisionMlp<B: Backend> {
    /// Expansion.
    pub fc1: Linear<B>,
    /// Projection back.
    pub fc2: Linear<B>,
}

/// `gelu_pytorch_tanh`: `x/2 · (1 + tanh(√(2/π)(x + 0.044715x³)))`, evaluated as the identical
/// `x · sigmoid(2√(2/π)(x + 0.044715x³))` — one transcendental and no `powf`, about 3× faster on
/// CPU backends than Burn's `gelu_approximate`. The unfused form of [`fused::gelu_tanh`].
pub fn gelu_tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let inner = (x.clone() * x.clone() * fused::GELU_CUBIC + 1.0) * x.clone() * fused::GELU_SCALE;
    x * sigmoid(inner)
}

/// `norm` applied to `x`, by the fused kernel where it applies (`eps` is the epsilon `norm` was
/// built with, which Burn keeps private). A norm held in another type than `x` (frozen, in bf16,
/// under bf16-mixed) is widened to `x`'s for the call.
pub(crate) fn layer_norm<B: Backend>(
    norm: &LayerNorm<B>,
    x: Tensor<B, 3>,
    eps: f64,
) -> Tensor<B, 3> {
    if norm.gamma.val().dtype() != x.dtype() {
        let widened = precision::params_in(norm.clone(), precision::float_dtype(&x));
        return layer_norm(&widened, x, eps);
    }
    fused::applied(fused::layer_norm(norm, &x, eps)).unwrap_or_else(|| norm.forward(x))
}

/// A pre-LayerNorm encoder layer (`encoder.layers.N`), shared by SigLIP (gelu-tanh MLP) and
/// CLIP (quick_gelu MLP): the two differ only in the MLP's activation.
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    /// Self-attention.
    pub self_attn: VisionAttention<B>,
    /// Norm before attention.
    pub layer_norm1: LayerNorm<B>,
    /// MLP.
    pub mlp: VisionMlp<B>,
    /// Norm before the MLP.
    pub layer_norm2: LayerNorm<B>,
    #[module(skip)]
    activation: Activation,
}

/// The sizes of a vision encoder layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderLayerShape {
    /// Width.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Attention heads.
    pub heads: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// The MLP's activation.
    pub activation: Activation,
}

impl<B: Backend> EncoderLayer<B> {
    /// A placeholder layer (zeros, allocated lazily; norms at their defaults).
    pub fn new(shape: &EncoderLayerShape, device: &B::Device) -> Self {
        let d = shape.hidden_size;
        let linear = |i, o| Linear::new(i, o, true, device);
        Self {
            self_attn: VisionAttention {
                q_proj: linear(d, d),
                k_proj: linear(d, d),
                v_proj: linear(d, d),
                out_proj: linear(d, d),
                heads: shape.heads,
                head_dim: d / shape.heads,
            },
            layer_norm1: vision_layer_norm(d, shape.layer_norm_eps, device),
            mlp: VisionMlp {
                fc1: linear(d, shape.intermediate_size),
                fc2: linear(shape.intermediate_size, d),
            },
            layer_norm2: vision_layer_norm(d, shape.layer_norm_eps, device),
            activation: shape.activation,
        }
    }

    /// `eps`: the LayerNorms' epsilon.
    pub(crate) fn forward(&self, x: Tensor<B, 3>, eps: f64) -> Tensor<B, 3> {
        let x = x.clone()
            + self
                .self_attn
                .forward(layer_norm(&self.layer_norm1, x, eps));
        let h = self
            .mlp
            .fc1
            .forward(layer_norm(&self.layer_norm2, x.clone(), eps));
        x + self.mlp.fc2.forward(self.activation.forward(h))
    }
}

/// A LayerNorm over `width` with epsilon `eps`.
pub fn vision_layer_norm<B: Backend>(width: usize, eps: f64, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(width).with_epsilon(eps).init(device)
}

/// The encoder stack (`encoder`).
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    /// Layers in order.
    pub layers: Vec<EncoderLayer<B>>,
}

impl<B: Backend> Encoder<B> {
    /// Calls `f` with every linear layer and its module path under `prefix` (the encoder's
    /// own path, e.g. `model.vision_model.encoder`), in module order.
    pub fn for_each_linear_mut(&mut self, prefix: &str, f: &mut impl FnMut(&str, &mut Linear<B>)) {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let (attn, mlp) = (&mut layer.self_attn, &mut layer.mlp);
            for (name, linear) in [
                ("self_attn.q_proj", &mut attn.q_proj),
                ("self_attn.k_proj", &mut attn.k_proj),
                ("self_attn.v_proj", &mut attn.v_proj),
                ("self_attn.out_proj", &mut attn.out_proj),
                ("mlp.fc1", &mut mlp.fc1),
                ("mlp.fc2", &mut mlp.fc2),
            ] {
                f(&format!("{prefix}.layers.{i}.{name}"), linear);
            }
        }
    }
}

/// The whole vision tower (`model.vision_model`).
#[derive(Module, Debug)]
pub struct VisionTransformer<B: Backend> {
    /// Patch and position embeddings.
    pub embeddings: VisionEmbeddings<B>,
    /// Encoder layers.
    pub encoder: Encoder<B>,
    /// Final LayerNorm.
    pub post_layernorm: LayerNorm<B>,
    image_size: usize,
    channels: usize,
    layer_norm_eps: f64,
}

impl<B: Backend> VisionTransformer<B> {
    /// Builds the tower with lazily-initialised placeholder parameters (see [`crate::weights`]).
    pub fn new(config: &VisionConfig, device: &B::Device) -> Self {
        let d = config.hidden_size;
        let side = config.image_size / config.patch_size;
        let shape = EncoderLayerShape {
            hidden_size: d,
            intermediate_size: config.intermediate_size,
            heads: config.num_attention_heads,
            layer_norm_eps: config.layer_norm_eps,
            activation: Activation::GeluTanh,
        };
        let layers = (0..config.num_hidden_layers)
            .map(|_| EncoderLayer::new(&shape, device))
            .collect();
        Self {
            embeddings: VisionEmbeddings {
                patch_embedding: PatchEmbedding::new(
                    config.num_channels,
                    d,
                    config.patch_size,
                    true,
                    device,
                ),
                position_embedding: EmbeddingConfig::new(side * side, d).init(device),
                position_ids: full_tile_position_ids(side),
            },
            encoder: Encoder { layers },
            post_layernorm: vision_layer_norm(d, config.layer_norm_eps, device),
            image_size: config.image_size,
            channels: config.num_channels,
            layer_norm_eps: config.layer_norm_eps,
        }
    }

    /// Encodes full-size tiles `[N, C, image_size, image_size]` into `[N, patches, hidden]`.
    pub fn forward(&self, pixels: Tensor<B, 4>) -> Result<Tensor<B, 3>> {
        let [_, c, h, w] = pixels.dims();
        if c != self.channels || h != self.image_size || w != self.image_size {
            return Err(ModelError::input(
                "pixel_values",
                format!(
                    "tiles must be [N, {}, {}, {}], got {:?}",
                    self.channels,
                    self.image_size,
                    self.image_size,
                    pixels.dims()
                ),
            ));
        }
        let mut x = self.embeddings.forward(pixels);
        for layer in &self.encoder.layers {
            x = layer.forward(x, self.layer_norm_eps);
        }
        Ok(layer_norm(&self.post_layernorm, x, self.layer_norm_eps))
    }
}

#[cfg(test)]
mod tests {
    use super::full_tile_position_ids;

    #[test]
    fn power_of_two_sides_map_to_identity() {
        for side in [1, 2, 4, 8, 32] {
            let ids = full_tile_position_ids(side);
            assert_eq!(ids, (0..(side * side) as i64).collect::<Vec<_>>());
        }
    }

    /// Buckets torch 2.x produced for a 25-patch side (first row of the ids HF fed the position
    /// embedding in the `posid_quirk` parity fixture).
    #[test]
    fn side_25_matches_torch_buckets() {
        let torch = [
            0, 1, 2, 3, 4, 4, 6, 7, 8, 8, 9, 10, 11, 12, 14, 14, 16, 17, 17, 19, 19, 21, 22, 22, 24,
        ];
        assert_eq!(&full_tile_position_ids(25)[..25], &torch);
    }

    #[test]
    fn every_side_stays_in_range() {
        for side in 1..70 {
            let ids = full_tile_position_ids(side);
            assert_eq!(ids.len(), side * side);
            assert!(
                ids.iter().all(|&id| id >= 0 && (id as usize) < side * side),
                "side {side}"
            );
        }
    }
}
