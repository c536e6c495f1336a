//! A block of the Qwen2-VL / Qwen2.5-VL vision tower (`visual.blocks.N`): pre-norm attention
//! with a fused `qkv` projection and a 2-D rotary embedding, then a pre-norm MLP, each with a
//! residual. Attention runs within segments of the sequence (each image frame, or each
//! Qwen2.5-VL window), one segment at a time. The two models differ in the norms
//! ([`VisionNorm`]: LayerNorm or RMSNorm) and the MLP ([`VisionMlp`]: `fc1 → act → fc2` or
//! SwiGLU with biases); enum variants add nothing to HF names (see `weights.rs`).

use burn::module::Module;
use burn::nn::LayerNorm;
use burn::tensor::backend::Backend;
use burn::tensor::{s, Tensor};

use crate::activation::Activation;
use crate::attention::{attention, merge_heads, split_heads, AttentionMask};
use crate::language_model::{LlamaMlp, LlamaRmsNorm};
use crate::linear::Linear;
use crate::qwen2_vl::vision_config::{Qwen2VisionConfig, TowerVariant};
use crate::rope::apply_rotary;
use crate::vision_transformer::{layer_norm, vision_layer_norm};

/// The epsilon of every norm in the tower (fixed in HF's code).
pub const NORM_EPS: f64 = 1e-6;

/// A norm of the tower: LayerNorm (Qwen2-VL) or RMSNorm (Qwen2.5-VL).
#[derive(Module, Debug)]
pub enum VisionNorm<B: Backend> {
    /// `weight` and `bias`.
    Layer(LayerNorm<B>),
    /// `weight` only.
    Rms(LlamaRmsNorm<B>),
}

impl<B: Backend> VisionNorm<B> {
    /// The norm of `variant`'s tower over `width` (scale 1, bias 0).
    pub fn new(variant: &TowerVariant, width: usize, device: &B::Device) -> Self {
        match variant {
            TowerVariant::Qwen2Vl { .. } => Self::Layer(vision_layer_norm(width, NORM_EPS, device)),
            TowerVariant::Qwen2_5Vl(_) => Self::Rms(LlamaRmsNorm::new(width, NORM_EPS, device)),
        }
    }

    /// Normalises the last dimension.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            Self::Layer(norm) => layer_norm(norm, x, NORM_EPS),
            Self::Rms(norm) => norm.forward(x),
        }
    }
}

/// `attn`: self-attention with a fused `qkv` projection.
#[derive(Module, Debug)]
pub struct VisionAttention<B: Backend> {
    /// `[embed_dim → 3·embed_dim]`: queries, keys, values.
    pub qkv: Linear<B>,
    /// Output projection.
    pub proj: Linear<B>,
    heads: usize,
}

/// The per-forward inputs every block shares: the rotary tables of the sequence and the
/// attention segments of each kind of block.
pub struct TowerContext<B: Backend> {
    /// Rotary cosines.
    pub cos: Tensor<B, 4>,
    /// Rotary sines.
    pub sin: Tensor<B, 4>,
    /// The patches of each image frame, in sequence order (HF's `cu_seqlens` differences).
    pub frames: Vec<usize>,
    /// The patches of each window (Qwen2.5-VL's window blocks; `frames` again for Qwen2-VL).
    pub windows: Vec<usize>,
}

impl<B: Backend> VisionAttention<B> {
    fn forward(
        &self,
        x: Tensor<B, 3>,
        context: &TowerContext<B>,
        segments: &[usize],
    ) -> Tensor<B, 3> {
        let [_, _, width] = x.dims();
        let head_dim = width / self.heads;
        let qkv = self.qkv.forward(x);
        let part = |i: usize| {
            let slice = qkv.clone().slice(s![.., .., i * width..(i + 1) * width]);
            split_heads(slice, self.heads, head_dim)
        };
        let q = apply_rotary(part(0), &context.cos, &context.sin);
        let k = apply_rotary(part(1), &context.cos, &context.sin);
        let out = segment_attention(q, k, part(2), segments);
        self.proj.forward(merge_heads(out))
    }
}

/// Bidirectional attention within each segment only, one segment at a time (HF eager's split
/// over `cu_seqlens`): exactly a block-diagonal mask, without building an `[N, N]` one.
fn segment_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    segments: &[usize],
) -> Tensor<B, 4> {
    if segments.len() <= 1 {
        return attention(q, k, v, &AttentionMask::Bidirectional);
    }
    let mut start = 0;
    let outputs = segments
        .iter()
        .map(|&len| {
            let range = start..start + len;
            start += len;
            let take = |x: &Tensor<B, 4>| x.clone().slice(s![.., .., range.clone(), ..]);
            attention(take(&q), take(&k), take(&v), &AttentionMask::Bidirectional)
        })
        .collect();
    Tensor::cat(outputs, 2)
}

