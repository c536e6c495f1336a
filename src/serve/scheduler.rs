//! The model thread of `safeaware serve`: batches from the [`Queue`] are started (prefilled)
//! and then generated one token at a time in turn, up to [`MAX_RUNNING`] batches at once, so a
//! short request that arrives while a long one is generating starts at once and finishes after
//! its own tokens, not after the long one's (what vLLM's and TGI's continuous batching give a
//! user; here the batches interleave step by step instead of merging into one). Each batch
//! keeps its own cache and random stream, so an answer does not depend on what runs beside it.
//!
//! A batch that panics fails its requests (500) and the server goes on. After a shutdown is
//! asked for, the batches running and waiting are finished; those not done when the grace
//! period ends get 503.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use safeaware_eval::decoding::DecodingMode;
use safeaware_eval::source::generator::{LocalGenerator, Session};
use safeaware_model::VisionLanguageModel;

use super::http::shutting_down;
use super::openai::ApiError;
use super::queue::{Job, Queue, Reply};
use super::shutdown;

/// Most batches generating at once (each holds its own KV cache); more wait in the queue.
pub const MAX_RUNNING: usize = 4;

/// A batch being generated and where its answers go.
struct Running<B: Backend, C> {
    session: Session<B, C>,
    replies: Vec<Sender<Reply>>,
    started: Instant,
    mode: DecodingMode,
}

/// Generates the queue's jobs until every HTTP worker has stopped and no job is left.
pub fn run<B: Backend, M: VisionLanguageModel<B>>(
    generator: &LocalGenerator<'_, B, M>,
    queue: &mut Queue,
    grace: Duration,
) {
    let mut running: Vec<Running<B, M::Cache>> = Vec::new();
    let mut stop_asked: Option<Instant> = None;
    loop {
        if stop_asked.is_none() && shutdown::requested() {
            stop_asked = Some(Instant::now());
            eprintln!(
                "serve: shutting down: finishing the requests accepted ({} batch(es) generating), for at most {} s",
                running.len(),
                grace.as_secs()
            );
        }
        let expired = stop_asked.is_some_and(|t| t.elapsed() >= grace);
        if expired {
            for r in running.drain(..) {
                fail(r.replies, &shutting_down());
            }
            fail(
                queue.drain().into_iter().map(|j| j.reply).collect(),
                &shutting_down(),
            );
        }
        if running.is_empty() {
            // Nothing to generate: wait for a job (`None` once every worker has stopped).
            let Some(batch) = queue.next_batch() else {
                return;
            };
            admit(generator, batch, expired, &mut running);
        }
        while running.len() < MAX_RUNNING {
            let Some(batch) = queue.poll_batch() else {
                break;
            };
            admit(generator, batch, expired, &mut running);
        }
        step(generator, &mut running);
    }
}

/// Starts a batch (or fails it at once, after the grace period).
fn admit<B: Backend, M: VisionLanguageModel<B>>(
    generator: &LocalGenerator<'_, B, M>,
    batch: Vec<Job>,
    expired: bool,
    running: &mut Vec<Running<B, M::Cache>>,
) {
    let replies: Vec<Sender<Reply>> = batch.iter().map(|j| j.reply.clone()).collect();
    if expired {
        return fail(replies, &shutting_down());
    }
    let mut settings = batch[0].settings.clone();
    // Unseeded sampling draws a fresh stream for each batch.
    if settings.decoding.mode == DecodingMode::Sample && settings.decoding.seed.is_none() {
        settings.decoding.seed = Some(rand::random());
    }
    let prompts = batch.into_iter().map(|j| Ok(j.prompt)).collect();
    match catch_unwind(AssertUnwindSafe(|| generator.start(prompts, &settings))) {
        Ok(session) => running.push(Running {
            session,
            replies,
            started: Instant::now(),
            mode: settings.decoding.mode,
        }),
        Err(_) => fail(replies, &panicked()),
    }
}

/// One token for every running batch, in turn; finished batches are answered.
fn step<B: Backend, M: VisionLanguageModel<B>>(
    generator: &LocalGenerator<'_, B, M>,
    running: &mut Vec<Running<B, M::Cache>>,
) {
    let mut index = 0;
    while index < running.len() {
        let session = &mut running[index].session;
        let stepped = catch_unwind(AssertUnwindSafe(|| generator.advance(session, 1)));
        if stepped.is_err() {
            fail(running.swap_remove(index).replies, &panicked());
            continue;
        }
        if !running[index].session.is_done() {
            index += 1;
            continue;
        }
        let done = running.swap_remove(index);
        eprintln!(
            "serve: batch of {} ({}) in {:.2} s",
            done.replies.len(),
            done.mode,
            done.started.elapsed().as_secs_f64()
        );
        for (reply, result) in done.replies.into_iter().zip(done.session.into_results()) {
            // A client that gave up has dropped its receiver.
            let _ = reply.send(result.map_err(ApiError::from));
        }
    }
}

fn fail(replies: Vec<Sender<Reply>>, error: &ApiError) {
    for reply in replies {
        let _ = reply.send(Err(error.clone()));
    }
}

fn panicked() -> ApiError {
    ApiError {
        status: 500,
        message: "generation failed (the model panicked); the server goes on".into(),
    }
}
