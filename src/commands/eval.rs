//! `safeaware eval`: evaluate recorded responses, an OpenAI-compatible endpoint or a local model
//! folder (HF folder or training checkpoint, on the chosen device) on a safety benchmark, and
//! `safeaware eval compare` runs side by side. The work is in `safeaware-eval` (and
//! [`crate::folder_eval`] for a local model); this file turns flags into its settings.

use std::path::{Path, PathBuf};

use super::client::ClientArgs;
use super::error_budget::{self, ErrorBudgetArgs};
use crate::backend::{require, run_on};
use crate::folder_eval::FolderEval;
use anyhow::{bail, Context};
use safeaware_common::output_dir::refuse_input;
use safeaware_data::benchmark::Benchmark;
use safeaware_eval::ablation::{self, ImageAblation};
use safeaware_eval::compare::{self, Run};
use safeaware_eval::decoding::{DecodingMode, DecodingSettings, VcdParams};
use safeaware_eval::outcome::ErrorBudget;
use safeaware_eval::progress::ProgressMode;
use safeaware_eval::prompt::PromptStrategy;
use safeaware_eval::report::{self, REPORT_HTML, REPORT_MD};
use safeaware_eval::results::Results;
use safeaware_eval::runner::{RunConfig, RESULTS_FILE, SAMPLES_FILE};
use safeaware_eval::source::local::LocalSettings;
use safeaware_eval::source::responses::ResponsesFile;
use safeaware_eval::source::AnswerSource;
use safeaware_runtime::device::DeviceSpec;

use crate::output::{out, outln};

/// `safeaware eval [flags]` or `safeaware eval compare <results.json>...`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: Option<EvalCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands of `eval`.
#[derive(clap::Subcommand)]
pub enum EvalCommand {
    /// Compare runs side by side: deltas against the first, paired McNemar tests.
    Compare(CompareArgs),
}

/// `eval compare` flags.
#[derive(clap::Args)]
pub struct CompareArgs {
    /// results.json files (their samples.jsonl is read from the same folder); the first is the
    /// baseline.
    #[arg(required = true, num_args = 1..)]
    pub results: Vec<PathBuf>,
    /// Also write the comparison (Markdown) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Compare runs of different benchmarks (by the benchmark each results.json records),
    /// pairing their items by id.
    #[arg(long)]
    pub allow_different: bool,
}

/// Flags of an evaluation run.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Benchmark: `mmsafeaware:<dir>` or `jsonl:<file>`.
    #[arg(long)]
    pub benchmark: Option<String>,
    /// JSONL of per-item annotations (`id`, `subset`, `scenario`, `gold`) to apply.
    #[arg(long)]
    pub annotations: Option<PathBuf>,
    /// Output folder (results.json, samples.jsonl, report.md, report.html); resumable.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write into an --out folder safeaware did not make (its files of the same names are
    /// replaced).
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub errors: ErrorBudgetArgs,

    /// Score a recorded responses file (JSONL with `id` and `response`).
    #[arg(long, group = "source")]
    pub responses: Option<PathBuf>,
    /// Ask an OpenAI-compatible server (base URL, e.g. http://localhost:8000/v1); the API key
    /// is read from OPENAI_API_KEY if set.
    #[arg(long, group = "source", requires = "endpoint_model")]
    pub endpoint: Option<String>,
    /// The model name to send to --endpoint.
    #[arg(long)]
    pub endpoint_model: Option<String>,
    /// A local HF model folder (local generation).
    #[arg(long, group = "source")]
    pub model: Option<PathBuf>,
    /// A training checkpoint, e.g. `<run>/checkpoints/step_N` or `<run>/final`, or a PEFT
    /// adapter folder (local generation).
    #[arg(long, group = "source")]
    pub checkpoint: Option<PathBuf>,
    /// The base model folder of an adapter --checkpoint (default: its adapter_config.json's
    /// base_model_name_or_path).
    #[arg(long, requires = "checkpoint")]
    pub base: Option<PathBuf>,
    /// Device for local generation: cpu, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Prompts generated together (local generation).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,

    #[command(flatten)]
    pub client: ClientArgs,

    /// Prompting strategy: paper, image-first, describe-first, safety-system, trace (answer as a
    /// description/reasoning/verdict trace), or a template file containing {prompt} (and
    /// optionally {question}).
    #[arg(long, default_value = "paper")]
    pub prompt: String,
    /// greedy, sample or vcd (vcd needs a local model).
    #[arg(long, default_value = "greedy")]
    pub decoding: DecodingMode,
    /// Sampling temperature (sample).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Nucleus mass (sample).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Sampling seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Most new tokens per answer.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// VCD contrast weight α.
    #[arg(long, default_value_t = 1.0)]
    pub vcd_alpha: f32,
    /// VCD plausibility cut-off β.
    #[arg(long, default_value_t = 0.1)]
    pub vcd_beta: f32,
    /// VCD diffusion noise step (0..1000).
    #[arg(long, default_value_t = 500)]
    pub vcd_noise_step: usize,

    /// Image reliance: ask every item again with its image replaced by a blank image or by its
    /// counterfactual (an image that flips the gold verdict; the synthetic world's benchmark
    /// has one per item) and report the share of verdicts that change (needs a model,
    /// checkpoint or endpoint).
    #[arg(long, value_name = "blank|counterfactual")]
    pub image_ablation: Option<ImageAblation>,

    /// Evaluate only the first N items (smoke tests).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Progress display: auto (bar on a terminal, log lines otherwise), log or quiet.
    #[arg(long, default_value = "auto")]
    pub progress: ProgressMode,
}

