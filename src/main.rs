//! `safeaware`: train vision-language models for safety awareness and evaluate them on MMSafeAware.
//!
//! Each subcommand lives in its own file under `commands/`; this file only parses and dispatches.

// Unsafe code here is only the device probes' driver calls (`backend/probe.rs`, `backend/nccl.rs`),
// each block with a `// SAFETY:` comment; every library crate but the model forbids unsafe code.
#![warn(clippy::undocumented_unsafe_blocks)]

mod backend;
mod bench;
mod commands;
mod doctor;
mod experiment;
mod folder_eval;
mod model_folder;
mod output;
mod serve;

use std::io::Write;
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

/// Runs the command. Every error prints the same way ([`output::render_error`]: `error: <what>`
/// and its causes, never a backtrace) and exits with status 2 for a device that is missing or
/// failed (no driver, no adapter, an index out of range, a device lost mid-run) and 1 for
/// anything else (usage, data, files); clap's own usage errors keep clap's status 2. A stdout
/// closed by its reader ends the command quietly with status 0.
fn main() -> ExitCode {
    // Fail points of the crash tests, from FAILPOINTS (test builds only: feature `failpoints`).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    crate::backend::probe::quiet_headless_vulkan();
    safeaware_runtime::guard::install_panic_hook();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if output::is_closed_stdout(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // Ignored: with stderr closed too there is nowhere left to say it.
            let _ = writeln!(std::io::stderr(), "{}", output::render_error(&err));
            ExitCode::from(if is_device_error(&err) { 2 } else { 1 })
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
