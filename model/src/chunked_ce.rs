//! Chunked cross-entropy over the LM head: `Σ_r lse(h_r·Wᵀ) − (h_r·Wᵀ)[target_r]` for the kept
//! hidden rows `h [N, X]` and the head weight `W [V, X]`, computed [`CHUNK_ROWS`] rows at a
//! time with the head product inside the chunk, so the `[N, V]` logits are never held whole:
//! the forward keeps only each row's log-sum-exp, the backward recomputes each chunk's logits,
//! forms `softmax − one-hot` and accumulates `grad(h) = dlogits·W` and
//! `grad(W) = dlogitsᵀ·h`. Written once in Burn tensor ops over any backend `X` (the inner
//! backend of an autodiff one: no autodiff op runs in the backward).
//!
//! Under an autocast type (bf16-mixed) the head products run in that type and the softmax
//! statistics in f32, as [`crate::loss::cross_entropy_sum`] on [`crate::precision::linear`]'s
//! logits does; `grad(W)` is summed over chunks in f32.

use std::any::TypeId;
use std::sync::{Arc, OnceLock};

use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, IndexingUpdateOp, Int, Tensor, TensorData, TensorPrimitive};
use burn_autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn_autodiff::Autodiff;
use burn_flex::Flex;

use crate::custom_op::{self, CustomOp};
use crate::fused;
use crate::precision::{cast, float_dtype, matmul_dtype};

/// Whether the chunked loss may run: on unless `SAFEAWARE_CHUNKED_CE=0` (read once per process).
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("SAFEAWARE_CHUNKED_CE").map_or(true, |v| v != "0"))
}

/// `Σ −log softmax(hidden · weightᵀ)[target]` over the kept rows `hidden [N, X]` and the head
/// weight `weight [V, X]`, as `[1]` (f32), by [`ChunkedCrossEntropy`] with its backward
/// registered as one autodiff node; `None` where the caller keeps the logits path: the op is
/// off ([`enabled`]), the CPU's fused cross-entropy applies (CPU backend with the fused
/// kernels on, whose losses stay as they were), or the backend is one `custom_op` does not know.
pub fn loss_sum<B: Backend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: &[i64],
) -> Option<Tensor<B, 1>> {
    if !enabled() || (fused::enabled() && on_cpu::<B>()) {
        return None;
    }
    let op = ChunkedCrossEntropy::new(targets.to_vec(), matmul_dtype());
    let inputs = [hidden, weight].map(|t| t.into_primitive().tensor());
    let sum = custom_op::run::<B, _, 2>(op, inputs)?;
    Some(Tensor::from_primitive(TensorPrimitive::Float(sum)))
}

/// Whether `B` is the CPU backend, with or without autodiff.
fn on_cpu<B: Backend>() -> bool {
    let b = TypeId::of::<B>();
    b == TypeId::of::<Flex>()
        || b == TypeId::of::<Autodiff<Flex>>()
        || b == TypeId::of::<Autodiff<Flex, BalancedCheckpointing>>()
}

/// Target rows per chunk: the transient logits of a chunk are `CHUNK_ROWS × V` f32 (24 MiB for
/// SmolVLM's 49,280-token vocabulary), a few such buffers live at once in the backward.
pub const CHUNK_ROWS: usize = 128;

/// The loss over one batch's kept rows: their targets, the chunk size and the product type.
#[derive(Debug, Clone)]
pub struct ChunkedCrossEntropy {
    /// One target token per kept row.
    pub targets: Arc<Vec<i64>>,
    /// Rows per chunk (> 0).
    pub chunk: usize,
    /// The type of the head products (the autocast type at the forward), `None` = the operands'.
    pub matmul: Option<FloatDType>,
}

/// The backward's gradients: of the hidden rows and of the head weight (`None` where unwanted).
pub type Grads<X> = (Option<Tensor<X, 2>>, Option<Tensor<X, 2>>);

