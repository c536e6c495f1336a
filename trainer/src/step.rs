//! One training step: a global batch (the micro-batches of one accumulation window) in, one
//! update of the model out. The run loop (`training.rs`) only calls [`TrainStep`], so a
//! data-parallel step or an adapter-only step replaces [`AccumulationStep`] without touching it.
//!
//! [`AccumulationStep`] is the single-device step: forward and backward per micro-batch with
//! the loss normalised over the whole window (by its target tokens, or for DPO its pairs; see
//! `objective.rs`), so accumulation equals one big batch, gradients accumulated, clipped to a global norm, then one AdamW step per trained
//! model part at that part's learning rate.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, FloatDType, Tensor};
use safeaware_model::precision::autocast;
use safeaware_model::{ModelPart, TrainableModel};

use crate::batching::collate;
use crate::dpo::loss::PreferenceSums;
use crate::dpo::window;
use crate::fsutil::atomic_write;
use crate::grad_clip::{clip_grad_norm, global_grad_norm};
use crate::grad_coverage::trained_params_zero;
use crate::objective::{Objective, WindowLoss};
use crate::param_groups::{record_from_portable, record_to_portable, split_grads_by_part};
use crate::recipe::OptimSection;
use crate::train_data::Example;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Loss per target token over the whole global batch (DPO: per pair).
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Target tokens of the global batch.
    pub targets: usize,
    /// Tokens processed (padding excluded).
    pub tokens: usize,
    /// Images processed.
    pub images: usize,
    /// DPO's rewards and log-probabilities, summed over the global batch's pairs.
    pub preference: Option<PreferenceSums>,
}

impl StepOutcome {
    /// What the loss is a mean over: pairs (DPO) or target tokens (SFT).
    pub fn loss_weight(&self) -> usize {
        self.preference.map_or(self.targets, |p| p.pairs)
    }
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

/// The optimiser side of a step: global-norm clipping, then one AdamW step per trained part at
/// that part's learning rate. Every step implementation updates through it.
pub struct Update<B: AutodiffBackend, M: TrainableModel<B>> {
    optim: OptimizerAdaptor<AdamW, M, B>,
    /// Base learning rate of each trained part (frozen parts are absent).
    lrs: BTreeMap<ModelPart, f64>,
    grad_clip: f64,
    device: B::Device,
}

impl<B: AutodiffBackend, M: TrainableModel<B>> Update<B, M> {
    /// AdamW with the recipe's settings, training the parts `trains` accepts.
    pub fn new(o: &OptimSection, trains: impl Fn(ModelPart) -> bool, device: &B::Device) -> Self {
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
        Update {
            optim,
            lrs,
            grad_clip: o.grad_clip,
            device: device.clone(),
        }
    }

    /// Clips `grads` and steps `model`; returns it with the gradient norm before clipping.
    pub fn apply(
        &mut self,
        mut model: M,
        mut grads: GradientsParams,
        lr_factor: f64,
    ) -> Result<(M, f64)> {
        let grad_norm = if self.grad_clip > 0.0 {
            clip_grad_norm(&model, &mut grads, self.grad_clip)?.total_norm
        } else {
            global_grad_norm(&model, &grads)?
        };
        if !grad_norm.is_finite() {
            bail!("the gradient norm is {grad_norm}");
        }
        let parts = model.param_parts();
        for (part, part_grads) in split_grads_by_part(&model, grads, &parts) {
            if let Some(lr) = self.lrs.get(&part) {
                model = self.optim.step(lr * lr_factor, model, part_grads);
            }
        }
        Ok((model, grad_norm))
    }

    /// Writes the optimiser state to `path` (MessagePack), keyed by parameter path (see
    /// `param_groups`). It is encoded in memory and written atomically, so a write error is
    /// the file system's (a full disk says so), named with the file.
    pub fn save(&self, model: &M, path: &Path) -> Result<()> {
        let record = record_to_portable(self.optim.to_record(), model);
        let bytes = Recorder::<B>::record(&recorder(), record, ())
            .map_err(|_| anyhow::anyhow!("the optimiser state does not encode"))?;
        atomic_write(path, &bytes)
    }

