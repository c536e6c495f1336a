//! Scaled dot-product attention shared by the vision tower and the language model: head
//! splitting/merging, grouped-query key/value repetition, and the call into Burn's fused
//! attention op (which backends may specialise; autodiff differentiates its decomposition).

use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

/// `[B, T, H * D]` → `[B, H, T, D]`.
pub fn split_heads<B: Backend>(x: Tensor<B, 3>, heads: usize, head_dim: usize) -> Tensor<B, 4> {
    let [batch, seq, _] = x.dims();
    x.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2)
}

/// `[B, H, T, D]` → `[B, T, H * D]`.
pub fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [batch, heads, seq, head_dim] = x.dims();
    x.swap_dims(1, 2).reshape([batch, seq, heads * head_dim])
}

/// Repeats each key/value head `n_rep` times (`[B, KVH, S, D]` → `[B, KVH * n_rep, S, D]`),
/// head `h` of the result being original head `h / n_rep`, as in HF's `repeat_kv`.
pub fn repeat_kv<B: Backend>(x: Tensor<B, 4>, n_rep: usize) -> Tensor<B, 4> {
    if n_rep == 1 {
        return x;
    }
    let [batch, kv_heads, seq, head_dim] = x.dims();
    // `repeat_dim` copies whole [S, D] blocks; `expand` + `reshape` gives the same values but
    // makes CPU backends (flex) materialise a stride-0 view element by element, which was
    // two thirds of a decode step (the whole cache is repeated every step).
    x.unsqueeze_dim::<5>(2)
        .repeat_dim(2, n_rep)
        .reshape([batch, kv_heads * n_rep, seq, head_dim])
}

/// How queries may look at keys.
#[derive(Debug, Clone)]
pub enum AttentionMask<B: Backend> {
    /// Every query sees every key (the vision tower).
    Bidirectional,
    /// Query `i` sees keys up to `i + (keys - queries)` (no padding anywhere).
    Causal,
    /// Explicit mask `[B, 1, Tq, Tk]`, `true` = masked out (padding combined with causality).
    Explicit(Tensor<B, 4, Bool>),
}

/// `softmax(q kᵀ / sqrt(D) + mask) v` for `q [B, H, Tq, D]`, `k`/`v [B, H, Tk, D]`.
///
/// Fully masked query rows (left-padding positions) come out as zeros rather than NaN.
pub fn scaled_dot_product<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: &AttentionMask<B>,
) -> Tensor<B, 4> {
    let [batch, heads, seq_q, _] = q.dims();
    let seq_k = k.dims()[2];
    let (mask, is_causal) = match mask {
        AttentionMask::Bidirectional => (None, false),
        AttentionMask::Causal => (None, true),
        AttentionMask::Explicit(m) => (Some(m.clone().expand([batch, heads, seq_q, seq_k])), false),
    };
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal,
    };
    attention(q, k, v, mask, None, options)
}
