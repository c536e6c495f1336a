//! `safeaware experiment run`: an experiment file ([`spec`]) lists arms — a model source × a
//! prompt × a decoding, each naming its baseline arm. The models are made ready ([`models`]:
//! recipes trained or reused by fingerprint), every arm is evaluated on every benchmark
//! ([`arm_eval`]: finished evaluations reused, interrupted ones resumed), and the comparison is
//! written (`comparison.json`, `comparison.md`, `comparison.html`; see
//! [`safeaware_eval::comparison`]).
//!
//! Output folder: `runs/` (training runs and the synthetic data cache), `evals/<benchmark>/<arm>/`
//! (one evaluation each, with its image-ablation run inside) and the comparison files.

pub mod arm_eval;
pub mod models;
pub mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use safeaware_data::benchmark::Benchmark;
use safeaware_eval::compare::Run;
use safeaware_eval::comparison::{self, ArmRun, References, Skipped, COMPARISON_MD};
use safeaware_eval::decoding::DecodingMode;
use safeaware_eval::runner::RESULTS_FILE;

use arm_eval::{eval_dir, ArmEval};
use models::Model;
use spec::{Arm, Experiment};

/// Runs the experiment into `out` and returns the Markdown comparison.
pub fn run(experiment: &Experiment, out: &Path) -> Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let models = prepare_models(experiment, out)?;
    let mut arm_runs = Vec::new();
    let mut skipped: Vec<Skipped> = Vec::new();
    for (bench_name, source) in &experiment.benchmarks {
        let spec = models::benchmark_spec(bench_name, source, out)?;
        let mut benchmark = Benchmark::open(&spec, source.annotations.as_deref())
            .with_context(|| format!("benchmarks.{bench_name}: loading {spec}"))?;
        if let Some(n) = source.limit {
            benchmark.truncate(n);
        }
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
                benchmark: &benchmark,
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
            arm_runs.push(evaluate(&task, &at, experiment, bench_name)?);
        }
    }
    let references = experiment
        .references
        .as_deref()
        .map(References::load)
        .transpose()?;
    comparison::write(
        out,
        &experiment.title,
        &arm_runs,
        &skipped,
        references.as_ref(),
    )?;
    let path = out.join(COMPARISON_MD);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// Evaluates one arm on one benchmark unless it finished before; returns its run.
fn evaluate(task: &ArmEval<'_>, at: &str, experiment: &Experiment, bench: &str) -> Result<ArmRun> {
    let arm = task.arm;
    if task.finished() {
        eprintln!("experiment: {at}: finished before, reused");
    } else {
        eprintln!("experiment: {at}: evaluating");
        task.run()
            .with_context(|| format!("arm {} on {bench}", arm.name))?;
    }
    Ok(ArmRun {
        name: arm.name.clone(),
        baseline: arm.baseline.clone(),
        benchmark: bench.to_string(),
        description: describe(arm, task.model, &experiment.models[&arm.model]),
        run: load_run(&task.dir, &arm.name)?,
    })
}

/// Makes every model an arm uses ready (training what is not trained yet).
fn prepare_models(experiment: &Experiment, out: &Path) -> Result<BTreeMap<String, Model>> {
    let mut ready = BTreeMap::new();
    for arm in &experiment.arms {
        if ready.contains_key(&arm.model) {
            continue;
        }
        let source = &experiment.models[&arm.model];
        let kind = source.kind(&arm.model)?;
        let model = models::prepare(&arm.model, &kind, out, experiment.device)?;
        ready.insert(arm.model.clone(), model);
    }
    Ok(ready)
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
