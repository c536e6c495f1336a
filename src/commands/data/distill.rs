//! `safeaware data distill`: traces for labelled pairs from an OpenAI-compatible teacher, kept
//! when their verdict is the gold label (the work is `safeaware_eval::distill`). It exits
//! non-zero when the teacher failed on more of the pairs asked than `--max-error-rate` allows
//! (on every pair, whatever the flag says).

use std::path::PathBuf;

use anyhow::Context;
use safeaware_common::output_dir::refuse_input;
use safeaware_data::pairs::read_pairs;
use safeaware_eval::decoding::{DecodingMode, DecodingSettings};
use safeaware_eval::distill::output::default_rejected_path;
use safeaware_eval::distill::{self, DistillConfig};
use safeaware_eval::progress::ProgressMode;
use safeaware_eval::prompt::PromptStrategy;

use crate::commands::client::ClientArgs;
use crate::commands::error_budget::{self, ErrorBudgetArgs};
use crate::output::{out, outln};

/// `data distill` flags.
#[derive(clap::Args)]
pub struct DistillArgs {
    /// Labelled pairs (JSONL of id, image, prompt, verdict), e.g. from `data import`.
    #[arg(long)]
    pub pairs: PathBuf,
    /// The teacher: an OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1); the API key
    /// is read from OPENAI_API_KEY if set.
    #[arg(long)]
    pub teacher: String,
    /// The model name to send to the teacher.
    #[arg(long)]
    pub teacher_model: String,
    /// The traces file, appended to (a rerun skips the ids it holds; an existing file that
    /// distill did not write is refused).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing --out or --rejected file that distill did not write.
    #[arg(long)]
    pub overwrite: bool,
    /// Where rejected pairs go, with each sample's reason (default: <out stem>.rejected.jsonl).
    #[arg(long)]
    pub rejected: Option<PathBuf>,
    /// Empty the rejected file first, so its pairs are asked again (e.g. with more samples).
    #[arg(long)]
    pub retry_rejected: bool,
    /// Write preference pairs for DPO instead of traces: per pair, a sample with the gold
    /// verdict is `chosen` and one with the other verdict `rejected` (needs --samples >= 2).
    #[arg(long)]
    pub preferences: bool,
    /// How each pair is asked: trace (describe, reason, verdict in the training tags), paper
    /// (for a teacher trained by safeaware), or a template file with {prompt}.
    #[arg(long, default_value = "trace")]
    pub prompt: String,
    /// Answers drawn per pair at most; the first with the gold verdict is kept.
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    /// Sampling temperature (0 = greedy, one sample).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Nucleus mass when sampling.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of a pair's first sample; sample k sends seed + k.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most new tokens per answer.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub errors: ErrorBudgetArgs,
    /// Progress display: auto (bar on a terminal, log lines otherwise), log or quiet.
    #[arg(long, default_value = "auto")]
    pub progress: ProgressMode,
}

/// Runs the distillation and prints its summary.
pub fn run(a: DistillArgs) -> anyhow::Result<()> {
    let sampling = a.temperature > 0.0;
    let decoding = DecodingSettings {
        mode: if sampling {
            DecodingMode::Sample
        } else {
            DecodingMode::Greedy
        },
        temperature: a.temperature,
        top_p: a.top_p,
        seed: sampling.then_some(a.seed),
        max_tokens: a.max_tokens,
        ..DecodingSettings::default()
    };
    decoding.validate()?;
    let config = DistillConfig {
        rejected: a
            .rejected
            .clone()
            .unwrap_or_else(|| default_rejected_path(&a.out)),
        out: a.out.clone(),
        prompt: PromptStrategy::parse(&a.prompt)?,
        samples: a.samples,
        seed: decoding.seed,
        teacher: a.teacher_model.clone(),
        retry_rejected: a.retry_rejected,
        overwrite: a.overwrite,
        preferences: a.preferences,
        progress: a.progress,
    };
    config.validate()?;
    let budget = a.errors.budget()?;
    for (flag, out) in [("--out", &config.out), ("--rejected", &config.rejected)] {
        refuse_input(flag, out, &[("--pairs", a.pairs.as_path())])?;
    }
    let pairs = read_pairs(&a.pairs).with_context(|| format!("reading {}", a.pairs.display()))?;
    let teacher = a.client.endpoint(&a.teacher, &a.teacher_model, &decoding)?;
    let summary = distill::run(&pairs, &teacher, &config)?;
    out!("{}", summary.to_text())?;
    outln!(
        "traces in {}, rejected pairs in {}",
        config.out.display(),
        config.rejected.display()
    )?;
    let tally = summary.tally();
    if tally.asked == 0 {
        // Every pair was done before: nothing was asked, nothing failed.
        return Ok(());
    }
    budget.judge(tally).map_err(error_budget::report)
}
