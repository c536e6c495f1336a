//! `safeaware serve`: an OpenAI-compatible `/v1/chat/completions` server over a model folder
//! (see `crate::serve`). Binds 127.0.0.1 unless told otherwise.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Result};

use crate::backend::{require, run_on};
use crate::serve::ServeTask;
use safeaware_runtime::device::DeviceSpec;

/// `safeaware serve` flags.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// A model folder: a training checkpoint (`<run>/final`, `<run>/checkpoints/step_N`) or an
    /// HF folder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Address to listen on; anything but loopback exposes the model without authentication.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Device: cpu, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Most requests generated together.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Milliseconds a batch waits for more concurrent requests before it starts.
    #[arg(long, default_value_t = 20)]
    pub batch_wait_ms: u64,
    /// `max_tokens` of a request that sets none.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// The model name `/v1/models` lists (default: the folder as given).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Seconds the requests already accepted may take to finish after SIGTERM or Ctrl-C
    /// (those still running then get 503); the default leaves 5 s of Kubernetes' 30.
    #[arg(long, default_value_t = 25)]
    pub shutdown_grace: u64,
}

/// Binds the socket, loads the model on the device (its folder verified against its
/// manifest.json when it has one), and serves until SIGTERM or Ctrl-C.
pub fn run(a: ServeArgs) -> Result<()> {
    require(a.device)?;
    if !a.host.is_loopback() {
        eprintln!(
            "warning: listening on {} exposes the model to the network without authentication",
            a.host
        );
    }
    let server = tiny_http::Server::http((a.host, a.port))
        .map_err(|e| anyhow!("cannot listen on {}:{}: {e}", a.host, a.port))?;
    let task = ServeTask {
        model_name: a
            .served_model_name
            .clone()
            .unwrap_or_else(|| a.checkpoint.display().to_string()),
        folder: a.checkpoint,
        server,
        max_batch: a.batch_size.max(1),
        linger: Duration::from_millis(a.batch_wait_ms),
        default_max_tokens: a.max_tokens.max(1),
        workers: (2 * a.batch_size).max(8),
        grace: Duration::from_secs(a.shutdown_grace),
    };
    run_on(a.device, task)
}
