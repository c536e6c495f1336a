//! `safeaware data synth | validate | stats | preview`.

#[derive(clap::Subcommand)]
pub enum DataCommand {}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {}
}
