//! The memory-efficient attention op against Burn's unfused formulation
//! (`grouped_query_attention` under autodiff), generic over the autodiff backend so that the CPU
//! tests (`model/tests/memory_efficient_attention.rs`) and the software-GPU test
//! (`tests/wgpu.rs`) run the same cases: every mask form, GQA and plain multi-head, a single
//! query, odd lengths and lengths that are not a multiple of the block. Inputs are seeded host
//! values, so every backend sees the same numbers.

#[path = "masks.rs"]
mod masks;
use masks::padding_causal;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Bool, Tensor, TensorData, Tolerance};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safeaware_model::attention::{grouped_query_attention, AttentionMask};
use safeaware_model::memory_efficient_attention;

/// One case: `[batch, heads, kv_heads, seq_q, seq_k, head_dim]`.
pub type Case = [usize; 6];

/// Small shapes, then one past a block (`4 · 67` folded rows over 128-row blocks).
pub const SMALL: [Case; 4] = [
    [2, 4, 2, 5, 5, 8],
    [1, 3, 3, 7, 9, 4],
    [2, 2, 1, 1, 6, 8],
    [1, 4, 1, 67, 67, 8],
];

/// Seeded normal values as a tensor of `shape`.
fn random<B: AutodiffBackend>(
    rng: &mut StdRng,
    shape: [usize; 4],
    device: &B::Device,
) -> Tensor<B, 4> {
    let normal = |rng: &mut StdRng| {
        let (u, v): (f32, f32) = (rng.random::<f32>().max(1e-7), rng.random());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    };
    let values: Vec<f32> = (0..shape.iter().product()).map(|_| normal(rng)).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Every mask form the model uses, for scores of `shape`.
pub fn masks<B: AutodiffBackend>(
    shape: [usize; 4],
    device: &B::Device,
) -> Vec<(&'static str, AttentionMask<B>)> {
    let masked = padding_causal(shape, true);
    let bias: Vec<f32> = masked
        .iter()
        .map(|&m| if m { f32::NEG_INFINITY } else { 0.0 })
        .collect();
    vec![
        ("bidirectional", AttentionMask::Bidirectional),
        ("causal", AttentionMask::Causal),
        (
            "bias",
            AttentionMask::Bias(Tensor::from_data(TensorData::new(bias, shape), device)),
        ),
        (
            "bool",
            AttentionMask::Masked(Tensor::<B, 4, Bool>::from_data(
                TensorData::new(masked, shape),
                device,
            )),
        ),
    ]
}

/// The output and the gradients of `q`, `k`, `v` of `sum(attention · weights)`.
fn run<B: AutodiffBackend>(
    attention: impl Fn(Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) -> Tensor<B, 4>,
    [q, k, v, weights]: [Tensor<B, 4>; 4],
) -> [TensorData; 4] {
    let [q, k, v] = [q, k, v].map(Tensor::require_grad);
    // `k`/`v` as head-split views of `[B, Tk, KVH, D]`, as the model passes them.
    let view = |t: &Tensor<B, 4>| t.clone().swap_dims(1, 2);
    let output = attention(q.clone(), view(&k), view(&v));
    let grads = (output.clone() * weights).sum().backward();
    let grad = |t: &Tensor<B, 4>| t.grad(&grads).expect("a gradient").into_data();
    [output.into_data(), grad(&q), grad(&k), grad(&v)]
}

/// Compares the op with Burn's formulation on `case` under every mask form; `tolerance` is
/// absolute and relative. Panics naming the case, mask and tensor that differ.
pub fn check<B: AutodiffBackend>(case: Case, tolerance: f32, device: &B::Device) {
    let [batch, heads, kv_heads, seq_q, seq_k, dim] = case;
    let rng = &mut StdRng::seed_from_u64(case.iter().sum::<usize>() as u64);
    let q = random::<B>(rng, [batch, heads, seq_q, dim], device);
    let [k, v] = [(); 2].map(|_| random::<B>(rng, [batch, seq_k, kv_heads, dim], device));
    let weights = random::<B>(rng, [batch, heads, seq_q, dim], device);
    for (name, mask) in masks::<B>([batch, heads, seq_q, seq_k], device) {
        let inputs = || [q.clone(), k.clone(), v.clone(), weights.clone()];
        let got = run(
            |q, k, v| {
                memory_efficient_attention::attention(&q, &k, &v, &mask).expect("the op applies")
            },
            inputs(),
        );
        let want = run(|q, k, v| grouped_query_attention(q, k, v, &mask), inputs());
        for ((what, got), want) in ["output", "dq", "dk", "dv"].iter().zip(got).zip(want) {
            let tolerance = Tolerance::<f32>::absolute(tolerance).set_relative(tolerance);
            let compare = || got.assert_approx_eq::<f32>(&want, tolerance);
            if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(compare)) {
                let message = panic.downcast_ref::<String>().map_or("", String::as_str);
                panic!("{case:?} {name} {what}: {message}");
            }
        }
    }
}
