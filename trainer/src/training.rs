//! The run loop: from the [`setup`](crate::setup) to the final model, one
//! [`TrainStep`] per global batch, with logging (JSONL, TensorBoard, progress), periodic
//! evaluation, checkpoints that resume exactly, and pauses. It names no model type and no
//! optimiser: the step owns both kinds of detail.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use burn::tensor::backend::AutodiffBackend;
use safeaware_data::processor::Processor;
use safeaware_model::{ModelPart, TrainableModel, VisionLanguageModel};

use crate::checkpoint::{prune_checkpoints, write_checkpoint, write_final};
use crate::data_order::DataOrder;
use crate::data_parallel::DataParallelStep;
use crate::evaluation::{self, EvalPlan};
use crate::log_window::LogWindow;
use crate::metrics_log::{MetricsLog, MetricsRecord};
use crate::model_output::ModelOutput;
use crate::nccl_step::NcclStep;
use crate::objective::{run_objective, Objective};
use crate::progress::Progress;
use crate::recipe::Recipe;
use crate::setup::{record_recipe, setup, RunData, RunModel, Setup};
use crate::step::{AccumulationStep, ForwardSettings, StepOutcome, TrainStep, Update};
use crate::tensorboard::TbWriter;
use crate::train_data::Example;
use crate::trainer_state::{trainer_state_dir, write_trainer_state, TrainerState, OPTIMIZER_FILE};
use safeaware_common::fnv::fnv1a64;
use safeaware_runtime::guard::guarded;
use safeaware_runtime::task::{GradientSync, MultiDeviceTask};

/// What to train and where.
#[derive(Debug, Clone)]
pub struct TrainJob {
    pub recipe: Recipe,
    /// The run folder.
    pub run_dir: PathBuf,
    /// Continue from the latest complete checkpoint in `run_dir`.
    pub resume: bool,
    /// Stop cleanly after the checkpoint at this step (as if interrupted).
    pub stop_at_step: Option<u64>,
    /// Where the synthetic data is generated and cached.
    pub cache_dir: PathBuf,
    /// Provenance of `recipe` (the file it was read from and the `--set` overrides applied).
    /// When given, the recipe is written to `<run>/recipe.resolved.toml` once the run is
    /// accepted — a fresh folder, or a resume whose identity matches — and never before, so
    /// a refused start leaves the run folder as it was.
    pub record_recipe: Option<(PathBuf, Vec<String>)>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The last completed optimiser step.
    pub step: u64,
    /// `<run>/final` when the run completed.
    pub final_dir: Option<PathBuf>,
    /// The held-out benchmark file of the data, if any (for the final evaluation).
    pub benchmark: Option<PathBuf>,
}

impl MultiDeviceTask for TrainJob {
    type Output = TrainOutcome;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<TrainOutcome> {
        train::<B>(&self, devices)
    }

    fn activation_checkpointing(&self) -> bool {
        self.recipe.train.activation_checkpointing
    }

    fn run_synced<B: AutodiffBackend, S: GradientSync<B>>(
        self,
        devices: Vec<B::Device>,
        sync: S,
    ) -> Result<TrainOutcome> {
        train_synced::<B, S>(&self, devices, sync)
    }
}

/// Runs (or resumes) the job on backend `B`: with the accumulation step on one device, with
/// the portable data-parallel step on several (the model, logging and checkpoints on the first).
pub fn train<B: AutodiffBackend>(job: &TrainJob, devices: Vec<B::Device>) -> Result<TrainOutcome> {
    train_with::<B>(job, devices, |parts| {
        let update = parts.update(0);
        Ok(match parts.devices.len() {
            1 => Box::new(
                AccumulationStep::new(update, parts.forward, &parts.devices[0])
                    .with_objective(parts.objective),
            ),
            _ => Box::new(
                DataParallelStep::new(update, parts.forward, parts.devices, parts.names)?
                    .with_objective(parts.objective),
            ),
        })
    })
}

