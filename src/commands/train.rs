//! `safeaware train`: run a recipe, resume a run, or pause one at a step; then evaluate the
//! final model on the held-out benchmark and print the paper-style table.

use std::path::{Path, PathBuf};

use crate::backend::{require, run_on, run_on_devices};
use crate::folder_eval::FolderEval;
use anyhow::{bail, Context, Result};
use safeaware_common::output_dir::OutputDir;
use safeaware_data::benchmark::Benchmark;
use safeaware_eval::report::REPORT_MD;
use safeaware_runtime::device::DeviceSpec;
use safeaware_trainer::benchmark_guard::evaluation_benchmark;
use safeaware_trainer::evaluation::EvalPlan;
use safeaware_trainer::recipe::{load_recipe, Recipe, RESOLVED_RECIPE_FILE};
use safeaware_trainer::training::TrainJob;

use crate::output::{out, outln};

/// Arguments of `safeaware train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Recipe TOML file (see recipes/).
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    pub recipe: Option<PathBuf>,
    /// Continue the run in this folder from its latest complete checkpoint.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Override a recipe key, e.g. `--set train.max_steps=50` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run folder (default: `train.output_dir`, else `checkpoints/<recipe stem>/`).
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Stop cleanly after writing a checkpoint at step N, as if interrupted.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub stop_at_step: Option<u64>,
    /// Write into an --out folder safeaware did not make (a non-empty folder without its
    /// marker is refused otherwise).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Skip the evaluation of the final model.
    #[arg(long)]
    pub no_eval: bool,
    /// Data-parallel workers, e.g. `cuda:0,cuda:1` or `cpu:0,cpu:1` (the same as
    /// `--set 'train.devices=["cuda:0","cuda:1"]'`); a run resumes on any number of devices.
    #[arg(long, value_delimiter = ',', value_name = "DEVICE,...")]
    pub devices: Vec<String>,
}

/// Runs `safeaware train`.
pub fn run(mut args: TrainArgs) -> Result<()> {
    if !args.devices.is_empty() {
        let list: Vec<String> = args
            .devices
            .iter()
            .map(|d| format!("{:?}", d.trim()))
            .collect();
        args.set
            .push(format!("train.devices=[{}]", list.join(", ")));
    }
    // The resolved recipe is (re)written by the training job only once the run is accepted, so
    // a refused start (existing checkpoints, a resume with another seed or data) leaves the
    // run folder untouched.
    // The run folder is locked for the whole command (a second process on it fails at once,
    // naming this one's pid); a fresh run also claims it (see `OutputDir::claim`).
    let _claim;
    let (recipe, run_dir, record_recipe) = match (&args.recipe, &args.resume) {
        (_, Some(run_dir)) => {
            let resolved = run_dir.join(RESOLVED_RECIPE_FILE);
            if !resolved.is_file() {
                bail!(
                    "{} is not a run folder: it has no {RESOLVED_RECIPE_FILE}",
                    run_dir.display()
                );
            }
            _claim = OutputDir::lock(run_dir)?;
            let record = (!args.set.is_empty()).then(|| (resolved.clone(), args.set.clone()));
            (
                load_recipe(&resolved, &args.set)?.recipe,
                run_dir.clone(),
                record,
            )
        }
        (Some(path), None) => {
            let loaded = load_recipe(path, &args.set)?;
            let run_dir = args.out.clone().unwrap_or_else(|| loaded.run_dir());
            // A missing GPU is an error before anything is written.
            for worker in loaded.recipe.train.workers()? {
                require(worker)?;
            }
            _claim = OutputDir::claim(&run_dir, "train", args.overwrite)?;
            let mut recipe = loaded.recipe.clone();
            recipe.train.output_dir = Some(run_dir.clone());
            (recipe, run_dir, Some((path.clone(), args.set.clone())))
        }
        (None, None) => bail!("give --recipe <toml> or --resume <run-dir>"),
    };
    let workers = recipe.train.workers()?;
    let device: DeviceSpec = workers[0];
    let cache_dir = run_dir.parent().unwrap_or(Path::new(".")).join(".cache");
    let job = TrainJob {
        recipe: recipe.clone(),
        run_dir: run_dir.clone(),
        resume: args.resume.is_some(),
        stop_at_step: args.stop_at_step,
        cache_dir,
        record_recipe,
    };
    let outcome = run_on_devices(&workers, job)?;
    let Some(final_dir) = outcome.final_dir else {
        eprintln!(
            "paused at step {}: continue with `safeaware train --resume {}`",
            outcome.step,
            run_dir.display()
        );
        return Ok(());
    };
    if args.no_eval {
        return Ok(());
    }
    evaluate_final(
        &recipe,
        device,
        &run_dir,
        final_dir,
        outcome.benchmark.as_deref(),
    )
}

/// Evaluates the final model on `eval.benchmark`, else on the synthetic world's held-out
/// benchmark file, into `<run>/eval/final`, and prints the summary.
fn evaluate_final(
    recipe: &Recipe,
    device: DeviceSpec,
    run_dir: &Path,
    final_dir: PathBuf,
    benchmark_file: Option<&Path>,
) -> Result<()> {
    let Some(spec) = evaluation_benchmark(recipe, benchmark_file) else {
        eprintln!(
            "no benchmark to evaluate on (set eval.benchmark); final model in {}",
            final_dir.display()
        );
        return Ok(());
    };
    let out = run_dir.join("eval").join("final");
    let plan = EvalPlan {
        max_new_tokens: recipe.eval.max_new_tokens,
        batch_size: recipe.eval.batch_size,
        limit: recipe.eval.limit,
    };
    let mut benchmark =
        Benchmark::open(&spec, None).with_context(|| format!("opening benchmark {spec}"))?;
    if let Some(limit) = plan.limit {
        benchmark.truncate(limit);
    }
    let task = FolderEval {
        folder: final_dir,
        base: None,
        name: "training run".to_string(),
        benchmark: &benchmark,
        config: &plan.run_config(&out),
        settings: plan.local_settings(),
        ablation: None,
    };
    let results = run_on(device, task)?;
    out!("{}", safeaware_eval::report::summary(&results))?;
    outln!("report: {}", out.join(REPORT_MD).display())?;
    Ok(())
}