    /// Restores the optimiser state [`Update::save`] wrote, for `model` as loaded. A file that
    /// does not decode is reported as corrupt, naming it (not the decoder's internals).
    pub fn load(&mut self, model: &M, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let record = Recorder::<B>::load(&recorder(), bytes, &self.device).map_err(|_| {
            anyhow::anyhow!(
                "{} is corrupt or truncated: it does not decode as optimiser state",
                path.display()
            )
        })?;
        let optim = std::mem::replace(&mut self.optim, AdamWConfig::new().init::<B, M>());
        self.optim = optim.load_record(record_from_portable(record, model));
        Ok(())
    }
}

/// Gradients of some micro-batches, and what they covered.
#[derive(Default)]
pub struct WindowGradients {
    pub grads: GradientsParams,
    /// Sum of the micro-batches' losses (each already divided by the global normaliser).
    pub loss: f64,
    pub tokens: usize,
    pub images: usize,
    /// DPO's sums over the pairs covered (zero for SFT).
    pub preference: PreferenceSums,
}

impl WindowGradients {
    /// The outcome of a step over `loss`'s global batch with these (summed) gradients.
    pub fn outcome(&self, loss: &WindowLoss, grad_norm: f64) -> StepOutcome {
        StepOutcome {
            loss: self.loss,
            grad_norm,
            targets: loss.targets(),
            tokens: self.tokens,
            images: self.images,
            preference: matches!(loss, WindowLoss::Dpo(_)).then_some(self.preference),
        }
    }

