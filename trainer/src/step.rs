//! One training step: a global batch (the micro-batches of one accumulation window) in, one
//! update of the model out. The run loop (`training.rs`) only calls [`TrainStep`], so a
//! data-parallel step or an adapter-only step replaces [`AccumulationStep`] without touching it.
//!
//! [`AccumulationStep`] is the single-device step: forward and backward per micro-batch with
//! the loss normalised by the target tokens of the whole window (so accumulation equals one big
//! batch), gradients accumulated, clipped to a global norm, then one AdamW step per trained
//! model part at that part's learning rate.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ElementConversion;
use safeaware_model::{ModelPart, TrainableModel};

use crate::batching::collate;
use crate::grad_clip::{clip_grad_norm, global_grad_norm};
use crate::param_groups::{record_from_portable, record_to_portable, split_grads_by_part};
use crate::recipe::OptimSection;
use crate::train_data::Example;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Loss per target token over the whole global batch.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Target tokens of the global batch.
    pub targets: usize,
    /// Tokens processed (padding excluded).
    pub tokens: usize,
    /// Images processed.
    pub images: usize,
}

/// Turns one global batch into one update of the model.
pub trait TrainStep<B: AutodiffBackend, M: TrainableModel<B>> {
    /// Updates `model` from the micro-batches `window` with every learning rate multiplied by
    /// `lr_factor` (the schedule's). A non-finite loss or gradient norm is an error.
    fn step(
        &mut self,
        model: M,
        window: &[Vec<&Example>],
        lr_factor: f64,
    ) -> Result<(M, StepOutcome)>;

    /// Writes the step's own state (the optimiser's) to `path`.
    fn save_state(&self, model: &M, path: &Path) -> Result<()>;

    /// Restores the state [`TrainStep::save_state`] wrote, for `model` as loaded.
    fn load_state(&mut self, model: &M, path: &Path) -> Result<()>;
}

/// Gradient accumulation on one device with AdamW, per-part learning rates and clipping.
pub struct AccumulationStep<B: AutodiffBackend, M: TrainableModel<B>> {
    optim: OptimizerAdaptor<AdamW, M, B>,
    /// Base learning rate of each trained part (frozen parts are absent).
    lrs: BTreeMap<ModelPart, f64>,
    grad_clip: f64,
    pad_id: u32,
    device: B::Device,
}

impl<B: AutodiffBackend, M: TrainableModel<B>> AccumulationStep<B, M> {
    /// AdamW with the recipe's settings, training the parts `trains` accepts.
    pub fn new(
        o: &OptimSection,
        trains: impl Fn(ModelPart) -> bool,
        pad_id: u32,
        device: &B::Device,
    ) -> Self {
        let optim = AdamWConfig::new()
            .with_beta_1(o.betas[0] as f32)
            .with_beta_2(o.betas[1] as f32)
            .with_epsilon(o.eps as f32)
            .with_weight_decay(o.weight_decay as f32)
            .init::<B, M>();
        let lrs = ModelPart::ALL
            .into_iter()
            .filter(|&part| trains(part))
            .map(|part| (part, o.lr(part)))
            .collect();
        AccumulationStep {
            optim,
            lrs,
            grad_clip: o.grad_clip,
            pad_id,
            device: device.clone(),
        }
    }
}

impl<B: AutodiffBackend, M: TrainableModel<B>> TrainStep<B, M> for AccumulationStep<B, M> {
    fn step(
        &mut self,
        mut model: M,
        window: &[Vec<&Example>],
        lr_factor: f64,
    ) -> Result<(M, StepOutcome)> {
        let targets: usize = window.iter().flatten().map(|e| e.target_tokens()).sum();
        let mut outcome = StepOutcome {
            loss: 0.0,
            grad_norm: 0.0,
            targets,
            tokens: 0,
            images: 0,
        };
        let mut accumulator = GradientsAccumulator::<M>::new();
        for batch in window {
            let batch = collate::<B>(batch, self.pad_id, &self.device);
            let loss = model
                .forward_loss(&batch.input, &batch.labels)
                .context("forward")?;
            let scaled = loss.sum / targets.max(1) as f64;
            let value: f64 = scaled.clone().into_scalar().elem();
            if !value.is_finite() {
                bail!("the loss is {value}");
            }
            outcome.loss += value;
            let grads = GradientsParams::from_grads(scaled.backward(), &model);
            accumulator.accumulate(&model, grads);
            outcome.tokens += batch.tokens;
            outcome.images += batch.images;
        }
        let mut grads = accumulator.grads();
        outcome.grad_norm = if self.grad_clip > 0.0 {
            clip_grad_norm(&model, &mut grads, self.grad_clip)?.total_norm
        } else {
            global_grad_norm(&model, &grads)?
        };
        if !outcome.grad_norm.is_finite() {
            bail!("the gradient norm is {}", outcome.grad_norm);
        }
        let parts = model.param_parts();
        for (part, part_grads) in split_grads_by_part(&model, grads, &parts) {
            if let Some(lr) = self.lrs.get(&part) {
                model = self.optim.step(lr * lr_factor, model, part_grads);
            }
        }
        Ok((model, outcome))
    }

    fn save_state(&self, model: &M, path: &Path) -> Result<()> {
        let record = record_to_portable(self.optim.to_record(), model);
        Recorder::<B>::record(&recorder(), record, path.to_path_buf())
            .context("writing the optimiser state")
    }

    fn load_state(&mut self, model: &M, path: &Path) -> Result<()> {
        let record = Recorder::<B>::load(&recorder(), path.to_path_buf(), &self.device)
            .with_context(|| format!("loading the optimiser state {}", path.display()))?;
        let optim = std::mem::replace(&mut self.optim, AdamWConfig::new().init::<B, M>());
        self.optim = optim.load_record(record_from_portable(record, model));
        Ok(())
    }
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}
