//! The HTTP side of `safeaware serve`: worker threads take requests from the tiny_http server,
//! route them, and for a chat completion encode the prompt (checking it against the model's
//! context), queue one job per answer wanted and wait for the model thread's replies.
//!
//! Routes: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`; anything else is 404
//! (405 for a known path with another method). Bodies over [`MAX_BODY`] are refused (413). A
//! request whose handling panics gets a 500 and the worker goes on. Once a shutdown is asked
//! for ([`super::shutdown`]) new requests get 503 and the workers stop.

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use safeaware_eval::source::context::{EncodedPrompt, PromptEncoder};
use safeaware_eval::source::generator::{Generated, Prompt};
use serde_json::Value;
use tiny_http::{Header, Method, Request, Response, Server};

use super::openai::{self, ApiError, ChatRequest};
use super::queue::Job;
use super::shutdown;

/// Largest request body accepted (images travel inside it as base64): room for a few photos
/// of a phone camera, as OpenAI's 20 MB per image; text is limited far lower
/// ([`openai::MAX_TEXT_BYTES`]).
pub const MAX_BODY: u64 = 32 << 20;

/// How often an idle worker looks for a shutdown.
const POLL: Duration = Duration::from_millis(100);

/// What every worker shares.
pub struct Shared<'a> {
    /// The name `/v1/models` lists and answers carry.
    pub model: String,
    /// `max_tokens` of a request that sets none.
    pub default_max_tokens: usize,
    /// Numbers the completions (`chatcmpl-<n>`).
    pub counter: AtomicU64,
    /// The model folder's processor, with the model's context.
    pub encoder: PromptEncoder<'a>,
}

/// Serves requests from `server` until a shutdown is asked for; jobs go to `jobs`.
pub fn worker(server: &Server, jobs: Sender<Job>, shared: &Shared<'_>) {
    loop {
        let mut request = match shutdown::requested() {
            // Answer (503) what is already waiting, then stop.
            true => match server.try_recv() {
                Ok(Some(request)) => request,
                _ => break,
            },
            // An accept error is one connection's; the worker goes on.
            false => match server.recv_timeout(POLL) {
                Ok(Some(request)) => request,
                _ => continue,
            },
        };
        let (status, body) = match shutdown::requested() {
            true => (503, shutting_down().body()),
            false => match catch_unwind(AssertUnwindSafe(|| route(&mut request, &jobs, shared))) {
                Ok(Ok(body)) => (200, body),
                Ok(Err(e)) => (e.status, e.body()),
                Err(_) => (500, internal_error().body()),
            },
        };
        let json = Header::from_bytes("Content-Type", "application/json").expect("a valid header");
        let response = Response::from_string(body.to_string())
            .with_status_code(status)
            .with_header(json);
        // A client that went away is not the server's problem.
        let _ = request.respond(response);
    }
}

fn route(
    request: &mut Request,
    jobs: &Sender<Job>,
    shared: &Shared<'_>,
) -> Result<Value, ApiError> {
    let path = request
        .url()
        .split('?')
        .next()
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    let method = request.method().clone();
    match (path.as_str(), method) {
        ("/v1/chat/completions", Method::Post) => {
            let body = read_body(request)?;
            let chat = openai::parse_request(&body, shared.default_max_tokens)?;
            complete(chat, jobs, shared)
        }
        ("/v1/models", Method::Get) => Ok(openai::models(&shared.model)),
        ("/health", Method::Get) => Ok(serde_json::json!({"status": "ok"})),
        ("/v1/chat/completions" | "/v1/models" | "/health", m) => Err(ApiError {
            status: 405,
            message: format!("{m} is not allowed on {path}"),
        }),
        _ => Err(ApiError {
            status: 404,
            message: format!(
                "no route {path}: this server has POST /v1/chat/completions and GET /v1/models"
            ),
        }),
    }
}

fn read_body(request: &mut Request) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError {
        status: 413,
        message: format!(
            "the body is over this server's limit of {} MiB",
            MAX_BODY >> 20
        ),
    };
    // A declared length over the limit is refused before anything is read.
    if request.body_length().is_some_and(|n| n as u64 > MAX_BODY) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::bad(format!("reading the body: {e}")))?;
    if body.len() as u64 > MAX_BODY {
        return Err(too_large());
    }
    Ok(body)
}

/// Encodes the request's prompt, queues its `n` answers and waits for them. With a seed,
/// answer `i` samples with `seed + i`, so the answers differ and each is reproducible.
fn complete(
    mut chat: ChatRequest,
    jobs: &Sender<Job>,
    shared: &Shared<'_>,
) -> Result<Value, ApiError> {
    let number = shared.counter.fetch_add(1, Ordering::SeqCst);
    let id = format!("chatcmpl-{number}");
    let prompt = Prompt {
        id: id.clone(),
        messages: std::mem::take(&mut chat.messages),
        image_name: "the request's image".into(),
    };
    let encoded = Arc::new(shared.encoder.encode(&prompt).map_err(ApiError::from)?);
    let max_tokens = fit_max_tokens(&encoded, &chat, shared.encoder)?;
    let (tx, rx) = mpsc::channel();
    for i in 0..chat.n {
        let mut settings = chat.settings.clone();
        settings.max_new_tokens = max_tokens;
        settings.decoding.max_tokens = max_tokens;
        settings.decoding.seed = settings.decoding.seed.map(|s| s.wrapping_add(i as u64));
        let job = Job {
            prompt: encoded.clone(),
            settings,
            reply: tx.clone(),
        };
        jobs.send(job).map_err(|_| stopped())?;
    }
    drop(tx);
    let mut answers: Vec<Generated> = Vec::with_capacity(chat.n);
    for _ in 0..chat.n {
        answers.push(rx.recv().map_err(|_| stopped())??);
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(openai::completion(&id, &shared.model, created, &answers))
}

/// The new tokens of a request: its `max_tokens` when the context holds the prompt and them
/// (else 400, as vLLM answers), or the server's default cut to what the context leaves.
fn fit_max_tokens(
    prompt: &EncodedPrompt,
    chat: &ChatRequest,
    encoder: PromptEncoder<'_>,
) -> Result<usize, ApiError> {
    let wanted = chat.settings.max_new_tokens;
    let room = encoder.budget(prompt.len(), usize::MAX);
    if chat.max_tokens_given && wanted > room {
        return Err(ApiError::bad(format!(
            "this model's context is {} tokens (max_position_embeddings): the messages take {} and max_tokens asks for {wanted} more; ask for at most {room} or shorten the messages",
            encoder.context(),
            prompt.len()
        )));
    }
    Ok(wanted.min(room))
}

fn stopped() -> ApiError {
    ApiError {
        status: 503,
        message: "the model thread has stopped".into(),
    }
}

/// The answer to a request that comes after a shutdown was asked for.
pub fn shutting_down() -> ApiError {
    ApiError {
        status: 503,
        message: "the server is shutting down".into(),
    }
}

fn internal_error() -> ApiError {
    ApiError {
        status: 500,
        message: "internal error: handling the request failed (the server goes on)".into(),
    }
}
