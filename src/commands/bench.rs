//! `safeaware bench train|generate|export`: speed benchmark against PyTorch (the engine is
//! `src/bench.rs`; the PyTorch side is tools/torch_reference.py and the comparison
//! tools/bench_compare.sh, see tools/README.md "Benchmarks" and BENCHMARKS.md).

use std::path::PathBuf;

use anyhow::{bail, Result};
use safeaware_runtime::device::DeviceSpec;

use crate::bench::{self, BenchSpec, Dtype, Mode};
use crate::output::outln;

/// Arguments of `safeaware bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Time training steps: forward + loss + backward + global-norm clip (1.0) + AdamW step.
    Train(RunArgs),
    /// Time greedy generation of --new-tokens tokens with the KV cache (and the prefill alone).
    Generate(RunArgs),
    /// Write the model --model resolves to as an HF folder, for the PyTorch side to load.
    Export(ExportArgs),
}

/// Options shared by `bench train` and `bench generate`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// An HF model folder (config.json; weights if present, else seeded random init) or a preset name (tiny, small).
    #[arg(long)]
    pub model: String,
    /// Rows per batch.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Tokens per row (prompt length for generate), the image span included.
    #[arg(long, default_value_t = 256)]
    pub seq: usize,
    /// Timed steps (train) or calls (generate).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed warm-up steps/calls first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// New tokens per generate call.
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// cpu | cuda:N | wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Float type; bf16 only with --device cuda:N (the CPU backend is f32-only); bf16-mixed
    /// (train: f32 weights, matrix products in bf16) on any device.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: Dtype,
    /// Threads of the CPU backend's pool (default: RAYON_NUM_THREADS, else all available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seed of the random weights and inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Peak dense TFLOP/s for MFU (GPU train; default H100 SXM: 989 bf16, 67 f32).
    #[arg(long)]
    pub peak_tflops: Option<f64>,
    /// generate: skip the separate prefill timing.
    #[arg(long)]
    pub no_prefill: bool,
    /// Print one JSON object (tools/README.md schema) instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Parts not trained (train): `vision`, `connector`, `text`, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_part)]
    pub freeze: Vec<safeaware_model::ModelPart>,
    /// Train LoRA adapters of this rank on every linear layer of the text model instead of the
    /// weights (train).
    #[arg(long, value_name = "RANK")]
    pub lora: Option<usize>,
    /// Recompute cheap activations in the backward pass instead of keeping them (train; Burn's
    /// BalancedCheckpointing, as `train.activation_checkpointing = true`).
    #[arg(long)]
    pub activation_checkpointing: bool,
}

/// Options of `bench export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Preset name or model folder.
    #[arg(long)]
    pub model: String,
    /// Output folder (config.json + model.safetensors, f32).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `safeaware bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let (mode, a) = match args.command {
        BenchCommand::Train(a) => (Mode::Train, a),
        BenchCommand::Generate(a) => (Mode::Generate, a),
        BenchCommand::Export(e) => {
            bench::export(&e.model, e.seed, &e.out)?;
            eprintln!("wrote {}", e.out.display());
            return Ok(());
        }
    };
    let threads = configure_threads(a.threads)?;
    let spec = BenchSpec {
        mode,
        model: a.model,
        batch: a.batch,
        seq: a.seq,
        steps: a.steps,
        warmup: a.warmup,
        new_tokens: a.new_tokens,
        device: a.device,
        dtype: a.dtype,
        threads,
        seed: a.seed,
        peak_flops: a.peak_tflops.map(|t| t * 1e12),
        no_prefill: a.no_prefill,
        freeze: a.freeze,
        lora: a.lora,
        activation_checkpointing: a.activation_checkpointing,
    };
    let report = bench::run(&spec)?;
    if a.json {
        outln!("{report}")?;
    } else {
        outln!("{}", bench::summary(&report))?;
    }
    Ok(())
}

/// Sizes the CPU backend's thread pool. Burn's flex backend (and gemm under it) runs on rayon's
/// global pool, which reads RAYON_NUM_THREADS once, when first used: this must run before any
/// tensor work, and it does (nothing touches a tensor before the subcommand starts).
pub fn configure_threads(requested: Option<usize>) -> Result<usize> {
    let from_env = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0);
    let threads = match requested {
        Some(0) => bail!("--threads must be >= 1"),
        Some(n) => n,
        None => {
            from_env.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        }
    };
    // Single-threaded here: no other thread can be reading the environment.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    Ok(threads)
}

/// A model part by its recipe name.
fn parse_part(name: &str) -> Result<safeaware_model::ModelPart, String> {
    safeaware_model::ModelPart::ALL
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| format!("`{name}`: expected vision, connector or text"))
}
