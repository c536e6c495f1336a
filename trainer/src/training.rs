//! The fine-tuning loop: seeded shuffling, right-padded batches, gradient accumulation with the
//! loss normalised over the whole window's target tokens, global-norm clipping, AdamW with a
//! learning rate per model part on a warmup + cosine schedule, checkpoints that resume exactly,
//! metrics (JSONL + TensorBoard) and periodic evaluation.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ElementConversion;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use safeaware_data::processor::Processor;
use safeaware_model::{FloatDtype, Idefics3};

use crate::batching::collate;
use crate::checkpoint::{latest_checkpoint, prune_checkpoints, write_checkpoint, write_final};
use crate::device::BackendTask;
use crate::evaluation::{self, EvalPlan};
use crate::fingerprint::fingerprint_files;
use crate::grad_clip::clip_grad_norm;
use crate::guard::guarded;
use crate::metrics_log::{MetricsLog, MetricsRecord};
use crate::param_groups::{
    freeze, param_ids_by_part, record_from_portable, record_to_portable, split_grads_by_part,
};
use crate::preset;
use crate::progress::Progress;
use crate::recipe::{Part, Recipe};
use crate::schedule::LrSchedule;
use crate::tensorboard::TbWriter;
use crate::train_data::{encode_file, resolve_files, traces_as_benchmark, Example};
use crate::trainer_state::{read_trainer_state, write_trainer_state, RunIdentity, TrainerState};

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

/// Crash-test hook: when this environment variable holds a number of milliseconds, every
/// checkpoint write sleeps that long after the model files are written into
/// `checkpoints/.tmp-step_N/` and before the trainer state is, so a test can kill the process
/// in the middle of a checkpoint deterministically. Not meant for normal use.
pub const CHECKPOINT_DELAY_ENV: &str = "SAFEAWARE_CHECKPOINT_DELAY_MS";

/// Crash-test hook: when this environment variable holds a step number, the backend "fails"
/// (panics) at the start of that step, as a GPU lost in the middle of a run would, so a test
/// can check that the run ends with an error naming the step and stays resumable. Not meant for
/// normal use.
pub const FAIL_AT_STEP_ENV: &str = "SAFEAWARE_FAIL_AT_STEP";

/// The number in environment variable `name`: `Ok(None)` when unset, an error when not a number.
fn env_number(name: &str, what: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => bail!("{name}={v:?}: expected {what}"),
        },
        Err(e) => bail!("{name}: {e}"),
    }
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

impl BackendTask for TrainJob {
    type Output = TrainOutcome;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<TrainOutcome> {
        train::<B>(&self, &device)
    }
}

/// The model and processor a run starts from (or resumes).
fn initial_model<B: AutodiffBackend>(
    job: &TrainJob,
    resume_from: Option<&Path>,
    device: &B::Device,
) -> Result<(Idefics3<B>, Processor)> {
    let recipe = &job.recipe;
    let folder = resume_from
        .map(Path::to_path_buf)
        .or_else(|| recipe.model.path.clone());
    if let Some(folder) = folder {
        let model = Idefics3::load(&folder, device)
            .with_context(|| format!("loading the model from {}", folder.display()))?;
        let processor = Processor::from_folder(&folder)
            .with_context(|| format!("loading the processor from {}", folder.display()))?;
        return Ok((model, processor));
    }
    let Some(name) = recipe.model.preset.as_deref() else {
        bail!("the recipe sets neither model.path nor model.preset");
    };
    let built = preset::build(name, recipe.data.synthetic.image_size)?;
    Ok((
        Idefics3::init_random(&built.config, recipe.model.init_seed, device),
        built.processor,
    ))
}

/// The example order of `epoch`: a permutation seeded by the run seed and the epoch.
fn epoch_order(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mixed = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    order.shuffle(&mut StdRng::seed_from_u64(mixed));
    order
}

