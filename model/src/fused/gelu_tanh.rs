//! Fused `gelu_pytorch_tanh`, `x · sigmoid(2√(2/π)(x + 0.044715x³))` (the vision tower's MLP
//! activation, as [`crate::vision_transformer::gelu_tanh`] computes it unfused), element-wise in
//! parallel chunks with an analytic backward.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;

use super::chunks::{contiguous, dims, pointwise, tensor, values};
use super::error::{ensure, FusedError};
use super::op::{self, Kernel};
use super::sigmoid::sigmoid;

/// `2√(2/π)`: the tanh form's `√(2/π)` doubled by rewriting `(1 + tanh(z))/2` as `sigmoid(2z)`.
pub const TWO_SQRT_2_OVER_PI: f64 = 2.0 * 0.797_884_560_802_865_4;

/// The cubic coefficient.
pub const CUBIC: f64 = 0.044715;

/// `gelu_pytorch_tanh(x)`; `Ok(None)` where the fused kernel does not apply (see [`super`]).
pub fn gelu_tanh<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
) -> Result<Option<Tensor<B, D>>, FusedError> {
    op::run(GeluTanh, [op::primitive(x)])
}

/// The kernel's name in errors.
const KERNEL: &str = "gelu_tanh";

/// The gelu-tanh kernel.
#[derive(Debug, Clone)]
struct GeluTanh;

impl Kernel<1> for GeluTanh {
    type Saved = ();

    fn forward(&self, [x]: &[FlexTensor; 1]) -> Result<(FlexTensor, ()), FusedError> {
        let x = contiguous(x, [KERNEL, "x"])?;
        let [out] = pointwise([values(&x)], |[x]| [x * sigmoid(inner(x))]);
        Ok((tensor(out, x.layout().shape().clone()), ()))
    }

    /// With `s = sigmoid(u)`, `u = k(x + c·x³)`: `dx = g·(s + x·s·(1 − s)·k(1 + 3c·x²))`.
    fn backward(
        &self,
        [x]: &[FlexTensor; 1],
        _saved: &(),
        grad: FlexTensor,
        _wanted: [bool; 1],
    ) -> Result<[Option<FlexTensor>; 1], FusedError> {
        let x = contiguous(x, [KERNEL, "x"])?;
        let grad = contiguous(&grad, [KERNEL, "output gradient"])?;
        ensure(dims(&grad) == dims(&x), KERNEL, || {
            format!("output gradient {:?} for x {:?}", dims(&grad), dims(&x))
        })?;
        let [dx] = pointwise([values(&x), values(&grad)], |[x, g]| {
            let s = sigmoid(inner(x));
            let du = TWO_SQRT_2_OVER_PI as f32 * (1.0 + 3.0 * CUBIC as f32 * x * x);
            [g * (s + x * s * (1.0 - s) * du)]
        });
        Ok([Some(tensor(dx, x.layout().shape().clone()))])
    }
}

/// `k(x + c·x³)`, as the unfused form groups it: `(c·x² + 1)·x·k`.
fn inner(x: f32) -> f32 {
    (x * x * CUBIC as f32 + 1.0) * x * TWO_SQRT_2_OVER_PI as f32
}
