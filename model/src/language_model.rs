//! The Llama language model (`model.text_model`): token embeddings, decoder layers with RMSNorm,
//! rotary grouped-query attention and SiLU-gated MLPs (no biases anywhere), and a final RMSNorm.
//! Works on embeddings so the VLM can splice image features in first; optionally reads and
//! extends a [`KvCache`].

use burn::module::{Initializer, Module, Param};
use burn::nn::{Embedding, EmbeddingConfig};
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::attention::{attention, merge_heads, split_heads, AttentionMask};
use crate::config::TextConfig;
use crate::fused;
use crate::kv_cache::KvCache;
use crate::linear::Linear;
use crate::precision;
use crate::rope::{apply_rotary, Rope};

/// Llama's RMSNorm: `x / sqrt(mean(x²) + eps) · weight`, in the backend's float type (Burn's
/// `RmsNorm` round-trips through an f32 cast that costs more than the norm on CPU backends).
#[derive(Module, Debug)]
pub struct LlamaRmsNorm<B: Backend> {
    /// The scale, `[hidden]`.
    pub weight: Param<Tensor<B, 1>>,
    eps: f64,
}

impl<B: Backend> LlamaRmsNorm<B> {
    /// A norm over `width` with epsilon `eps`, scale 1.
    pub fn new(width: usize, eps: f64, device: &B::Device) -> Self {
        Self {
            weight: Initializer::Ones.init([width], device),
            eps,
        }
    }

    /// Normalises the last dimension (with the fused kernel where it applies).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let weight = precision::at_use(self.weight.val(), &x);
        fused::applied(fused::rms_norm(&x, &weight, self.eps))
            .unwrap_or_else(|| rms_norm(x, weight, self.eps))
    }
}

/// `x / sqrt(mean(x²) + eps) · weight` over the last dimension in Burn's ops: the unfused form
/// of [`fused::rms_norm`].
pub fn rms_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, D> {
    let inv_rms = (x.clone().square().mean_dim(D - 1) + eps).sqrt().recip();
    x * inv_rms * weight.unsqueeze()
}

/// Grouped-query self-attention (`self_attn`).
#[derive(Module, Debug)]
pub struct LlamaAttention<B: Backend> {
    /// Query projection (`heads · head_dim` outputs).
    pub q_proj: Linear<B>,
    /// Key projection (`kv_heads · head_dim` outputs).
    pub k_proj: Linear<B>,
    /// Value projection (`kv_heads · head_dim` outputs).
    pub v_proj: Linear<B>,
    /// Output projection.
    pub o_proj: Linear<B>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

/// 3-D rotary positions of a step (M-RoPE: temporal, height, width), each axis row-major
/// `[B, T]`, and each row's delta for the positions of later (cached) steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RopePositions {
    /// Positions per axis.
    pub axes: [Vec<i64>; 3],
    /// Per row: the largest position + 1 − the real tokens (HF's `rope_deltas`).
    pub deltas: Vec<i64>,
}

/// Inputs shared by every layer of one step.
struct StepContext<'a, B: Backend> {
    cos: &'a Tensor<B, 4>,
    sin: &'a Tensor<B, 4>,
    mask: &'a AttentionMask<B>,
}

impl<B: Backend> LlamaAttention<B> {
    fn forward(
        &self,
        x: Tensor<B, 3>,
        step: &StepContext<B>,
        cache: Option<(&mut KvCache<B>, usize)>,
    ) -> Tensor<B, 3> {
        let q = split_heads(self.q_proj.forward(x.clone()), self.heads, self.head_dim);
        let k = split_heads(self.k_proj.forward(x.clone()), self.kv_heads, self.head_dim);
        let v = split_heads(self.v_proj.forward(x), self.kv_heads, self.head_dim);
        let q = apply_rotary(q, step.cos, step.sin);
        let k = apply_rotary(k, step.cos, step.sin);
        let (k, v) = match cache {
            Some((cache, layer)) => cache.extend(layer, k, v),
            None => (k, v),
        };
        let context = attention(q, k, v, step.mask);
        self.o_proj.forward(merge_heads(context))
    }
}

/// `down(silu(gate(x)) · up(x))` (`mlp`).
#[derive(Module, Debug)]
pub struct LlamaMlp<B: Backend> {
    /// Gate projection.
    pub gate_proj: Linear<B>,
    /// Up projection.
    pub up_proj: Linear<B>,
    /// Down projection.
    pub down_proj: Linear<B>,
}

impl<B: Backend> LlamaMlp<B> {
    /// `x [B, T, D]`. A one-token step of a batch (decoding) runs as `[B, D]` rows: Burn 0.21's
    /// kernel fusion (wgpu, cuda) computes `x + down(silu(gate(x)) · up(x))` wrongly for
    /// `[B > 1, 1, D]` inputs, and right for `[1, B, D]` (checked against the CPU in the GPU test
    /// suite). Longer steps keep the 3-d form, whose weight gradients training was tuned with.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, width] = x.dims();
        if seq == 1 && batch > 1 {
            return self
                .forward(x.reshape([1, batch, width]))
                .reshape([batch, 1, width]);
        }
        let (gate, up) = (self.gate_proj.forward(x.clone()), self.up_proj.forward(x));
        let hidden = fused::applied(fused::swiglu(&gate, &up)).unwrap_or_else(|| silu(gate) * up);
        self.down_proj.forward(hidden)
    }
}

/// A decoder layer (`layers.N`).
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Attention.
    pub self_attn: LlamaAttention<B>,
    /// MLP.
    pub mlp: LlamaMlp<B>,
    /// Norm before attention.
    pub input_layernorm: LlamaRmsNorm<B>,
    /// Norm before the MLP.
    pub post_attention_layernorm: LlamaRmsNorm<B>,
}