/// Qwen2-VL's MLP: `fc2(act(fc1(x)))`.
#[derive(Module, Debug)]
pub struct FcMlp<B: Backend> {
    /// Expansion.
    pub fc1: Linear<B>,
    /// Projection back.
    pub fc2: Linear<B>,
}

/// `mlp`: Qwen2-VL's two-layer MLP or Qwen2.5-VL's SwiGLU (`gate_proj`, `up_proj`, `down_proj`,
/// all with biases; the text model's MLP).
// One per block: the variants' size difference (a third linear's bookkeeping, not its
// tensors) costs nothing, and boxing would complicate every match.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum VisionMlp<B: Backend> {
    /// `fc1`, `fc2`.
    Fc(FcMlp<B>),
    /// `gate_proj`, `up_proj`, `down_proj`.
    Gated(LlamaMlp<B>),
}

impl<B: Backend> VisionMlp<B> {
    fn new(v: &Qwen2VisionConfig, device: &B::Device) -> Self {
        let (d, m) = (v.embed_dim, v.intermediate_size());
        match v.variant {
            TowerVariant::Qwen2Vl { .. } => Self::Fc(FcMlp {
                fc1: Linear::new(d, m, true, device),
                fc2: Linear::new(m, d, true, device),
            }),
            TowerVariant::Qwen2_5Vl(_) => Self::Gated(LlamaMlp {
                gate_proj: Linear::new(d, m, true, device),
                up_proj: Linear::new(d, m, true, device),
                down_proj: Linear::new(m, d, true, device),
            }),
        }
    }

    fn forward(&self, x: Tensor<B, 3>, activation: Activation) -> Tensor<B, 3> {
        match self {
            Self::Fc(mlp) => mlp.fc2.forward(activation.forward(mlp.fc1.forward(x))),
            Self::Gated(mlp) => mlp.forward(x),
        }
    }

    /// Calls `f` with each linear layer and its name under `prefix` (the MLP's own path).
    pub fn for_each_linear_mut(&mut self, prefix: &str, f: &mut impl FnMut(&str, &mut Linear<B>)) {
        match self {
            Self::Fc(mlp) => {
                f(&format!("{prefix}.fc1"), &mut mlp.fc1);
                f(&format!("{prefix}.fc2"), &mut mlp.fc2);
            }
            Self::Gated(mlp) => {
                f(&format!("{prefix}.gate_proj"), &mut mlp.gate_proj);
                f(&format!("{prefix}.up_proj"), &mut mlp.up_proj);
                f(&format!("{prefix}.down_proj"), &mut mlp.down_proj);
            }
        }
    }
}

/// A vision block (`blocks.N`): pre-norm attention and MLP, each with a residual.
#[derive(Module, Debug)]
pub struct VisionBlock<B: Backend> {
    /// Norm before attention.
    pub norm1: VisionNorm<B>,
    /// Norm before the MLP.
    pub norm2: VisionNorm<B>,
    /// Attention.
    pub attn: VisionAttention<B>,
    /// MLP.
    pub mlp: VisionMlp<B>,
    #[module(skip)]
    activation: Activation,
    /// Whether the block attends over whole frames (else within windows).
    #[module(skip)]
    full_attention: bool,
}

impl<B: Backend> VisionBlock<B> {
    /// Block `index` of the tower `v` (placeholder weights).
    pub fn new(v: &Qwen2VisionConfig, index: usize, device: &B::Device) -> Self {
        let d = v.embed_dim;
        Self {
            norm1: VisionNorm::new(&v.variant, d, device),
            norm2: VisionNorm::new(&v.variant, d, device),
            attn: VisionAttention {
                qkv: Linear::new(d, 3 * d, true, device),
                proj: Linear::new(d, d, true, device),
                heads: v.num_heads,
            },
            mlp: VisionMlp::new(v, device),
            activation: v.hidden_act,
            full_attention: v.full_attention(index),
        }
    }

    /// `x [1, N, embed_dim]` in the context's sequence order.
    pub fn forward(&self, x: Tensor<B, 3>, context: &TowerContext<B>) -> Tensor<B, 3> {
        let segments = if self.full_attention {
            &context.frames
        } else {
            &context.windows
        };
        let h = self
            .attn
            .forward(self.norm1.forward(x.clone()), context, segments);
        let x = x + h;
        let h = self
            .mlp
            .forward(self.norm2.forward(x.clone()), self.activation);
        x + h
    }
}
