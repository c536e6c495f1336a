//! Mixed precision inside the forward pass, as torch's `autocast`: within [`autocast`], matrix
//! products (linear layers, the patch projection, the tied LM head, attention's two products)
//! run in a lower float type while their inputs, outputs and everything else (norms, softmax,
//! residual sums, the loss) keep the parameters' type. Burn's `cast` is differentiable, so the
//! gradients flow back to the full-precision parameters (the master weights).
//!
//! Pure low precision needs none of this: the backend then creates every float tensor in that
//! type (`set_default_float_dtype`), and only the loss is computed in f32 ([`cast`]).
//!
//! A parameter may be held in a narrower type than the activations it meets: under bf16-mixed
//! the trainer keeps frozen parts in bf16 (no f32 copy). Such a parameter is cast where it is
//! used ([`at_use`], [`linear`], [`embed`], [`params_in`] for a whole norm): a linear weight is
//! cast to the autocast type anyway (so holding it in bf16 changes no number), a norm's scale,
//! an embedding row or a position embedding is widened to the activations' type.
//!
//! What a linear layer keeps for the backward under bf16-mixed is already what torch's autocast
//! keeps: the bf16 copy of its input, never the f32 one besides it (issue 27, item 3; read in
//! burn-autodiff 0.21). [`linear`] is `cast(x) → linear → cast`; autodiff's `float_cast` node
//! keeps only the source dtype (its backward casts the gradient back), and its `linear` node
//! checkpoints its operands as the gradients need them: the (bf16) input only when the weight
//! trains, the (bf16) weight only when the input needs a gradient. So a frozen linear (LoRA's
//! base, a frozen part) keeps no input at all, and the f32 input stays alive only where
//! another node keeps it for its own backward (a norm, an activation function, a residual
//! chain): those f32 tensors are the "f32 activations" of `plan`'s bf16-mixed factor, not
//! copies made for the products. (The memory-efficient attention op keeps its q/k/v inputs in
//! f32, where torch's SDPA under autocast would keep bf16 ones.)

use std::cell::Cell;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::Embedding;
use burn::tensor::backend::Backend;
use burn::tensor::{get_device_settings, DType, FloatDType, Int, Tensor};

thread_local! {
    /// The float type of matrix products on this thread; `None` = the operands' own type.
    static MATMUL_DTYPE: Cell<Option<FloatDType>> = const { Cell::new(None) };
}

/// Restores the previous autocast setting when dropped (also when `f` panics).
struct Restore(Option<FloatDType>);

impl Drop for Restore {
    fn drop(&mut self) {
        MATMUL_DTYPE.with(|cell| cell.set(self.0));
    }
}

/// Runs `f` with matrix products computed in `dtype` (`None`: in the operands' type). The
/// backward pass needs no scope: the casts are recorded in the graph.
pub fn autocast<R>(dtype: Option<FloatDType>, f: impl FnOnce() -> R) -> R {
    let _restore = Restore(MATMUL_DTYPE.with(|cell| cell.replace(dtype)));
    f()
}

/// The float type matrix products use here, when [`autocast`] set one.
pub fn matmul_dtype() -> Option<FloatDType> {
    MATMUL_DTYPE.with(Cell::get)
}

/// `x` in `dtype`; `x` itself (no cast recorded) when it already is.
pub fn cast<B: Backend, const D: usize>(x: Tensor<B, D>, dtype: FloatDType) -> Tensor<B, D> {
    if x.dtype() == DType::from(dtype) {
        x
    } else {
        x.cast(dtype)
    }
}

/// `x · weight + bias` (`weight [in, out]`), in the autocast type when one is set, else in
/// `x`'s (a weight held in another type is cast to it); the result has `x`'s type.
pub fn linear<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    let out = float_dtype(&x);
    let Some(dtype) = matmul_dtype() else {
        let bias = bias.map(|b| cast(b, out));
        return burn::tensor::module::linear(x, cast(weight, out), bias);
    };
    let y = burn::tensor::module::linear(
        cast(x, dtype),
        cast(weight, dtype),
        bias.map(|b| cast(b, dtype)),
    );
    cast(y, out)
}

