//! `safeaware data synth | validate | stats | preview | import | distill | overlap | encode`:
//! make the synthetic world, check a training file or benchmark, summarise it, draw a contact
//! sheet, import labelled pairs, distil traces from a teacher, guard a benchmark, and show what
//! a model's processor makes of an image and a prompt. The work is in `safeaware_data` and
//! `safeaware_eval::distill`; these files turn flags into calls and print results (import,
//! distill, overlap and encode each in their own file).

mod distill;
mod encode;
mod import;
mod overlap;

use std::path::PathBuf;

use anyhow::Context;
use safeaware_common::output_dir::OutputDir;
use safeaware_data::processor::Processor;
use safeaware_data::synth::{self, SynthConfig};
use safeaware_data::tools::preview;
use safeaware_data::tools::stats::{self, compress_ids};
use safeaware_data::tools::validate::{self, TokenCheck, ValidateOptions};
use safeaware_data::tools::Loaded;
use safeaware_data::traces::TargetStyle;

use crate::output::outln;

/// Data subcommands.
#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Generate the synthetic safety world: images, train/val/test traces, benchmark.jsonl.
    Synth(SynthArgs),
    /// Check every line or item of a training file or benchmark; exit code 1 on any problem.
    Validate(ValidateArgs),
    /// Count items per subset, scenario and verdict; list missing images.
    Stats(StatsArgs),
    /// Draw a contact sheet (PNG) of images with their prompt and verdict.
    Preview(PreviewArgs),
    /// Turn a labelled set (VLGuard, CSV, JSONL) into a pairs file.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Make traces for labelled pairs with a teacher endpoint, keeping those with the gold verdict.
    Distill(Box<distill::DistillArgs>),
    /// List training items whose image or prompt is also in a benchmark; exit code 1 if any.
    Overlap(overlap::OverlapArgs),
    /// Encode one image and prompt with a model folder's processor, as HF's processor does.
    Encode(encode::EncodeArgs),
}

/// `data synth` flags: the output folder and the world's settings.
#[derive(clap::Args)]
pub struct SynthArgs {
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Write into an --out folder safeaware did not make (its files of the same names are
    /// replaced).
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub settings: SynthConfig,
}

/// `data validate` flags.
#[derive(clap::Args)]
pub struct ValidateArgs {
    /// A training file (.jsonl) or a benchmark spec (`mmsafeaware:<dir>`, `jsonl:<file>`).
    pub input: String,
    /// A model folder whose processor counts tokens (chat template and image tokens included).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Token limit for `--tokenizer`.
    #[arg(long, default_value_t = 2048)]
    pub max_tokens: usize,
    /// Answer style traces are rendered in for token counting (vcr, cot, direct).
    #[arg(long, default_value = "vcr")]
    pub style: TargetStyle,
    /// Annotations JSONL (id, subset, scenario, gold) for a benchmark.
    #[arg(long)]
    pub annotations: Option<PathBuf>,
    /// Report missing benchmark images as warnings, not problems.
    #[arg(long)]
    pub allow_missing_images: bool,
}

/// `data stats` flags.
#[derive(clap::Args)]
pub struct StatsArgs {
    /// A benchmark spec or a training file.
    pub input: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Annotations JSONL (id, subset, scenario, gold) for a benchmark.
    #[arg(long)]
    pub annotations: Option<PathBuf>,
}

/// `data preview` flags.
#[derive(clap::Args)]
pub struct PreviewArgs {
    /// A training file or a benchmark spec.
    pub input: String,
    /// The PNG to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of items, spread evenly over the input.
    #[arg(short = 'n', long = "count", default_value_t = 16)]
    pub n: usize,
    /// Annotations JSONL for a benchmark.
    #[arg(long)]
    pub annotations: Option<PathBuf>,
}

/// Runs a data subcommand.
pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Synth(a) => run_synth(a),
        DataCommand::Validate(a) => run_validate(a),
        DataCommand::Stats(a) => run_stats(a),
        DataCommand::Preview(a) => run_preview(a),
        DataCommand::Import(c) => import::run(c),
        DataCommand::Distill(a) => distill::run(*a),
        DataCommand::Overlap(a) => overlap::run(a),
        DataCommand::Encode(a) => encode::run(a),
    }
}

fn run_synth(a: SynthArgs) -> anyhow::Result<()> {
    let _claim = OutputDir::claim(&a.out, "data synth", a.overwrite)?;
    let s = synth::generate(&a.out, &a.settings)?;
    outln!(
        "wrote {} train, {} val, {} test items ({} held-out combinations) to {}",
        s.train,
        s.val,
        s.test,
        s.held_out,
        s.out.display()
    )?;
    Ok(())
}

fn run_validate(a: ValidateArgs) -> anyhow::Result<()> {
    let processor = match &a.tokenizer {
        Some(dir) => Some(
            Processor::from_folder(dir)
                .with_context(|| format!("loading the processor of {}", dir.display()))?,
        ),
        None => None,
    };
    let opts = ValidateOptions {
        annotations: a.annotations.as_deref(),
        allow_missing_images: a.allow_missing_images,
        tokens: processor.as_ref().map(|p| TokenCheck {
            processor: p,
            max_tokens: a.max_tokens,
            style: a.style,
        }),
    };
    let report = validate::validate(&a.input, &opts);
    let mut text = String::new();
    for w in &report.warnings {
        text.push_str(&format!("warning: {w}\n"));
    }
    for p in &report.problems {
        text.push_str(&format!("{p}\n"));
    }
    if let Some((place, n)) = &report.longest {
        text.push_str(&format!("longest: {n} tokens ({place})\n"));
    }
    text.push_str(&format!(
        "{}: {} checked, {} problem(s), {} warning(s)\n",
        report.source,
        report.checked,
        report.problems.len(),
        report.warnings.len()
    ));
    emit(&text)?;
    if !report.ok() {
        std::process::exit(1);
    }
    Ok(())
}

fn run_stats(a: StatsArgs) -> anyhow::Result<()> {
    let loaded = Loaded::open(&a.input, a.annotations.as_deref())?;
    let s = stats::stats(&loaded);
    if a.json {
        emit(&(serde_json::to_string_pretty(&s)? + "\n"))
    } else {
        emit(&s.to_text())
    }
}

/// Writes to stdout; a closed pipe (`… | head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn run_preview(a: PreviewArgs) -> anyhow::Result<()> {
    let loaded = Loaded::open(&a.input, a.annotations.as_deref())?;
    let entries = loaded.entries();
    let n = preview::write_preview(&entries, a.n, &a.out)?;
    let missing: Vec<String> = entries
        .iter()
        .filter(|e| e.image.is_none())
        .map(|e| e.id.clone())
        .collect();
    outln!("wrote {} ({n} items of {})", a.out.display(), entries.len())?;
    if !missing.is_empty() {
        outln!("items without an image: {}", compress_ids(&missing))?;
    }
    Ok(())
}
