//! Memory-efficient attention for training on any backend: a [`CustomOp`] whose forward keeps
//! only the output and the per-row log-sum-exp (f32), and whose backward recomputes the scores
//! one block of [`BLOCK`] query rows at a time (FlashAttention-2's backward: `P = exp(S − lse)`,
//! `D = rowsum(dO ∘ O)`, `dS = P ∘ (dP − D)`), in Burn tensor ops on the inner backend. Burn's
//! decomposed attention saves the `[B, H, Tq, Tk]` probabilities of every layer for the backward;
//! this op's extra memory, forward or backward, is one block's scores: `O(BLOCK × Tk)` per head.
//!
//! A block spans every key (no key blocks): the scores of `BLOCK` rows are already `O(block × T)`,
//! and one product per block is fewer kernel launches than one per key block.
//!
//! Grouped-query attention is handled in the op: the query heads of a group are folded onto the
//! row axis (`[B, KVH, H / KVH · Tq, D]`, as [`grouped_query_attention`] does), so keys and
//! values are never repeated; a causal mask is computed per block from each folded row's query
//! index. Fully masked rows (left padding) give a zero output and zero gradients. Under
//! [`autocast`](crate::precision::autocast) the four products run in the autocast type and the
//! scores, softmax statistics and gradients of the scores in f32.
//!
//! [`attention::attention`](crate::attention::attention) runs it under autodiff where the CPU's
//! fused kernel does not apply (GPU backends, autocast, `SAFEAWARE_FUSED=0`); inference keeps
//! Burn's attention (a flash kernel on GPU backends). `SAFEAWARE_MEA=0` turns it off.
//!
//! [`grouped_query_attention`]: crate::attention::grouped_query_attention

use std::ops::Range;
use std::sync::OnceLock;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, FloatDType, Int, Tensor, TensorPrimitive};

use crate::attention::AttentionMask;
use crate::custom_op::{self, CustomOp};
use crate::precision::{self, cast, float_dtype};

/// Query rows (folded over a group's heads) per block: the scores held at once are
/// `BLOCK × Tk` per batch row and key/value head.
pub const BLOCK: usize = 128;

/// Whether the op may run: on unless `SAFEAWARE_MEA=0` (read once per process).
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("SAFEAWARE_MEA").map_or(true, |v| v != "0"))
}

/// Attention (`q [B, H, Tq, D]`, `k`/`v [B, KVH, Tk, D]`, as
/// [`grouped_query_attention`](crate::attention::grouped_query_attention)) through the
/// memory-efficient op, where it applies: `B` is an autodiff backend `custom_op` knows, the op
/// is enabled, the activations are f32 (pure bf16 keeps Burn's attention), `H` is a multiple of `KVH`, a causal mask has `Tk ≥ Tq`, a bias or boolean mask is
/// `[B, H, Tq, Tk]` and a bias takes no gradient. `None` otherwise, with nothing computed.
pub fn attention<B: Backend>(
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
    mask: &AttentionMask<B>,
) -> Option<Tensor<B, 4>> {
    let [batch, heads, seq_q, head_dim] = q.dims();
    let [_, kv_heads, seq_k, _] = k.dims();
    let full = [batch, heads, seq_q, seq_k];
    // f32 activations only (f32 and bf16-mixed): pure bf16 keeps Burn's attention, as the op's
    // statistics and masks are f32.
    let f32_activations = float_dtype(q) == FloatDType::F32;
    if !enabled() || !f32_activations || !B::ad_enabled(&q.device()) {
        return None;
    }
    if kv_heads == 0 || heads % kv_heads != 0 {
        return None;
    }
    let folded = [batch, kv_heads, heads / kv_heads * seq_q, seq_k];
    let mut op = MemoryEfficientAttention {
        causal: None,
        matmul: precision::matmul_dtype(),
    };
    let bias = match mask {
        AttentionMask::Bidirectional => None,
        AttentionMask::Causal if seq_q <= seq_k => {
            op.causal = Some(seq_q);
            None
        }
        AttentionMask::Bias(bias) if bias.dims() == full && !bias.is_require_grad() => {
            Some(bias.clone())
        }
        AttentionMask::Masked(masked) if masked.dims() == full => {
            Some(Tensor::zeros(full, &q.device()).mask_fill(masked.clone(), f32::NEG_INFINITY))
        }
        _ => return None,
    };
    let q = q
        .clone()
        .reshape([folded[0], folded[1], folded[2], head_dim]);
    let [q, k, v] = [q, k.clone(), v.clone()].map(|t| t.into_primitive().tensor());
    let output = match bias {
        None => custom_op::run::<B, _, 3>(op, [q, k, v]),
        Some(bias) => custom_op::run::<B, _, 4>(
            op,
            [q, k, v, bias.reshape(folded).into_primitive().tensor()],
        ),
    }?;
    let output = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(output));
    Some(output.reshape([batch, heads, seq_q, head_dim]))
}

