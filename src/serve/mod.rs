//! `safeaware serve`: an OpenAI-compatible chat server over a model folder, so a trained
//! checkpoint can be a teacher for `data distill`, a demo, or be evaluated with
//! `eval --endpoint` exactly as with `eval --checkpoint`.
//!
//! Design: tiny_http worker threads ([`http`]) read and check requests ([`openai`]), encode
//! each prompt and check it against the model's context, and queue one [`queue::Job`] per
//! answer; the one model thread (the device task, [`scheduler`]) takes batches of jobs with the
//! same settings ([`queue::Queue`]) and generates them with the evaluator's
//! [`LocalGenerator`], the code `eval --checkpoint` answers with, several batches interleaved
//! token by token so a long request does not hold up a short one. Greedy requests batch
//! together; sampled ones batch when their settings match (a seeded one goes alone, so its
//! answer is reproducible). A request never takes the server down: limits are checked before
//! anything sized by the request is built, and a panic fails only its request (500).
//! SIGTERM/SIGINT finish the accepted requests within a grace period ([`shutdown`]).

pub mod http;
pub mod openai;
pub mod queue;
pub mod scheduler;
pub mod shutdown;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use safeaware_eval::source::generator::LocalGenerator;
use tiny_http::Server;

use crate::model_folder::open_model_folder;
use queue::{Job, Queue};
use safeaware_runtime::task::BackendTask;

use crate::output::outln;

/// A server ready to run: the socket is bound, the model not yet loaded.
pub struct ServeTask {
    pub folder: PathBuf,
    pub server: Server,
    /// The name `/v1/models` lists.
    pub model_name: String,
    pub max_batch: usize,
    /// How long a batch waits for more requests before it starts short.
    pub linger: Duration,
    pub default_max_tokens: usize,
    /// HTTP worker threads (requests handled at once; each waits for its answers).
    pub workers: usize,
    /// How long accepted requests may take to finish after SIGTERM.
    pub grace: Duration,
}

impl BackendTask for ServeTask {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<()> {
        let folder = &self.folder;
        let (model, processor) = open_model_folder::<B::InnerBackend>(folder, None, &device)?;
        shutdown::install()?;
        let generator = LocalGenerator::new(&model, &processor);
        let shared = http::Shared {
            model: self.model_name.clone(),
            default_max_tokens: self.default_max_tokens,
            counter: AtomicU64::new(0),
            encoder: generator.encoder(),
        };
        let (tx, rx) = mpsc::channel::<Job>();
        let addr = self
            .server
            .server_addr()
            .to_ip()
            .map_or_else(|| "?".to_string(), |a| a.to_string());
        outln!(
            "serving {} as `{}` on http://{addr}/v1 (batches of up to {}, context {} tokens)",
            folder.display(),
            self.model_name,
            self.max_batch,
            shared.encoder.context()
        )?;
        std::thread::scope(|scope| {
            for _ in 0..self.workers.max(1) {
                let (server, tx, shared) = (&self.server, tx.clone(), &shared);
                scope.spawn(move || http::worker(server, tx, shared));
            }
            drop(tx);
            let mut queue = Queue::new(rx, self.max_batch, self.linger);
            scheduler::run(&generator, &mut queue, self.grace);
        });
        eprintln!("serve: stopped");
        Ok(())
    }
}
