//! `train.objective` and `[dpo]`: what a run minimises. `"sft"` (the default) is the
//! assistant-only cross-entropy on traces; `"dpo"` is Direct Preference Optimization on
//! preference pairs (TRL's `DPOTrainer`): the policy's log-probability margin between the chosen
//! and the rejected answer, against a frozen reference's. `[dpo]` holds its settings and is
//! refused in an SFT run, so a recipe never carries settings it does not use.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ValidationError;

/// `train.objective`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Supervised fine-tuning on traces.
    #[default]
    Sft,
    /// Direct Preference Optimization on preference pairs.
    Dpo,
}

impl Objective {
    /// Whether this is the default (SFT), which resolved recipes leave out so that existing
    /// recipes keep their fingerprint.
    pub fn is_sft(&self) -> bool {
        *self == Objective::Sft
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Objective::Sft => "sft",
            Objective::Dpo => "dpo",
        })
    }
}

/// `dpo.loss`: how the reward margin becomes a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpoLoss {
    /// The DPO paper's `-log σ(β·margin)` over summed log-probabilities.
    #[default]
    Sigmoid,
    /// IPO's `(margin − 1/(2β))²` over log-probabilities averaged per answer token.
    Ipo,
}

/// The `[dpo]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpoSection {
    /// β: how far the policy may move from the reference (TRL's `beta`).
    pub beta: f64,
    /// The loss of the margin.
    pub loss: DpoLoss,
    /// Weight of an NLL term on the chosen answer (mean over its assistant tokens), added to
    /// the loss as TRL's `rpo_alpha` adds it; 0 = none.
    pub sft_weight: f64,
    /// The reference model folder; unset: the run's starting weights, frozen (with `[lora]`,
    /// the base with the adapters switched off, which costs no memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<PathBuf>,
}

impl Default for DpoSection {
    fn default() -> Self {
        DpoSection {
            beta: 0.1,
            loss: DpoLoss::Sigmoid,
            sft_weight: 0.0,
            reference: None,
        }
    }
}

impl DpoSection {
    /// Broken rules of the section.
    pub fn validate(&self) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        let mut fail = |key: &str, message: String| {
            errors.push(ValidationError {
                key: key.into(),
                message,
            })
        };
        if !(self.beta.is_finite() && self.beta > 0.0) {
            fail("dpo.beta", format!("{} must be finite and > 0", self.beta));
        }
        if !(self.sft_weight.is_finite() && self.sft_weight >= 0.0) {
            fail(
                "dpo.sft_weight",
                format!(
                    "{} must be finite and >= 0 (0: no NLL term)",
                    self.sft_weight
                ),
            );
        }
        if matches!(&self.reference, Some(p) if p.as_os_str().is_empty()) {
            fail(
                "dpo.reference",
                "must not be empty (remove it to use the starting weights)".into(),
            );
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(DpoSection::default().validate().is_empty());
        let bad = DpoSection {
            beta: 0.0,
            sft_weight: -1.0,
            reference: Some(PathBuf::new()),
            ..Default::default()
        };
        let keys: Vec<String> = bad.validate().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["dpo.beta", "dpo.sft_weight", "dpo.reference"]);
    }
}
