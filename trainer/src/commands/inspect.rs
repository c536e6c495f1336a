//! `safeaware inspect <model-folder>`: describes an HF Idefics3/SmolVLM folder — family,
//! dimensions, image tokens per tile, parameter counts by part and the on-disk dtype. A folder
//! holding only config.json is enough (counts come from the config; weights are never loaded).

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct InspectArgs {
    /// An HF model folder (config.json, optionally *.safetensors).
    pub folder: PathBuf,
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let summary = safeaware_model::inspect(&args.folder)
        .with_context(|| format!("inspecting `{}`", args.folder.display()))?;
    println!("{}", args.folder.display());
    println!("{summary}");
    Ok(())
}
