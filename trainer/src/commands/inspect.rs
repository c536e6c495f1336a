//! `safeaware inspect <model-folder>`.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct InspectArgs {
    /// An HF model folder (config.json, optionally *.safetensors).
    pub folder: PathBuf,
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    anyhow::bail!("inspect is not built yet ({})", args.folder.display())
}
