//! Everything a run needs before its first step, fresh or resumed: the model and its processor
//! (from a checkpoint, an HF folder or a preset), the encoded data (refused when it overlaps the
//! evaluation benchmark, see `benchmark_guard`), the trainer state and
//! the learning-rate schedule, with frozen parts marked. The optimiser belongs to the step
//! (`step.rs`), which restores its own state from the checkpoint.
//!
//! Adding a model family: implement `safeaware_model::VisionLanguageModel` for it and load it
//! in [`load_model`]; nothing else in the trainer names a model type.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::backend::AutodiffBackend;
use safeaware_data::benchmark::BenchmarkItem;
use safeaware_data::processor::Processor;
use safeaware_model::{Idefics3, VisionLanguageModel};

use crate::benchmark_guard::refuse_benchmark_overlap;
use crate::checkpoint::{latest_checkpoint, resume_checkpoint, Checkpoint};
use crate::fingerprint::fingerprint_files;
use crate::manifest::Verification;
use crate::param_groups::{freeze, param_ids_by_part};
use crate::preset;
use crate::schedule::LrSchedule;
use crate::train_data::{encode_file, resolve_files, traces_as_benchmark, Example};
use crate::trainer_state::{read_trainer_state, RunIdentity, TrainerState};
use crate::training::TrainJob;

/// The model a run trains.
pub type RunModel<B> = Idefics3<B>;

/// A run ready for its next step.
pub struct Setup<M> {
    /// The model, frozen parts marked.
    pub model: M,
    pub processor: Processor,
    pub data: RunData,
    pub state: TrainerState,
    /// The checkpoint the run resumes from.
    pub resumed_from: Option<Checkpoint>,
    pub total_steps: u64,
    pub schedule: LrSchedule,
}

/// The encoded examples of a run.
pub struct RunData {
    /// The training trace file (its fingerprint is part of the run's identity).
    pub train_file: PathBuf,
    pub train: Vec<Example>,
    /// Validation examples (teacher-forced loss).
    pub val: Vec<Example>,
    /// Validation items (generation metrics).
    pub val_items: Vec<BenchmarkItem>,
    /// The held-out benchmark file, for the final evaluation.
    pub benchmark: Option<PathBuf>,
}

/// Prepares `job` on `device`: refuses a fresh start over existing checkpoints, and a resume
/// whose recipe or data differ from the checkpoint's. Nothing is written: the caller records
/// the resolved recipe once the run is accepted ([`record_recipe`]).
pub fn setup<B: AutodiffBackend>(job: &TrainJob, device: &B::Device) -> Result<Setup<RunModel<B>>> {
    let (recipe, run) = (&job.recipe, &job.run_dir);
    std::fs::create_dir_all(run).with_context(|| format!("creating {}", run.display()))?;
    let resumed_from = resume_point(run, job.resume)?;
    let (model, processor) =
        load_model::<B>(job, resumed_from.as_ref().map(|c| c.path.as_path()), device)?;
    let data = load_data(job, &processor)?;
    let identity = RunIdentity {
        recipe_fingerprint: recipe.fingerprint(),
        seed: recipe.train.seed,
        data_fingerprint: fingerprint_files(&[data.train_file.as_path()])?,
    };
    let state = match &resumed_from {
        Some(ckpt) => {
            let saved = read_trainer_state(&ckpt.path)?;
            saved.run.check_resume(&identity)?;
            saved
        }
        None => TrainerState::new(identity),
    };
    check_feasible(
        job,
        &data,
        state.step,
        recipe.train.total_steps(data.train.len()),
    )?;
    let model = freeze_parts(model, &recipe.train.freeze);
    let total_steps = recipe.train.total_steps(data.train.len());
    let schedule = LrSchedule {
        warmup_steps: recipe.schedule.warmup_steps,
        total_steps,
        min_lr_ratio: recipe.schedule.min_lr_ratio,
    };
    Ok(Setup {
        model,
        processor,
        data,
        state,
        resumed_from,
        total_steps,
        schedule,
    })
}

/// Writes the run's resolved recipe, if the job asks for it (a fresh run, or a resume with
/// overrides).
pub fn record_recipe(job: &TrainJob) -> Result<()> {
    if let Some((source, overrides)) = &job.record_recipe {
        job.recipe.save_resolved(&job.run_dir, source, overrides)?;
    }
    Ok(())
}

