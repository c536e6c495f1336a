//! `train.precision` and `train.save_dtype`: the float types a run computes, keeps its state
//! and writes its model in (torchtune's `dtype`, Lightning's `precision = "bf16-mixed"`).

use burn::tensor::FloatDType;
use safeaware_model::FloatDtype;
use serde::{Deserialize, Serialize};

/// How a run computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Precision {
    /// Everything in f32.
    #[default]
    #[serde(rename = "f32")]
    F32,
    /// f32 master weights and AdamW state for what trains, frozen parameters held in bf16
    /// (no f32 copy of a frozen base); linear layers and attention's products in bf16 (cast
    /// inside the forward); norms, softmax and the loss in f32.
    #[serde(rename = "bf16-mixed")]
    Bf16Mixed,
    /// Pure bf16: weights, activations and optimiser state (the loss still in f32).
    #[serde(rename = "bf16")]
    Bf16,
}

impl Precision {
    /// The type matrix products are cast to inside the forward (`None`: no autocast).
    pub fn autocast(self) -> Option<FloatDType> {
        (self == Precision::Bf16Mixed).then_some(FloatDType::BF16)
    }

    /// The type of the weights and optimiser state.
    pub fn param_dtype(self) -> FloatDType {
        match self {
            Precision::F32 | Precision::Bf16Mixed => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
        }
    }

    /// The type frozen parameters are held in: bf16 under bf16-mixed (the forward casts a
    /// linear weight to bf16 anyway, and widens a norm or embedding where it is used), else the
    /// weights' own.
    pub fn frozen_dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::Bf16Mixed | Precision::Bf16 => FloatDType::BF16,
        }
    }

    /// The recipe string.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16Mixed => "bf16-mixed",
            Precision::Bf16 => "bf16",
        }
    }
}

/// `train.save_dtype`: the on-disk type of the final model (or adapter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaveDtype {
    #[serde(rename = "f32")]
    F32,
    #[serde(rename = "bf16")]
    Bf16,
    #[serde(rename = "f16")]
    F16,
}

impl From<SaveDtype> for FloatDtype {
    fn from(d: SaveDtype) -> Self {
        match d {
            SaveDtype::F32 => FloatDtype::F32,
            SaveDtype::Bf16 => FloatDtype::BF16,
            SaveDtype::F16 => FloatDtype::F16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_names_parse_and_map_to_types() {
        #[derive(Deserialize)]
        struct T {
            p: Precision,
        }
        for p in [Precision::F32, Precision::Bf16Mixed, Precision::Bf16] {
            let t: T = toml::from_str(&format!("p = \"{}\"", p.name())).unwrap();
            assert_eq!(t.p, p);
        }
        assert!(toml::from_str::<T>("p = \"fp16\"").is_err());
        assert_eq!(Precision::Bf16Mixed.autocast(), Some(FloatDType::BF16));
        assert_eq!(Precision::Bf16Mixed.param_dtype(), FloatDType::F32);
        assert_eq!(Precision::Bf16Mixed.frozen_dtype(), FloatDType::BF16);
        assert_eq!(Precision::F32.frozen_dtype(), FloatDType::F32);
        assert_eq!(Precision::Bf16.autocast(), None);
    }
}
