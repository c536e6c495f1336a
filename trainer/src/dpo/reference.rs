//! DPO's reference model: frozen, scored without gradient. By default it is the run's starting
//! weights (`model.path` or the preset, also on a resume, never the checkpoint's): a frozen copy
//! in full fine-tuning, and under `[lora]` the policy itself with its adapters switched off —
//! the base the adapters sit on, shared, so the reference costs no memory. `dpo.reference`
//! names a model folder to use instead.

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use safeaware_model::{TrainableModel, VisionLanguageModel, Vlm};

use crate::dpo::window::DpoWindow;
use crate::recipe::DpoSection;
use crate::setup::{check_param_dtypes, load_base, RunModel};
use crate::step::ForwardSettings;
use crate::train_data::Example;
use crate::training::TrainJob;

/// Where the reference's log-probabilities come from.
pub enum Reference<B: AutodiffBackend, M: TrainableModel<B>> {
    /// A frozen model of its own, without autodiff.
    Frozen(M::Inference),
    /// The policy with its adapters switched off.
    AdaptersOff,
}

impl<B: AutodiffBackend, M: TrainableModel<B>> Reference<B, M> {
    /// The DPO window of `window` for `policy` (the model about to be stepped).
    pub fn window(
        &self,
        dpo: &DpoSection,
        policy: &M,
        window: &[Vec<&Example>],
        forward: ForwardSettings,
        device: &B::Device,
    ) -> Result<DpoWindow> {
        match self {
            Reference::Frozen(model) => DpoWindow::new(dpo, model, window, forward, device),
            Reference::AdaptersOff => {
                let base = policy.valid().without_lora();
                DpoWindow::new(dpo, &base, window, forward, device)
            }
        }
    }
}

/// The reference of `job` (a DPO run) on `device`.
pub fn load_reference<B: AutodiffBackend>(
    job: &TrainJob,
    dpo: &DpoSection,
    device: &B::Device,
) -> Result<Reference<B, RunModel<B>>> {
    let recipe = &job.recipe;
    let model = match (&dpo.reference, &recipe.lora) {
        (None, Some(_)) => return Ok(Reference::AdaptersOff),
        (Some(folder), _) => {
            let model = Vlm::<B>::load(folder, device).with_context(|| {
                format!(
                    "loading the DPO reference (dpo.reference) from {}",
                    folder.display()
                )
            })?;
            let origin = format!("dpo.reference {}", folder.display());
            check_param_dtypes(&model, recipe.train.precision, &origin)?;
            model
        }
        (None, None) => load_base::<B>(job, None, device)?.0,
    };
    Ok(Reference::Frozen(model.valid()))
}
