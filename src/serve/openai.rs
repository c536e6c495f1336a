//! The OpenAI chat-completions protocol as `safeaware serve` speaks it: a request body read into
//! the processor's messages and generation settings, and the JSON of answers and errors.
//!
//! Understood request fields: `messages` (roles `system`, `user`, `assistant`; content a string
//! or a list of `{"type": "text", "text"}` and `{"type": "image_url", "image_url": {"url"}}`
//! parts, images as base64 `data:` URLs, in user turns only), `max_tokens` (or
//! `max_completion_tokens`), `temperature` (default 1, as OpenAI's; 0 is greedy), `top_p`,
//! `seed`, `n` (1–16). `model` is accepted whatever it names. `stream` and `stop` are refused
//! (400) rather than ignored; other fields are ignored.
//!
//! Limits, checked before anything sized by the request is built: at most [`MAX_TEXT_BYTES`]
//! of text (before tokenizing), [`MAX_IMAGES`] images of at most [`MAX_IMAGE_PIXELS`] pixels
//! each (read from the image header before decoding); the prompt's tokens against the
//! model's context come after encoding (`http.rs`).

use std::sync::Arc;

use safeaware_data::processor::{ImageSource, Message, Part, Role};
use safeaware_eval::decoding::{DecodingMode, DecodingSettings};
use safeaware_eval::source::data_url::decode_image_data_url;
use safeaware_eval::source::generator::{Generated, LocalSettings};
use safeaware_eval::source::SourceError;
use serde_json::{json, Value};

/// Most answers one request may ask for (`n`).
pub const MAX_N: usize = 16;

/// Most text, in bytes, of one request's messages: far more than any supported model's
/// context holds (16,384 tokens at most), so no prompt that fits is refused, and a megabyte
/// of text is never tokenized only to be refused.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// Most images in one request.
pub const MAX_IMAGES: usize = 8;

/// Most pixels (width × height) of one image: a 24-megapixel camera's 6000 × 4000 fits.
pub const MAX_IMAGE_PIXELS: u64 = 25_000_000;

/// A request the server refuses, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    /// A 400: the request is wrong.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }

    /// The OpenAI error body.
    pub fn body(&self) -> Value {
        let kind = if self.status >= 500 {
            "server_error"
        } else {
            "invalid_request_error"
        };
        json!({"error": {"message": self.message, "type": kind, "code": Value::Null}})
    }
}