/// As [`train`], but the devices (one or more) run in lock step with their gradients summed
/// by `sync` inside `backward()` (the NCCL path; see `nccl_step`).
pub fn train_synced<B: AutodiffBackend, S: GradientSync<B>>(
    job: &TrainJob,
    devices: Vec<B::Device>,
    sync: S,
) -> Result<TrainOutcome> {
    train_with::<B>(job, devices, |parts| {
        let updates = (0..parts.devices.len()).map(|w| parts.update(w)).collect();
        let step = NcclStep::new(updates, parts.forward, parts.devices, parts.names, sync)?;
        Ok(Box::new(step.with_objective(parts.objective)))
    })
}

/// What a multi-device step is made of.
struct StepParts<'a, B: AutodiffBackend> {
    job: &'a TrainJob,
    forward: ForwardSettings,
    objective: Objective<B, RunModel<B>>,
    devices: Vec<B::Device>,
    names: Vec<String>,
}

impl<B: AutodiffBackend> StepParts<'_, B> {
    /// The recipe's optimiser on worker `w`'s device.
    fn update<M: TrainableModel<B>>(&self, w: usize) -> Update<B, M> {
        let recipe = &self.job.recipe;
        Update::new(&recipe.optim, |part| recipe.trains(part), &self.devices[w])
    }
}

