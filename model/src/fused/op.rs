//! How a fused kernel joins Burn: a [`Kernel`] computes its output (and whatever its backward
//! needs) from burn-flex tensors, and its gradients from the output's gradient; [`run`] finds
//! out whether the caller's backend is `Flex` or `Autodiff<Flex, _>`, and on the latter
//! registers the kernel's backward as one autodiff node over its inputs. A kernel checks its
//! operands before it touches them and returns a [`FusedError`] for any it cannot run on.

use std::any::{Any, TypeId};
use std::fmt::Debug;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorMetadata, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::Autodiff;
use burn_flex::{Flex, FlexTensor};

use super::error::FusedError;

/// A fused computation over `N` float inputs with one float output.
pub trait Kernel<const N: usize>: Clone + Send + Debug + 'static {
    /// What the backward keeps from the forward besides the inputs (e.g. softmax statistics).
    type Saved: Clone + Send + Debug + 'static;

    /// The output, and what the backward needs; an error, with nothing computed, for inputs
    /// whose shapes, strides or buffers the kernel cannot read.
    fn forward(&self, inputs: &[FlexTensor; N]) -> Result<(FlexTensor, Self::Saved), FusedError>;

    /// The gradients of the inputs marked in `wanted`, given the output's gradient; an error,
    /// with nothing computed, for operands the kernel cannot read.
    fn backward(
        &self,
        inputs: &[FlexTensor; N],
        saved: &Self::Saved,
        grad: FlexTensor,
        wanted: [bool; N],
    ) -> Result<[Option<FlexTensor>; N], FusedError>;
}

/// The float primitive of `t` (cheap: tensors share their buffers).
pub fn primitive<B: Backend, const D: usize>(t: &Tensor<B, D>) -> B::FloatTensorPrimitive {
    t.clone().into_primitive().tensor()
}

/// Runs `kernel` on `inputs` when `B` is burn-flex (with or without autodiff) and every input is
/// f32; `Ok(None)` otherwise, with nothing computed. The kernel's error when it refuses them.
pub fn run<B: Backend, K: Kernel<N>, const N: usize, const D: usize>(
    kernel: K,
    inputs: [B::FloatTensorPrimitive; N],
) -> Result<Option<Tensor<B, D>>, FusedError> {
    if !super::enabled() || inputs.iter().any(|t| t.dtype() != DType::F32) {
        return Ok(None);
    }
    let backend = TypeId::of::<B>();
    let output: Box<dyn Any> = if backend == TypeId::of::<Flex>() {
        let inputs = inputs.map(|t| cast::<_, FlexTensor>(t).expect("Flex's float primitive"));
        Box::new(kernel.forward(&inputs)?.0)
    } else if backend == TypeId::of::<Autodiff<Flex, NoCheckpointing>>() {
        Box::new(tracked::<K, NoCheckpointing, N>(
            kernel,
            inputs.map(ad_input::<B>),
        )?)
    } else if backend == TypeId::of::<Autodiff<Flex, BalancedCheckpointing>>() {
        Box::new(tracked::<K, BalancedCheckpointing, N>(
            kernel,
            inputs.map(ad_input::<B>),
        )?)
    } else {
        return Ok(None);
    };
    let Ok(output) = output.downcast::<B::FloatTensorPrimitive>() else {
        return Ok(None);
    };
    Ok(Some(Tensor::from_primitive(TensorPrimitive::Float(
        *output,
    ))))
}

/// The autodiff float primitive of `Autodiff<Flex, _>` (the same type whatever the strategy).
type AdPrimitive = <Autodiff<Flex> as burn::tensor::backend::BackendTypes>::FloatTensorPrimitive;

fn ad_input<B: Backend>(t: B::FloatTensorPrimitive) -> AdPrimitive {
    cast(t).expect("Autodiff<Flex>'s float primitive")
}

/// The inner burn-flex tensor of a float primitive of `Flex` or `Autodiff<Flex, _>` (for inputs
/// that take no gradient, e.g. an attention bias).
pub fn inner<T: 'static>(primitive: T) -> Option<FlexTensor> {
    let any: Box<dyn Any> = Box::new(primitive);
    match any.downcast::<FlexTensor>() {
        Ok(flex) => Some(*flex),
        Err(any) => any.downcast::<AdPrimitive>().ok().map(|ad| ad.primitive),
    }
}

/// `value` as a `U`, when it is one.
pub fn cast<T: 'static, U: 'static>(value: T) -> Option<U> {
    let boxed: Box<dyn Any> = Box::new(value);
    boxed.downcast::<U>().ok().map(|b| *b)
}

/// The forward on the inner tensors, with the backward registered when any input needs a
/// gradient (nothing is registered when the kernel refuses its inputs). The kernel is
/// compute-bound: checkpointing keeps its state instead of re-running it.
fn tracked<K: Kernel<N>, C: CheckpointStrategy, const N: usize>(
    kernel: K,
    inputs: [AdPrimitive; N],
) -> Result<AdPrimitive, FusedError> {
    let nodes = inputs.clone().map(|t| t.node);
    let inner = inputs.map(|t| t.primitive);
    let (output, saved) = kernel.forward(&inner)?;
    Ok(
        match FusedBackward::<K>(Default::default())
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((kernel, inner, saved), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        },
    )
}

/// The autodiff node of a fused kernel.
#[derive(Debug)]
struct FusedBackward<K>(std::marker::PhantomData<K>);

impl<K: Kernel<N>, const N: usize> Backward<Flex, N> for FusedBackward<K> {
    type State = (K, [FlexTensor; N], K::Saved);

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (kernel, inputs, saved) = ops.state;
        let wanted = ops.parents.each_ref().map(Option::is_some);
        // Burn's backward has no error path: an output gradient the kernel cannot read (not the
        // output's shape) stops here with the kernel's error, before anything reads it.
        let input_grads = kernel
            .backward(&inputs, &saved, grad, wanted)
            .unwrap_or_else(|err| panic!("{err}"));
        for (parent, grad) in ops.parents.into_iter().zip(input_grads) {
            if let (Some(node), Some(grad)) = (parent, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}
