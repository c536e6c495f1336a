//! Everything a run needs before its first step, fresh or resumed: the model and its processor
//! (from a checkpoint, an HF folder or a preset), the encoded data (refused when it overlaps the
//! evaluation benchmark, see `benchmark_guard`), the trainer state and
//! the learning-rate schedule, with frozen parts marked. The optimiser belongs to the step
//! (`step.rs`), which restores its own state from the checkpoint.
//!
//! Models come from the model registry (`safeaware_model::Vlm`, by config.json's
//! `model_type`); nothing in the trainer names a model family.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{set_default_dtypes, Element, FloatDType, IntDType};
use safeaware_data::benchmark::BenchmarkItem;
use safeaware_data::processor::Processor;
use safeaware_model::precision::first_param_not_in;
use safeaware_model::safetensors_io::stored_dtype;
use safeaware_model::{AdapterSpec, FloatDtype, VisionLanguageModel, Vlm};

use crate::benchmark_guard::refuse_benchmark_overlap;
use crate::checkpoint::{latest_checkpoint, resume_checkpoint, write_run_folder, Checkpoint};
use crate::dpo::data::{check_file_kind, encode_preferences};
use crate::fingerprint::fingerprint_files;
use crate::manifest::Verification;
use crate::model_output::{ModelFormat, ModelOutput, BASE_DIR};
use crate::param_groups::freeze;
use crate::preset;
use crate::recipe::{Objective, Precision, Recipe};
use crate::recipe_model::check_recipe_max_length;
use crate::schedule::LrSchedule;
use crate::train_data::{encode_file, resolve_files, traces_as_benchmark, Example};
use crate::trainer_state::{read_trainer_state, RunIdentity, TrainerState};
use crate::training::TrainJob;

/// The model a run trains: any family of the registry.
pub type RunModel<B> = Vlm<B>;

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
    /// How the model is written (full folder or adapters; on-disk types).
    pub output: ModelOutput,
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

