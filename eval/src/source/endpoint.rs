//! An OpenAI-compatible chat-completions endpoint as an answer source.
//!
//! Each question is one `POST <base>/chat/completions` with the image as a `data:` URL before
//! the text of its user turn. Greedy decoding is sent as `temperature: 0`; sampling sends
//! `temperature`, `top_p` and `seed`; VCD is refused (it needs the model's logits). Requests time
//! out after [`EndpointConfig::timeout`]; HTTP 429, 5xx and connection errors (timeouts
//! included) are retried up to [`EndpointConfig::retries`] times with exponential backoff
//! (honouring `Retry-After`); other HTTP errors fail the item at once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::data_url::image_data_url;
use super::{Answer, AnswerRequest, AnswerSource, SourceError, SourceInfo};
use crate::decoding::{DecodingMode, DecodingSettings};
use crate::prompt::{Conversation, Role};
use crate::EvalError;

/// How to reach and drive an endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Base URL such as `http://localhost:8000/v1` (a URL ending in `/chat/completions` is used
    /// as it is).
    pub base_url: String,
    /// The `model` field of each request.
    pub model: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Limit on one whole request (connect, send, wait, read).
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    pub decoding: DecodingSettings,
}

impl EndpointConfig {
    /// Defaults: 4 in flight, 120 s timeout, 3 retries from 1 s backoff up to 60 s, greedy.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> EndpointConfig {
        EndpointConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            concurrency: 4,
            timeout: Duration::from_secs(120),
            retries: 3,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            decoding: DecodingSettings::default(),
        }
    }
}

/// A chat-completions endpoint.
pub struct Endpoint {
    config: EndpointConfig,
    url: String,
    agent: ureq::Agent,
}

/// One failed attempt: its message and whether another attempt may succeed.
struct Failure {
    message: String,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Endpoint {
    /// Checks the settings (URL scheme, concurrency, decoding) and builds the HTTP client.
    pub fn new(config: EndpointConfig) -> Result<Endpoint, EvalError> {
        config.decoding.validate()?;
        if config.decoding.mode == DecodingMode::Vcd {
            return Err(EvalError::Config(
                "--decoding vcd needs the model's logits: it works with a local --model, not \
                 with an --endpoint"
                    .into(),
            ));
        }
        let base = config.base_url.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(EvalError::Config(format!(
                "--endpoint must be an http:// or https:// URL, got `{}`",
                config.base_url
            )));
        }
        if config.model.trim().is_empty() {
            return Err(EvalError::Config(
                "--endpoint-model must not be empty".into(),
            ));
        }
        if config.concurrency == 0 {
            return Err(EvalError::Config("--concurrency must be at least 1".into()));
        }
        let url = if base.ends_with("/chat/completions") {
            base.to_string()
        } else {
            format!("{base}/chat/completions")
        };
        let agent = ureq::AgentBuilder::new().timeout(config.timeout).build();
        Ok(Endpoint { config, url, agent })
    }

    /// The full chat-completions URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The JSON body asking `conversation`, with `image_url` attached to user turns that carry
    /// the image.
    pub fn request_body(&self, conversation: &Conversation, image_url: Option<&str>) -> Value {
        self.request_body_seeded(conversation, image_url, self.config.decoding.seed)
    }

    /// Asks `conversation` about the image at `image_url` (a `data:` URL) with the configured
    /// decoding, sending `seed` instead of the configured one (several samples of one
    /// question at a temperature each get their own); returns the answer text.
    pub fn ask(
        &self,
        conversation: &Conversation,
        image_url: &str,
        seed: Option<u64>,
    ) -> Result<String, SourceError> {
        self.complete(&self.request_body_seeded(conversation, Some(image_url), seed))
    }