/// Refuses a run that cannot do what it was asked: a batch larger than the training data, or a
/// stop step the run has passed or will never reach.
fn check_feasible(job: &TrainJob, data: &RunData, step: u64, total_steps: u64) -> Result<()> {
    let batch = job.recipe.train.batch_size;
    if batch > data.train.len() {
        bail!(
            "train.batch_size is {batch} but {} holds only {} usable training example(s)",
            data.train_file.display(),
            data.train.len()
        );
    }
    if let Some(stop) = job.stop_at_step {
        if stop <= step || stop > total_steps {
            bail!(
                "--stop-at-step {stop} is impossible: the run is at step {step} and ends at step {total_steps}"
            );
        }
    }
    Ok(())
}

/// The checkpoint to resume from (`resume`): the newest that verifies, saying which newer
/// ones were passed over and why; `None` for a fresh run in an empty folder.
fn resume_point(run: &Path, resume: bool) -> Result<Option<Checkpoint>> {
    if resume {
        return verified_resume_point(run);
    }
    match latest_checkpoint(run)? {
        Some(_) => bail!(
            "{} already holds checkpoints: resume it with `safeaware train --resume {}` or choose another --out",
            run.display(),
            run.display()
        ),
        None => Ok(None),
    }
}

/// [`resume_checkpoint`], told on stderr; an error when no checkpoint is usable.
fn verified_resume_point(run: &Path) -> Result<Option<Checkpoint>> {
    let choice = resume_checkpoint(run)?;
    for (ckpt, why) in &choice.skipped {
        eprintln!("checkpoint {} skipped: {why}", ckpt.path.display());
    }
    let Some((ckpt, verification)) = choice.chosen else {
        let reason = match choice.skipped.is_empty() {
            true => "it holds no complete checkpoint",
            false => "no checkpoint in it verifies (see above)",
        };
        bail!("nothing to resume in {}: {reason}", run.display());
    };
    let how = match verification {
        Verification::Verified => "verified",
        Verification::NoManifest => "not verified: it has no manifest",
    };
    if !choice.skipped.is_empty() || verification == Verification::NoManifest {
        eprintln!("resuming from {} ({how})", ckpt.path.display());
    }
    Ok(Some(ckpt))
}

/// The model and processor: from the checkpoint resumed, else `model.path`, else the preset.
fn load_model<B: AutodiffBackend>(
    job: &TrainJob,
    resume_from: Option<&Path>,
    device: &B::Device,
) -> Result<(RunModel<B>, Processor)> {
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
    let built = preset::build(name, recipe.data.synthetic.settings.image_size)?;
    Ok((
        Idefics3::init_random(&built.config, recipe.model.init_seed, device),
        built.processor,
    ))
}

/// Encodes the training and validation files (the synthetic world is generated first).
fn load_data(job: &TrainJob, processor: &Processor) -> Result<RunData> {
    let recipe = &job.recipe;
    let files = resolve_files(recipe, &job.cache_dir)?;
    // No training on the evaluation benchmark's images or prompts unless data.allow_overlap.
    refuse_benchmark_overlap(recipe, &files)?;
    let (style, max_length) = (recipe.data.style, recipe.data.max_length);
    let train = encode_file(&files.train, processor, style, max_length)?;
    if train.rejected > 0 {
        eprintln!(
            "{} training sample(s) rejected as longer than data.max_length",
            train.rejected
        );
    }
    let (val, val_items) = match &files.val {
        Some(path) => (
            encode_file(path, processor, style, max_length)?.examples,
            traces_as_benchmark(path)?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    Ok(RunData {
        train_file: files.train,
        train: train.examples,
        val,
        val_items,
        benchmark: files.benchmark,
    })
}

/// Marks the parameters of the parts in `frozen` as needing no gradient.
fn freeze_parts<B: AutodiffBackend>(
    model: RunModel<B>,
    frozen: &[safeaware_model::ModelPart],
) -> RunModel<B> {
    let parts = param_ids_by_part(&model.param_parts());
    let ids: HashSet<_> = frozen
        .iter()
        .filter_map(|p| parts.get(p))
        .flatten()
        .copied()
        .collect();
    if ids.is_empty() {
        model
    } else {
        freeze(model, &ids)
    }
}
