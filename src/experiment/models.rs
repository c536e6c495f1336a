//! The model behind an arm, checked before anything is trained ([`check`]) and made ready: a
//! recipe trained into `<out>/runs/<recipe>-<key>/` (a finished run with the same key is
//! reused, an interrupted one resumed), a model folder, an endpoint or a responses file; and the
//! benchmarks, including a recipe's synthetic test split.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safeaware_common::fnv::fnv1a64_hex;
use safeaware_common::output_dir::OutputDir;
use safeaware_model::is_adapter_folder;
use safeaware_trainer::checkpoint::{latest_checkpoint, FINAL_DIR};
use safeaware_trainer::recipe::load_recipe;
use safeaware_trainer::train_data::resolve_files;
use safeaware_trainer::training::TrainJob;

use super::spec::{BenchmarkSource, ModelSource, SourceKind};
use crate::backend::{require, run_on_devices};
use safeaware_runtime::device::DeviceSpec;

/// An arm's model, ready to answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// A local model folder (trained here, an HF folder or a checkpoint).
    Folder(PathBuf),
    Endpoint {
        url: String,
        model: String,
    },
    Responses(PathBuf),
}

impl Model {
    /// What identifies the answers (recorded with each finished evaluation).
    pub fn identity(&self) -> String {
        match self {
            Model::Folder(p) => format!("folder {}", p.display()),
            Model::Endpoint { url, model } => format!("endpoint {model} at {url}"),
            Model::Responses(p) => format!("responses {}", p.display()),
        }
    }
}

/// Folder holding the training runs and their synthetic data cache.
fn runs_dir(out: &Path) -> PathBuf {
    out.join("runs")
}

/// Makes `kind` ready: trains a recipe unless a finished run of it exists.
pub fn prepare(name: &str, kind: &SourceKind<'_>, out: &Path, device: DeviceSpec) -> Result<Model> {
    Ok(match *kind {
        SourceKind::Recipe(recipe, set) => Model::Folder(train(name, recipe, set, out, device)?),
        SourceKind::Folder(p) => Model::Folder(p.to_path_buf()),
        SourceKind::Endpoint(url, model) => Model::Endpoint {
            url: url.to_string(),
            model: model.to_string(),
        },
        SourceKind::Responses(p) => Model::Responses(p.to_path_buf()),
    })
}

/// The run folder of a recipe with overrides: its stem and a key of everything that decides
/// the trained model (the recipe fingerprint and the run length, which the fingerprint leaves
/// out so that a run may be extended).
fn run_dir(recipe: &Path, set: &[String], out: &Path) -> Result<PathBuf> {
    let loaded = load_recipe(recipe, set)?;
    let r = &loaded.recipe;
    let key = format!(
        "{} {:?} {:?}",
        r.fingerprint(),
        r.train.max_steps,
        r.train.epochs
    );
    let stem = recipe
        .file_stem()
        .map_or_else(|| "run".into(), |s| s.to_string_lossy().into_owned());
    Ok(runs_dir(out).join(format!("{stem}-{}", &fnv1a64_hex(key.as_bytes())[..8])))
}

/// Checks that what `kind` needs is there, before anything is trained: a recipe loads, its
/// device is there and its data and base model exist (unless its final model is already
/// trained; with `from`, the final folder of the model it continues from, which may still be
/// trained first); a model folder holds a model; a responses file exists. Endpoints are not
/// called.
pub fn check(
    name: &str,
    kind: &SourceKind<'_>,
    out: &Path,
    device: DeviceSpec,
    from: Option<&Path>,
) -> Result<()> {
    match *kind {
        SourceKind::Recipe(recipe, set) => {
            let mut set = with_device(set, device);
            if let Some(base) = from {
                set = with_base(&set, base);
            }
            check_recipe(recipe, &set, out, from.is_some())
                .with_context(|| format!("models.{name}: recipe {}", recipe.display()))
        }
        SourceKind::Folder(p) if !is_model_folder(p) => bail!(
            "models.{name}.path: {} is not a model folder (no config.json or adapter_config.json)",
            p.display()
        ),
        SourceKind::Responses(p) if !p.is_file() => {
            bail!("models.{name}.responses: {} does not exist", p.display())
        }
        _ => Ok(()),
    }
}

fn is_model_folder(dir: &Path) -> bool {
    dir.join("config.json").is_file() || is_adapter_folder(dir)
}

