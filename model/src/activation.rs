//! The element-wise activations HF configs name (`hidden_act`, `projector_hidden_act`), as one
//! enum: parsed from and written back to HF's names, and applied with the fused CPU kernel where
//! one exists (gelu-tanh) and Burn's ops otherwise. Idefics3's SigLIP tower uses gelu-tanh,
//! LLaVA's CLIP tower quick_gelu and its projector exact gelu.

use burn::tensor::activation::{gelu, relu, sigmoid, silu};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::fused;
use crate::vision_transformer::gelu_tanh;

/// An activation by its HF name (`transformers.activations.ACT2FN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// `gelu`: the exact, erf-based GELU.
    Gelu,
    /// `gelu_pytorch_tanh`: GELU's tanh approximation.
    #[default]
    GeluTanh,
    /// `quick_gelu`: `x · sigmoid(1.702 x)` (CLIP).
    QuickGelu,
    /// `silu`: `x · sigmoid(x)`.
    Silu,
    /// `relu`.
    Relu,
}

impl Activation {
    /// Every supported activation.
    pub const ALL: [Activation; 5] = [
        Self::Gelu,
        Self::GeluTanh,
        Self::QuickGelu,
        Self::Silu,
        Self::Relu,
    ];

    /// HF's name for it.
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::Gelu => "gelu",
            Self::GeluTanh => "gelu_pytorch_tanh",
            Self::QuickGelu => "quick_gelu",
            Self::Silu => "silu",
            Self::Relu => "relu",
        }
    }

    /// The activation HF calls `name`, if supported.
    pub fn from_hf_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.hf_name() == name)
    }

    /// The supported names, comma-separated (for error messages).
    pub fn supported_names() -> String {
        Self::ALL.map(Self::hf_name).join(", ")
    }

    /// Applies the activation element-wise.
    pub fn forward<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::Gelu => gelu(x),
            Self::GeluTanh => fused::applied(fused::gelu_tanh(&x)).unwrap_or_else(|| gelu_tanh(x)),
            Self::QuickGelu => x.clone() * sigmoid(x * 1.702),
            Self::Silu => silu(x),
            Self::Relu => relu(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    #[test]
    fn names_round_trip_and_values_match_the_formulas() {
        for act in Activation::ALL {
            assert_eq!(Activation::from_hf_name(act.hf_name()), Some(act));
        }
        assert_eq!(Activation::from_hf_name("gelu_new"), None);
        let x = Tensor::<NdArray, 1>::from_data(
            TensorData::from([-2.0f32, 0.5, 3.0]),
            &Default::default(),
        );
        let values = |a: Activation| a.forward(x.clone()).into_data().to_vec::<f32>().unwrap();
        let quick: Vec<f32> = [-2.0f32, 0.5, 3.0]
            .iter()
            .map(|v| v / (1.0 + (-1.702 * v).exp()))
            .collect();
        for (a, b) in values(Activation::QuickGelu).iter().zip(&quick) {
            assert!((a - b).abs() < 1e-6);
        }
        // Exact gelu(0.5) = 0.5 · Φ(0.5) = 0.345731...
        assert!((values(Activation::Gelu)[1] - 0.345_731_3).abs() < 1e-5);
        assert_eq!(values(Activation::Relu), vec![0.0, 0.5, 3.0]);
    }
}
