//! The model's linear layer: `x · W + b` with Burn's `[in, out]` weight layout (as
//! `burn::nn::Linear`, whose HF name mapping it shares: `weights.rs` keys on the struct name),
//! computed in the [`autocast`](crate::precision::autocast) type when one is set, plus an
//! optional LoRA adapter ([`LoraAdapter`]) whose product is added to the output.

use burn::module::{Initializer, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::lora::LoraAdapter;
use crate::precision;

/// A dense layer with an optional low-rank adapter.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[in, out]` (HF stores the transpose).
    pub weight: Param<Tensor<B, 2>>,
    /// `[out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// The LoRA adapter, when one is attached.
    pub lora: Option<LoraAdapter<B>>,
}

impl<B: Backend> Linear<B> {
    /// A layer of zeros (allocated lazily): loading or initialisation fills it.
    pub fn new(d_in: usize, d_out: usize, bias: bool, device: &B::Device) -> Self {
        Self {
            weight: Initializer::Zeros.init([d_in, d_out], device),
            bias: bias.then(|| Initializer::Zeros.init([d_out], device)),
            lora: None,
        }
    }

    /// `(in, out)`.
    pub fn dims(&self) -> (usize, usize) {
        let shape = self.weight.lazy_shape();
        (shape[0], shape[1])
    }

    /// `x [..., in]` → `[..., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let bias = self.bias.as_ref().map(|b| b.val());
        match &self.lora {
            None => precision::linear(x, self.weight.val(), bias),
            Some(adapter) => {
                precision::linear(x.clone(), self.weight.val(), bias) + adapter.forward(x)
            }
        }
    }
}
