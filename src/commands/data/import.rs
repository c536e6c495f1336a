//! `safeaware data import vlguard | csv | jsonl`: labelled sets into a pairs file;
//! `safeaware data import trl | spa-vl`: preference sets into a preference file for DPO
//! (formats in `safeaware_data::import` and data/README.md). An existing `--out` is replaced
//! only with `--overwrite`, and never when it is the file imported from.

use std::path::PathBuf;

use anyhow::Context;
use safeaware_common::output_dir::refuse_input;
use safeaware_common::output_file::refuse_existing;
use safeaware_data::fileio::base_dir;
use safeaware_data::import::preference::{self, PreferenceFormat};
use safeaware_data::import::table::{self, TableFormat};
use safeaware_data::import::{vlguard, ImportError, ImportSummary};

use crate::output::outln;

/// Importers.
#[derive(clap::Subcommand)]
pub enum ImportCommand {
    /// VLGuard's train.json: one pair per instruction (safe image + safe instruction → safe;
    /// safe image + unsafe instruction → unsafe; unsafe image → unsafe).
    Vlguard(VlguardArgs),
    /// A CSV with a header row naming image, prompt, label (safe|unsafe); optional id, subset,
    /// scenario.
    Csv(TableArgs),
    /// A JSONL of {image, prompt, label}; optional id, subset, scenario.
    Jsonl(TableArgs),
    /// A TRL preference set as JSON Lines (prompt, chosen, rejected, images or image; standard
    /// or conversational) into a preference file.
    Trl(TableArgs),
    /// SPA-VL's preference records (image, question, chosen, rejected, class1-3; a JSON array
    /// or JSON Lines) into a preference file.
    SpaVl(TableArgs),
}

/// `data import vlguard` flags.
#[derive(clap::Args)]
pub struct VlguardArgs {
    /// VLGuard's train.json (a JSON array of image records).
    pub train: PathBuf,
    /// The folder the records' `image` paths are relative to (the unzipped train.zip).
    #[arg(long)]
    pub images: PathBuf,
    #[command(flatten)]
    pub out: OutArgs,
}

/// `data import csv|jsonl` flags.
#[derive(clap::Args)]
pub struct TableArgs {
    /// The table file.
    pub file: PathBuf,
    /// The folder image paths are relative to (default: the table's folder).
    #[arg(long)]
    pub images: Option<PathBuf>,
    #[command(flatten)]
    pub out: OutArgs,
}

/// Where an importer writes.
#[derive(clap::Args)]
pub struct OutArgs {
    /// The pairs file to write (never the file imported from).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing --out file.
    #[arg(long)]
    pub overwrite: bool,
}

/// Runs an importer and prints what it wrote.
pub fn run(cmd: ImportCommand) -> anyhow::Result<()> {
    let (source, out) = match &cmd {
        ImportCommand::Vlguard(a) => (&a.train, &a.out),
        ImportCommand::Csv(a)
        | ImportCommand::Jsonl(a)
        | ImportCommand::Trl(a)
        | ImportCommand::SpaVl(a) => (&a.file, &a.out),
    };
    refuse_input(
        "--out",
        &out.out,
        &[("the imported file", source.as_path())],
    )?;
    refuse_existing(&out.out, out.overwrite, "")?;
    let summary = match &cmd {
        ImportCommand::Vlguard(a) => vlguard::import(&a.train, &a.images, &a.out.out),
        ImportCommand::Csv(a) => import_table(a, TableFormat::Csv),
        ImportCommand::Jsonl(a) => import_table(a, TableFormat::Jsonl),
        ImportCommand::Trl(a) => return import_preferences(a, PreferenceFormat::Trl),
        ImportCommand::SpaVl(a) => return import_preferences(a, PreferenceFormat::SpaVl),
    };
    let s = summary.with_context(|| format!("importing {}", source.display()))?;
    outln!(
        "wrote {} pairs ({} safe, {} unsafe) from {} records of {} to {}",
        s.pairs(),
        s.safe,
        s.unsafe_,
        s.records,
        source.display(),
        out.out.display()
    )?;
    Ok(())
}

/// A CSV or JSONL table, images relative to `--images` or else the table's folder.
fn import_table(a: &TableArgs, format: TableFormat) -> Result<ImportSummary, ImportError> {
    table::import(&a.file, format, &a.images_dir(), &a.out.out)
}

/// A preference set into a preference file, and what it wrote.
fn import_preferences(a: &TableArgs, format: PreferenceFormat) -> anyhow::Result<()> {
    let s = preference::import(&a.file, format, &a.images_dir(), &a.out.out)
        .with_context(|| format!("importing {}", a.file.display()))?;
    outln!(
        "wrote {} preference pairs from {} records of {} to {}",
        s.pairs,
        s.records,
        a.file.display(),
        a.out.out.display()
    )?;
    Ok(())
}

impl TableArgs {
    /// `--images`, or else the imported file's folder.
    fn images_dir(&self) -> PathBuf {
        self.images.clone().unwrap_or_else(|| base_dir(&self.file))
    }
}