/// `param` in the float type of the activations `like` it is combined with (itself when it
/// already is): a parameter held in bf16 next to f32 activations is widened where it is used.
pub fn at_use<B: Backend, const D: usize, const E: usize>(
    param: Tensor<B, D>,
    like: &Tensor<B, E>,
) -> Tensor<B, D> {
    cast(param, float_dtype(like))
}

/// The rows of `embedding` for `ids [B, T]`, in the device's float type (the activations'),
/// whatever type the table is held in.
pub fn embed<B: Backend>(embedding: &Embedding<B>, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
    let dtype = get_device_settings::<B>(&ids.device()).float_dtype;
    cast(embedding.forward(ids), dtype)
}

/// `module` with every float parameter in `dtype`, ids kept (a frozen module widened to the
/// type of the activations it meets).
pub fn params_in<B: Backend, M: Module<B>>(module: M, dtype: FloatDType) -> M {
    module.map(&mut CastParams(dtype))
}

struct CastParams(FloatDType);

impl<B: Backend> ModuleMapper<B> for CastParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let dtype = self.0;
        param.map(|value| cast(value, dtype))
    }
}

/// The float type of a float tensor.
pub fn float_dtype<B: Backend, const D: usize>(x: &Tensor<B, D>) -> FloatDType {
    match x.dtype() {
        DType::F64 => FloatDType::F64,
        DType::F16 => FloatDType::F16,
        DType::BF16 => FloatDType::BF16,
        _ => FloatDType::F32,
    }
}

/// The first float parameter of `module` (by module path) whose type is not `expected`, with
/// its type: `None` when all are.
pub fn first_param_not_in<B: Backend, M: Module<B>>(
    module: &M,
    expected: FloatDType,
) -> Option<(String, DType)> {
    let mut visitor = DtypeCheck {
        path: Vec::new(),
        expected: DType::from(expected),
        found: None,
    };
    module.visit(&mut visitor);
    visitor.found
}

struct DtypeCheck {
    path: Vec<String>,
    expected: DType,
    found: Option<(String, DType)>,
}

impl<B: Backend> ModuleVisitor<B> for DtypeCheck {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_owned());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let dtype = param.val().dtype();
        if self.found.is_none() && dtype != self.expected {
            self.found = Some((self.path.join("."), dtype));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{Distribution, Tolerance};

    type Ad = Autodiff<Flex>;

    /// Under autocast a linear layer computes in bf16 and hands back f32, and its weight's
    /// gradient (through the casts) is f32 and close to the full-precision one.
    #[test]
    fn autocast_linear_is_bf16_inside_and_f32_outside() {
        let device = Default::default();
        let x = Tensor::<Ad, 2>::random([4, 8], Distribution::Normal(0.0, 1.0), &device);
        let w =
            Tensor::<Ad, 2>::random([8, 3], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let full = linear(x.clone(), w.clone(), None);
        let mixed = autocast(Some(FloatDType::BF16), || {
            linear(x.clone(), w.clone(), None)
        });
        assert_eq!(matmul_dtype(), None, "the scope ends with the closure");
        assert_eq!(mixed.dtype(), DType::F32);
        assert_ne!(mixed.to_data(), full.to_data(), "bf16 rounding shows");
        mixed
            .to_data()
            .assert_approx_eq::<f32>(&full.to_data(), Tolerance::absolute(0.1));
        let grad_full = full.sum().backward();
        let grad_mixed = mixed.sum().backward();
        let (gf, gm) = (w.grad(&grad_full).unwrap(), w.grad(&grad_mixed).unwrap());
        assert_eq!(gm.dtype(), DType::F32);
        gm.to_data()
            .assert_approx_eq::<f32>(&gf.to_data(), Tolerance::absolute(0.05));
    }

    #[test]
    fn cast_to_the_same_type_records_nothing() {
        let device = Default::default();
        let x = Tensor::<Flex, 1>::ones([3], &device);
        assert_eq!(cast(x.clone(), FloatDType::F32).to_data(), x.to_data());
        assert_eq!(cast(x, FloatDType::BF16).dtype(), DType::BF16);
    }
}
