//! LoRA (Hu et al. 2021) as PEFT implements it: a frozen linear layer `W` gets a trainable
//! low-rank update, `y = x·W + b + dropout(x)·A·B · scaling` with `A [in, r]` initialised like
//! PEFT's `lora_A` (Kaiming-uniform, bound `1/√in`), `B [r, out]` zero (so training starts from
//! the base model) and `scaling = alpha / r`. Burn stores both factors transposed relative to
//! PEFT's `lora_A.weight [r, in]` / `lora_B.weight [out, r]` (see `weights.rs`).
//!
//! Which layers get one is the model's business ([`crate::VisionLanguageModel::with_lora`]):
//! module names as HF spells them (`q_proj`, `gate_proj`, …) within the chosen parts.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::Rng;

use crate::precision;
use crate::vlm::ModelPart;

/// What to adapt and how.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    /// The rank `r` of the update.
    pub rank: usize,
    /// The update is scaled by `alpha / r`.
    pub alpha: f64,
    /// Dropout on the adapter's input while training.
    pub dropout: f64,
    /// Module names (as HF names the layers) that get an adapter.
    pub targets: Vec<String>,
    /// Parts whose layers of those names get one.
    pub parts: Vec<ModelPart>,
}

impl LoraSpec {
    /// `alpha / r`.
    pub fn scaling(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// Errors unless every target of `spec` names a layer of one of its parts, where `table` lists
/// a family's adaptable layers per part (by HF module name).
pub fn check_targets(
    spec: &LoraSpec,
    table: &[(ModelPart, &'static [&'static str])],
) -> crate::error::Result<()> {
    let valid: std::collections::BTreeSet<&str> = table
        .iter()
        .filter(|(part, _)| spec.parts.contains(part))
        .flat_map(|(_, names)| names.iter().copied())
        .collect();
    match spec.targets.iter().find(|t| !valid.contains(t.as_str())) {
        None => Ok(()),
        Some(target) => Err(crate::error::ModelError::LoraTarget {
            target: target.clone(),
            parts: join(spec.parts.iter().map(|p| p.name())),
            valid: join(valid.into_iter()),
        }),
    }
}

/// `a, b, c`.
pub(crate) fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// The low-rank update of one linear layer.
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    /// `[in, r]` (PEFT's `lora_A.weight`, transposed).
    pub lora_a: Param<Tensor<B, 2>>,
    /// `[r, out]` (PEFT's `lora_B.weight`, transposed).
    pub lora_b: Param<Tensor<B, 2>>,
    /// Dropout on the input (training only; its mask from [`crate::dropout`]).
    pub dropout: Dropout,
    scaling: f64,
}

impl<B: Backend> LoraAdapter<B> {
    /// A fresh adapter for a `[d_in, d_out]` layer: `A` Kaiming-uniform from `rng`, `B` zero.
    pub fn init(
        (d_in, d_out): (usize, usize),
        spec: &LoraSpec,
        rng: &mut StdRng,
        device: &B::Device,
    ) -> Self {
        let bound = 1.0 / (d_in as f64).sqrt();
        let a: Vec<f32> = (0..d_in * spec.rank)
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect();
        Self::from_values(
            TensorData::new(a, [d_in, spec.rank]),
            TensorData::new(vec![0.0f32; spec.rank * d_out], [spec.rank, d_out]),
            spec.scaling(),
            spec.dropout,
            device,
        )
    }

    /// An adapter with the given factors (Burn layout: `a [in, r]`, `b [r, out]`).
    pub fn from_values(
        a: TensorData,
        b: TensorData,
        scaling: f64,
        dropout: f64,
        device: &B::Device,
    ) -> Self {
        Self {
            lora_a: Param::from_data(a, device),
            lora_b: Param::from_data(b, device),
            dropout: DropoutConfig::new(dropout).init(),
            scaling,
        }
    }

    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.lora_a.lazy_shape()[1]
    }

    /// `dropout(x) · A · B · scaling`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let x = crate::dropout::dropout(x, self.dropout.prob);
        let h = precision::linear(x, self.lora_a.val(), None);
        precision::linear(h, self.lora_b.val(), None) * self.scaling
    }

    /// The update of the layer's weight, `A · B · scaling` `[in, out]`.
    pub fn delta(&self) -> Tensor<B, 2> {
        self.lora_a.val().matmul(self.lora_b.val()) * self.scaling
    }
}
