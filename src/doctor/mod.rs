//! `safeaware doctor`: the first thing to run on a new machine. It lists the backends built
//! in and the devices they see, then checks one device: HF parity on the shipped fixtures (and
//! any others given), a few training steps against the CPU, and the speed of a training step
//! and of generation.

mod fixtures;

use std::path::{Path, PathBuf};

use crate::backend::probe::{self, DeviceUnavailable};
use crate::backend::run_on;
use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use safeaware_model::parity::{fixture_name, run_fixture, ParityOutcome};
use safeaware_runtime::device::DeviceSpec;
use safeaware_runtime::guard::guarded;
use safeaware_runtime::task::BackendTask;
use serde::Serialize;
use serde_json::{json, Value};

use crate::bench::{self, BenchSpec, Dtype, Mode};

/// What to check.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The device the checks run on.
    pub device: DeviceSpec,
    /// Fixture folders checked besides the shipped ones.
    pub fixtures: Vec<PathBuf>,
    /// The model timed: an HF folder (config-only is enough) or a preset.
    pub model: String,
    /// Largest |Δlogit| a parity fixture may show.
    pub tolerance: f32,
    /// Largest relative difference of a training step's loss from the CPU's.
    pub loss_tolerance: f64,
    /// CPU threads (for the report).
    pub threads: usize,
}

/// One check and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `device`, `parity <fixture>`, `training`, `timing`.
    pub name: String,
    /// Passed (a skipped check passes).
    pub ok: bool,
    /// One line: the figures, or what went wrong.
    pub detail: String,
    /// The figures, for `--json`.
    #[serde(flatten)]
    pub data: serde_json::Map<String, Value>,
}

impl Check {
    fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>, data: Value) -> Self {
        let data = match data {
            Value::Object(map) => map,
            _ => Default::default(),
        };
        Check {
            name: name.into(),
            ok,
            detail: detail.into(),
            data,
        }
    }
}

/// Everything doctor found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Backends compiled into this binary.
    pub backends: Vec<&'static str>,
    /// Every device those backends see, or why one sees none.
    pub devices: Vec<Value>,
    /// The device checked.
    pub device: String,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// Every check passed.
    pub passed: bool,
    /// Why the device could not be used, when it could not.
    #[serde(skip)]
    pub unavailable: Option<DeviceUnavailable>,
}

/// Backends compiled in.
pub fn backends() -> Vec<&'static str> {
    [
        (cfg!(feature = "cpu"), "cpu"),
        (cfg!(feature = "cuda"), "cuda"),
        (cfg!(feature = "wgpu"), "wgpu"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect()
}

/// Runs every check on `opts.device`. Only a failure to set up (e.g. unpacking the shipped
/// fixtures) is an error: a failed check is a [`Check`] with `ok: false`.
pub fn run(opts: &DoctorOptions) -> Result<Report> {
    let devices = probe::list_devices()
        .into_iter()
        .map(|d| match d {
            Ok(info) => json!(info),
            Err(err) => json!({"device": err.device, "error": err.reason}),
        })
        .collect();
    let mut report = Report {
        backends: backends(),
        devices,
        device: opts.device.to_string(),
        checks: Vec::new(),
        passed: false,
        unavailable: None,
    };
    match probe::probe(opts.device) {
        Ok(info) => report.checks.push(Check::new(
            "device",
            true,
            format!("{} ({})", info.name, info.detail),
            json!(info),
        )),
        Err(err) => {
            report
                .checks
                .push(Check::new("device", false, err.reason.clone(), json!({})));
            report.unavailable = Some(err);
            return Ok(report);
        }
    }
    let shipped = fixtures::unpack()?;
    let folders: Vec<PathBuf> = shipped
        .folders
        .iter()
        .chain(&opts.fixtures)
        .cloned()
        .collect();
    report.checks.extend(parity_checks(opts, &folders));
    report.checks.push(training_check(opts));
    report.checks.push(timing_check(opts));
    report.passed = report.checks.iter().all(|c| c.ok);
    Ok(report)
}

/// One check per fixture folder.
fn parity_checks(opts: &DoctorOptions, folders: &[PathBuf]) -> Vec<Check> {
    let task = ParityTask { folders };
    let outcomes = match run_on(opts.device, task) {
        Ok(outcomes) => outcomes,
        Err(err) => folders.iter().map(|_| Err(format!("{err:#}"))).collect(),
    };
    folders
        .iter()
        .zip(outcomes)
        .map(|(folder, outcome)| parity_check(&fixture_name(folder), outcome, opts.tolerance))
        .collect()
}

fn parity_check(name: &str, outcome: Result<ParityOutcome, String>, tolerance: f32) -> Check {
    let name = format!("parity {name}");
    match outcome {
        Ok(o) => {
            let ok = o.passes(tolerance);
            let mut detail = format!(
                "max_abs_logit_diff={:e} generated_match={}",
                o.max_abs_logit_diff, o.generated_match
            );
            if !ok {
                detail.push_str(&format!(
                    " (the limit is {tolerance:e} and the same greedy tokens as HF)"
                ));
            }
            let data = json!({
                "max_abs_logit_diff": o.max_abs_logit_diff,
                "generated_match": o.generated_match,
                "tolerance": tolerance,
            });
            Check::new(name, ok, detail, data)
        }
        Err(err) => Check::new(name, false, err, json!({})),
    }
}

/// Runs fixtures on a device, each guarded so that one failing kernel does not hide the others.
struct ParityTask<'a> {
    folders: &'a [PathBuf],
}

