//! Every fused CPU kernel against the unfused Burn formulation it replaces, on random inputs:
//! values and gradients under `Autodiff<Flex>`, and values on plain `Flex` (inference).
//! Tolerance: 1e-5 absolute + relative on values and gradients (f32; the kernels accumulate in
//! f32 in a different order). Inputs come from a generator each test seeds with [`SEED`], so a
//! failure reproduces with the same values. Then every kernel refusing operands it cannot read:
//! shapes that do not fit together, and layouts that reach past their buffer.

#[path = "support/masks.rs"]
mod masks;
use masks::padding_causal;

use std::cell::RefCell;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Param};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::activation::silu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Shape, Tensor, TensorData, TensorPrimitive, Tolerance};
use burn_flex::{FlexTensor, Layout};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safeaware_model::attention::{grouped_query_attention, AttentionMask};
use safeaware_model::fused::{self, FusedError};
use safeaware_model::language_model::rms_norm;
use safeaware_model::vision_transformer::gelu_tanh;

type Ad = Autodiff<Flex>;

const TOLERANCE: f64 = 1e-5;

fn close<B: Backend, const D: usize>(what: &str, got: Tensor<B, D>, want: Tensor<B, D>) {
    close_data(what, got.into_data(), want.into_data());
}

fn close_data(what: &str, got: TensorData, want: TensorData) {
    assert_eq!(got.shape, want.shape, "{what}: shapes");
    let tolerance = Tolerance::<f32>::absolute(TOLERANCE).set_relative(TOLERANCE);
    let compare = || got.assert_approx_eq::<f32>(&want, tolerance);
    let compared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(compare));
    if let Err(panic) = compared {
        let message = panic.downcast_ref::<String>().map_or("", String::as_str);
        panic!("{what}: {message}");
    }
}

/// The seed of every test's inputs.
const SEED: u64 = 0x5AFE_A3A2E;

thread_local! {
    /// This test's generator (tests run on threads of their own; each test reseeds it first).
    static RNG: RefCell<StdRng> = RefCell::new(StdRng::seed_from_u64(SEED));
}

/// Restarts this test's inputs from [`SEED`].
fn seed() {
    RNG.with(|rng| *rng.borrow_mut() = StdRng::seed_from_u64(SEED));
}

