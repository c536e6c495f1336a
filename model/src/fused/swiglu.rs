//! Fused SwiGLU, `silu(gate) · up` (Llama's gated MLP activation), element-wise in parallel
//! chunks; the backward recomputes the sigmoid from the inputs instead of keeping it.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;

use super::chunks::{contiguous, dims, pointwise, tensor, values};
use super::error::{ensure, fallback_or_error, FusedError};
use super::op::{self, Kernel};
use super::sigmoid::sigmoid;

/// `silu(gate) · up` for equally shaped `gate` and `up`; `Ok(None)` where the fused kernel does
/// not apply (see [`super`]: shapes that only broadcast), an error for shapes that do not.
pub fn swiglu<B: Backend, const D: usize>(
    gate: &Tensor<B, D>,
    up: &Tensor<B, D>,
) -> Result<Option<Tensor<B, D>>, FusedError> {
    if gate.dims() != up.dims() {
        return fallback_or_error(KERNEL, [("gate", &gate.dims()), ("up", &up.dims())]);
    }
    op::run(SwiGlu, [gate, up].map(op::primitive))
}

/// The kernel's name in errors.
const KERNEL: &str = "swiglu";

/// `tensors` contiguous, once checked to share one shape.
fn same_shape<const N: usize>(
    tensors: [(&FlexTensor, &'static str); N],
) -> Result<[FlexTensor; N], FusedError> {
    let mut out = Vec::with_capacity(N);
    for (tensor, name) in tensors {
        out.push(contiguous(tensor, [KERNEL, name])?);
    }
    ensure(out.iter().all(|t| dims(t) == dims(&out[0])), KERNEL, || {
        let shapes: Vec<_> = out.iter().map(dims).collect();
        format!("gate, up (and output gradient) shapes {shapes:?} differ")
    })?;
    Ok(out.try_into().unwrap_or_else(|_| unreachable!("N tensors")))
}

/// The SwiGLU kernel.
#[derive(Debug, Clone)]
struct SwiGlu;

impl Kernel<2> for SwiGlu {
    type Saved = ();

    fn forward(&self, [gate, up]: &[FlexTensor; 2]) -> Result<(FlexTensor, ()), FusedError> {
        let [gate, up] = same_shape([(gate, "gate"), (up, "up")])?;
        let [out] = pointwise([values(&gate), values(&up)], |[a, b]| [a * sigmoid(a) * b]);
        Ok((tensor(out, gate.layout().shape().clone()), ()))
    }

    /// With `s = sigmoid(gate)`: `d_gate = g·up·s·(1 + gate·(1 − s))`, `d_up = g·gate·s`.
    fn backward(
        &self,
        [gate, up]: &[FlexTensor; 2],
        _saved: &(),
        grad: FlexTensor,
        wanted: [bool; 2],
    ) -> Result<[Option<FlexTensor>; 2], FusedError> {
        let [gate, up, grad] =
            same_shape([(gate, "gate"), (up, "up"), (&grad, "output gradient")])?;
        let inputs = [values(&gate), values(&up), values(&grad)];
        let [d_gate, d_up] = pointwise(inputs, |[a, b, g]| {
            let s = sigmoid(a);
            [g * b * s * (1.0 + a * (1.0 - s)), g * a * s]
        });
        let shape = gate.layout().shape();
        Ok([(d_gate, wanted[0]), (d_up, wanted[1])]
            .map(|(values, wanted)| wanted.then(|| tensor(values, shape.clone()))))
    }
}