impl BackendTask for ParityTask<'_> {
    type Output = Vec<Result<ParityOutcome, String>>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Self::Output> {
        Ok(self
            .folders
            .iter()
            .map(|folder| run_guarded::<B::InnerBackend>(folder, &device))
            .collect())
    }
}

fn run_guarded<B: burn::tensor::backend::Backend>(
    folder: &Path,
    device: &B::Device,
) -> Result<ParityOutcome, String> {
    match guarded(
        || format!("fixture {}", folder.display()),
        || run_fixture::<B>(folder, device),
    ) {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(err)) => Err(err.to_string()),
        Err(failure) => Err(failure.to_string()),
    }
}

/// Training steps of the tiny preset on the device against the same steps on the CPU.
fn training_check(opts: &DoctorOptions) -> Check {
    const STEPS: usize = 5;
    if opts.device == DeviceSpec::Cpu || !cfg!(feature = "cpu") {
        let why = if opts.device == DeviceSpec::Cpu {
            "the device is the CPU"
        } else {
            "no CPU backend in this binary"
        };
        return Check::new(
            "training",
            true,
            format!("skipped: {why}"),
            json!({"skipped": true}),
        );
    }
    let spec = |device| BenchSpec {
        mode: Mode::Train,
        model: "tiny".into(),
        batch: 2,
        seq: 48,
        steps: STEPS,
        warmup: 0,
        new_tokens: 1,
        device,
        dtype: Dtype::F32,
        threads: opts.threads,
        seed: 0,
        peak_flops: None,
        no_prefill: true,
        freeze: Vec::new(),
        lora: None,
        activation_checkpointing: false,
    };
    let losses = |device| -> Result<Vec<f64>> {
        let report = bench::run(&spec(device))?;
        Ok(serde_json::from_value(report["losses"].clone())?)
    };
    let (ours, cpu) = match (losses(opts.device), losses(DeviceSpec::Cpu)) {
        (Ok(ours), Ok(cpu)) => (ours, cpu),
        (Err(err), _) | (_, Err(err)) => {
            return Check::new("training", false, format!("{err:#}"), json!({}))
        }
    };
    let worst = ours
        .iter()
        .zip(&cpu)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1e-12))
        .fold(0.0f64, |w, d| if d.is_nan() { f64::NAN } else { w.max(d) });
    let ok = ours.len() == cpu.len() && worst <= opts.loss_tolerance;
    let detail = format!(
        "{STEPS} steps of the tiny preset: largest relative loss difference from the CPU {worst:.2e} (limit {:e})",
        opts.loss_tolerance
    );
    Check::new(
        "training",
        ok,
        detail,
        json!({"losses": ours, "losses_cpu": cpu, "max_rel_loss_diff": worst}),
    )
}

/// Speed of a training step and of greedy generation for `opts.model`.
fn timing_check(opts: &DoctorOptions) -> Check {
    let spec = |mode, batch, seq| BenchSpec {
        mode,
        model: opts.model.clone(),
        batch,
        seq,
        steps: 2,
        warmup: 1,
        new_tokens: 16,
        device: opts.device,
        dtype: Dtype::F32,
        threads: opts.threads,
        seed: 0,
        peak_flops: None,
        no_prefill: true,
        freeze: Vec::new(),
        lora: None,
        activation_checkpointing: false,
    };
    let runs = (|| -> Result<(Value, Value)> {
        Ok((
            bench::run(&spec(Mode::Train, 4, 128))?,
            bench::run(&spec(Mode::Generate, 1, 64))?,
        ))
    })();
    let (train, generate) = match runs {
        Ok(runs) => runs,
        Err(err) => return Check::new("timing", false, format!("{err:#}"), json!({})),
    };
    let figure = |r: &Value, key: &str| r[key].as_f64().unwrap_or(f64::NAN);
    let memory = train["peak_mem_mib"]
        .as_f64()
        .map_or("n/a".into(), |m| format!("{m:.0} MiB"));
    let detail = format!(
        "{}: train step (4×128) {:.3} s, {:.0} tokens/s, peak memory {memory}; generation (1×64, 16 new) {:.1} tokens/s",
        opts.model,
        figure(&train, "median_s"),
        figure(&train, "tokens_per_s"),
        figure(&generate, "tokens_per_s"),
    );
    Check::new(
        "timing",
        true,
        detail,
        json!({"train": train, "generate": generate}),
    )
}
