//! `safeaware experiment run <experiment.toml>`: train what an experiment's arms need, evaluate
//! every arm on every benchmark and write the comparison (see [`crate::experiment`]).

use std::path::PathBuf;

use anyhow::Result;

use crate::experiment::{self, spec};
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
}

/// Runs `safeaware experiment`.
pub fn run(command: ExperimentCommand) -> Result<()> {
    let ExperimentCommand::Run(args) = command;
    let loaded = spec::load(&args.experiment, &args.set)?;
    let out = args.out.or_else(|| loaded.out.clone()).unwrap_or_else(|| {
        let stem = args
            .experiment
            .file_stem()
            .map_or_else(|| "experiment".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from("runs").join(stem)
    });
    let text = experiment::run(&loaded, &out)?;
    out!("{text}")?;
    outln!(
        "\nwrote comparison.json, comparison.md and comparison.html in {}",
        out.display()
    )?;
    Ok(())
}