/// The op on folded operands: `q [B, KVH, R, D]` (`R` = query heads per group × `Tq`), `k`/`v
/// [B, KVH, Tk, D]`, and optionally an additive bias `[B, KVH, R, Tk]` (no gradient).
#[derive(Clone, Debug)]
pub struct MemoryEfficientAttention {
    /// `Some(Tq)`: causal, folded row `r` being query `r % Tq`, which sees keys up to
    /// `r % Tq + Tk − Tq`.
    pub causal: Option<usize>,
    /// The type of the four products (`None`: the operands').
    pub matmul: Option<FloatDType>,
}

/// What the backward keeps: the output `[B, KVH, R, D]` and the per-row log-sum-exp of the
/// scores `[B, KVH, R, 1]` (f32).
pub type Saved<X> = (
    <X as burn::tensor::backend::BackendTypes>::FloatTensorPrimitive,
    <X as burn::tensor::backend::BackendTypes>::FloatTensorPrimitive,
);

impl CustomOp<3> for MemoryEfficientAttention {
    type Saved<X: Backend> = Saved<X>;

    fn forward<X: Backend>(
        &self,
        inputs: &[X::FloatTensorPrimitive; 3],
    ) -> (X::FloatTensorPrimitive, Saved<X>) {
        self.forward_blocks(Operands::<X>::new(inputs, None))
    }

    fn backward<X: Backend>(
        &self,
        inputs: &[X::FloatTensorPrimitive; 3],
        saved: &Saved<X>,
        grad: X::FloatTensorPrimitive,
        wanted: [bool; 3],
    ) -> [Option<X::FloatTensorPrimitive>; 3] {
        self.backward_blocks(Operands::<X>::new(inputs, None), saved, grad, wanted)
    }
}

impl CustomOp<4> for MemoryEfficientAttention {
    type Saved<X: Backend> = Saved<X>;

    fn forward<X: Backend>(
        &self,
        inputs: &[X::FloatTensorPrimitive; 4],
    ) -> (X::FloatTensorPrimitive, Saved<X>) {
        let [q, k, v, bias] = inputs.clone();
        self.forward_blocks(Operands::<X>::new(&[q, k, v], Some(bias)))
    }

    /// The bias takes no gradient ([`attention`] runs the op only for a bias that needs none).
    fn backward<X: Backend>(
        &self,
        inputs: &[X::FloatTensorPrimitive; 4],
        saved: &Saved<X>,
        grad: X::FloatTensorPrimitive,
        wanted: [bool; 4],
    ) -> [Option<X::FloatTensorPrimitive>; 4] {
        let [q, k, v, bias] = inputs.clone();
        let [wq, wk, wv, _] = wanted;
        let operands = Operands::<X>::new(&[q, k, v], Some(bias));
        let [dq, dk, dv] = self.backward_blocks(operands, saved, grad, [wq, wk, wv]);
        [dq, dk, dv, None]
    }
}

