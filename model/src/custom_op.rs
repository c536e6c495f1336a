//! A computation with its own backward on any backend: a [`CustomOp`] is written once in Burn
//! tensor ops over an inner backend `X`, and [`run`] registers its backward as one autodiff
//! node on `Autodiff<X, _>` for the inner backends this crate knows (the CPU backend always,
//! wgpu and CUDA under the crate's `wgpu` / `cuda` features). Autodiff then keeps only what
//! the op saves (e.g. attention's output and log-sum-exp) instead of every intermediate of the
//! decomposed formulation. The CPU's fused kernels (`fused/op.rs`) use the same mechanism on
//! burn-flex's buffers; this is its backend-generic form.
//!
//! Burn's autodiff holds a process-wide lock during a backward pass, so an op's backward runs
//! only inner-backend (`X`) ops, never autodiff ones.

use std::any::{Any, TypeId};
use std::fmt::Debug;
use std::marker::PhantomData;

use burn::tensor::backend::{Backend, BackendTypes};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::Autodiff;

/// A computation with its own backward, written once over any inner backend `X` in Burn tensor ops.
pub trait CustomOp<const N: usize>: Clone + Send + Debug + 'static {
    /// What the backward keeps besides the inputs (e.g. per-row log-sum-exp), on backend `X`.
    type Saved<X: Backend>: Clone + Send + Debug + 'static;

    /// The output and what the backward needs.
    fn forward<X: Backend>(
        &self,
        inputs: &[X::FloatTensorPrimitive; N],
    ) -> (X::FloatTensorPrimitive, Self::Saved<X>);

    /// Gradients of the inputs marked in `wanted` (`None` for the others), given the output's
    /// gradient.
    fn backward<X: Backend>(
        &self,
        inputs: &[X::FloatTensorPrimitive; N],
        saved: &Self::Saved<X>,
        grad: X::FloatTensorPrimitive,
        wanted: [bool; N],
    ) -> [Option<X::FloatTensorPrimitive>; N];
}

/// Runs `op`: on a backend without autodiff, its forward; on `Autodiff<X, C>` for the inner
/// backends this crate knows (Flex always; Wgpu / Cuda under the `wgpu` / `cuda` features)
/// with either checkpoint strategy, its forward with its backward registered as one autodiff
/// node (none when no input needs a gradient); `None` on any other autodiff backend, with
/// nothing computed (the caller keeps Burn's ops).
pub fn run<B: Backend, K: CustomOp<N>, const N: usize>(
    op: K,
    inputs: [B::FloatTensorPrimitive; N],
) -> Option<B::FloatTensorPrimitive> {
    if !B::ad_enabled(&B::float_device(&inputs[0])) {
        return Some(op.forward::<B>(&inputs).0);
    }
    let tracked = on::<B, burn_flex::Flex, K, N>();
    #[cfg(feature = "wgpu")]
    let tracked = tracked.or_else(on::<B, burn::backend::Wgpu, K, N>);
    #[cfg(feature = "cuda")]
    let tracked = tracked.or_else(on::<B, burn::backend::Cuda, K, N>);
    tracked.map(|tracked| tracked(op, inputs))
}

/// A float primitive of `B`.
type Float<B> = <B as BackendTypes>::FloatTensorPrimitive;

/// The float primitive of `Autodiff<X, _>` (the same type whatever the strategy).
type AutodiffTensor<X> = Float<Autodiff<X>>;

/// How to run an op on `B` when `B` is `Autodiff<X, _>` with either checkpoint strategy.
type Runner<B, K, const N: usize> = fn(K, [Float<B>; N]) -> Float<B>;

/// The runner for `B` when `B` is `Autodiff<X, _>` with either checkpoint strategy.
fn on<B: Backend, X: Backend, K: CustomOp<N>, const N: usize>() -> Option<Runner<B, K, N>> {
    let backend = TypeId::of::<B>();
    if backend == TypeId::of::<Autodiff<X, NoCheckpointing>>() {
        Some(tracked_as::<B, X, NoCheckpointing, K, N>)
    } else if backend == TypeId::of::<Autodiff<X, BalancedCheckpointing>>() {
        Some(tracked_as::<B, X, BalancedCheckpointing, K, N>)
    } else {
        None
    }
}

/// [`tracked`] for `B` = `Autodiff<X, C>` (checked by the caller): the primitives are the same
/// types under both names.
fn tracked_as<B: Backend, X: Backend, C: CheckpointStrategy, K: CustomOp<N>, const N: usize>(
    op: K,
    inputs: [B::FloatTensorPrimitive; N],
) -> B::FloatTensorPrimitive {
    let inputs = inputs.map(|t| cast::<_, AutodiffTensor<X>>(t).expect("Autodiff<X>'s primitive"));
    cast(tracked::<X, C, K, N>(op, inputs)).expect("Autodiff<X>'s primitive")
}

/// `value` as a `U`, when it is one.
fn cast<T: 'static, U: 'static>(value: T) -> Option<U> {
    let boxed: Box<dyn Any> = Box::new(value);
    boxed.downcast::<U>().ok().map(|b| *b)
}

/// The forward on the inner tensors, with the backward registered when any input needs a
/// gradient. The op is compute-bound: checkpointing keeps its state instead of re-running it.
fn tracked<X: Backend, C: CheckpointStrategy, K: CustomOp<N>, const N: usize>(
    op: K,
    inputs: [AutodiffTensor<X>; N],
) -> AutodiffTensor<X> {
    let nodes = inputs.clone().map(|t| t.node);
    let inner = inputs.map(|t| t.primitive);
    let (output, saved) = op.forward::<X>(&inner);
    match OpBackward::<K>(PhantomData)
        .prepare::<C>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((op, inner, saved), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// The autodiff node of a custom op; its state is (op, inputs, saved).
#[derive(Debug)]
struct OpBackward<K>(PhantomData<K>);

impl<X: Backend, K: CustomOp<N>, const N: usize> Backward<X, N> for OpBackward<K> {
    type State = (K, [X::FloatTensorPrimitive; N], K::Saved<X>);

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<X>(&ops.node);
        let (op, inputs, saved) = ops.state;
        let wanted = ops.parents.each_ref().map(Option::is_some);
        let input_grads = op.backward::<X>(&inputs, &saved, grad, wanted);
        for (parent, grad) in ops.parents.into_iter().zip(input_grads) {
            if let (Some(node), Some(grad)) = (parent, grad) {
                grads.register::<X>(node.id, grad);
            }
        }
    }
}