/// Runs (or resumes) the job on backend `B`.
pub fn train<B: AutodiffBackend>(job: &TrainJob, device: &B::Device) -> Result<TrainOutcome> {
    let recipe = &job.recipe;
    let run = &job.run_dir;
    let checkpoint_delay =
        env_number(CHECKPOINT_DELAY_ENV, "a number of milliseconds")?.map(Duration::from_millis);
    let fail_at_step = env_number(FAIL_AT_STEP_ENV, "a step number")?;
    std::fs::create_dir_all(run).with_context(|| format!("creating {}", run.display()))?;
    let resume_from = if job.resume {
        let Some(ckpt) = latest_checkpoint(run)? else {
            bail!(
                "nothing to resume in {}: it holds no complete checkpoint",
                run.display()
            );
        };
        Some(ckpt)
    } else {
        if latest_checkpoint(run)?.is_some() {
            bail!(
                "{} already holds checkpoints: resume it with `safeaware train --resume {}` or choose another --out",
                run.display(),
                run.display()
            );
        }
        None
    };
    let (mut model, processor) =
        initial_model::<B>(job, resume_from.as_ref().map(|c| c.path.as_path()), device)?;

    // Data.
    let files = resolve_files(recipe, &job.cache_dir)?;
    // Benchmark guard (issue 15): no training on images or prompts of the evaluation benchmark
    // unless data.allow_overlap. Keep this call first in setup, right after the data files.
    crate::benchmark_guard::refuse_benchmark_overlap(recipe, &files)?;
    let train_set = encode_file(
        &files.train,
        &processor,
        recipe.data.style,
        recipe.data.max_length,
    )?;
    if train_set.rejected > 0 {
        eprintln!(
            "{} training sample(s) rejected as longer than data.max_length",
            train_set.rejected
        );
    }
    let examples = train_set.examples;
    let val_examples = match &files.val {
        Some(path) => {
            encode_file(path, &processor, recipe.data.style, recipe.data.max_length)?.examples
        }
        None => Vec::new(),
    };
    let val_items = match &files.val {
        Some(path) => traces_as_benchmark(path)?,
        None => Vec::new(),
    };

    // Identity and state.
    let identity = RunIdentity {
        recipe_fingerprint: recipe.fingerprint(),
        seed: recipe.train.seed,
        data_fingerprint: fingerprint_files(&[files.train.as_path()])?,
    };
    let mut state = match &resume_from {
        Some(ckpt) => {
            let saved = read_trainer_state(&ckpt.path)?;
            saved.run.check_resume(&identity)?;
            saved
        }
        None => TrainerState::new(identity),
    };
    if let Some((source, overrides)) = &job.record_recipe {
        recipe.save_resolved(run, source, overrides)?;
    }

    // Freezing and the optimiser.
    let parts = param_ids_by_part(&model);
    let frozen: HashSet<_> = recipe
        .train
        .freeze
        .iter()
        .filter_map(|p| parts.get(p))
        .flatten()
        .copied()
        .collect();
    if !frozen.is_empty() {
        model = freeze(model, &frozen);
    }
    let o = &recipe.optim;
    let adamw = AdamWConfig::new()
        .with_beta_1(o.betas[0] as f32)
        .with_beta_2(o.betas[1] as f32)
        .with_epsilon(o.eps as f32)
        .with_weight_decay(o.weight_decay as f32);
    let mut optim = adamw.init::<B, Idefics3<B>>();
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    if let Some(ckpt) = &resume_from {
        let path = crate::trainer_state::trainer_state_dir(&ckpt.path)
            .join(crate::trainer_state::OPTIMIZER_FILE);
        let record = Recorder::<B>::load(&recorder, path.clone(), device)
            .with_context(|| format!("loading the optimiser state {}", path.display()))?;
        optim = optim.load_record(record_from_portable(record, &model));
    }

    let t = &recipe.train;
    let batch_size = t.batch_size.max(1);
    let accum = t.grad_accum.max(1);
    let total_steps = t.total_steps(examples.len());
    let schedule = LrSchedule {
        warmup_steps: recipe.schedule.warmup_steps,
        total_steps,
        min_lr_ratio: recipe.schedule.min_lr_ratio,
    };
    let batches_per_epoch = examples.len().div_ceil(batch_size) as u64;
    let pad_id = processor.special_tokens().pad;

    // Logging.
    let mut metrics = if resume_from.is_some() {
        MetricsLog::resume(run, state.step)?
    } else {
        MetricsLog::open(run)?
    };
    let mut tb = TbWriter::create(run)?;
    let mut progress = Progress::new("train", total_steps, state.step);
    progress.println(&format!(
        "training {} examples ({} val) for {total_steps} steps of {batch_size}×{accum} on {}; run folder {}",
        examples.len(),
        val_examples.len(),
        t.device,
        run.display()
    ));
    let session_start = Instant::now();
    let elapsed_before = state.elapsed_s;
    let mut window_loss = 0.0;
    let mut window_targets = 0usize;
    let (mut window_tokens, mut window_images) = (0usize, 0usize);
    let mut window_start = Instant::now();
    let mut order = epoch_order(t.seed, state.epoch, examples.len());
    let plan = EvalPlan {
        max_new_tokens: recipe.eval.max_new_tokens,
        batch_size: recipe.eval.batch_size,
        limit: recipe.eval.limit,
    };

    while state.step < total_steps {
        let step = state.step + 1;
        // The micro-batches of this step's accumulation window.
        let mut micro: Vec<Vec<&Example>> = Vec::with_capacity(accum);
        for _ in 0..accum {
            if state.data_position >= batches_per_epoch {
                state.epoch += 1;
                state.data_position = 0;
                order = epoch_order(t.seed, state.epoch, examples.len());
            }
            let start = state.data_position as usize * batch_size;
            let end = (start + batch_size).min(examples.len());
            micro.push(order[start..end].iter().map(|&i| &examples[i]).collect());
            state.data_position += 1;
        }
        let targets: usize = micro.iter().flatten().map(|e| e.target_tokens()).sum();
        let factor = schedule.factor(state.step);
        let fail_here = fail_at_step == Some(step);
        // A panic in the backend (a GPU lost mid-step) ends the run with an error naming the
        // step; the last checkpoint on disk is complete and resumable.
        let stepped = guarded(
            || format!("step {step} on {}", t.device),
            || -> Result<_> {
                let mut model = model;
                if fail_here {
                    panic!("{FAIL_AT_STEP_ENV}: simulated device loss");
                }
                let mut accumulator = GradientsAccumulator::<Idefics3<B>>::new();
                let mut step_loss = 0.0;
                for batch in &micro {
                    let batch = collate::<B>(batch, pad_id, device);
                    let loss = model
                        .forward_loss(&batch.input, &batch.labels)
                        .with_context(|| format!("step {step}: forward"))?;
                    let scaled = loss.sum / targets.max(1) as f64;
                    let value: f64 = scaled.clone().into_scalar().elem();
                    if !value.is_finite() {
                        bail!(
                        "step {step}: the loss is {value}; stopping (the last good checkpoint is kept in {})",
                        run.display()
                    );
                    }
                    step_loss += value;
                    let grads = GradientsParams::from_grads(scaled.backward(), &model);
                    accumulator.accumulate(&model, grads);
                    window_tokens += batch.tokens;
                    window_images += batch.images;
                }
                let mut grads = accumulator.grads();
                let grad_norm = if o.grad_clip > 0.0 {
                    let outcome = clip_grad_norm(&model, &mut grads, o.grad_clip)?;
                    if !outcome.total_norm.is_finite() {
                        bail!("step {step}: the gradient norm is {}; stopping (the last good checkpoint is kept)", outcome.total_norm);
                    }
                    outcome.total_norm
                } else {
                    crate::grad_clip::global_grad_norm(&model, &grads)?
                };
                for (part, part_grads) in split_grads_by_part(&model, grads) {
                    if t.trains(part) {
                        model = optim.step(o.lr(part) * factor, model, part_grads);
                    }
                }
                Ok((model, step_loss, grad_norm))
            },
        );
        let (stepped_model, step_loss, grad_norm) = stepped??;
        model = stepped_model;
        state.step = step;
        state.schedule_step = step;
        state.tokens_seen += window_tokens as u64;
        state.images_seen += window_images as u64;
        window_loss += step_loss * targets as f64;
        window_targets += targets;
        state.elapsed_s = elapsed_before + session_start.elapsed().as_secs_f64();
        progress.set(step, &format!("loss {step_loss:.4}"));

        // A pause also closes the logging window: its steps' losses would otherwise be lost,
        // since a resumed run starts a new window.
        let stop_here = job.stop_at_step == Some(step);
        let mut record = None;
        if step % t.log_every.max(1) == 0 || step == total_steps || stop_here {
            let secs = window_start.elapsed().as_secs_f64().max(1e-9);
            record = Some(MetricsRecord {
                step,
                elapsed_s: state.elapsed_s,
                loss: Some(window_loss / window_targets.max(1) as f64),
                lr: Some(o.lr(Part::Text) * factor),
                grad_norm: Some(grad_norm),
                tokens_per_s: Some(window_tokens as f64 / secs),
                images_per_s: Some(window_images as f64 / secs),
                eta_s: progress.eta_s(),
                eval: Default::default(),
            });
            window_loss = 0.0;
            window_targets = 0;
            window_tokens = 0;
            window_images = 0;
            window_start = Instant::now();
        }
        if t.eval_every > 0 && step % t.eval_every == 0 {
            let valid = model.valid();
            let mut eval =
                evaluation::validation_loss(&valid, &val_examples, pad_id, batch_size, device)?;
            if !val_items.is_empty() {
                let out = run.join("eval").join(format!("step_{step}"));
                eval.extend(evaluation::generation_metrics(
                    &valid, &processor, &val_items, &out, &plan,
                )?);
            }
            let line = eval
                .iter()
                .map(|(k, v)| format!("{k}={v:.4}"))
                .collect::<Vec<_>>()
                .join(" ");
            progress.println(&format!("step {step}: {line}"));
            record
                .get_or_insert_with(|| MetricsRecord {
                    step,
                    elapsed_s: state.elapsed_s,
                    ..Default::default()
                })
                .eval = eval;
        }
        if let Some(record) = record {
            metrics.append(&record)?;
            tb.add_scalars(step, &record.scalars())?;
            tb.flush()?;
            progress.println(&format_record(&record));
        }
        if (t.checkpoint_every > 0 && step % t.checkpoint_every == 0) || stop_here {
            let path = write_checkpoint(run, step, |dir| {
                save_model_folder(&model, &processor, dir)?;
                if let Some(delay) = checkpoint_delay {
                    std::thread::sleep(delay);
                }
                write_trainer_state(dir, &state, |file| {
                    let record = record_to_portable(optim.to_record(), &model);
                    Recorder::<B>::record(&recorder, record, file.to_path_buf())
                        .context("writing the optimiser state")
                })
            })?;
            prune_checkpoints(run, t.keep_last)?;
            progress.println(&format!("step {step}: checkpoint {}", path.display()));
        }
        if stop_here {
            progress.finish(&format!("stopped at step {step} as asked"));
            return Ok(TrainOutcome {
                step,
                final_dir: None,
                benchmark: files.benchmark,
            });
        }
    }
    let final_dir = write_final(run, |dir| save_model_folder(&model, &processor, dir))?;
    progress.finish(&format!(
        "done: {} steps, final model in {}",
        state.step,
        final_dir.display()
    ));
    Ok(TrainOutcome {
        step: state.step,
        final_dir: Some(final_dir),
        benchmark: files.benchmark,
    })
}

