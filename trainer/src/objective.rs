//! What a step minimises (`train.objective`): SFT's cross-entropy per target token, or DPO's
//! mean loss over preference pairs. The step holds an [`Objective`]; for each global batch it
//! makes a [`WindowLoss`] — what the batch's loss is normalised by (and, for DPO, the
//! reference's log-probabilities) — that every micro-batch and worker shares, so gradient
//! accumulation and data parallelism give the gradients of one big batch for either objective.

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use safeaware_model::TrainableModel;

use crate::dpo::dump::dump_if_asked;
use crate::dpo::reference::{load_reference, Reference};
use crate::dpo::window::DpoWindow;
use crate::recipe::DpoSection;
use crate::setup::RunModel;
use crate::step::ForwardSettings;
use crate::train_data::Example;
use crate::training::TrainJob;

/// The objective of a run.
pub enum Objective<B: AutodiffBackend, M: TrainableModel<B>> {
    /// Supervised fine-tuning.
    Sft,
    /// DPO against `reference`.
    Dpo {
        dpo: DpoSection,
        reference: Reference<B, M>,
    },
}

/// How one global batch's loss is made.
#[derive(Debug, Clone)]
pub enum WindowLoss {
    /// Summed cross-entropy divided by the global batch's target tokens.
    Sft { targets: usize },
    /// DPO (see `dpo::window`).
    Dpo(DpoWindow),
}

impl WindowLoss {
    /// The target tokens the global batch trains on (the chosen answers' for DPO).
    pub fn targets(&self) -> usize {
        match self {
            WindowLoss::Sft { targets } => *targets,
            WindowLoss::Dpo(w) => w.chosen_targets,
        }
    }
}

impl<B: AutodiffBackend, M: TrainableModel<B>> Objective<B, M> {
    /// The loss of `window` for `model` as it is before the step.
    pub fn window_loss(
        &self,
        model: &M,
        window: &[Vec<&Example>],
        forward: ForwardSettings,
        device: &B::Device,
    ) -> Result<WindowLoss> {
        Ok(match self {
            Objective::Sft => WindowLoss::Sft {
                targets: window.iter().flatten().map(|e| e.target_tokens()).sum(),
            },
            Objective::Dpo { dpo, reference } => {
                dump_if_asked(window)?;
                WindowLoss::Dpo(reference.window(dpo, model, window, forward, device)?)
            }
        })
    }
}

/// The objective `job`'s recipe names, its DPO reference loaded onto `device`.
pub fn run_objective<B: AutodiffBackend>(
    job: &TrainJob,
    device: &B::Device,
) -> Result<Objective<B, RunModel<B>>> {
    Ok(match job.recipe.dpo_settings() {
        None => Objective::Sft,
        Some(dpo) => Objective::Dpo {
            reference: load_reference::<B>(job, &dpo, device)?,
            dpo,
        },
    })
}