/// A run on `devices` with the step `make_step` makes.
fn train_with<B: AutodiffBackend>(
    job: &TrainJob,
    devices: Vec<B::Device>,
    make_step: impl FnOnce(StepParts<'_, B>) -> Result<Box<dyn TrainStep<B, RunModel<B>>>>,
) -> Result<TrainOutcome> {
    let Some(device) = devices.first().cloned() else {
        bail!("no device to train on");
    };
    let setup = setup::<B>(job, &device)?;
    let t = &job.recipe.train;
    let forward = ForwardSettings {
        pad_id: setup.processor.special_tokens().pad,
        autocast: t.precision.autocast(),
        lockstep: false,
    };
    let objective = run_objective::<B>(job, &device)?;
    let mut step = make_step(StepParts {
        job,
        forward,
        objective,
        devices,
        names: t.worker_names(),
    })?;
    if let Some(ckpt) = &setup.resumed_from {
        let path = trainer_state_dir(&ckpt.path).join(OPTIMIZER_FILE);
        step.load_state(&setup.model, &path)?;
    }
    // Only a run that got this far is accepted: a refused start leaves the folder as it was.
    record_recipe(job)?;
    run_loop(job, setup, step.as_mut(), &device)
}

/// Steps until the end (or the pause), then writes `<run>/final`.
fn run_loop<B, M, S>(
    job: &TrainJob,
    setup: Setup<M>,
    step_fn: &mut S,
    device: &B::Device,
) -> Result<TrainOutcome>
where
    B: AutodiffBackend,
    M: TrainableModel<B>,
    S: TrainStep<B, M> + ?Sized,
{
    let Setup {
        mut model,
        processor,
        data,
        mut state,
        resumed_from,
        total_steps,
        schedule,
        output,
    } = setup;
    let (run, t) = (&job.run_dir, &job.recipe.train);
    let mut reports = Reports::open(job, &data, resumed_from.is_some(), &state, total_steps)?;
    let session = (Instant::now(), state.elapsed_s);
    let mut order = DataOrder::new(t.seed, t.batch_size, t.grad_accum, data.train.len(), &state);
    while state.step < total_steps {
        let step = state.step + 1;
        let batches: Vec<Vec<_>> = order
            .next_window(&mut state)
            .into_iter()
            .map(|batch| batch.into_iter().map(|i| &data.train[i]).collect())
            .collect();
        let factor = schedule.factor(state.step);
        let (stepped, outcome) =
            take_step::<B, M, S>(job, step_fn, model, &batches, factor, step, device)?;
        model = stepped;
        state.step = step;
        state.tokens_seen += outcome.tokens as u64;
        state.images_seen += outcome.images as u64;
        state.elapsed_s = session.1 + session.0.elapsed().as_secs_f64();

        let stop_here = job.stop_at_step == Some(step);
        let last = step == total_steps || stop_here;
        let mut record = reports.add_step(job, step, &outcome, factor, last);
        if t.eval_every > 0 && step % t.eval_every == 0 {
            let eval = evaluate_step(&model.valid(), &processor, &data, job, step, device)?;
            reports
                .progress
                .println(&format!("step {step}: {}", eval_line(&eval)));
            record.get_or_insert_with(MetricsRecord::default).eval = eval;
        }
        if let Some(record) = record {
            reports.write(record, step, state.elapsed_s)?;
        }
        if (t.checkpoint_every > 0 && step % t.checkpoint_every == 0) || stop_here {
            let saved = Saved {
                model: &model,
                processor: &processor,
                output: &output,
            };
            let path = checkpoint(run, saved, &state, step_fn)?;
            prune_checkpoints(run, t.keep_last)?;
            reports
                .progress
                .println(&format!("step {step}: checkpoint {}", path.display()));
        }
        if stop_here {
            reports
                .progress
                .finish(&format!("stopped at step {step} as asked"));
            return Ok(TrainOutcome {
                step,
                final_dir: None,
                benchmark: data.benchmark,
            });
        }
    }
    let final_dir = write_final(run, |dir| output.save(&model, &processor, dir, true))?;
    reports.progress.finish(&format!(
        "done: {} steps, final model in {}",
        state.step,
        final_dir.display()
    ));
    Ok(TrainOutcome {
        step: state.step,
        final_dir: Some(final_dir),
        benchmark: data.benchmark,
    })
}

/// Step `step` of the run, on the micro-batches `batches` with the learning rate scaled by
/// `factor`. Dropout (LoRA's) draws from this thread's generator (workers' from seeds drawn
/// from it), and anything else random from the backend's: both are seeded per step, so a
/// resumed run draws what an uninterrupted one would. A panic in the backend (a GPU lost
/// mid-step) ends the run with an error naming the step; the last checkpoint on disk is
/// complete and resumable.
fn take_step<B, M, S>(
    job: &TrainJob,
    step_fn: &mut S,
    model: M,
    batches: &[Vec<&Example>],
    factor: f64,
    step: u64,
    device: &B::Device,
) -> Result<(M, StepOutcome)>
where
    B: AutodiffBackend,
    M: TrainableModel<B>,
    S: TrainStep<B, M> + ?Sized,
{
    let t = &job.recipe.train;
    B::seed(device, step_seed(t.seed, step));
    safeaware_model::dropout::seed(step_seed(t.seed, step));
    let stepped = guarded(
        || format!("step {step} on {}", t.worker_names().join(", ")),
        || {
            fail::fail_point!(crate::fail_points::TRAIN_STEP);
            step_fn.step(model, batches, factor)
        },
    )?;
    stepped.map_err(|err| {
        anyhow::anyhow!(
            "step {step}: {err:#}; stopping (the last good checkpoint is kept in {})",
            job.run_dir.display()
        )
    })
}

/// Where a run reports as it goes: `metrics.jsonl`, TensorBoard, the progress line, and the
/// steps since the last metrics record.
struct Reports {
    metrics: MetricsLog,
    tb: TbWriter,
    progress: Progress,
    window: LogWindow,
}

impl Reports {
    /// Opens the run's logs at `state.step` and prints the start line. A fresh run in its own
    /// folder starts the log afresh: lines of an earlier start that died before its first
    /// checkpoint belong to no resumable run.
    fn open(
        job: &TrainJob,
        data: &RunData,
        resumed: bool,
        state: &TrainerState,
        total_steps: u64,
    ) -> Result<Self> {
        let run = &job.run_dir;
        let metrics = MetricsLog::resume(run, if resumed { state.step } else { 0 })?;
        let tb = TbWriter::create(run)?;
        let mut progress = Progress::new("train", total_steps, state.step);
        progress.println(&start_line(job, data, total_steps));
        Ok(Reports {
            metrics,
            tb,
            progress,
            window: LogWindow::default(),
        })
    }

    /// Adds step `step` to the window and the progress line; the training fields of a metrics
    /// record when one is due (every `log_every` steps, and at the `last` step or a pause),
    /// which closes the window before any evaluation runs so its time is not counted.
    fn add_step(
        &mut self,
        job: &TrainJob,
        step: u64,
        outcome: &StepOutcome,
        factor: f64,
        last: bool,
    ) -> Option<MetricsRecord> {
        self.window.add(outcome);
        self.progress
            .set(step, &format!("loss {:.4}", outcome.loss));
        let due = step.is_multiple_of(job.recipe.train.log_every.max(1)) || last;
        due.then(|| MetricsRecord {
            lr: Some(job.recipe.optim.lr(ModelPart::Text) * factor),
            grad_norm: Some(outcome.grad_norm),
            eta_s: self.progress.eta_s(),
            ..self.window.close()
        })
    }

    /// Writes `record` as step `step`'s line: metrics.jsonl, TensorBoard and the terminal.
    fn write(&mut self, mut record: MetricsRecord, step: u64, elapsed_s: f64) -> Result<()> {
        record.step = step;
        record.elapsed_s = elapsed_s;
        self.metrics.append(&record)?;
        self.tb.add_scalars(step, &record.scalars())?;
        self.tb.flush()?;
        self.progress.println(&record.line());
        Ok(())
    }
}

/// The line a run starts with: what it trains on, how long, where.
fn start_line(job: &TrainJob, data: &RunData, total_steps: u64) -> String {
    let t = &job.recipe.train;
    format!(
        "training {} examples ({} val) for {total_steps} steps of {}×{} on {}{}; run folder {}",
        data.train.len(),
        data.val.len(),
        t.batch_size.max(1),
        t.grad_accum.max(1),
        t.worker_names().join(", "),
        if t.activation_checkpointing {
            " with activation checkpointing"
        } else {
            ""
        },
        job.run_dir.display()
    )
}

/// Validation loss, and the evaluator's metrics on the validation items (answers in
/// `<run>/eval/step_N/`).
fn evaluate_step<B: burn::tensor::backend::Backend, M: VisionLanguageModel<B>>(
    model: &M,
    processor: &Processor,
    data: &RunData,
    job: &TrainJob,
    step: u64,
    device: &B::Device,
) -> Result<std::collections::BTreeMap<String, f64>> {
    let recipe = &job.recipe;
    let batch_size = recipe.train.batch_size.max(1);
    let pad_id = processor.special_tokens().pad;
    let mut eval = evaluation::validation_loss(model, &data.val, pad_id, batch_size, device)?;
    if !data.val_items.is_empty() {
        let plan = EvalPlan {
            max_new_tokens: recipe.eval.max_new_tokens,
            batch_size: recipe.eval.batch_size,
            limit: recipe.eval.limit,
        };
        let out = job.run_dir.join("eval").join(format!("step_{step}"));
        eval.extend(evaluation::generation_metrics(
            model,
            processor,
            &data.val_items,
            &out,
            &plan,
        )?);
    }
    Ok(eval)
}

fn eval_line(eval: &std::collections::BTreeMap<String, f64>) -> String {
    eval.iter()
        .map(|(k, v)| format!("{k}={v:.4}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The model to write and how.
struct Saved<'a, M> {
    model: &'a M,
    processor: &'a Processor,
    output: &'a ModelOutput,
}

/// Writes `checkpoints/step_N`: the model folder (HF or adapter), then the trainer state and
/// the step's own state; the folder appears whole or not at all.
fn checkpoint<B, M, S>(
    run: &Path,
    saved: Saved<'_, M>,
    state: &TrainerState,
    step_fn: &S,
) -> Result<PathBuf>
where
    B: AutodiffBackend,
    M: TrainableModel<B>,
    S: TrainStep<B, M> + ?Sized,
{
    write_checkpoint(run, state.step, |dir| {
        saved
            .output
            .save(saved.model, saved.processor, dir, false)?;
        fail::fail_point!(crate::fail_points::CHECKPOINT_WRITE);
        write_trainer_state(dir, state, |file| step_fn.save_state(saved.model, file))
    })
}

/// The backend seed of step `step` of a run seeded `seed`.
fn step_seed(seed: u64, step: u64) -> u64 {
    fnv1a64(format!("{seed}:{step}").as_bytes())
}