impl ChunkedCrossEntropy {
    /// The loss for `targets`, [`CHUNK_ROWS`] rows a chunk, products in `matmul`.
    pub fn new(targets: Vec<i64>, matmul: Option<FloatDType>) -> Self {
        Self {
            targets: Arc::new(targets),
            chunk: CHUNK_ROWS,
            matmul,
        }
    }

    /// The summed loss `[1]` (f32) and each row's log-sum-exp `[N, 1]` (f32).
    pub fn loss<X: Backend>(
        &self,
        hidden: &Tensor<X, 2>,
        weight: &Tensor<X, 2>,
    ) -> (Tensor<X, 1>, Tensor<X, 2>) {
        let mut lses = Vec::new();
        let mut total = Tensor::<X, 1>::zeros([1], &hidden.device()).cast(FloatDType::F32);
        for (start, end) in self.chunks(hidden.dims()[0]) {
            let logits = self.logits(hidden, weight, start, end);
            let lse = log_sum_exp(logits.clone());
            let picked = logits.gather(1, self.target_column::<X>(start, end, &hidden.device()));
            total = total + (lse.clone() - picked).sum();
            lses.push(lse);
        }
        (total, Tensor::cat(lses, 0))
    }

    /// Gradients of the hidden rows and the weight (each in its input's type) for the loss's
    /// gradient `grad [1]`, given the forward's `lse`.
    pub fn gradients<X: Backend>(
        &self,
        [hidden, weight]: [&Tensor<X, 2>; 2],
        lse: &Tensor<X, 2>,
        grad: Tensor<X, 1>,
        [want_hidden, want_weight]: [bool; 2],
    ) -> Grads<X> {
        let device = hidden.device();
        let grad = cast(grad, FloatDType::F32).reshape([1, 1]);
        let mut hidden_grads = Vec::new();
        let mut weight_grad: Option<Tensor<X, 2>> = None;
        for (start, end) in self.chunks(hidden.dims()[0]) {
            let logits = self.logits(hidden, weight, start, end);
            let probs = (logits - lse.clone().slice(start..end)).exp();
            let ones = Tensor::<X, 2>::ones([end - start, 1], &device).cast(FloatDType::F32);
            let column = self.target_column::<X>(start, end, &device);
            let dlogits =
                probs.scatter(1, column, ones.neg(), IndexingUpdateOp::Add) * grad.clone();
            let dlogits = self.in_product_type(dlogits, hidden);
            if want_hidden {
                let g = dlogits
                    .clone()
                    .matmul(self.in_product_type(weight.clone(), hidden));
                hidden_grads.push(cast(g, float_dtype(hidden)));
            }
            if want_weight {
                let rows = self.in_product_type(hidden.clone().slice(start..end), hidden);
                let g = cast(dlogits.transpose().matmul(rows), FloatDType::F32);
                weight_grad = Some(weight_grad.map_or(g.clone(), |sum| sum + g));
            }
        }
        let hidden_grad = want_hidden.then(|| Tensor::cat(hidden_grads, 0));
        let weight_grad = weight_grad.map(|g| cast(g, float_dtype(weight)));
        (hidden_grad, weight_grad)
    }

    /// `[start, end)` row ranges of `rows` rows, `chunk` at a time.
    fn chunks(&self, rows: usize) -> impl Iterator<Item = (usize, usize)> {
        let chunk = self.chunk.max(1);
        (0..rows)
            .step_by(chunk)
            .map(move |start| (start, (start + chunk).min(rows)))
    }

    /// The f32 logits `[end − start, V]` of rows `start..end`, the product in the product type.
    fn logits<X: Backend>(
        &self,
        hidden: &Tensor<X, 2>,
        weight: &Tensor<X, 2>,
        start: usize,
        end: usize,
    ) -> Tensor<X, 2> {
        let rows = self.in_product_type(hidden.clone().slice(start..end), hidden);
        let weight = self.in_product_type(weight.clone(), hidden);
        cast(rows.matmul(weight.transpose()), FloatDType::F32)
    }

