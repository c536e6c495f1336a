//! The HTTP side of `safeaware serve`: worker threads take requests from the tiny_http server,
//! route them, and for a chat completion queue one job per answer wanted and wait for the
//! model thread's replies.
//!
//! Routes: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`; anything else is 404
//! (405 for a known path with another method). Bodies over [`MAX_BODY`] are refused (413).

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use safeaware_eval::source::generator::{Generated, Prompt};
use serde_json::Value;
use tiny_http::{Header, Method, Request, Response, Server};

use super::openai::{self, ApiError, ChatRequest};
use super::queue::Job;

/// Largest request body accepted (images travel inside it as base64).
pub const MAX_BODY: u64 = 64 << 20;

/// What every worker shares.
pub struct Shared {
    /// The name `/v1/models` lists and answers carry.
    pub model: String,
    /// `max_tokens` of a request that sets none.
    pub default_max_tokens: usize,
    /// Numbers the completions (`chatcmpl-<n>`).
    pub counter: AtomicU64,
}

/// Serves requests from `server` until it is closed; jobs go to `jobs`.
pub fn worker(server: Arc<Server>, jobs: Sender<Job>, shared: Arc<Shared>) {
    while let Ok(mut request) = server.recv() {
        let (status, body) = match route(&mut request, &jobs, &shared) {
            Ok(body) => (200, body),
            Err(e) => (e.status, e.body()),
        };
        let json = Header::from_bytes("Content-Type", "application/json").expect("a valid header");
        let response = Response::from_string(body.to_string())
            .with_status_code(status)
            .with_header(json);
        // A client that went away is not the server's problem.
        let _ = request.respond(response);
    }
}

fn route(request: &mut Request, jobs: &Sender<Job>, shared: &Shared) -> Result<Value, ApiError> {
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
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::bad(format!("reading the body: {e}")))?;
    if body.len() as u64 > MAX_BODY {
        return Err(ApiError {
            status: 413,
            message: format!("the body is over {} MiB", MAX_BODY >> 20),
        });
    }
    Ok(body)
}

/// Queues the `n` answers of a request and waits for them. With a seed, answer `i` samples with
/// `seed + i`, so the answers differ and each is reproducible.
fn complete(chat: ChatRequest, jobs: &Sender<Job>, shared: &Shared) -> Result<Value, ApiError> {
    let number = shared.counter.fetch_add(1, Ordering::SeqCst);
    let id = format!("chatcmpl-{number}");
    let (tx, rx) = mpsc::channel();
    for i in 0..chat.n {
        let mut settings = chat.settings.clone();
        settings.decoding.seed = settings.decoding.seed.map(|s| s.wrapping_add(i as u64));
        let job = Job {
            prompt: Prompt {
                id: format!("{id}-{i}"),
                messages: chat.messages.clone(),
                image_name: "the request's image".into(),
            },
            settings,
            reply: tx.clone(),
        };
        jobs.send(job).map_err(|_| stopped())?;
    }
    drop(tx);
    let mut answers: Vec<Generated> = Vec::with_capacity(chat.n);
    for _ in 0..chat.n {
        match rx.recv().map_err(|_| stopped())? {
            Ok(g) => answers.push(g),
            Err(e) => {
                let status = if matches!(e, safeaware_eval::source::SourceError::Image { .. }) {
                    400
                } else {
                    500
                };
                return Err(ApiError {
                    status,
                    message: e.to_string(),
                });
            }
        }
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(openai::completion(&id, &shared.model, created, &answers))
}

fn stopped() -> ApiError {
    ApiError {
        status: 503,
        message: "the model thread has stopped".into(),
    }
}
