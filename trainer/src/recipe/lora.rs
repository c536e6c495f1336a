//! `[lora]`: low-rank adapters instead of full fine-tuning (PEFT's `LoraConfig`): the base model
//! is frozen, adapters of rank `rank` go on the layers named `targets` (HF module names) in the
//! parts `parts`, and the parts in `train_parts` are trained in full next to them (PEFT's
//! `modules_to_save`). Checkpoints and the final model are PEFT adapter folders.

use safeaware_model::Family;
use safeaware_model::{LoraSpec, ModelPart};
use serde::{Deserialize, Serialize};

use super::ValidationError;

/// The `[lora]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraSection {
    /// Rank `r` of each update.
    pub rank: usize,
    /// Updates are scaled by `alpha / rank`.
    pub alpha: f64,
    /// Dropout on the adapters' inputs while training.
    pub dropout: f64,
    /// Layer names as HF spells them (`q_proj`, `v_proj`, `gate_proj`, `fc1`, `proj`, …).
    pub targets: Vec<String>,
    /// Parts whose layers of those names get adapters.
    pub parts: Vec<ModelPart>,
    /// Parts trained in full next to the adapters (`vision`, `connector`), saved whole in the
    /// adapter folder.
    pub train_parts: Vec<ModelPart>,
}

impl Default for LoraSection {
    fn default() -> Self {
        Self {
            rank: 16,
            alpha: 32.0,
            dropout: 0.05,
            targets: ["q_proj", "k_proj", "v_proj", "o_proj"]
                .map(String::from)
                .to_vec(),
            parts: vec![ModelPart::Text],
            train_parts: Vec::new(),
        }
    }
}

impl LoraSection {
    /// The model crate's description of the adapters.
    pub fn spec(&self) -> LoraSpec {
        LoraSpec {
            rank: self.rank,
            alpha: self.alpha,
            dropout: self.dropout,
            targets: self.targets.clone(),
            parts: self.parts.clone(),
        }
    }
}

impl LoraSection {
    /// Broken rules of the section (`freeze`: `train.freeze`, which `[lora]` replaces).
    pub fn validate(&self, freeze: &[ModelPart]) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        let mut fail = |key: &str, message: String| {
            errors.push(ValidationError {
                key: key.into(),
                message,
            })
        };
        if self.rank == 0 {
            fail("lora.rank", "must be > 0".into());
        }
        if self.alpha.is_nan() || self.alpha <= 0.0 {
            fail("lora.alpha", format!("{} must be > 0", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            fail("lora.dropout", format!("{} is not in [0, 1)", self.dropout));
        }
        if self.parts.is_empty() {
            fail("lora.parts", "name at least one part to adapt".into());
        }
        if self.targets.is_empty() {
            fail("lora.targets", "name at least one layer to adapt".into());
        } else if let Err(err) = Family::check_lora_targets_of_any(&self.spec()) {
            fail("lora.targets", err.to_string());
        }
        for part in &self.train_parts {
            if self.parts.contains(part) {
                fail(
                    "lora.train_parts",
                    format!(
                        "`{part}` is also in lora.parts: a part takes adapters or trains in full"
                    ),
                );
            } else if *part == ModelPart::Text {
                fail(
                    "lora.train_parts",
                    "`text` cannot train in full next to adapters; add it to lora.parts".into(),
                );
            }
        }
        if !freeze.is_empty() {
            fail(
                "train.freeze",
                "with [lora] the base is frozen except lora.train_parts; remove train.freeze"
                    .into(),
            );
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(l: &LoraSection, freeze: &[ModelPart]) -> Vec<String> {
        l.validate(freeze)
            .into_iter()
            .map(|e| e.key)
            .collect::<Vec<_>>()
    }

    #[test]
    fn defaults_are_valid_and_broken_values_are_named() {
        assert!(keys(&LoraSection::default(), &[]).is_empty());
        let bad = LoraSection {
            rank: 0,
            dropout: 1.0,
            train_parts: vec![ModelPart::Text],
            ..Default::default()
        };
        assert_eq!(
            keys(&bad, &[ModelPart::Vision]),
            [
                "lora.rank",
                "lora.dropout",
                "lora.train_parts",
                "train.freeze"
            ]
        );
    }

    #[test]
    fn unknown_targets_list_the_valid_names() {
        let l = LoraSection {
            targets: vec!["q_proj".into(), "query".into()],
            ..Default::default()
        };
        let errors = l.validate(&[]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key, "lora.targets");
        let message = &errors[0].message;
        assert!(message.contains("`query`"), "{message}");
        assert!(message.contains("gate_proj"), "{message}");
    }
}