    /// `x` in the product type: the autocast type, else the hidden rows' type.
    fn in_product_type<X: Backend>(&self, x: Tensor<X, 2>, hidden: &Tensor<X, 2>) -> Tensor<X, 2> {
        cast(x, self.matmul.unwrap_or_else(|| float_dtype(hidden)))
    }

    /// The targets of rows `start..end` as a `[end − start, 1]` index column.
    fn target_column<X: Backend>(
        &self,
        start: usize,
        end: usize,
        device: &X::Device,
    ) -> Tensor<X, 2, Int> {
        let data = TensorData::new(self.targets[start..end].to_vec(), [end - start, 1]);
        Tensor::from_data(data, device)
    }
}

/// `p` as a tensor of backend `X`.
fn tensor<X: Backend, const D: usize>(p: X::FloatTensorPrimitive) -> Tensor<X, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

/// The op over `[hidden rows, head weight]`: the summed loss `[1]`, saving each row's lse.
impl CustomOp<2> for ChunkedCrossEntropy {
    type Saved<X: Backend> = X::FloatTensorPrimitive;

    fn forward<X: Backend>(
        &self,
        [hidden, weight]: &[X::FloatTensorPrimitive; 2],
    ) -> (X::FloatTensorPrimitive, X::FloatTensorPrimitive) {
        let (hidden, weight) = (
            tensor::<X, 2>(hidden.clone()),
            tensor::<X, 2>(weight.clone()),
        );
        let (sum, lse) = self.loss(&hidden, &weight);
        (sum.into_primitive().tensor(), lse.into_primitive().tensor())
    }

    fn backward<X: Backend>(
        &self,
        [hidden, weight]: &[X::FloatTensorPrimitive; 2],
        lse: &X::FloatTensorPrimitive,
        grad: X::FloatTensorPrimitive,
        wanted: [bool; 2],
    ) -> [Option<X::FloatTensorPrimitive>; 2] {
        let (hidden, weight) = (
            tensor::<X, 2>(hidden.clone()),
            tensor::<X, 2>(weight.clone()),
        );
        let lse = tensor::<X, 2>(lse.clone());
        let (h, w) = self.gradients([&hidden, &weight], &lse, tensor(grad), wanted);
        [h, w].map(|g| g.map(|g| g.into_primitive().tensor()))
    }
}

