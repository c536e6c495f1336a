//! `safeaware data overlap`: the benchmark guard on the command line — training items (traces,
//! ShareGPT lines or pairs) whose image or prompt is also in a benchmark; exit code 1 if any.

use std::path::PathBuf;

use anyhow::Context;
use safeaware_data::overlap::{self, OverlapOptions, PERCEPTUAL_THRESHOLD};

use super::emit;

/// `data overlap` flags.
#[derive(clap::Args)]
pub struct OverlapArgs {
    /// A training file: traces, ShareGPT lines or labelled pairs.
    pub input: PathBuf,
    /// The benchmark: `mmsafeaware:<dir>` or `jsonl:<file>`.
    #[arg(long)]
    pub benchmark: String,
    /// Print `{"image_overlaps": [{id, benchmark_id, distance}], "prompt_overlaps": [{id,
    /// benchmark_id}]}` instead of text.
    #[arg(long)]
    pub json: bool,
    /// Largest perceptual-hash distance (of 256 bits) that counts as the same image.
    #[arg(long, default_value_t = PERCEPTUAL_THRESHOLD)]
    pub max_distance: u32,
}

/// Runs the check, prints the overlaps, and exits with status 1 if there are any.
pub fn run(a: OverlapArgs) -> anyhow::Result<()> {
    let options = OverlapOptions {
        max_distance: a.max_distance,
    };
    let report = overlap::check(&a.input, &a.benchmark, &options)
        .with_context(|| format!("checking {} against {}", a.input.display(), a.benchmark))?;
    if a.json {
        emit(&(serde_json::to_string_pretty(&report)? + "\n"))?;
    } else {
        let mut text = String::new();
        for line in report.lines(usize::MAX) {
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str(&format!(
            "{}: {} image overlap(s), {} prompt overlap(s) with {} ({} training item(s))\n",
            a.input.display(),
            report.image_overlaps.len(),
            report.prompt_overlaps.len(),
            a.benchmark,
            report.ids().len()
        ));
        emit(&text)?;
    }
    if !report.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
