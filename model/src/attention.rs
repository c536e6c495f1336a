//! Scaled dot-product attention shared by the vision tower and the language model: head
//! splitting/merging, grouped-query attention (query heads folded onto the query axis, or
//! key/value repetition), and the call into Burn's fused attention op (which backends may
//! specialise; autodiff differentiates its decomposition). Under
//! [`autocast`](crate::precision::autocast) the two products run in the autocast type and the
//! scores, mask and softmax in the activations' type ([`mixed_precision_attention`]).

use burn::tensor::backend::Backend;
use burn::tensor::module;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, FloatDType, Tensor, TensorData};

use crate::fused;
use crate::memory_efficient_attention;
use crate::precision::{self, cast, float_dtype};

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
    /// Query `i` sees keys up to `i + (keys - queries)` (no padding anywhere), applied by the
    /// backend's attention kernel (flex's skips the masked keys without building a mask).
    Causal,
    /// Additive bias `[B, H, Tq, Tk]`: 0 where a query may look, −∞ where it may not (padding,
    /// or causality under autodiff). Built once per forward pass and shared by every layer
    /// (`StepLayout::mask` in `kv_cache.rs` says why training gets a bias).
    Bias(Tensor<B, 4>),
    /// Boolean mask `[B, H, Tq, Tk]`, true where a query may not look: padding (and causality)
    /// in inference, a form GPU backends' flash-attention kernel accepts where a bias is not.
    Masked(Tensor<B, 4, Bool>),
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
    if let Some(dtype) = precision::matmul_dtype().filter(|&d| d != float_dtype(&q)) {
        return mixed_precision_attention(q, k, v, mask, dtype);
    }
    let (bool_mask, bias, is_causal) = match mask {
        AttentionMask::Bidirectional => (None, None, false),
        AttentionMask::Causal => (None, None, true),
        AttentionMask::Bias(bias) => (None, Some(bias.clone()), false),
        AttentionMask::Masked(masked) => (Some(masked.clone()), None, false),
    };
    // The default scale (1/√D) and no softcap: with no bias either, this is the form that
    // GPU backends hand to their flash-attention kernel (burn-cubecl falls back otherwise).
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal,
    };
    module::attention(q, k, v, bool_mask, bias, options)
}

/// [`scaled_dot_product`] with `q·kᵀ` and `probabilities·v` computed in `dtype` and the scores,
/// mask and softmax in `q`'s type: Burn's fallback attention (which autodiff runs anyway) with
/// casts around the products. Fully masked rows come out as zeros, as there.
pub fn mixed_precision_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: &AttentionMask<B>,
    dtype: FloatDType,
) -> Tensor<B, 4> {
    let [batch, heads, seq_q, head_dim] = q.dims();
    let seq_k = k.dims()[2];
    let out = float_dtype(&q);
    let scores = cast(q, dtype).matmul(cast(k, dtype).swap_dims(2, 3));
    let scores = cast(scores, out) * (1.0 / (head_dim as f64).sqrt());
    let scores = match mask {
        AttentionMask::Bidirectional => scores,
        AttentionMask::Bias(bias) => scores + bias.clone(),
        AttentionMask::Masked(masked) => scores.mask_fill(masked.clone(), f32::NEG_INFINITY),
        AttentionMask::Causal => {
            let past = seq_k - seq_q;
            let future: Vec<bool> = (0..seq_q * seq_k)
                .map(|i| i % seq_k > past + i / seq_k)
                .collect();
            let future = Tensor::<B, 2, Bool>::from_data(
                TensorData::new(future, [seq_q, seq_k]),
                &scores.device(),
            );
            let future = future.unsqueeze::<4>().expand([batch, heads, seq_q, seq_k]);
            scores.mask_fill(future, f32::NEG_INFINITY)
        }
    };
    // The fallback's NaN-safe softmax: a fully masked row has max −∞ and sum 0.
    let max = scores.clone().max_dim(3).clamp_min(f32::MIN);
    let numerator = (scores - max).exp();
    let sum = numerator.clone().sum_dim(3).clamp_min(f32::MIN_POSITIVE);
    let probabilities = numerator / sum;
    cast(cast(probabilities, dtype).matmul(cast(v, dtype)), out)
}

/// Attention as the model runs it: the fused CPU kernel ([`crate::fused::attention`]) where it
/// applies (the CPU backend, f32, no autocast to another type); else, under autodiff, the
/// memory-efficient op ([`crate::memory_efficient_attention`]: GPU backends, autocast,
/// `SAFEAWARE_FUSED=0`); else (inference, or `SAFEAWARE_MEA=0`) [`grouped_query_attention`]
/// on Burn's ops. Same shapes and meaning as the latter.
pub fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: &AttentionMask<B>,
) -> Tensor<B, 4> {
    let autocast = precision::matmul_dtype().is_some_and(|d| d != float_dtype(&q));
    let fused = (!autocast).then(|| fused::applied(fused::attention(&q, &k, &v, mask)));
    let output = fused
        .flatten()
        .or_else(|| memory_efficient_attention::attention(&q, &k, &v, mask));
    match output {
        Some(output) => output,
        None => grouped_query_attention(q, k, v, mask),
    }
}