/// Each row's `ln Σ exp`, stably, as `[rows, 1]`.
fn log_sum_exp<X: Backend>(logits: Tensor<X, 2>) -> Tensor<X, 2> {
    let max = logits.clone().max_dim(1);
    (logits - max.clone()).exp().sum_dim(1).log() + max
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::activation::log_softmax;
    use burn::tensor::Distribution;

    type Ad = Autodiff<NdArray>;

    /// Random `[rows, cols]` values (seeded by the backend's default RNG).
    fn random(rows: usize, cols: usize) -> Tensor<NdArray, 2> {
        Tensor::random(
            [rows, cols],
            Distribution::Normal(0.0, 1.0),
            &Default::default(),
        )
    }

    /// Burn's unfused formulation under autodiff: the loss and the gradients of `h` and `w`.
    fn reference(
        h: &Tensor<NdArray, 2>,
        w: &Tensor<NdArray, 2>,
        targets: &[i64],
    ) -> (f32, Tensor<NdArray, 2>, Tensor<NdArray, 2>) {
        let h = Tensor::<Ad, 2>::from_inner(h.clone()).require_grad();
        let w = Tensor::<Ad, 2>::from_inner(w.clone()).require_grad();
        let n = targets.len();
        let t = Tensor::<Ad, 2, Int>::from_data(
            TensorData::new(targets.to_vec(), [n, 1]),
            &Default::default(),
        );
        let loss = log_softmax(h.clone().matmul(w.clone().transpose()), 1)
            .gather(1, t)
            .sum()
            .neg();
        let grads = loss.backward();
        let value = loss.into_scalar();
        (value, h.grad(&grads).unwrap(), w.grad(&grads).unwrap())
    }

    fn max_abs_diff(a: Tensor<NdArray, 2>, b: Tensor<NdArray, 2>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Values and both gradients match the unfused formulation (to 1e-4 absolute on unit-scale
    /// inputs) for row counts below, at and past a multiple of the chunk.
    #[test]
    fn matches_the_unfused_loss_and_gradients_for_any_row_count() {
        let (vocab, width) = (37, 16);
        for rows in [1, 4, 5, 13] {
            let h = random(rows, width);
            let w = random(vocab, width);
            let targets: Vec<i64> = (0..rows).map(|r| ((r * 7 + 3) % vocab) as i64).collect();
            let op = ChunkedCrossEntropy {
                chunk: 4,
                ..ChunkedCrossEntropy::new(targets.clone(), None)
            };
            let (loss, lse) = op.loss(&h, &w);
            assert_eq!(lse.dims(), [rows, 1]);
            let grad = Tensor::<NdArray, 1>::from_floats([1.5], &Default::default());
            let (gh, gw) = op.gradients([&h, &w], &lse, grad, [true, true]);
            let (want, want_h, want_w) = reference(&h, &w, &targets);
            let got = loss.into_scalar();
            assert!(
                (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{rows}: {got} vs {want}"
            );
            assert!(
                max_abs_diff(gh.unwrap(), want_h * 1.5) < 1e-4,
                "grad(h), {rows} rows"
            );
            assert!(
                max_abs_diff(gw.unwrap(), want_w * 1.5) < 1e-4,
                "grad(W), {rows} rows"
            );
        }
    }

    /// Run by `custom_op` as one autodiff node on `Autodiff<Flex>`: the loss and both
    /// gradients match the unfused formulation (1e-4 absolute).
    #[test]
    fn as_an_autodiff_node_it_matches_the_unfused_gradients() {
        type Cpu = Autodiff<Flex>;
        let (h0, w0) = (random(13, 16), random(37, 16));
        let targets: Vec<i64> = (0..13).map(|r| (r * 5 % 37) as i64).collect();
        let on_cpu = |t: &Tensor<NdArray, 2>| {
            Tensor::<Cpu, 2>::from_data(t.to_data(), &Default::default()).require_grad()
        };
        let (h, w) = (on_cpu(&h0), on_cpu(&w0));
        let op = ChunkedCrossEntropy {
            chunk: 4,
            ..ChunkedCrossEntropy::new(targets.clone(), None)
        };
        let inputs = [h.clone(), w.clone()].map(|t| t.into_primitive().tensor());
        let sum: Tensor<Cpu, 1> = tensor(custom_op::run::<Cpu, _, 2>(op, inputs).unwrap());
        let grads = (sum.clone() * 2.0).backward();
        let back =
            |t: Tensor<Flex, 2>| Tensor::<NdArray, 2>::from_data(t.to_data(), &Default::default());
        let (want, want_h, want_w) = reference(&h0, &w0, &targets);
        let got = sum.into_scalar();
        assert!((got - want).abs() <= 1e-4 * want.abs(), "{got} vs {want}");
        assert!(max_abs_diff(back(h.grad(&grads).unwrap()), want_h * 2.0) < 1e-4);
        assert!(max_abs_diff(back(w.grad(&grads).unwrap()), want_w * 2.0) < 1e-4);
    }

    #[test]
    fn computes_only_the_wanted_gradients() {
        let (h, w) = (random(3, 8), random(11, 8));
        let op = ChunkedCrossEntropy::new(vec![0, 5, 10], None);
        let (_, lse) = op.loss(&h, &w);
        let grad = Tensor::<NdArray, 1>::ones([1], &Default::default());
        let (gh, gw) = op.gradients([&h, &w], &lse, grad, [false, true]);
        assert!(gh.is_none());
        assert_eq!(gw.unwrap().dims(), [11, 8]);
    }
}