/// `n` normal values of mean `mean` and deviation `std` from this test's generator
/// (Box-Muller).
fn normal(n: usize, mean: f64, std: f64) -> Vec<f32> {
    RNG.with(|rng| {
        let mut rng = rng.borrow_mut();
        (0..n)
            .map(|_| {
                let (u, v): (f64, f64) = (rng.random(), rng.random());
                let z = (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                (mean + std * z) as f32
            })
            .collect()
    })
}

/// A tensor of `shape` with mean `mean` and deviation `std` (seeded, see [`normal`]).
fn normal_tensor<B: Backend, const D: usize>(
    shape: [usize; D],
    mean: f64,
    std: f64,
) -> Tensor<B, D> {
    let values = normal(shape.iter().product(), mean, std);
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// Standard normal values of `shape` (seeded).
fn random<B: Backend, const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
    normal_tensor(shape, 0.0, 1.0)
}

/// A fused entry point's output where it must apply.
fn applies<T>(result: Result<Option<T>, FusedError>) -> T {
    result
        .expect("consistent operands")
        .expect("the fused kernel applies")
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
    seed();
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
                    applies(fused::attention(&q, &k, &v, &mask))
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
    seed();
    let (batch, heads, kv_heads, seq, dim) = (2, 4, 2, 6, 8);
    for (name, mask) in masks::<Flex>([batch, heads, seq, seq], false) {
        let q = random::<Flex, 4>([batch, seq, heads, dim]).swap_dims(1, 2);
        let k = random::<Flex, 4>([batch, seq, kv_heads, dim]).swap_dims(1, 2);
        let v = random::<Flex, 4>([batch, seq, kv_heads, dim]).swap_dims(1, 2);
        let got = applies(fused::attention(&q, &k, &v, &mask));
        close(name, got, grouped_query_attention(q, k, v, &mask));
    }
}

type Grads = <Ad as AutodiffBackend>::Gradients;

/// An input that needs a gradient: a leaf, read as itself or, when `transposed`, a
/// `[d1, d0, ..]` leaf read through swapped first dimensions (a non-contiguous input). Each
/// [`Self::read`] makes a fresh view: Burn frees a graph's intermediate nodes on `backward`, so
/// a view shared by two passes would not reach the leaf in the second.
struct Input<const D: usize> {
    leaf: Tensor<Ad, D>,
    transposed: bool,
}

impl<const D: usize> Input<D> {
    /// Normal values of `shape` with mean `mean` and standard deviation `std`.
    fn new(shape: [usize; D], transposed: bool, mean: f64, std: f64) -> Self {
        let mut stored = shape;
        if transposed {
            stored.swap(0, 1);
        }
        let leaf = normal_tensor(stored, mean, std);
        Self {
            leaf: leaf.require_grad(),
            transposed,
        }
    }

    fn read(&self) -> Tensor<Ad, D> {
        if self.transposed {
            self.leaf.clone().swap_dims(0, 1)
        } else {
            self.leaf.clone()
        }
    }

    /// The leaf's gradient.
    fn grad(&self, grads: &Grads) -> TensorData {
        self.leaf.grad(grads).expect("a gradient").into_data()
    }
}

/// Runs the fused kernel (`fused`, which must apply) and the unfused Burn formulation (`burn`),
/// back-propagates `Σ out ⊙ w` (the same random `w`) from each, and compares the outputs and
/// the gradients `grads` reads, named by `names`.
fn matches_burn<const D: usize>(
    case: &str,
    names: &[&str],
    fused: impl Fn() -> Result<Option<Tensor<Ad, D>>, FusedError>,
    burn: impl Fn() -> Tensor<Ad, D>,
    grads: impl Fn(&Grads) -> Vec<TensorData>,
) {
    let fused_out = applies(fused());
    let weights = random::<Ad, D>(fused_out.dims());
    let run = |out: Tensor<Ad, D>| {
        let gradients = (out.clone() * weights.clone()).sum().backward();
        (out.into_data(), grads(&gradients))
    };
    let (fused_out, fused_grads) = run(fused_out);
    let (burn_out, burn_grads) = run(burn());
    close_data(&format!("{case}: output"), fused_out, burn_out);
    assert_eq!(fused_grads.len(), names.len(), "{case}: gradients");
    for ((name, got), want) in names.iter().zip(fused_grads).zip(burn_grads) {
        close_data(&format!("{case}: d{name}"), got, want);
    }
}

fn check_rms_norm<const D: usize>(shape: [usize; D], transposed: bool) {
    let x = Input::new(shape, transposed, 0.0, 1.0);
    let weight = Input::new([shape[D - 1]], false, 1.0, 0.5);
    let eps = 1e-5;
    matches_burn(
        &format!("rms_norm {shape:?}, transposed {transposed}"),
        &["x", "weight"],
        || fused::rms_norm(&x.read(), &weight.read(), eps),
        || rms_norm(x.read(), weight.read(), eps),
        |grads| vec![x.grad(grads), weight.grad(grads)],
    );
    let (x, weight) = (x.read().inner(), weight.read().inner());
    let got = applies(fused::rms_norm(&x, &weight, eps));
    close("rms_norm inference", got, rms_norm(x, weight, eps));
}

#[test]
fn fused_rms_norm_matches_burn_values_and_gradients() {
    seed();
    // The tiny model's text width (128) over [B, T]; a width that is not a multiple of the
    // eight accumulation lanes; rank 2 (decoding rows) and non-contiguous inputs.
    check_rms_norm([3, 7, 128], false);
    check_rms_norm([2, 5, 37], true);
    check_rms_norm([9, 64], false);
    check_rms_norm([2, 3, 4, 24], true);
}

#[test]
fn fused_swiglu_matches_burn_values_and_gradients() {
    seed();
    // The tiny model's MLP width (384), then a non-contiguous gate of an odd width.
    for (shape, transposed) in [([3, 7, 384], false), ([4, 5, 21], true)] {
        let gate = Input::new(shape, transposed, 0.0, 2.0);
        let up = Input::new(shape, false, 0.0, 1.0);
        matches_burn(
            &format!("swiglu {shape:?}, transposed {transposed}"),
            &["gate", "up"],
            || fused::swiglu(&gate.read(), &up.read()),
            || silu(gate.read()) * up.read(),
            |grads| vec![gate.grad(grads), up.grad(grads)],
        );
        let (gate, up) = (gate.read().inner(), up.read().inner());
        let got = applies(fused::swiglu(&gate, &up));
        close("swiglu inference", got, silu(gate) * up);
    }
}

#[test]
fn fused_gelu_tanh_matches_burn_values_and_gradients() {
    seed();
    // The tiny vision tower's MLP width (256) over [tiles, patches], then a non-contiguous
    // input; spread over the curved part and both tails.
    for (shape, transposed) in [([2, 64, 256], false), ([3, 5, 19], true)] {
        let x = Input::new(shape, transposed, 0.0, 3.0);
        matches_burn(
            &format!("gelu_tanh {shape:?}, transposed {transposed}"),
            &["x"],
            || fused::gelu_tanh(&x.read()),
            || gelu_tanh(x.read()),
            |grads| vec![x.grad(grads)],
        );
        let x = x.read().inner();
        let got = applies(fused::gelu_tanh(&x));
        close("gelu_tanh inference", got, gelu_tanh(x));
    }
}

/// A LayerNorm of `width` with random weight and bias (so their gradients are not trivial).
fn random_layer_norm<B: Backend>(width: usize, eps: f64) -> LayerNorm<B> {
    let mut norm = LayerNormConfig::new(width)
        .with_epsilon(eps)
        .init::<B>(&Default::default());
    norm.gamma = Param::from_tensor(random::<B, 1>([width]) + 1.0);
    norm.beta = Some(Param::from_tensor(random::<B, 1>([width])));
    norm
}

#[test]
fn fused_layer_norm_matches_burn_values_and_gradients() {
    seed();
    // The tiny vision tower's width (64) over [tiles, patches], a non-contiguous input of an
    // odd width, and a mean away from zero.
    let cases = [
        ([2, 64, 64], false, 0.0),
        ([3, 5, 45], true, 0.0),
        ([2, 9, 64], false, 2.0),
    ];
    for (shape, transposed, mean) in cases {
        let eps = 1e-6;
        let x = Input::new(shape, transposed, mean, 1.0);
        let norm = random_layer_norm::<Ad>(shape[2], eps);
        let beta = norm.beta.as_ref().unwrap();
        matches_burn(
            &format!("layer_norm {shape:?}, transposed {transposed}, mean {mean}"),
            &["x", "gamma", "beta"],
            || fused::layer_norm(&norm, &x.read(), eps),
            || norm.forward(x.read()),
            |grads| {
                let dgamma = norm.gamma.val().grad(grads).unwrap().into_data();
                let dbeta = beta.val().grad(grads).unwrap().into_data();
                vec![x.grad(grads), dgamma, dbeta]
            },
        );
        let (norm, x) = (norm.valid(), x.read().inner());
        let got = applies(fused::layer_norm(&norm, &x, eps));
        close("layer_norm inference", got, norm.forward(x));
    }
}

#[test]
fn fused_layer_norm_centres_before_squaring() {
    seed();
    // Rows with mean 1000 and deviation 1: `E[x²] − E[x]²` in f32 loses every digit of the
    // variance, the centred two-pass form about 1e-4 relative (the rounding of x itself), so
    // the kernel is checked against an f64 reference at 1e-3.
    let (rows, width, eps) = (6, 64, 1e-6);
    let x = normal_tensor::<Flex, 2>([rows, width], 1000.0, 1.0);
    let norm = random_layer_norm::<Flex>(width, eps);
    let got = applies(fused::layer_norm(&norm, &x, eps));
    let [x, gamma, beta] = [
        x,
        norm.gamma.val().unsqueeze(),
        norm.beta.unwrap().val().unsqueeze(),
    ]
    .map(|t| t.into_data().to_vec::<f32>().unwrap());
    let want: Vec<f32> = x
        .chunks(width)
        .flat_map(|row| {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / width as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / width as f64;
            let inv_std = 1.0 / (var + eps).sqrt();
            let affine = row.iter().zip(&gamma).zip(&beta);
            affine.map(move |((&v, &g), &b)| {
                ((v as f64 - mean) * inv_std * g as f64 + b as f64) as f32
            })
        })
        .collect();
    let tolerance = Tolerance::<f32>::absolute(1e-3).set_relative(1e-3);
    got.into_data()
        .assert_approx_eq::<f32>(&TensorData::new(want, [rows, width]), tolerance);
}

#[test]
fn fused_norm_gradients_do_not_depend_on_the_thread_count() {
    seed();
    // Enough rows for many chunks, so the weight gradients are sums of many partial sums.
    let x = Input::new([16, 128, 128], false, 0.0, 1.0);
    let weight = Input::new([128], false, 1.0, 0.5);
    let norm = random_layer_norm::<Ad>(128, 1e-6);
    let grads_with = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let out = applies(fused::rms_norm(&x.read(), &weight.read(), 1e-5));
            let out = applies(fused::layer_norm(&norm, &out, 1e-6));
            let grads = (out * random_weights()).sum().backward();
            let dgamma = norm.gamma.val().grad(&grads).unwrap().into_data();
            [x.grad(&grads), weight.grad(&grads), dgamma]
        })
    };
    let (one, three) = (grads_with(1), grads_with(3));
    for (name, (a, b)) in ["x", "weight", "gamma"].iter().zip(one.iter().zip(&three)) {
        assert_eq!(a, b, "d{name} differs between 1 and 3 threads");
    }
}