/// Writes an HF model folder: config.json + model.safetensors + the processor's files.
pub fn save_model_folder<B: AutodiffBackend>(
    model: &Idefics3<B>,
    processor: &Processor,
    dir: &Path,
) -> Result<()> {
    model
        .save(dir, FloatDtype::F32)
        .with_context(|| format!("saving the model to {}", dir.display()))?;
    processor
        .save(dir)
        .with_context(|| format!("saving the processor to {}", dir.display()))?;
    Ok(())
}

fn format_record(r: &MetricsRecord) -> String {
    let mut line = format!("step {}", r.step);
    for (name, value) in [("loss", r.loss), ("lr", r.lr), ("grad_norm", r.grad_norm)] {
        if let Some(v) = value {
            line.push_str(&format!(" {name}={v:.4e}"));
        }
    }
    if let Some(v) = r.tokens_per_s {
        line.push_str(&format!(" tok/s={v:.0}"));
    }
    if let Some(v) = r.images_per_s {
        line.push_str(&format!(" img/s={v:.1}"));
    }
    line.push_str(&format!(" elapsed={}", crate::progress::hms(r.elapsed_s)));
    if let Some(v) = r.eta_s {
        line.push_str(&format!(" eta={}", crate::progress::hms(v)));
    }
    line
}