/// The final folder a recipe model will have (trained or not): `<run>/final`.
pub fn planned_final(source: &ModelSource, out: &Path, device: DeviceSpec) -> Result<PathBuf> {
    let Some(recipe) = &source.recipe else {
        bail!("not a recipe model");
    };
    Ok(run_dir(recipe, &with_device(&source.set, device), out)?.join(FINAL_DIR))
}

/// `set` with `model.path` pointing at `base` (a model's final folder).
pub fn with_base(set: &[String], base: &Path) -> Vec<String> {
    let mut set = set.to_vec();
    let quoted = toml::Value::String(base.display().to_string());
    set.push(format!("model.path={quoted}"));
    set
}

/// See [`check`]: a recipe with overrides `set`; `base_pending`: its `model.path` is another
/// model's final folder, trained before it if missing.
fn check_recipe(recipe: &Path, set: &[String], out: &Path, base_pending: bool) -> Result<()> {
    if run_dir(recipe, set, out)?
        .join(FINAL_DIR)
        .join("config.json")
        .is_file()
    {
        return Ok(());
    }
    let r = load_recipe(recipe, set)?.recipe;
    for w in r.train.workers()? {
        require(w)?;
    }
    let files = resolve_files(&r, &runs_dir(out).join(".cache"))?;
    if let Some(file) = std::iter::once(&files.train)
        .chain(files.val.as_ref())
        .find(|f| !f.is_file())
    {
        bail!("its data file {} does not exist", file.display());
    }
    match &r.model.path {
        Some(base) if !base_pending && !is_model_folder(base) => bail!(
            "its model.path {} is not a model folder (no config.json)",
            base.display()
        ),
        _ => Ok(()),
    }
}

/// A recipe's overrides with the experiment's device.
fn with_device(set: &[String], device: DeviceSpec) -> Vec<String> {
    let mut set = set.to_vec();
    set.push(format!("train.device={device}"));
    set
}

/// Trains `recipe` (with `set` and the experiment's device) unless its run folder holds the
/// final model; resumes an interrupted run. Returns the final model folder. The run folder is
/// claimed for the training as `train` claims it (locked: a second process fails at once).
fn train(
    name: &str,
    recipe: &Path,
    set: &[String],
    out: &Path,
    device: DeviceSpec,
) -> Result<PathBuf> {
    let set = with_device(set, device);
    let dir = run_dir(recipe, &set, out)?;
    let final_dir = dir.join(FINAL_DIR);
    if final_dir.join("config.json").is_file() {
        eprintln!("experiment: model {name}: reusing {}", final_dir.display());
        return Ok(final_dir);
    }
    let loaded = load_recipe(recipe, &set)?;
    let mut r = loaded.recipe;
    r.train.output_dir = Some(dir.clone());
    let workers = r.train.workers()?;
    for w in &workers {
        require(*w)?;
    }
    // Inside the experiment's own folder, which this process holds: never a foreign folder.
    let _claim = OutputDir::claim(&dir, "train", true)?;
    let resume = latest_checkpoint(&dir)?.is_some();
    eprintln!(
        "experiment: model {name}: {} {} in {}",
        if resume { "resuming" } else { "training" },
        recipe.display(),
        dir.display()
    );
    let job = TrainJob {
        recipe: r,
        run_dir: dir.clone(),
        resume,
        stop_at_step: None,
        cache_dir: runs_dir(out).join(".cache"),
        record_recipe: Some((recipe.to_path_buf(), set)),
    };
    let outcome = run_on_devices(&workers, job)
        .with_context(|| format!("training model {name} ({})", recipe.display()))?;
    match outcome.final_dir {
        Some(dir) => Ok(dir),
        None => bail!("training model {name} stopped at step {}", outcome.step),
    }
}

/// The benchmark spec of `source`: as given, or the held-out synthetic benchmark of a recipe's
/// data (generated into the runs' cache if needed).
pub fn benchmark_spec(name: &str, source: &BenchmarkSource, out: &Path) -> Result<String> {
    if let Some(spec) = &source.spec {
        return Ok(spec.clone());
    }
    let Some(recipe) = &source.recipe else {
        bail!("benchmarks.{name}: give `spec` or `recipe`");
    };
    let loaded = load_recipe(recipe, &source.set)?;
    let files = resolve_files(&loaded.recipe, &runs_dir(out).join(".cache"))
        .with_context(|| format!("benchmarks.{name}: the data of {}", recipe.display()))?;
    match files.benchmark {
        Some(file) => Ok(format!("jsonl:{}", file.display())),
        None => bail!(
            "benchmarks.{name}: {} has no synthetic data, so no held-out benchmark",
            recipe.display()
        ),
    }
}
