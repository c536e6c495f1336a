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

/// The unfused rotary formulation, written out (Burn ops only).
fn rotary_reference<B: Backend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let d = x.dims()[3];
    let x1 = x
        .clone()
        .slice([0..x.dims()[0], 0..x.dims()[1], 0..x.dims()[2], 0..d / 2]);
    let x2 = x
        .clone()
        .slice([0..x.dims()[0], 0..x.dims()[1], 0..x.dims()[2], d / 2..d]);
    x * cos + Tensor::cat(vec![x2.neg(), x1], 3) * sin
}

#[test]
fn fused_rotary_matches_burn_values_and_gradients() {
    let (batch, heads, seq, dim) = (3, 4, 5, 8);
    let rope = safeaware_model::rope::Rope::new(dim, 10_000.0);
    let device = Default::default();
    // Shared positions (one table row) and per-row positions (left padding).
    let shared: Vec<i64> = (0..batch).flat_map(|_| 0..seq as i64).collect();
    let per_row: Vec<i64> = (0..batch as i64).flat_map(|b| b..b + seq as i64).collect();
    for positions in [shared, per_row] {
        let (cos, sin) = rope.tables::<Ad>(&positions, batch, seq, &device);
        let leaf = random::<Ad, 4>([batch, seq, heads, dim]).require_grad();
        let weights = random::<Ad, 4>([batch, heads, seq, dim]);
        let run = |fused_kernel: bool| {
            let x = head_split(&leaf);
            let out = if fused_kernel {
                fused::rotary(&x, &cos, &sin).expect("the fused kernel applies")
            } else {
                rotary_reference(x, cos.clone(), sin.clone())
            };
            let grads = (out.clone() * weights.clone()).sum().backward();
            (out.inner(), leaf.grad(&grads).unwrap())
        };
        let ((got, got_grad), (want, want_grad)) = (run(true), run(false));
        close("rotary", got, want);
        close("rotary dx", got_grad, want_grad);
        let x = random::<Flex, 4>([batch, seq, heads, dim]).swap_dims(1, 2);
        let (cos, sin) = (cos.inner(), sin.inner());
        let got = fused::rotary(&x, &cos, &sin).expect("the fused kernel applies");
        close("rotary (inference)", got, rotary_reference(x, cos, sin));
    }
}

#[test]
fn fused_cross_entropy_matches_burn_values_and_gradients() {
    let (rows, vocab) = (37, 50);
    let targets: Vec<i64> = (0..rows as i64).map(|r| (r * 7) % vocab as i64).collect();
    let device = Default::default();
    let leaf = (random::<Ad, 2>([rows, vocab]) * 3.0)
        .detach()
        .require_grad();
    let run = |fused_kernel: bool| {
        let loss = if fused_kernel {
            fused::cross_entropy_sum(&leaf, &targets).expect("the fused kernel applies")
        } else {
            let index = TensorData::new(targets.clone(), [rows, 1]);
            let index = Tensor::<Ad, 2, burn::tensor::Int>::from_data(index, &device);
            burn::tensor::activation::log_softmax(leaf.clone(), 1)
                .gather(1, index)
                .sum()
                .neg()
        };
        let grads = (loss.clone() * 0.5).backward();
        (loss.inner(), leaf.grad(&grads).unwrap())
    };
    let ((got, got_grad), (want, want_grad)) = (run(true), run(false));
    close("cross-entropy", got, want);
    close("cross-entropy dlogits", got_grad, want_grad);
}
