//! `safeaware experiment run`: an experiment file ([`spec`]) lists arms — a model source × a
//! prompt × a decoding, each naming its baseline arm. The models are made ready ([`models`]:
//! recipes trained or reused by fingerprint), every arm is evaluated on every benchmark
//! ([`arm_eval`]: finished evaluations reused, interrupted ones resumed), and the comparison is
//! written (`comparison.json`, `comparison.md`, `comparison.html`; see
//! [`safeaware_eval::comparison`]).
//!
//! Output folder: `runs/` (training runs and the synthetic data cache), `evals/<benchmark>/<arm>/`
//! (one evaluation each, with its image-ablation run inside) and the comparison files. The
//! folder and each training run in it are locked while the experiment runs. An arm that scored
//! nothing, or failed on more items than `--max-error-rate` allows, is marked failed in the
//! comparison and makes the command exit non-zero.

pub mod arm_eval;
pub mod models;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safeaware_common::output_dir::{refuse_input, OutputDir};
use safeaware_data::benchmark::{Benchmark, BenchmarkSpec};
use safeaware_eval::compare::Run;
use safeaware_eval::comparison::{self, ArmRun, References, Skipped, COMPARISON_MD};
use safeaware_eval::decoding::DecodingMode;
use safeaware_eval::outcome::{ErrorBudget, RunFailure};
use safeaware_eval::runner::RESULTS_FILE;

use arm_eval::{eval_dir, ArmEval};
use models::Model;
use spec::{Arm, Experiment};

/// How an experiment is run besides its file: whether a foreign `--out` may be written into,
/// and how many failed items an arm may have.
pub struct RunOptions {
    pub overwrite: bool,
    pub budget: ErrorBudget,
}

/// What a finished experiment wrote: the Markdown comparison and the arms that failed.
pub struct Finished {
    pub markdown: String,
    /// `(arm on benchmark, why)` of every failed arm evaluation.
    pub failures: Vec<(String, RunFailure)>,
}

/// Runs the experiment of `file` into `out`. Everything an arm needs is checked first, so a
/// missing file is found before any model trains; the output folder is claimed (locked, a
/// foreign one refused without `overwrite`, never one of the inputs).
pub fn run(
    experiment: &Experiment,
    file: &Path,
    out: &Path,
    options: &RunOptions,
) -> Result<Finished> {
    let inputs = inputs(experiment, file);
    let named: Vec<(&str, &Path)> = inputs
        .iter()
        .map(|(k, p)| (k.as_str(), p.as_path()))
        .collect();
    refuse_input("--out", out, &named)?;
    let _claim = OutputDir::claim(out, "experiment", options.overwrite)?;
    check_models(experiment, out)?;
    let benchmarks = open_benchmarks(experiment, out)?;
    let references = experiment
        .references
        .as_deref()
        .map(References::load)
        .transpose()?;
    let models = prepare_models(experiment, out)?;
    let mut arm_runs = Vec::new();
    let mut failures = Vec::new();
    let mut skipped: Vec<Skipped> = Vec::new();
    for (bench_name, source, benchmark) in &benchmarks {
        for (i, arm) in experiment.arms.iter().enumerate() {
            let model = &models[&arm.model];
            if let Some(reason) = cannot_run(arm, model) {
                eprintln!("experiment: arm {} skipped: {reason}", arm.name);
                if !skipped.iter().any(|s| s.name == arm.name) {
                    let name = arm.name.clone();
                    skipped.push(Skipped { name, reason });
                }
                continue;
            }
            let task = ArmEval {
                arm,
                model,
                benchmark,
                limit: source.limit,
                ablation: match model {
                    Model::Responses(_) => None,
                    _ => arm.ablation(experiment.image_ablation_default()?)?,
                },
                eval: &experiment.eval,
                device: experiment.device,
                dir: eval_dir(out, bench_name, &arm.name),
            };
            let at = format!(
                "arm {}/{} {} on {bench_name}",
                i + 1,
                experiment.arms.len(),
                arm.name
            );
            let (arm_run, failure) = evaluate(&task, &at, experiment, bench_name, options.budget)?;
            if let Some(failure) = failure {
                eprintln!("experiment: {at}: failed: {failure}");
                failures.push((format!("{} on {bench_name}", arm.name), failure));
            }
            arm_runs.push(arm_run);
        }
    }
    comparison::write(
        out,
        &experiment.title,
        &arm_runs,
        &skipped,
        references.as_ref(),
    )?;
    let path = out.join(COMPARISON_MD);
    let markdown =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Finished { markdown, failures })
}

/// Checks every model an arm uses (see [`models::check`]) before any is trained: model
/// folders and responses files first, then recipes (whose synthetic data may take a while to
/// generate).
fn check_models(experiment: &Experiment, out: &Path) -> Result<()> {
    let used: BTreeSet<&String> = experiment.arms.iter().map(|a| &a.model).collect();
    let mut kinds = Vec::new();
    for name in used {
        kinds.push((name, experiment.models[name].kind(name)?));
    }
    kinds.sort_by_key(|(_, kind)| matches!(kind, spec::SourceKind::Recipe(..)));
    for (name, kind) in &kinds {
        match &experiment.models[*name].from {
            None => models::check(name, kind, out, experiment.device, None)?,
            Some(from) => {
                let base = models::planned_final(&experiment.models[from], out, experiment.device)?;
                models::check(name, kind, out, experiment.device, Some(&base))?;
            }
        }
    }
    Ok(())
}