/// Fixed output weights for the thread-count test (the same in every pool).
fn random_weights() -> Tensor<Ad, 3> {
    let values: Vec<f32> = (0..16 * 128 * 128)
        .map(|i| ((i % 7) as f32 - 3.0) / 3.0)
        .collect();
    Tensor::from_data(TensorData::new(values, [16, 128, 128]), &Default::default())
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
    seed();
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
                applies(fused::rotary(&x, &cos, &sin))
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
        let got = applies(fused::rotary(&x, &cos, &sin));
        close("rotary (inference)", got, rotary_reference(x, cos, sin));
    }
}

#[test]
fn fused_cross_entropy_matches_burn_values_and_gradients() {
    seed();
    let (rows, vocab) = (37, 50);
    let targets: Vec<i64> = (0..rows as i64).map(|r| (r * 7) % vocab as i64).collect();
    let device = Default::default();
    let leaf = (random::<Ad, 2>([rows, vocab]) * 3.0)
        .detach()
        .require_grad();
    let run = |fused_kernel: bool| {
        let loss = if fused_kernel {
            applies(fused::cross_entropy_sum(&leaf, &targets))
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

/// Asserts that `result` is a shape error whose message names `needle`.
fn refused_shape<T>(case: &str, result: Result<Option<T>, FusedError>, needle: &str) {
    match result {
        Err(err @ FusedError::Shape { .. }) => {
            assert!(err.to_string().contains(needle), "{case}: {err}")
        }
        Err(err) => panic!("{case}: not a shape error: {err}"),
        Ok(out) => panic!(
            "{case}: accepted ({})",
            if out.is_some() {
                "computed"
            } else {
                "fallback"
            }
        ),
    }
}

/// Asserts that `result` is an out-of-bounds error for `operand`.
fn refused_bounds<T>(case: &str, result: Result<Option<T>, FusedError>, operand: &str) {
    match result {
        Err(FusedError::OutOfBounds {
            operand: got,
            reach,
            len,
            ..
        }) => {
            assert_eq!(got, operand, "{case}");
            assert!(
                reach < 0 || reach >= len as i128,
                "{case}: {reach} of {len}"
            );
        }
        Err(err) => panic!("{case}: not an out-of-bounds error: {err}"),
        Ok(_) => panic!("{case}: accepted a layout past its buffer"),
    }
}

/// A `Flex` tensor of `len` values read through `shape`, `strides` and `offset`, whichever
/// buffer elements they reach (`FlexTensor::with_layout` is safe and takes any layout).
fn laid_out<const D: usize>(
    len: usize,
    shape: [usize; D],
    strides: [isize; D],
    offset: usize,
) -> Tensor<Flex, D> {
    let buffer = FlexTensor::from_data(TensorData::new(normal(len, 0.0, 1.0), [len]));
    let layout = Layout::new(Shape::new(shape), strides.to_vec(), offset);
    Tensor::from_primitive(TensorPrimitive::Float(buffer.with_layout(layout)))
}

#[test]
fn attention_refuses_operands_that_do_not_fit_together() {
    seed();
    let q = random::<Flex, 4>([2, 4, 5, 8]);
    let mask = AttentionMask::Causal;
    let cases = [
        ("head size", [2, 2, 5, 4], [2, 2, 5, 4], "head size"),
        ("batch", [1, 2, 5, 8], [1, 2, 5, 8], "batch"),
        ("k and v lengths", [2, 2, 5, 8], [2, 2, 6, 8], "differ"),
        ("k and v heads", [2, 2, 5, 8], [2, 1, 5, 8], "differ"),
        ("head groups", [2, 3, 5, 8], [2, 3, 5, 8], "cannot share"),
    ];
    for (case, k, v) in cases.map(|(c, k, v, n)| ((c, n), k, v)) {
        let (k, v) = (random::<Flex, 4>(k), random::<Flex, 4>(v));
        refused_shape(case.0, fused::attention(&q, &k, &v, &mask), case.1);
    }
}

#[test]
fn attention_refuses_layouts_past_their_buffers() {
    seed();
    let (q, v) = (
        random::<Flex, 4>([2, 4, 5, 8]),
        random::<Flex, 4>([2, 2, 5, 8]),
    );
    let mask = AttentionMask::Bidirectional;
    // The right shape over too few elements: strides of a [2, 2, 5, 8] tensor on 79 values.
    let short = laid_out(79, [2, 2, 5, 8], [80, 40, 8, 1], 0);
    refused_bounds("short k", fused::attention(&q, &short, &v, &mask), "k");
    // A start offset that pushes the last element out.
    let shifted = laid_out(160, [2, 2, 5, 8], [80, 40, 8, 1], 1);
    refused_bounds("shifted v", fused::attention(&q, &v, &shifted, &mask), "v");
    // A negative stride reaching before the buffer, under autodiff.
    let backwards = laid_out(160, [2, 2, 5, 8], [80, 40, -8, 1], 0);
    let [q, k, v] = [q, backwards, v].map(|t| Tensor::<Ad, 4>::from_inner(t).require_grad());
    let mask = AttentionMask::<Ad>::Bidirectional;
    refused_bounds("negative stride", fused::attention(&q, &k, &v, &mask), "k");
}

#[test]
fn row_kernels_refuse_parameters_of_another_width() {
    seed();
    let x = random::<Flex, 3>([2, 3, 16]);
    let wide = random::<Flex, 1>([17]);
    refused_shape("rms_norm", fused::rms_norm(&x, &wide, 1e-5), "weight");
    // A width-1 weight broadcasts in Burn: not the kernel's case, but not an error.
    let one = random::<Flex, 1>([1]);
    assert!(fused::rms_norm(&x, &one, 1e-5).unwrap().is_none());
    let norm = random_layer_norm::<Flex>(17, 1e-6);
    refused_shape("layer_norm", fused::layer_norm(&norm, &x, 1e-6), "gamma");
    let up = random::<Flex, 3>([2, 3, 15]);
    refused_shape("swiglu", fused::swiglu(&x, &up), "do not broadcast");
    let broadcast = random::<Flex, 3>([1, 3, 16]);
    assert!(fused::swiglu(&x, &broadcast).unwrap().is_none());
}

#[test]
fn row_kernels_refuse_layouts_past_their_buffers() {
    seed();
    let x = laid_out(95, [2, 3, 16], [48, 16, 1], 0);
    let weight = random::<Flex, 1>([16]);
    refused_bounds("rms_norm", fused::rms_norm(&x, &weight, 1e-5), "x");
    refused_bounds("gelu_tanh", fused::gelu_tanh(&x), "x");
    let up = random::<Flex, 3>([2, 3, 16]);
    refused_bounds("swiglu", fused::swiglu(&up, &x), "up");
    let gamma = laid_out(16, [16], [2], 0);
    let mut norm = random_layer_norm::<Flex>(16, 1e-6);
    norm.gamma = Param::from_tensor(gamma);
    refused_bounds("layer_norm", fused::layer_norm(&norm, &up, 1e-6), "gamma");
}

#[test]
fn cross_entropy_refuses_targets_that_do_not_fit_the_logits() {
    seed();
    let logits = random::<Flex, 2>([4, 10]);
    let few = fused::cross_entropy_sum(&logits, &[1, 2, 3]);
    refused_shape("three targets", few, "3 targets for 4 rows");
    let outside = fused::cross_entropy_sum(&logits, &[1, 2, 10, 3]);
    refused_shape("target 10", outside, "row 2");
    let negative = fused::cross_entropy_sum(&logits, &[1, -1, 0, 3]);
    refused_shape("target -1", negative, "row 1");
    let short = laid_out(39, [4, 10], [10, 1], 0);
    refused_bounds(
        "short logits",
        fused::cross_entropy_sum(&short, &[0, 1, 2, 3]),
        "logits",
    );
}

#[test]
fn rotary_refuses_tables_that_do_not_fit() {
    seed();
    let x = random::<Flex, 4>([2, 4, 5, 8]);
    let (cos, sin) = (
        random::<Flex, 4>([1, 1, 6, 8]),
        random::<Flex, 4>([1, 1, 6, 8]),
    );
    refused_shape(
        "six positions for five",
        fused::rotary(&x, &cos, &sin),
        "do not broadcast",
    );
    let cos = laid_out(39, [1, 1, 5, 8], [40, 40, 8, 1], 0);
    let sin = random::<Flex, 4>([1, 1, 5, 8]);
    refused_bounds("short cos", fused::rotary(&x, &cos, &sin), "cos");
}
