//! `safeaware serve`: an OpenAI-compatible chat server over a model folder, so a trained
//! checkpoint can be a teacher for `data distill`, a demo, or be evaluated with
//! `eval --endpoint` exactly as with `eval --checkpoint`.
//!
//! Design: tiny_http worker threads ([`http`]) read and check requests ([`openai`]) and queue
//! one [`queue::Job`] per answer; the one model thread (the device task) takes batches of jobs
//! with the same settings ([`queue::Queue`]) and generates them together with the evaluator's
//! [`LocalGenerator`], the code `eval --checkpoint` answers with. Greedy requests batch
//! together; sampled ones batch when their settings match (a seeded one goes alone, so its
//! answer is reproducible). A batch that panics fails its requests (500) and the server goes on.

pub mod http;
pub mod openai;
pub mod queue;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use safeaware_eval::decoding::DecodingMode;
use safeaware_eval::source::generator::LocalGenerator;
use safeaware_eval::source::SourceError;
use safeaware_model::Vlm;
use tiny_http::Server;

use crate::model_folder::open_model_folder;
use queue::{Job, Queue};
use safeaware_runtime::task::BackendTask;

use crate::output::outln;

/// A server ready to run: the socket is bound, the model not yet loaded.
pub struct ServeTask {
    pub folder: PathBuf,
    pub server: Arc<Server>,
    /// The name `/v1/models` lists.
    pub model_name: String,
    pub max_batch: usize,
    /// How long a batch waits for more requests before it starts short.
    pub linger: Duration,
    pub default_max_tokens: usize,
    /// HTTP worker threads (requests handled at once; each waits for its answers).
    pub workers: usize,
}

impl BackendTask for ServeTask {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<()> {
        let folder = &self.folder;
        let (model, processor) = open_model_folder::<B::InnerBackend>(folder, None, &device)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let shared = Arc::new(http::Shared {
            model: self.model_name.clone(),
            default_max_tokens: self.default_max_tokens,
            counter: AtomicU64::new(0),
        });
        for _ in 0..self.workers.max(1) {
            let (server, tx, shared) = (self.server.clone(), tx.clone(), shared.clone());
            std::thread::spawn(move || http::worker(server, tx, shared));
        }
        drop(tx);
        let addr = self
            .server
            .server_addr()
            .to_ip()
            .map_or_else(|| "?".to_string(), |a| a.to_string());
        outln!(
            "serving {} as `{}` on http://{addr}/v1 (batches of up to {})",
            folder.display(),
            self.model_name,
            self.max_batch
        )?;
        let generator = LocalGenerator::new(&model, &processor);
        let mut queue = Queue::new(rx, self.max_batch, self.linger);
        while let Some(batch) = queue.next_batch() {
            generate_batch(&generator, batch);
        }
        Ok(())
    }
}

/// Generates one batch and sends each job its answer.
fn generate_batch<B: burn::tensor::backend::Backend>(
    generator: &LocalGenerator<'_, B, Vlm<B>>,
    batch: Vec<Job>,
) {
    let start = Instant::now();
    let mut settings = batch[0].settings.clone();
    // Unseeded sampling draws a fresh stream for each batch.
    if settings.decoding.mode == DecodingMode::Sample && settings.decoding.seed.is_none() {
        settings.decoding.seed = Some(rand::random());
    }
    let (prompts, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|j| (j.prompt, j.reply)).unzip();
    let results = catch_unwind(AssertUnwindSafe(|| generator.generate(&prompts, &settings)))
        .unwrap_or_else(|_| {
            let error = SourceError::Other("generation failed (the model panicked)".into());
            vec![Err(error); prompts.len()]
        });
    eprintln!(
        "serve: batch of {} ({}) in {:.2} s",
        prompts.len(),
        settings.decoding.mode,
        start.elapsed().as_secs_f64()
    );
    for (reply, result) in replies.into_iter().zip(results) {
        // A client that gave up has dropped its receiver.
        let _ = reply.send(result);
    }
}