/// The files and folders the experiment reads, by the key that names them: `--out` may be none
/// of them.
fn inputs(experiment: &Experiment, file: &Path) -> Vec<(String, PathBuf)> {
    let mut inputs = vec![("the experiment file".to_string(), file.to_path_buf())];
    for (name, m) in &experiment.models {
        for (key, path) in [
            ("recipe", &m.recipe),
            ("path", &m.path),
            ("responses", &m.responses),
        ] {
            if let Some(p) = path {
                inputs.push((format!("models.{name}.{key}"), p.clone()));
            }
        }
    }
    for (name, b) in &experiment.benchmarks {
        let spec = b.spec.as_deref().and_then(|s| BenchmarkSpec::parse(s).ok());
        if let Some(BenchmarkSpec::MmSafeAware(p) | BenchmarkSpec::Jsonl(p)) = spec {
            inputs.push((format!("benchmarks.{name}.spec"), p));
        }
        for (key, path) in [("recipe", &b.recipe), ("annotations", &b.annotations)] {
            if let Some(p) = path {
                inputs.push((format!("benchmarks.{name}.{key}"), p.clone()));
            }
        }
    }
    if let Some(r) = &experiment.references {
        inputs.push(("references".to_string(), r.clone()));
    }
    inputs
}

/// Every benchmark, opened before anything trains (a recipe's synthetic test split is
/// generated into the runs' cache), with its source.
fn open_benchmarks<'a>(
    experiment: &'a Experiment,
    out: &Path,
) -> Result<Vec<(&'a str, &'a spec::BenchmarkSource, Benchmark)>> {
    let mut opened = Vec::new();
    for (name, source) in &experiment.benchmarks {
        let spec = models::benchmark_spec(name, source, out)?;
        let mut benchmark = Benchmark::open(&spec, source.annotations.as_deref())
            .with_context(|| format!("benchmarks.{name}: loading {spec}"))?;
        if let Some(n) = source.limit {
            benchmark.truncate(n);
        }
        opened.push((name.as_str(), source, benchmark));
    }
    Ok(opened)
}

/// Evaluates one arm on one benchmark unless it finished before; returns its run and its
/// failure if it failed (nothing scored, or more failed items than `budget` allows).
fn evaluate(
    task: &ArmEval<'_>,
    at: &str,
    experiment: &Experiment,
    bench: &str,
    budget: ErrorBudget,
) -> Result<(ArmRun, Option<RunFailure>)> {
    let arm = task.arm;
    if task.finished() {
        eprintln!("experiment: {at}: finished before, reused");
    } else {
        eprintln!("experiment: {at}: evaluating");
        task.run()
            .with_context(|| format!("arm {} on {bench}", arm.name))?;
    }
    let run = load_run(&task.dir, &arm.name)?;
    let failure = budget.judge(run.results.tally()).err();
    let arm_run = ArmRun {
        name: arm.name.clone(),
        baseline: arm.baseline.clone(),
        benchmark: bench.to_string(),
        description: describe(arm, task.model, &experiment.models[&arm.model]),
        run,
        failed: failure.as_ref().map(RunFailure::short),
    };
    Ok((arm_run, failure))
}

/// Makes every model an arm uses ready (training what is not trained yet; a model `from`
/// another after that one).
fn prepare_models(experiment: &Experiment, out: &Path) -> Result<BTreeMap<String, Model>> {
    let mut ready = BTreeMap::new();
    for arm in &experiment.arms {
        prepare_model(experiment, &arm.model, out, &mut ready)?;
    }
    Ok(ready)
}

/// Makes model `name` ready in `ready`, its `from` model first.
fn prepare_model(
    experiment: &Experiment,
    name: &str,
    out: &Path,
    ready: &mut BTreeMap<String, Model>,
) -> Result<()> {
    if ready.contains_key(name) {
        return Ok(());
    }
    let source = &experiment.models[name];
    let model = match (&source.from, source.kind(name)?) {
        (Some(from), spec::SourceKind::Recipe(recipe, set)) => {
            prepare_model(experiment, from, out, ready)?;
            let Model::Folder(base) = &ready[from.as_str()] else {
                bail!("models.{name}.from: `{from}` is not a trained model");
            };
            let set = models::with_base(set, base);
            let kind = spec::SourceKind::Recipe(recipe, &set);
            models::prepare(name, &kind, out, experiment.device)?
        }
        (_, kind) => models::prepare(name, &kind, out, experiment.device)?,
    };
    ready.insert(name.to_string(), model);
    Ok(())
}

/// Why an arm cannot run with its model, if it cannot (VCD needs the model's logits).
fn cannot_run(arm: &Arm, model: &Model) -> Option<String> {
    let local = matches!(model, Model::Folder(_));
    (arm.decoding == DecodingMode::Vcd && !local)
        .then(|| "VCD needs a local model (HF folder or checkpoint), not an endpoint or recorded responses".into())
}

/// One line on an arm: its model source, prompt and decoding.
fn describe(arm: &Arm, model: &Model, source: &spec::ModelSource) -> String {
    let what = match (&source.recipe, model) {
        (Some(recipe), Model::Folder(dir)) => {
            format!(
                "model `{}` trained from {} ({})",
                arm.model,
                recipe.display(),
                dir.display()
            )
        }
        _ => format!("model `{}`: {}", arm.model, model.identity()),
    };
    format!("{what}; prompt {}; decoding {}", arm.prompt, arm.decoding)
}

fn load_run(dir: &Path, name: &str) -> Result<Run> {
    let path: PathBuf = dir.join(RESULTS_FILE);
    let mut run = Run::load(&path).with_context(|| format!("reading {}", path.display()))?;
    run.label = name.to_string();
    Ok(run)
}
