//! Fused SwiGLU, `silu(gate) · up` (Llama's gated MLP activation), element-wise in parallel
//! chunks; the backward recomputes the sigmoid from the inputs instead of keeping it.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;

use super::chunks::{contiguous, pointwise, tensor, values};
use super::op::{self, Kernel};
use super::sigmoid::sigmoid;

/// `silu(gate) · up` for equally shaped `gate` and `up`; `None` where the fused kernel does not
/// apply (see [`super`]).
pub fn swiglu<B: Backend, const D: usize>(
    gate: &Tensor<B, D>,
    up: &Tensor<B, D>,
) -> Option<Tensor<B, D>> {
    if gate.dims() != up.dims() {
        return None;
    }
    op::run(SwiGlu, [gate, up].map(op::primitive))
}

/// The SwiGLU kernel.
#[derive(Debug, Clone)]
struct SwiGlu;

impl Kernel<2> for SwiGlu {
    type Saved = ();

    fn forward(&self, [gate, up]: &[FlexTensor; 2]) -> (FlexTensor, ()) {
        let (gate, up) = (contiguous(gate), contiguous(up));
        let [out] = pointwise([values(&gate), values(&up)], |[a, b]| [a * sigmoid(a) * b]);
        (tensor(out, gate.layout().shape().clone()), ())
    }

    /// With `s = sigmoid(gate)`: `d_gate = g·up·s·(1 + gate·(1 − s))`, `d_up = g·gate·s`.
    fn backward(
        &self,
        [gate, up]: &[FlexTensor; 2],
        _saved: &(),
        grad: FlexTensor,
        wanted: [bool; 2],
    ) -> [Option<FlexTensor>; 2] {
        let (gate, up, grad) = (contiguous(gate), contiguous(up), contiguous(&grad));
        let inputs = [values(&gate), values(&up), values(&grad)];
        let [d_gate, d_up] = pointwise(inputs, |[a, b, g]| {
            let s = sigmoid(a);
            [g * b * s * (1.0 + a * (1.0 - s)), g * a * s]
        });
        let shape = gate.layout().shape();
        [(d_gate, wanted[0]), (d_up, wanted[1])]
            .map(|(values, wanted)| wanted.then(|| tensor(values, shape.clone())))
    }
}