    /// Adds another worker's numbers (not its gradients).
    pub fn add_numbers(&mut self, other: &WindowGradients) {
        self.loss += other.loss;
        self.tokens += other.tokens;
        self.images += other.images;
        self.preference.add(&other.preference);
    }
}

/// How micro-batches go through the model: the padding token of collated batches and the
/// autocast type of the forward's matrix products (`train.precision`).
#[derive(Debug, Clone, Copy)]
pub struct ForwardSettings {
    pub pad_id: u32,
    /// `Some(bf16)` under `bf16-mixed`.
    pub autocast: Option<FloatDType>,
    /// For workers whose gradients are all-reduced inside `backward()` (the NCCL path), so
    /// their backward passes must line up: every micro-batch runs a backward pass, an empty
    /// shard included, and each gives every trained parameter a gradient (zero where unused;
    /// see `grad_coverage`). Off, empty micro-batches are skipped.
    pub lockstep: bool,
}

/// Forward and backward over `window` on `model`'s device, each micro-batch's loss normalised
/// as `loss` says (over the whole global batch, so that gradients of several windows or
/// workers add up to those of one big batch), gradients accumulated.
pub fn window_gradients<B: AutodiffBackend, M: TrainableModel<B>>(
    model: &M,
    window: &[Vec<&Example>],
    loss: &WindowLoss,
    forward: ForwardSettings,
    device: &B::Device,
) -> Result<WindowGradients> {
    let mut accumulator = GradientsAccumulator::<M>::new();
    let (mut loss_sum, mut tokens, mut images) = (0.0, 0, 0);
    let mut preference = PreferenceSums::default();
    for batch in window.iter().filter(|b| forward.lockstep || !b.is_empty()) {
        let micro = match batch.is_empty() {
            // Only in lock step: a backward pass that gives every trained parameter a zero.
            true => match trained_params_zero(model, FloatDType::F32) {
                Some(zero) => MicroLoss::of_nothing(zero),
                None => continue,
            },
            false => micro_batch_loss(model, batch, loss, forward, device)?,
        };
        loss_sum += micro.value;
        tokens += micro.tokens;
        images += micro.images;
        preference.add(&micro.preference);
        let grads = GradientsParams::from_grads(micro.scaled.backward(), model);
        accumulator.accumulate(model, grads);
    }
    Ok(WindowGradients {
        grads: accumulator.grads(),
        loss: loss_sum,
        tokens,
        images,
        preference,
    })
}

/// One micro-batch's loss, normalised over the global batch.
struct MicroLoss<B: AutodiffBackend> {
    scaled: Tensor<B, 1>,
    value: f64,
    tokens: usize,
    images: usize,
    preference: PreferenceSums,
}

impl<B: AutodiffBackend> MicroLoss<B> {
    /// The "loss" of an empty shard: `zero`, over no tokens.
    fn of_nothing(zero: Tensor<B, 1>) -> Self {
        MicroLoss {
            scaled: zero,
            value: 0.0,
            tokens: 0,
            images: 0,
            preference: PreferenceSums::default(),
        }
    }
}

/// Forward over `batch` (not empty); in lock step the loss also depends on every trained
/// parameter (with a zero weight).
fn micro_batch_loss<B: AutodiffBackend, M: TrainableModel<B>>(
    model: &M,
    batch: &[&Example],
    loss: &WindowLoss,
    forward: ForwardSettings,
    device: &B::Device,
) -> Result<MicroLoss<B>> {
    let mut micro = match loss {
        WindowLoss::Sft { targets } => sft_micro_loss(model, batch, *targets, forward, device)?,
        WindowLoss::Dpo(w) => {
            let m = window::micro_batch_loss(model, batch, w, forward, device)?;
            MicroLoss {
                value: m.scaled.clone().into_scalar().elem(),
                scaled: m.scaled,
                tokens: m.tokens,
                images: m.images,
                preference: m.sums,
            }
        }
    };
    if !micro.value.is_finite() {
        bail!("the loss is {}", micro.value);
    }
    if forward.lockstep {
        let dtype = FloatDType::from(micro.scaled.dtype());
        if let Some(zero) = trained_params_zero(model, dtype) {
            micro.scaled = micro.scaled + zero;
        }
    }
    Ok(micro)
}

/// SFT: the micro-batch's summed cross-entropy divided by the global batch's `targets`.
fn sft_micro_loss<B: AutodiffBackend, M: TrainableModel<B>>(
    model: &M,
    batch: &[&Example],
    targets: usize,
    forward: ForwardSettings,
    device: &B::Device,
) -> Result<MicroLoss<B>> {
    let batch = collate::<B>(batch, forward.pad_id, device);
    let loss = autocast(forward.autocast, || {
        model.forward_loss(&batch.input, &batch.labels)
    })
    .context("forward")?;
    let scaled = loss.sum / targets.max(1) as f64;
    let value: f64 = scaled.clone().into_scalar().elem();
    Ok(MicroLoss {
        scaled,
        value,
        tokens: batch.tokens,
        images: batch.images,
        preference: PreferenceSums::default(),
    })
}

/// Gradient accumulation on one device.
pub struct AccumulationStep<B: AutodiffBackend, M: TrainableModel<B>> {
    update: Update<B, M>,
    forward: ForwardSettings,
    objective: Objective<B, M>,
    device: B::Device,
}

impl<B: AutodiffBackend, M: TrainableModel<B>> AccumulationStep<B, M> {
    /// The step with `update`'s optimiser, running micro-batches as `forward` says.
    pub fn new(update: Update<B, M>, forward: ForwardSettings, device: &B::Device) -> Self {
        AccumulationStep {
            update,
            forward,
            objective: Objective::Sft,
            device: device.clone(),
        }
    }

    /// The step minimising `objective` (SFT by default).
    pub fn with_objective(self, objective: Objective<B, M>) -> Self {
        AccumulationStep { objective, ..self }
    }
}

impl<B: AutodiffBackend, M: TrainableModel<B>> TrainStep<B, M> for AccumulationStep<B, M> {
    fn step(
        &mut self,
        model: M,
        window: &[Vec<&Example>],
        lr_factor: f64,
    ) -> Result<(M, StepOutcome)> {
        let (forward, device) = (self.forward, &self.device);
        let loss = self
            .objective
            .window_loss(&model, window, forward, device)?;
        let mut g = window_gradients(&model, window, &loss, forward, device)?;
        let grads = std::mem::take(&mut g.grads);
        let (model, grad_norm) = self.update.apply(model, grads, lr_factor)?;
        Ok((model, g.outcome(&loss, grad_norm)))
    }

    fn save_state(&self, model: &M, path: &Path) -> Result<()> {
        self.update.save(model, path)
    }

    fn load_state(&mut self, model: &M, path: &Path) -> Result<()> {
        self.update.load(model, path)
    }
}

/// The optimiser state's encoding: named MessagePack, the bytes Burn's `.mpk` files hold.
fn recorder() -> NamedMpkBytesRecorder<FullPrecisionSettings> {
    NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
}