/// A prompt the generator could not answer: the request's fault (its image, its length) is a
/// 400, anything else a 500.
impl From<SourceError> for ApiError {
    fn from(e: SourceError) -> ApiError {
        let status = match e {
            SourceError::Image { .. } | SourceError::TooLong { .. } => 400,
            _ => 500,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

/// A chat-completions request, read.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    /// How to generate; a sampled request without a seed has `seed: None`.
    pub settings: LocalSettings,
    /// Answers wanted.
    pub n: usize,
    /// Whether the request set `max_tokens` (else the server's default applies, cut to what
    /// the context leaves).
    pub max_tokens_given: bool,
}

/// Reads a request body; `default_max_tokens` applies when it sets none.
pub fn parse_request(body: &[u8], default_max_tokens: usize) -> Result<ChatRequest, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("the body is not JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::bad("the body must be a JSON object"))?;
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::bad(
            "streaming is not supported: send stream: false",
        ));
    }
    if obj.get("stop").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad("`stop` is not supported"));
    }
    let raw_messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad("`messages` must be a non-empty array"))?;
    check_sizes(raw_messages)?;
    let messages = raw_messages
        .iter()
        .enumerate()
        .map(|(i, m)| message(m).map_err(|e| ApiError::bad(format!("messages[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if messages.last().map(|m| m.role) == Some(Role::Assistant) {
        return Err(ApiError::bad(
            "the last message must not be the assistant's",
        ));
    }
    let (max_tokens, max_tokens_given) =
        match obj.get("max_tokens").or(obj.get("max_completion_tokens")) {
            None | Some(Value::Null) => (default_max_tokens, false),
            Some(v) => (
                positive(v)
                    .ok_or_else(|| ApiError::bad("`max_tokens` must be a positive integer"))?,
                true,
            ),
        };
    let n = match obj.get("n") {
        None | Some(Value::Null) => 1,
        Some(v) => positive(v)
            .filter(|&n| n <= MAX_N)
            .ok_or_else(|| ApiError::bad(format!("`n` must be an integer from 1 to {MAX_N}")))?,
    };
    let decoding = decoding(obj, max_tokens)?;
    let settings = LocalSettings {
        max_new_tokens: max_tokens,
        batch_size: 1,
        decoding,
    };
    Ok(ChatRequest {
        messages,
        settings,
        n,
        max_tokens_given,
    })
}

/// Refuses more text than [`MAX_TEXT_BYTES`] or more images than [`MAX_IMAGES`], read from
/// the JSON before any image is decoded.
fn check_sizes(messages: &[Value]) -> Result<(), ApiError> {
    let (mut text, mut images) = (0usize, 0usize);
    for content in messages.iter().filter_map(|m| m.get("content")) {
        match content {
            Value::String(t) => text += t.len(),
            Value::Array(parts) => {
                for part in parts {
                    match part.get("type").and_then(Value::as_str) {
                        Some("image_url") => images += 1,
                        _ => text += part.get("text").and_then(Value::as_str).map_or(0, str::len),
                    }
                }
            }
            _ => {}
        }
    }
    if text > MAX_TEXT_BYTES {
        return Err(ApiError {
            status: 413,
            message: format!(
                "the messages hold {text} bytes of text, over this server's limit of {MAX_TEXT_BYTES} bytes (far more than the model's context holds)"
            ),
        });
    }
    if images > MAX_IMAGES {
        return Err(ApiError::bad(format!(
            "{images} images, over this server's limit of {MAX_IMAGES} per request"
        )));
    }
    Ok(())
}

fn positive(v: &Value) -> Option<usize> {
    v.as_u64().filter(|&n| n > 0).map(|n| n as usize)
}

/// The decoding of a request: temperature 0 is greedy, anything else samples.
fn decoding(
    obj: &serde_json::Map<String, Value>,
    max_tokens: usize,
) -> Result<DecodingSettings, ApiError> {
    let number = |key: &str, default: f64| match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| ApiError::bad(format!("`{key}` must be a number"))),
    };
    let temperature = number("temperature", 1.0)? as f32;
    let top_p = number("top_p", 1.0)? as f32;
    let seed = match obj.get("seed") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| ApiError::bad("`seed` must be a non-negative integer"))?,
        ),
    };
    let d = DecodingSettings {
        mode: if temperature == 0.0 {
            DecodingMode::Greedy
        } else {
            DecodingMode::Sample
        },
        temperature,
        top_p,
        seed,
        max_tokens,
        ..DecodingSettings::default()
    };
    d.validate().map_err(|e| {
        let message = e.to_string().replace("--top-p", "top_p");
        ApiError::bad(message.replace("--", ""))
    })?;
    Ok(d)
}

/// One message of the request.
fn message(m: &Value) -> Result<Message, String> {
    let role = match m.get("role").and_then(Value::as_str) {
        Some("system") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => {
            return Err(format!(
                "role `{other}` is not supported (system, user, assistant)"
            ))
        }
        None => return Err("no `role`".into()),
    };
    let parts = match m.get("content") {
        Some(Value::String(text)) => vec![Part::text(text.clone())],
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(i, p)| part(p).map_err(|e| format!("content[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err("`content` must be a string or a list of parts".into()),
    };
    if role != Role::User && parts.iter().any(|p| matches!(p, Part::Image(_))) {
        return Err("images are accepted in user messages only".into());
    }
    Ok(Message::new(role, parts))
}

/// One content part: text, or an image as a `data:` URL.
fn part(p: &Value) -> Result<Part, String> {
    match p.get("type").and_then(Value::as_str) {
        Some("text") => p
            .get("text")
            .and_then(Value::as_str)
            .map(Part::text)
            .ok_or_else(|| "a text part needs `text`".to_string()),
        Some("image_url") => {
            let url = p
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str)
                .ok_or("an image_url part needs `image_url.url`")?;
            let image = decode_image_data_url(url, MAX_IMAGE_PIXELS)?;
            Ok(Part::Image(ImageSource::Decoded(Arc::new(image))))
        }
        Some(other) => Err(format!(
            "part type `{other}` is not supported (text, image_url)"
        )),
        None => Err("a part needs a `type`".into()),
    }
}

/// The chat-completion body for the answers of one request.
pub fn completion(id: &str, model: &str, created: u64, answers: &[Generated]) -> Value {
    let choices: Vec<Value> = answers
        .iter()
        .enumerate()
        .map(|(i, g)| {
            json!({
                "index": i,
                "message": {"role": "assistant", "content": g.text},
                "finish_reason": if g.hit_limit { "length" } else { "stop" },
            })
        })
        .collect();
    let prompt_tokens = answers.first().map_or(0, |g| g.prompt_tokens);
    let completion_tokens: usize = answers.iter().map(|g| g.new_tokens).sum();
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    })
}

