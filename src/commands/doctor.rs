//! `safeaware doctor`: check a machine before using it (see `src/doctor/`). Prints what it
//! found, one line per check; exits 2 when the device cannot be used, 1 when a check failed.

use std::path::PathBuf;

use anyhow::{bail, Result};
use safeaware_runtime::device::DeviceSpec;

use crate::commands::bench::configure_threads;
use crate::doctor::{self, DoctorOptions, Report};
use crate::output::{out, outln};

/// Arguments of `safeaware doctor`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// The device to check: cpu | cuda:N | wgpu (default: the first GPU backend built in, else cpu).
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// More parity fixture folders (the layout of model/tests/fixtures/parity/*/), repeatable.
    #[arg(long = "fixtures", value_name = "DIR")]
    pub fixtures: Vec<PathBuf>,
    /// Model to time a training step and generation with: an HF folder (config-only is enough) or a preset.
    #[arg(long, default_value = "tiny")]
    pub model: String,
    /// Largest |Δlogit| against HF that a parity fixture may show.
    #[arg(long, default_value_t = 1e-3)]
    pub tolerance: f32,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `safeaware doctor`.
pub fn run(args: DoctorArgs) -> Result<()> {
    // A usage error, found before any check runs (a negative tolerance would fail every
    // parity check and blame the machine).
    if !(args.tolerance > 0.0 && args.tolerance.is_finite()) {
        bail!(
            "--tolerance must be a positive number (the largest |Δlogit| allowed), got {}",
            args.tolerance
        );
    }
    let threads = configure_threads(None)?;
    let options = DoctorOptions {
        device: args.device.unwrap_or_else(default_device),
        fixtures: args.fixtures,
        model: args.model,
        tolerance: args.tolerance,
        loss_tolerance: 1e-3,
        threads,
    };
    let report = doctor::run(&options)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        out!("{}", render(&report))?;
    }
    if let Some(unavailable) = report.unavailable {
        return Err(unavailable.into());
    }
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} checks failed on {}:\n  {}",
            failed.len(),
            report.checks.len(),
            report.device,
            failed.join("\n  ")
        );
    }
    Ok(())
}

/// The device a GPU box is checked on without `--device`.
fn default_device() -> DeviceSpec {
    if cfg!(feature = "cuda") {
        DeviceSpec::Cuda(0)
    } else if cfg!(feature = "wgpu") {
        DeviceSpec::Wgpu
    } else {
        DeviceSpec::Cpu
    }
}

/// The report as text: backends, devices, then one line per check.
fn render(report: &Report) -> String {
    let mut out = format!(
        "backends built in: {}\ndevices:\n",
        report.backends.join(", ")
    );
    for device in &report.devices {
        let name = device["device"].as_str().unwrap_or("?");
        match device["error"].as_str() {
            Some(error) => out.push_str(&format!("  {name}: unavailable: {error}\n")),
            None => {
                let memory = device["memory_bytes"].as_u64().map_or(String::new(), |b| {
                    format!(", {:.1} GiB", b as f64 / (1u64 << 30) as f64)
                });
                out.push_str(&format!(
                    "  {name}: {}{memory} ({})\n",
                    device["name"].as_str().unwrap_or("?"),
                    device["detail"].as_str().unwrap_or("")
                ));
            }
        }
    }
    out.push_str(&format!("checks on {}:\n", report.device));
    for check in &report.checks {
        let mark = if check.ok { "ok  " } else { "FAIL" };
        // Parity lines keep the exact form `parity <name>: max_abs_logit_diff=<x> generated_match=<bool>`.
        out.push_str(&format!("{mark} {}: {}\n", check.name, check.detail));
    }
    let failed = report.checks.iter().filter(|c| !c.ok).count();
    out.push_str(&match failed {
        0 => format!(
            "doctor: all {} checks passed on {}\n",
            report.checks.len(),
            report.device
        ),
        n => format!(
            "doctor: {n} of {} checks FAILED on {}\n",
            report.checks.len(),
            report.device
        ),
    });
    out
}