/// Prepares `job` on `device`: refuses a `data.max_length` beyond the model's context, a
/// fresh start over existing checkpoints, and a resume
/// whose recipe or data differ from the checkpoint's. Nothing is written: the caller records
/// the resolved recipe once the run is accepted ([`record_recipe`]).
pub fn setup<B: AutodiffBackend>(job: &TrainJob, device: &B::Device) -> Result<Setup<RunModel<B>>> {
    let (recipe, run) = (&job.recipe, &job.run_dir);
    check_recipe_max_length(recipe)?;
    std::fs::create_dir_all(run).with_context(|| format!("creating {}", run.display()))?;
    let resumed_from = resume_point(run, job.resume)?;
    let output = model_output(recipe, run)?;
    let precision = recipe.train.precision;
    set_precision::<B>(precision, device)?;
    let source = resumed_from.as_ref().map(|c| c.path.as_path());
    let (model, processor) = load_model::<B>(job, source, device)?;
    let origin = source
        .or(recipe.model.path.as_deref())
        .map_or_else(|| "the preset".to_string(), |p| p.display().to_string());
    check_param_dtypes(&model, precision, &origin)?;
    if let ModelFormat::Adapter(spec) = &output.format {
        model
            .family()
            .check_adapter_spec(spec)
            .map_err(|message| anyhow!("[lora]: {message}"))?;
    }
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
    if resumed_from.is_none() {
        write_preset_base(recipe, &output, &model, &processor)?;
    }
    let model = freeze_untrained(model, recipe);
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
        output,
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

/// The model and processor: from the checkpoint resumed, else `model.path`, else the preset;
/// with `[lora]`, the base model (from `model.path` or the preset) with adapters — fresh, or
/// the checkpoint's.
fn load_model<B: AutodiffBackend>(
    job: &TrainJob,
    resume_from: Option<&Path>,
    device: &B::Device,
) -> Result<(RunModel<B>, Processor)> {
    let recipe = &job.recipe;
    let Some(lora) = &recipe.lora else {
        let folder = resume_from.map(Path::to_path_buf);
        return load_base(job, folder.as_deref(), device);
    };
    let (base, processor) = load_base::<B>(job, None, device)?;
    let model = base.with_lora(&lora.spec(), recipe.model.init_seed)?;
    let model = match resume_from {
        Some(ckpt) => model
            .load_adapter(ckpt)
            .with_context(|| format!("loading the adapters of {}", ckpt.display()))?,
        None => model,
    };
    Ok((model, processor))
}

/// The model and processor of `folder`, else of `model.path`, else the preset's.
pub(crate) fn load_base<B: AutodiffBackend>(
    job: &TrainJob,
    folder: Option<&Path>,
    device: &B::Device,
) -> Result<(RunModel<B>, Processor)> {
    let recipe = &job.recipe;
    if let Some(folder) = folder.or(recipe.model.path.as_deref()) {
        let model = Vlm::load(folder, device)
            .with_context(|| format!("loading the model from {}", folder.display()))?;
        let processor = Processor::from_folder(folder)
            .with_context(|| format!("loading the processor from {}", folder.display()))?;
        return Ok((model, processor));
    }
    let Some(name) = recipe.model.preset.as_deref() else {
        bail!("the recipe sets neither model.path nor model.preset");
    };
    let built = preset::build(name, recipe.data.synthetic.settings.image_size)?;
    Ok((
        Vlm::init_random(&built.config, recipe.model.init_seed, device),
        built.processor,
    ))
}

/// Encodes the training and validation files (the synthetic world is generated first): trace
/// files, or preference files for a DPO run (validated by their chosen answers' loss only).
fn load_data(job: &TrainJob, processor: &Processor) -> Result<RunData> {
    let recipe = &job.recipe;
    let files = resolve_files(recipe, &job.cache_dir)?;
    let objective = recipe.train.objective;
    for path in std::iter::once(&files.train).chain(&files.val) {
        check_file_kind(path.as_path(), objective)?;
    }
    // No training on the evaluation benchmark's images or prompts unless data.allow_overlap.
    refuse_benchmark_overlap(recipe, &files)?;
    let (style, max_length) = (recipe.data.style, recipe.data.max_length);
    let encode = |path: &Path| match objective {
        Objective::Sft => encode_file(path, processor, style, max_length),
        Objective::Dpo => encode_preferences(path, processor, style, max_length),
    };
    let train = encode(files.train.as_path())?;
    if train.rejected > 0 {
        eprintln!(
            "{} training sample(s) rejected as longer than data.max_length",
            train.rejected
        );
    }
    let (val, val_items) = match (&files.val, objective) {
        (Some(path), Objective::Sft) => {
            (encode(path.as_path())?.examples, traces_as_benchmark(path)?)
        }
        (Some(path), Objective::Dpo) => (encode(path.as_path())?.examples, Vec::new()),
        (None, _) => (Vec::new(), Vec::new()),
    };
    Ok(RunData {
        train_file: files.train,
        train: train.examples,
        val,
        val_items,
        benchmark: files.benchmark,
    })
}

/// Marks every parameter the recipe does not train as needing no gradient (so autodiff keeps
/// no activations or gradients for it) and holds it in the precision's frozen type (bf16 under
/// bf16-mixed): the parts in `train.freeze`; with `[lora]`, every base weight outside
/// `lora.train_parts`.
fn freeze_untrained<B: AutodiffBackend>(model: RunModel<B>, recipe: &Recipe) -> RunModel<B> {
    let ids: HashSet<_> = model
        .param_parts()
        .into_iter()
        .filter(|p| match &recipe.lora {
            Some(lora) => !p.adapter && !lora.train_parts.contains(&p.part),
            None => recipe.train.freeze.contains(&p.part),
        })
        .map(|p| p.id)
        .collect();
    if ids.is_empty() {
        model
    } else {
        freeze(model, &ids, recipe.train.precision.frozen_dtype())
    }
}

/// Makes `device` create floats in the precision's type (pure bf16), before any tensor exists.
fn set_precision<B: AutodiffBackend>(precision: Precision, device: &B::Device) -> Result<()> {
    if precision != Precision::Bf16 {
        return Ok(());
    }
    let int = IntDType::from(<B::IntElem as Element>::dtype());
    set_default_dtypes::<B>(device, FloatDType::BF16, int).map_err(|err| {
        anyhow!(
            "train.precision = \"bf16\": cannot make bf16 the device's float type ({err}); \
             it must be set before any tensor is created on the device"
        )
    })
}

/// Errors, naming the tensor and where it came from, unless every parameter has the type
/// `precision` keeps weights in (an f32↔bf16 mix-up would otherwise panic inside a kernel).
pub fn check_param_dtypes<B: Backend, M: Module<B>>(
    model: &M,
    precision: Precision,
    source: &str,
) -> Result<()> {
    let expected = precision.param_dtype();
    match first_param_not_in(model, expected) {
        None => Ok(()),
        Some((name, found)) => bail!(
            "parameter `{name}` (from {source}) is {found:?}, but train.precision = \"{}\" keeps \
             weights in {expected:?}",
            precision.name()
        ),
    }
}

/// How the run writes its model: the format (`[lora]`: adapter folders over `base`) and the
/// types of checkpoints (the weights') and of the final model (`train.save_dtype`, else the
/// stored type of the HF folder, else f32).
fn model_output(recipe: &Recipe, run: &Path) -> Result<ModelOutput> {
    let t = &recipe.train;
    let stored = match &recipe.model.path {
        Some(path) => stored_dtype(path)
            .with_context(|| format!("reading the weight headers of {}", path.display()))?,
        None => None,
    };
    let format = match &recipe.lora {
        None => ModelFormat::Full,
        Some(lora) => {
            let base = match &recipe.model.path {
                Some(path) => std::path::absolute(path)
                    .with_context(|| format!("resolving {}", path.display()))?,
                None => std::path::absolute(run.join(BASE_DIR))
                    .with_context(|| format!("resolving {}", run.display()))?,
            };
            let spec = AdapterSpec {
                base,
                lora: lora.spec(),
                train_parts: lora.train_parts.clone(),
            };
            ModelFormat::Adapter(spec)
        }
    };
    let checkpoint_dtype = match t.precision {
        Precision::Bf16 => FloatDtype::BF16,
        Precision::F32 | Precision::Bf16Mixed => FloatDtype::F32,
    };
    Ok(ModelOutput {
        format,
        checkpoint_dtype,
        final_dtype: t
            .save_dtype
            .map(FloatDtype::from)
            .or(stored)
            .unwrap_or(FloatDtype::F32),
    })
}

/// Writes the base of a LoRA run built from a preset to `<run>/base` (once), so that its
/// adapter folders name a base that exists.
fn write_preset_base<B: AutodiffBackend>(
    recipe: &Recipe,
    output: &ModelOutput,
    model: &RunModel<B>,
    processor: &Processor,
) -> Result<()> {
    let Some(base) = output.adapter_base() else {
        return Ok(());
    };
    if recipe.model.path.is_some() || base.join("config.json").is_file() {
        return Ok(());
    }
    let run = base.parent().unwrap_or(base);
    let full = ModelOutput {
        format: ModelFormat::Full,
        ..output.clone()
    };
    // A saved model leaves its (fresh) adapters out: this is the base as initialised.
    write_run_folder(run, BASE_DIR, |dir| full.save(model, processor, dir, false))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Param;

    type Ad = Autodiff<Flex>;

    /// A model whose weights are not in the precision's type is refused at setup, naming the
    /// tensor and where it came from, instead of failing inside a kernel.
    #[test]
    fn a_dtype_mix_up_names_the_tensor_and_its_source() {
        let config = preset::build("tiny", 64).unwrap().config;
        let model = Vlm::<Ad>::init_random(&config, 0, &Default::default());
        check_param_dtypes(&model, Precision::F32, "the preset").unwrap();
        check_param_dtypes(&model, Precision::Bf16Mixed, "the preset").unwrap();
        let err = check_param_dtypes(&model, Precision::Bf16, "/models/x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/models/x") && err.contains("\"bf16\""),
            "{err}"
        );
        let Vlm::Idefics3(mut model) = model else {
            panic!("the tiny preset is Idefics3")
        };
        let norm = &mut model.model.text_model.norm.weight;
        *norm = Param::from_tensor(norm.val().cast(FloatDType::BF16).detach());
        let err = check_param_dtypes(&model, Precision::F32, "step_4")
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.text_model.norm.weight"), "{err}");
        assert!(err.contains("step_4") && err.contains("BF16"), "{err}");
    }
}