/// The `/v1/models` body: the one model served.
pub fn models(model: &str) -> Value {
    json!({
        "object": "list",
        "data": [{"id": model, "object": "model", "created": 0, "owned_by": "safeaware"}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small PNG as a data URL.
    fn png_url() -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        image::RgbImage::from_pixel(3, 2, image::Rgb([9, 99, 199]))
            .save(&path)
            .unwrap();
        safeaware_eval::source::data_url::image_data_url(&path).unwrap()
    }

    fn parse(body: Value) -> Result<ChatRequest, ApiError> {
        parse_request(body.to_string().as_bytes(), 64)
    }

    #[test]
    fn a_chat_request_becomes_messages_and_settings() {
        let r = parse(json!({
            "model": "anything",
            "messages": [
                {"role": "system", "content": "be safe"},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": png_url()}},
                    {"type": "text", "text": "is this safe?"}]},
            ],
            "temperature": 0,
            "max_tokens": 9,
        }))
        .unwrap();
        assert_eq!(r.n, 1);
        assert_eq!(r.messages.len(), 2);
        assert!(matches!(r.messages[1].content[0], Part::Image(_)));
        assert_eq!(r.messages[1].content[1], Part::text("is this safe?"));
        assert_eq!(r.settings.max_new_tokens, 9);
        assert_eq!(r.settings.decoding.mode, DecodingMode::Greedy);

        let s = parse(json!({"messages": [{"role": "user", "content": "hi"}], "seed": 3, "top_p": 0.5, "n": 2})).unwrap();
        assert_eq!(s.settings.max_new_tokens, 64);
        assert_eq!(s.settings.decoding.mode, DecodingMode::Sample);
        assert_eq!(s.settings.decoding.temperature, 1.0);
        assert_eq!(s.settings.decoding.seed, Some(3));
        assert_eq!(s.n, 2);
    }

    #[test]
    fn wrong_requests_are_400_with_a_reason() {
        let user = json!({"role": "user", "content": "hi"});
        let cases = [
            (json!({"messages": []}), "`messages`"),
            (json!({"messages": [user], "stream": true}), "streaming"),
            (json!({"messages": [user], "stop": ["x"]}), "`stop`"),
            (json!({"messages": [user], "n": 99}), "`n`"),
            (
                json!({"messages": [user], "temperature": -1}),
                "temperature",
            ),
            (json!({"messages": [user], "max_tokens": 0}), "`max_tokens`"),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "role `tool`",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.invalid/a.png"}}]}]}),
                "data: URL",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": png_url()}}]}]}),
                "user messages only",
            ),
            (
                json!({"messages": [user, {"role": "assistant", "content": "x"}]}),
                "last message",
            ),
        ];
        for (body, expected) in cases {
            let err = parse(body.clone()).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(err.message.contains(expected), "{body}: {}", err.message);
        }
        assert!(parse_request(b"not json", 8).is_err());
    }

    #[test]
    fn sizes_are_limited_before_images_are_decoded() {
        let text = |t: String| json!({"messages": [{"role": "user", "content": t}]});
        let err = parse(text("x".repeat(MAX_TEXT_BYTES + 1))).unwrap_err();
        assert_eq!(err.status, 413);
        assert!(
            err.message.contains("limit of 1048576 bytes"),
            "{}",
            err.message
        );
        assert!(parse(text("x".repeat(MAX_TEXT_BYTES))).is_ok());
        // Nine undecodable images: refused by their count, before any is decoded.
        let image =
            json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}});
        let body = json!({"messages": [{"role": "user", "content": vec![image; MAX_IMAGES + 1]}]});
        let err = parse(body).unwrap_err();
        assert!(
            err.message.contains("limit of 8 per request"),
            "{}",
            err.message
        );
        let given = |b: Value| parse(b).unwrap().max_tokens_given;
        assert!(!given(text("hi".into())));
        assert!(given(
            json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
        ));
    }

    #[test]
    fn completions_report_their_finish_and_usage() {
        let g = |text: &str, new_tokens, hit_limit| Generated {
            text: text.into(),
            prompt_tokens: 10,
            new_tokens,
            hit_limit,
        };
        let body = completion(
            "chatcmpl-1",
            "m",
            5,
            &[g("Yes", 2, false), g("No no no", 3, true)],
        );
        assert_eq!(body["choices"][0]["message"]["content"], "Yes");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["choices"][1]["finish_reason"], "length");
        assert_eq!(body["usage"]["total_tokens"], 15);
        assert_eq!(models("m")["data"][0]["id"], "m");
    }
}
