//! `safeaware`: train vision-language models for safety awareness and evaluate them on MMSafeAware.
//!
//! Each subcommand lives in its own file under `commands/`; this file only parses and dispatches.

mod backend;
mod bench;
mod commands;
mod doctor;
mod experiment;
mod folder_eval;
mod model_folder;
mod serve;

use std::process::ExitCode;

use crate::backend::is_device_error;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "safeaware",
    version,
    about = "Safety-awareness training and evaluation for VLMs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe an HF model folder: family, dimensions, parameter counts, dtype.
    Inspect(commands::inspect::InspectArgs),
    /// Make, check, summarise and preview data.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
    /// Evaluate a model, endpoint or responses file on a safety benchmark.
    Eval(Box<commands::eval::EvalArgs>),
    /// Run an experiment: methods side by side, with significance tests and image reliance.
    #[command(subcommand)]
    Experiment(commands::experiment::ExperimentCommand),
    /// Fine-tune (or train from scratch) from a recipe; resume or pause runs.
    Train(commands::train::TrainArgs),
    /// Validate a training recipe or print it fully resolved.
    #[command(subcommand)]
    Recipe(commands::recipe::RecipeCommand),
    /// Time training or generation on synthetic inputs (compare with tools/torch_reference.py).
    Bench(commands::bench::BenchArgs),
    /// Check a machine: backends, devices, HF parity, training against the CPU, speed.
    Doctor(commands::doctor::DoctorArgs),
    /// Serve a model folder as an OpenAI-compatible chat endpoint (/v1/chat/completions).
    Serve(commands::serve::ServeArgs),
    /// Write a model folder from a run's output: `--merge <adapter>` folds LoRA adapters into
    /// their base.
    Export(commands::export::ExportArgs),
    /// The memory a recipe needs per device, and the largest micro-batch that fits.
    Plan(commands::plan::PlanArgs),
}

/// Runs the command. A device that is missing or failed (no driver, no adapter, an index out of
/// range, a device lost mid-run) is one paragraph on stderr and exit status 2; other errors
/// print with their causes and exit with status 1.
fn main() -> ExitCode {
    crate::backend::probe::quiet_headless_vulkan();
    safeaware_trainer::guard::install_panic_hook();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_device_error(&err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("Error: {err:?}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Data(cmd) => commands::data::run(cmd),
        Command::Eval(args) => commands::eval::run(*args),
        Command::Experiment(cmd) => commands::experiment::run(cmd),
        Command::Train(args) => commands::train::run(args),
        Command::Recipe(cmd) => commands::recipe::run(cmd),
        Command::Bench(args) => commands::bench::run(args),
        Command::Doctor(args) => commands::doctor::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Plan(args) => commands::plan::run(args),
    }
}