/// Grouped-query attention: [`scaled_dot_product`] for `q [B, H, Tq, D]` over `k`/`v
/// [B, KVH, Tk, D]`, query head `h` reading key/value head `h / (H / KVH)`.
///
/// The `H / KVH` query heads of a group are folded onto the query axis (`[B, KVH, H / KVH · Tq,
/// D]`, a free reshape of a contiguous `q`) instead of repeating `k`/`v` to `H` heads (a copy
/// of the whole cache every decode step, and of `k`/`v` plus a reduction in the backward when
/// training). A bias mask folds the same way, and a single query (decode) sees every key, so
/// causality needs no mask there. Only a multi-token [`AttentionMask::Causal`] step (inference
/// prefill without padding, where the backend's kernel applies causality itself) repeats
/// `k`/`v` ([`repeat_kv`]): folded rows would no longer be the causal diagonal.
pub fn grouped_query_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: &AttentionMask<B>,
) -> Tensor<B, 4> {
    let [batch, heads, seq_q, head_dim] = q.dims();
    let [_, kv_heads, seq_k, _] = k.dims();
    let n_rep = heads / kv_heads;
    let folded_rows = n_rep * seq_q;
    let mask = match mask {
        _ if n_rep == 1 => return scaled_dot_product(q, k, v, mask),
        AttentionMask::Causal if seq_q > 1 => {
            return scaled_dot_product(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), mask)
        }
        AttentionMask::Bidirectional | AttentionMask::Causal => AttentionMask::Bidirectional,
        AttentionMask::Bias(bias) => {
            AttentionMask::Bias(bias.clone().reshape([batch, kv_heads, folded_rows, seq_k]))
        }
        AttentionMask::Masked(masked) => {
            AttentionMask::Masked(
                masked
                    .clone()
                    .reshape([batch, kv_heads, folded_rows, seq_k]),
            )
        }
    };
    let q = q.reshape([batch, kv_heads, folded_rows, head_dim]);
    scaled_dot_product(q, k, v, &mask).reshape([batch, heads, seq_q, head_dim])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{Distribution, TensorData};

    /// Autodiff runs Burn's decomposed attention, the training path.
    type Ad = Autodiff<Flex>;

    /// Folding the query heads of a group gives the values of repeating the keys/values, for
    /// decode and longer steps, with causality and with a padding + causal bias.
    #[test]
    fn folded_query_heads_match_repeated_keys_and_values() {
        let device = Default::default();
        let (batch, heads, kv_heads, seq_k, dim) = (2, 6, 2, 5, 8);
        let random = |shape: [usize; 4]| {
            Tensor::<Ad, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device)
        };
        // Keys and values as head-split views of `[B, Tk, KVH·D]`, as the model passes them.
        let (k, v) = (
            random([batch, seq_k, kv_heads, dim]).swap_dims(1, 2),
            random([batch, seq_k, kv_heads, dim]).swap_dims(1, 2),
        );
        for seq_q in [1, 3] {
            let q = random([batch, heads, seq_q, dim]);
            // Row `b` has `b + 1` padding keys; query `i` sees keys up to `seq_k - seq_q + i`.
            let bias = (0..batch * heads * seq_q * seq_k)
                .map(|index| {
                    let (key, query) = (index % seq_k, index / seq_k % seq_q);
                    let row = index / (heads * seq_q * seq_k);
                    let masked = key <= row || key > seq_k - seq_q + query;
                    if masked {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
                .collect::<Vec<_>>();
            let bias = TensorData::new(bias, [batch, heads, seq_q, seq_k]);
            let masks = [
                AttentionMask::Causal,
                AttentionMask::Bias(Tensor::from_data(bias, &device)),
            ];
            for mask in masks {
                let folded = grouped_query_attention(q.clone(), k.clone(), v.clone(), &mask);
                let n_rep = heads / kv_heads;
                let (k, v) = (repeat_kv(k.clone(), n_rep), repeat_kv(v.clone(), n_rep));
                let repeated = scaled_dot_product(q.clone(), k, v, &mask);
                folded.into_data().assert_approx_eq::<f32>(
                    &repeated.into_data(),
                    burn::tensor::Tolerance::absolute(1e-6),
                );
            }
        }
    }
}