/// The language model without its head (`model.text_model`).
#[derive(Module, Debug)]
pub struct TextModel<B: Backend> {
    /// Token embeddings (also the head's weight when tied).
    pub embed_tokens: Embedding<B>,
    /// Decoder layers in order.
    pub layers: Vec<DecoderLayer<B>>,
    /// Final norm.
    pub norm: LlamaRmsNorm<B>,
    #[module(skip)]
    rope: Rope,
    /// Positions the model was trained for (`max_position_embeddings`): its context.
    #[module(skip)]
    max_positions: usize,
}

impl<B: Backend> TextModel<B> {
    /// Builds the model with lazily-initialised placeholder parameters (see [`crate::weights`]).
    pub fn new(config: &TextConfig, device: &B::Device) -> Self {
        let d = config.hidden_size;
        let (q_out, kv_out) = (
            config.num_attention_heads * config.head_dim,
            config.num_key_value_heads * config.head_dim,
        );
        let linear = |i, o| Linear::new(i, o, false, device);
        let projection = |i, o| Linear::new(i, o, config.qkv_bias, device);
        let norm = || LlamaRmsNorm::new(d, config.rms_norm_eps, device);
        let layers = (0..config.num_hidden_layers)
            .map(|_| DecoderLayer {
                self_attn: LlamaAttention {
                    q_proj: projection(d, q_out),
                    k_proj: projection(d, kv_out),
                    v_proj: projection(d, kv_out),
                    o_proj: linear(q_out, d),
                    heads: config.num_attention_heads,
                    kv_heads: config.num_key_value_heads,
                    head_dim: config.head_dim,
                },
                mlp: LlamaMlp {
                    gate_proj: linear(d, config.intermediate_size),
                    up_proj: linear(d, config.intermediate_size),
                    down_proj: linear(config.intermediate_size, d),
                },
                input_layernorm: norm(),
                post_attention_layernorm: norm(),
            })
            .collect();
        Self {
            embed_tokens: EmbeddingConfig::new(config.vocab_size, d).init(device),
            layers,
            norm: norm(),
            rope: Rope::new(config.head_dim, config.rope_theta)
                .with_sections(config.mrope_section.as_deref()),
            max_positions: config.max_position_embeddings,
        }
    }

    /// The context: the most positions (prompt and generated tokens) one sequence may hold,
    /// the config's `max_position_embeddings`.
    pub fn context_length(&self) -> usize {
        self.max_positions
    }

    /// Runs the decoder over `embeds [B, T, D]` whose tokens are real or padding per `valid`
    /// (`[B][T]`), continuing `cache` when given (and extending it); returns normed hidden states.
    ///
    /// Without a cache, positions start at 0. Padding tokens are never attended to.
    pub fn forward(
        &self,
        embeds: Tensor<B, 3>,
        valid: &[Vec<bool>],
        cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 3> {
        self.forward_at(embeds, valid, cache, None)
    }

    /// [`TextModel::forward`] with explicit 3-D (M-RoPE) positions when given, in place of the
    /// cache's running positions.
    pub fn forward_at(
        &self,
        embeds: Tensor<B, 3>,
        valid: &[Vec<bool>],
        cache: Option<&mut KvCache<B>>,
        positions: Option<&RopePositions>,
    ) -> Tensor<B, 3> {
        let [batch, seq, _] = embeds.dims();
        let device = embeds.device();
        let (layout, mut cache) = match cache {
            Some(cache) => (cache.advance(valid), Some(cache)),
            None => (KvCache::<B>::new(0, batch).advance(valid), None),
        };
        let axes = match positions {
            Some(p) => [&p.axes[0][..], &p.axes[1][..], &p.axes[2][..]],
            None => [&layout.positions[..]; 3],
        };
        let (cos, sin) = self.rope.tables_3d::<B>(axes, batch, seq, &device);
        let heads = self.layers.first().map_or(1, |layer| layer.self_attn.heads);
        let mask = layout.mask::<B>(batch, heads, seq, &device);
        let step = StepContext {
            cos: &cos,
            sin: &sin,
            mask: &mask,
        };
        let mut x = embeds;
        for (index, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| (c, index));
            let h = layer
                .self_attn
                .forward(layer.input_layernorm.forward(x.clone()), &step, slot);
            x = x + h;
            let h = layer
                .mlp
                .forward(layer.post_attention_layernorm.forward(x.clone()));
            x = x + h;
        }
        self.norm.forward(x)
    }

    /// Calls `f` with every linear layer and its module path under `prefix` (the model's own
    /// path, e.g. `model.text_model`), in module order.
    pub fn for_each_linear_mut(&mut self, prefix: &str, f: &mut impl FnMut(&str, &mut Linear<B>)) {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let (attn, mlp) = (&mut layer.self_attn, &mut layer.mlp);
            for (name, linear) in [
                ("self_attn.q_proj", &mut attn.q_proj),
                ("self_attn.k_proj", &mut attn.k_proj),
                ("self_attn.v_proj", &mut attn.v_proj),
                ("self_attn.o_proj", &mut attn.o_proj),
                ("mlp.gate_proj", &mut mlp.gate_proj),
                ("mlp.up_proj", &mut mlp.up_proj),
                ("mlp.down_proj", &mut mlp.down_proj),
            ] {
                f(&format!("{prefix}.layers.{i}.{name}"), linear);
            }
        }
    }

    /// Layers in the stack (the cache needs one slot each).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }
}
