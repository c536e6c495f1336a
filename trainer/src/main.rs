//! `safeaware`: train vision-language models for safety awareness and evaluate them on MMSafeAware.
//!
//! Each subcommand lives in its own file under `commands/`; this file only parses and dispatches.

mod bench;
mod commands;

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
    /// Fine-tune (or train from scratch) from a recipe; resume or pause runs.
    Train(commands::train::TrainArgs),
    /// Validate a training recipe or print it fully resolved.
    #[command(subcommand)]
    Recipe(commands::recipe::RecipeCommand),
    /// Time training or generation on synthetic inputs (compare with tools/torch_reference.py).
    Bench(commands::bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Data(cmd) => commands::data::run(cmd),
        Command::Eval(args) => commands::eval::run(*args),
        Command::Train(args) => commands::train::run(args),
        Command::Recipe(cmd) => commands::recipe::run(cmd),
        Command::Bench(args) => commands::bench::run(args),
    }
}
