//! Every fused CPU kernel against the unfused Burn formulation it replaces, on random inputs:
//! values and gradients under `Autodiff<Flex>`, and values on plain `Flex` (inference).
//! Tolerance: 1e-5 absolute + relative on values and gradients (f32; the kernels accumulate in
//! f32 in a different order).

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Distribution, Tensor, TensorData, Tolerance};
use safeaware_model::attention::{grouped_query_attention, AttentionMask};
use safeaware_model::fused;

type Ad = Autodiff<Flex>;

const TOLERANCE: f64 = 1e-5;

fn close<B: Backend, const D: usize>(what: &str, got: Tensor<B, D>, want: Tensor<B, D>) {
    let (got, want) = (got.into_data(), want.into_data());
    assert_eq!(got.shape, want.shape, "{what}: shapes");
    let tolerance = Tolerance::<f32>::absolute(TOLERANCE).set_relative(TOLERANCE);
    got.assert_approx_eq::<f32>(&want, tolerance);
}

fn random<B: Backend, const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

/// Row `b` of `[B, T]` has its first `b` keys as padding (left padding), causal after that.
/// With `see_self`, a query always sees its own position (the model's padding queries do);
/// without it, the first queries of padded rows see no key at all (their output must be zeros;
/// Burn's gradients there are NaN, so only values are compared).
fn padding_causal(shape: [usize; 4], see_self: bool) -> Vec<bool> {
    let [batch, heads, seq_q, seq_k] = shape;
    (0..batch * heads * seq_q * seq_k)
        .map(|index| {
            let (key, query) = (index % seq_k, index / seq_k % seq_q);
            let row = index / (heads * seq_q * seq_k);
            let own = seq_k - seq_q + query;
            (key < row && !(see_self && key == own)) || key > own
        })
        .collect()
}

fn masks<B: Backend>(shape: [usize; 4], see_self: bool) -> Vec<(&'static str, AttentionMask<B>)> {
    let masked = padding_causal(shape, see_self);
    let bias: Vec<f32> = masked
        .iter()
        .map(|&m| if m { f32::NEG_INFINITY } else { 0.0 })
        .collect();
    let device = Default::default();
    vec![
        ("bidirectional", AttentionMask::Bidirectional),
        ("causal", AttentionMask::Causal),
        (
            "bias",
            AttentionMask::Bias(Tensor::from_data(TensorData::new(bias, shape), &device)),
        ),
        (
            "bool",
            AttentionMask::Masked(Tensor::<B, 4, Bool>::from_data(
                TensorData::new(masked, shape),
                &device,
            )),
        ),
    ]
}

/// `[B, T, H, D]` leaves seen as head-split `[B, H, T, D]` views, as the model passes them.
fn head_split(leaf: &Tensor<Ad, 4>) -> Tensor<Ad, 4> {
    leaf.clone().swap_dims(1, 2)
}

#[test]
fn fused_attention_matches_burn_values_and_gradients() {
    // (heads, kv_heads, seq_q, seq_k, head_dim): multi-head, grouped-query, decode-like.
    for (heads, kv_heads, seq_q, seq_k, dim) in [(4, 4, 7, 7, 8), (6, 2, 9, 9, 16), (6, 3, 1, 5, 8)]
    {
        let batch = 3;
        let shape = [batch, heads, seq_q, seq_k];
        for (name, mask) in masks::<Ad>(shape, true) {
            if name == "causal" && seq_q == 1 {
                continue; // one query sees every key: the same as bidirectional
            }
            let leaves = [
                random::<Ad, 4>([batch, seq_q, heads, dim]).require_grad(),
                random::<Ad, 4>([batch, seq_k, kv_heads, dim]).require_grad(),
                random::<Ad, 4>([batch, seq_k, kv_heads, dim]).require_grad(),
            ];
            let weights = random::<Ad, 4>([batch, heads, seq_q, dim]);
            let run = |fused_kernel: bool| {
                let [q, k, v] = leaves.each_ref().map(head_split);
                let out = if fused_kernel {
                    fused::attention(&q, &k, &v, &mask).expect("the fused kernel applies")
                } else {
                    grouped_query_attention(q, k, v, &mask)
                };
                let grads = (out.clone() * weights.clone()).sum().backward();
                let grads = leaves.each_ref().map(|l| l.grad(&grads).unwrap());
                (out.inner(), grads)
            };
            let (fused_out, fused_grads) = run(true);
            let (burn_out, burn_grads) = run(false);
            let case = format!("{name}, H {heads}, KVH {kv_heads}, T {seq_q}, S {seq_k}");
            close(&format!("{case}: output"), fused_out, burn_out);
            for ((input, got), want) in ["q", "k", "v"].iter().zip(fused_grads).zip(burn_grads) {
                close(&format!("{case}: d{input}"), got, want);
            }
        }
    }
}

#[test]
fn fused_attention_matches_burn_in_inference() {
    let (batch, heads, kv_heads, seq, dim) = (2, 4, 2, 6, 8);
    for (name, mask) in masks::<Flex>([batch, heads, seq, seq], false) {
        let q = random::<Flex, 4>([batch, seq, heads, dim]).swap_dims(1, 2);
        let k = random::<Flex, 4>([batch, seq, kv_heads, dim]).swap_dims(1, 2);
        let v = random::<Flex, 4>([batch, seq, kv_heads, dim]).swap_dims(1, 2);
        let got = fused::attention(&q, &k, &v, &mask).expect("the fused kernel applies");
        close(name, got, grouped_query_attention(q, k, v, &mask));
    }
}