    /// [`Endpoint::request_body`] with `seed` in place of the configured seed.
    fn request_body_seeded(
        &self,
        conversation: &Conversation,
        image_url: Option<&str>,
        seed: Option<u64>,
    ) -> Value {
        let mut messages = Vec::new();
        if let Some(system) = &conversation.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        for m in &conversation.messages {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            let content = match (m.image, image_url) {
                (true, Some(url)) => json!([
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": m.text},
                ]),
                _ => json!(m.text),
            };
            messages.push(json!({"role": role, "content": content}));
        }
        let d = &self.config.decoding;
        let mut body = json!({
            "model": self.config.model,
            "messages": messages,
            "max_tokens": d.max_tokens,
        });
        let fields = body.as_object_mut().expect("a JSON object literal");
        match d.mode {
            DecodingMode::Sample => {
                fields.insert("temperature".into(), json!(d.temperature));
                fields.insert("top_p".into(), json!(d.top_p));
            }
            DecodingMode::Greedy | DecodingMode::Vcd => {
                fields.insert("temperature".into(), json!(0.0));
            }
        }
        if let Some(seed) = seed {
            fields.insert("seed".into(), json!(seed));
        }
        body
    }

    /// Posts `body`, retrying as configured, and returns the answer text.
    pub fn complete(&self, body: &Value) -> Result<String, SourceError> {
        let body = body.to_string();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure = match self.attempt(&body) {
                Ok(text) => return Ok(text),
                Err(f) => f,
            };
            if !failure.retryable || attempts > self.config.retries {
                return Err(SourceError::Endpoint {
                    message: failure.message,
                    attempts,
                });
            }
            let exp = self
                .config
                .backoff
                .saturating_mul(1 << (attempts - 1).min(20));
            let wait = failure.retry_after.map_or(exp, |ra| ra.max(exp));
            std::thread::sleep(wait.min(self.config.max_backoff));
        }
    }

    fn attempt(&self, body: &str) -> Result<String, Failure> {
        let mut request = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json");
        if let Some(key) = &self.config.api_key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let transport = |message: String| Failure {
            message,
            retryable: true,
            retry_after: None,
        };
        match request.send_string(body) {
            Ok(response) => {
                let text = response
                    .into_string()
                    .map_err(|e| transport(format!("reading the response: {e}")))?;
                answer_text(&text).map_err(|message| Failure {
                    message,
                    retryable: false,
                    retry_after: None,
                })
            }
            Err(ureq::Error::Status(code, response)) => {
                let retry_after = response
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let text = response.into_string().unwrap_or_default();
                let snippet: String = text.chars().take(300).collect();
                Err(Failure {
                    message: format!("HTTP {code}: {snippet}"),
                    retryable: code == 429 || code >= 500,
                    retry_after,
                })
            }
            Err(ureq::Error::Transport(t)) => {
                use ureq::ErrorKind::{InvalidProxyUrl, InvalidUrl, UnknownScheme};
                let permanent = matches!(t.kind(), InvalidUrl | UnknownScheme | InvalidProxyUrl);
                Err(Failure {
                    message: t.to_string(),
                    retryable: !permanent,
                    retry_after: None,
                })
            }
        }
    }
}

/// The text of `choices[0].message.content` (a string, or a list of text parts).
fn answer_text(body: &str) -> Result<String, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("response is not JSON: {e}"))?;
    let content = value
        .pointer("/choices/0/message/content")
        .ok_or_else(|| "response has no choices[0].message.content".to_string())?;
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect()),
        Value::Null => Err("the answer's content is null".to_string()),
        other => Err(format!("unexpected content {other}")),
    }
}

impl AnswerSource for Endpoint {
    fn info(&self) -> SourceInfo {
        let c = &self.config;
        let details = BTreeMap::from([
            ("url".to_string(), json!(self.url)),
            ("concurrency".to_string(), json!(c.concurrency)),
            ("timeout_s".to_string(), json!(c.timeout.as_secs_f64())),
            ("retries".to_string(), json!(c.retries)),
        ]);
        SourceInfo {
            kind: "endpoint".into(),
            name: c.model.clone(),
            details,
            counts: BTreeMap::new(),
        }
    }

    fn parallelism(&self) -> usize {
        self.config.concurrency
    }

    fn answer(&self, request: &AnswerRequest<'_>) -> Result<Answer, SourceError> {
        let path = request
            .item
            .image
            .as_deref()
            .ok_or(SourceError::MissingImage)?;
        let url = image_data_url(path)?;
        self.ask(request.conversation, &url, self.config.decoding.seed)
            .map(Answer::Text)
    }
}