/// The op's operands as tensors of the inner backend.
struct Operands<X: Backend> {
    q: Tensor<X, 4>,
    k: Tensor<X, 4>,
    v: Tensor<X, 4>,
    bias: Option<Tensor<X, 4>>,
}

fn tensor<X: Backend>(primitive: X::FloatTensorPrimitive) -> Tensor<X, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

fn primitive<X: Backend>(tensor: Tensor<X, 4>) -> X::FloatTensorPrimitive {
    tensor.into_primitive().tensor()
}

impl<X: Backend> Operands<X> {
    fn new(qkv: &[X::FloatTensorPrimitive; 3], bias: Option<X::FloatTensorPrimitive>) -> Self {
        let [q, k, v] = qkv.clone().map(tensor::<X>);
        Self {
            q,
            k,
            v,
            bias: bias.map(tensor::<X>),
        }
    }

    /// The query rows, in blocks of [`BLOCK`].
    fn blocks(&self) -> impl Iterator<Item = Range<usize>> {
        let rows = self.q.dims()[2];
        (0..rows.div_ceil(BLOCK)).map(move |b| b * BLOCK..rows.min((b + 1) * BLOCK))
    }
}

impl MemoryEfficientAttention {
    /// The products' type for operands of type `like`.
    fn product_dtype<X: Backend>(&self, like: &Tensor<X, 4>) -> FloatDType {
        self.matmul.unwrap_or_else(|| float_dtype(like))
    }

    /// `scale · q[rows] kᵀ + mask` in f32 (`[B, KVH, rows, Tk]`), `k` already in the products'
    /// type and `dtype` that type.
    fn scores<X: Backend>(
        &self,
        operands: &Operands<X>,
        k: &Tensor<X, 4>,
        rows: Range<usize>,
        dtype: FloatDType,
    ) -> Tensor<X, 4> {
        let head_dim = operands.q.dims()[3];
        let q = cast(operands.q.clone().narrow(2, rows.start, rows.len()), dtype);
        let scores = cast(q.matmul(k.clone().swap_dims(2, 3)), FloatDType::F32);
        let scores = scores * (1.0 / (head_dim as f64).sqrt());
        let scores = match &operands.bias {
            Some(bias) => {
                scores
                    + cast(
                        bias.clone().narrow(2, rows.start, rows.len()),
                        FloatDType::F32,
                    )
            }
            None => scores,
        };
        match self.causal {
            Some(seq_q) => {
                let future = future_keys::<X>(rows, seq_q, &scores);
                scores.mask_fill(future, f32::NEG_INFINITY)
            }
            None => scores,
        }
    }

    /// The forward, one block of query rows at a time: the output and the log-sum-exp.
    fn forward_blocks<X: Backend>(
        &self,
        operands: Operands<X>,
    ) -> (X::FloatTensorPrimitive, Saved<X>) {
        let dtype = self.product_dtype(&operands.q);
        let out = float_dtype(&operands.q);
        let (k, v) = (
            cast(operands.k.clone(), dtype),
            cast(operands.v.clone(), dtype),
        );
        let (mut outputs, mut lses) = (Vec::new(), Vec::new());
        for rows in operands.blocks() {
            let scores = self.scores(&operands, &k, rows, dtype);
            let lse = log_sum_exp(scores.clone());
            let probabilities = (scores - lse.clone()).exp();
            outputs.push(cast(cast(probabilities, dtype).matmul(v.clone()), out));
            lses.push(lse);
        }
        let output = primitive(Tensor::cat(outputs, 2));
        (output.clone(), (output, primitive(Tensor::cat(lses, 2))))
    }