/// Runs `safeaware eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    match args.command {
        Some(EvalCommand::Compare(c)) => run_compare(c),
        None => run_eval(args.run),
    }
}

fn run_compare(args: CompareArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        // Each run's results.json and the samples.jsonl beside it are read.
        let samples: Vec<PathBuf> = args
            .results
            .iter()
            .map(|p| p.parent().unwrap_or(Path::new(".")).join(SAMPLES_FILE))
            .collect();
        let inputs: Vec<(&str, &Path)> = args
            .results
            .iter()
            .map(|p| ("the run", p.as_path()))
            .chain(
                samples
                    .iter()
                    .map(|p| ("the samples of a run", p.as_path())),
            )
            .collect();
        refuse_input("--out", out, &inputs)?;
    }
    let runs = args
        .results
        .iter()
        .map(|p| Run::load(p).with_context(|| format!("loading run {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    compare::check_comparable(&runs, args.allow_different)?;
    let text = compare::render(&runs);
    out!("{text}")?;
    if let Some(out) = args.out {
        safeaware_common::fsio::write_atomic(&out, text.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn run_eval(a: RunArgs) -> anyhow::Result<()> {
    // A local model runs on a device: a missing GPU is an error before anything is read or written.
    if a.model.is_some() || a.checkpoint.is_some() {
        require(a.device)?;
    }
    let Some(spec) = a.benchmark.as_deref() else {
        bail!("--benchmark is required (mmsafeaware:<dir> or jsonl:<file>)")
    };
    let Some(out) = a.out.clone() else {
        bail!("--out is required")
    };
    let decoding = DecodingSettings {
        mode: a.decoding,
        temperature: a.temperature,
        top_p: a.top_p,
        seed: a.seed,
        max_tokens: a.max_tokens,
        vcd: VcdParams {
            alpha: a.vcd_alpha,
            beta: a.vcd_beta,
            noise_step: a.vcd_noise_step,
        },
    };
    decoding.validate()?;
    let budget = a.errors.budget()?;
    let prompt = PromptStrategy::parse(&a.prompt)?;
    let mut benchmark = Benchmark::open(spec, a.annotations.as_deref())
        .with_context(|| format!("loading benchmark {spec}"))?;
    if let Some(n) = a.limit {
        benchmark.truncate(n);
    }
    let config = RunConfig {
        prompt,
        decoding: decoding.clone(),
        progress: a.progress,
        overwrite: a.overwrite,
        ..RunConfig::new(&out)
    };
    if let Some(folder) = a.model.as_ref().or(a.checkpoint.as_ref()) {
        let settings = LocalSettings {
            max_new_tokens: a.max_tokens,
            batch_size: a.batch_size as usize,
            decoding: config.decoding.clone(),
        };
        let task = FolderEval {
            folder: folder.clone(),
            base: a.base.clone(),
            name: folder.display().to_string(),
            benchmark: &benchmark,
            config: &config,
            settings,
            ablation: a.image_ablation,
        };
        let results = run_on(a.device, task)?;
        return finish(&results, &out, budget);
    }
    let source: Box<dyn AnswerSource> = match (&a.responses, &a.endpoint) {
        (Some(path), None) => {
            let file = ResponsesFile::load(path, &benchmark)
                .with_context(|| format!("reading responses {}", path.display()))?;
            for (line, problem) in file.unattributed_lines() {
                eprintln!("warning: {}:{line}: {problem} (line ignored)", path.display());
            }
            Box::new(file)
        }
        (None, Some(url)) => Box::new(a.client.endpoint(
            url,
            a.endpoint_model.as_deref().unwrap_or_default(),
            &decoding,
        )?),
        _ => bail!(
            "give one answer source: --responses <jsonl>, --endpoint <url> --endpoint-model <name>, \
             --model <hf-folder> or --checkpoint <run>/checkpoints/step_N"
        ),
    };
    let results = ablation::run(&benchmark, source.as_ref(), &config, a.image_ablation)?;
    finish(&results, &out, budget)
}

/// Prints the summary and where the files are; fails when nothing was scored or more of the
/// items failed than `budget` allows (the outputs are written either way), printing the causes.
fn finish(results: &Results, out: &Path, budget: ErrorBudget) -> anyhow::Result<()> {
    out!("{}", report::summary(results))?;
    outln!(
        "wrote {} {} {} {} in {}",
        RESULTS_FILE,
        SAMPLES_FILE,
        REPORT_MD,
        REPORT_HTML,
        out.display()
    )?;
    budget.judge(results.tally()).map_err(error_budget::report)
}
