//! `safeaware experiment run <experiment.toml>`: train what an experiment's arms need, evaluate
//! every arm on every benchmark and write the comparison (see [`crate::experiment`]); exit
//! non-zero, naming the causes, when an arm's evaluation failed.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::commands::error_budget::ErrorBudgetArgs;
use crate::experiment::{self, spec, RunOptions};
use crate::output::{out, outln};

/// Subcommands of `experiment`.
#[derive(clap::Subcommand)]
pub enum ExperimentCommand {
    /// Run an experiment (resumable: finished trainings and evaluations are reused).
    Run(RunArgs),
}

/// `experiment run` flags.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The experiment file (see experiments/).
    pub experiment: PathBuf,
    /// Output folder (default: the file's `out`, else `runs/<file stem>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override a key, e.g. `--set models.base.path=/models/SmolVLM-256M-Instruct`,
    /// `--set eval.max_tokens=64` or `--set arms.vcr.decoding=vcd` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Write into an --out folder safeaware did not make (a non-empty folder without its
    /// marker is refused otherwise).
    #[arg(long)]
    pub overwrite: bool,
    // Applied to each arm evaluation; a failed arm is marked in the comparison.
    #[command(flatten)]
    pub errors: ErrorBudgetArgs,
}

/// Runs `safeaware experiment`.
pub fn run(command: ExperimentCommand) -> Result<()> {
    let ExperimentCommand::Run(args) = command;
    let budget = args.errors.budget()?;
    let loaded = spec::load(&args.experiment, &args.set)?;
    let out = args.out.or_else(|| loaded.out.clone()).unwrap_or_else(|| {
        let stem = args
            .experiment
            .file_stem()
            .map_or_else(|| "experiment".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from("runs").join(stem)
    });
    let options = RunOptions {
        overwrite: args.overwrite,
        budget,
    };
    let finished = experiment::run(&loaded, &args.experiment, &out, &options)?;
    out!("{}", finished.markdown)?;
    outln!(
        "\nwrote comparison.json, comparison.md and comparison.html in {}",
        out.display()
    )?;
    if finished.failures.is_empty() {
        return Ok(());
    }
    let mut names = Vec::new();
    for (at, failure) in finished.failures {
        eprintln!("arm {at} failed: {failure}");
        for line in failure.cause_lines() {
            eprintln!("{line}");
        }
        names.push(at);
    }
    bail!(
        "{} arm evaluation(s) failed ({}); they are marked in the comparison",
        names.len(),
        names.join(", ")
    )
}