    /// The backward, recomputing each block's probabilities from the saved log-sum-exp.
    fn backward_blocks<X: Backend>(
        &self,
        operands: Operands<X>,
        (output, lse): &Saved<X>,
        grad: X::FloatTensorPrimitive,
        wanted: [bool; 3],
    ) -> [Option<X::FloatTensorPrimitive>; 3] {
        let dtype = self.product_dtype(&operands.q);
        let (k, v) = (
            cast(operands.k.clone(), dtype),
            cast(operands.v.clone(), dtype),
        );
        let (output, lse, grad) = (
            tensor::<X>(output.clone()),
            tensor::<X>(lse.clone()),
            tensor::<X>(grad),
        );
        let scale = 1.0 / (operands.q.dims()[3] as f64).sqrt();
        let mut dq = Vec::new();
        let mut dk = Tensor::<X, 4>::zeros(operands.k.shape(), &k.device());
        let mut dv = Tensor::<X, 4>::zeros(operands.v.shape(), &v.device());
        for rows in operands.blocks() {
            let slice = |t: &Tensor<X, 4>| t.clone().narrow(2, rows.start, rows.len());
            let scores = self.scores(&operands, &k, rows.clone(), dtype);
            let probabilities = (scores - slice(&lse)).exp();
            let d_out = cast(slice(&grad), dtype);
            let d_prob = cast(
                d_out.clone().matmul(v.clone().swap_dims(2, 3)),
                FloatDType::F32,
            );
            let delta = (cast(slice(&grad), FloatDType::F32)
                * cast(slice(&output), FloatDType::F32))
            .sum_dim(3);
            let d_scores = cast((probabilities.clone() * (d_prob - delta)) * scale, dtype);
            if wanted[0] {
                dq.push(d_scores.clone().matmul(k.clone()));
            }
            if wanted[1] {
                let q = cast(slice(&operands.q), dtype);
                dk = dk + cast(d_scores.swap_dims(2, 3).matmul(q), FloatDType::F32);
            }
            if wanted[2] {
                let p = cast(probabilities, dtype).swap_dims(2, 3);
                dv = dv + cast(p.matmul(d_out), FloatDType::F32);
            }
        }
        let like = |t: Tensor<X, 4>, of: &Tensor<X, 4>| primitive(cast(t, float_dtype(of)));
        [
            wanted[0].then(|| like(Tensor::cat(dq, 2), &operands.q)),
            wanted[1].then(|| like(dk, &operands.k)),
            wanted[2].then(|| like(dv, &operands.v)),
        ]
    }
}

/// `log Σ exp(scores)` over the keys (`[.., rows, 1]`); a fully masked row (every score −∞)
/// gets a finite value far below any score, so that `exp(score − lse)` is 0 there.
fn log_sum_exp<X: Backend>(scores: Tensor<X, 4>) -> Tensor<X, 4> {
    let max = scores.clone().max_dim(3).clamp_min(f32::MIN);
    let sum = (scores - max.clone()).exp().sum_dim(3);
    max + sum.clamp_min(f32::MIN_POSITIVE).log()
}

/// True where folded row `r` of `rows` (query `r % seq_q`) may not see a key: keys past
/// `r % seq_q + Tk − seq_q`; shaped as `scores [B, KVH, rows, Tk]`.
fn future_keys<X: Backend>(
    rows: Range<usize>,
    seq_q: usize,
    scores: &Tensor<X, 4>,
) -> Tensor<X, 4, Bool> {
    let shape = scores.dims();
    let device = scores.device();
    let past = (shape[3] - seq_q) as i64;
    let last_key = Tensor::<X, 1, Int>::arange(rows.start as i64..rows.end as i64, &device)
        .remainder_scalar(seq_q as i64)
        .add_scalar(past);
    let keys = Tensor::<X, 1, Int>::arange(0..shape[3] as i64, &device);
    let grid = [rows.len(), shape[3]];
    let keys = keys.unsqueeze_dim::<2>(0).expand(grid);
    let future = keys.greater(last_key.unsqueeze_dim::<2>(1).expand(grid));
    future.unsqueeze::<4>().expand(shape)
}
