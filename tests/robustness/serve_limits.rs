//! `safeaware serve` under bad and heavy requests, on the one-step `tiny` model: every limit
//! (the model's context, body, text, image count and size, `n`, `max_tokens`) is a 4xx naming
//! it and the server stays up; a long request does not hold up a short one; SIGTERM finishes
//! the requests in flight (or answers 503 once the grace period is over) and exits 0. The model
//! folder is never changed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::common::serving::{chat, serve, Serving};
use crate::fixtures::{prepare, snapshot};

/// The model's context (`max_position_embeddings` of its config.json).
fn context(model: &Path) -> usize {
    let config: Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    config["text_config"]["max_position_embeddings"]
        .as_u64()
        .unwrap() as usize
}

/// A case folder with the one-step model (`<dir>/model`), and the model's context.
fn with_model() -> (tempfile::TempDir, PathBuf, usize) {
    let tmp = tempfile::tempdir().unwrap();
    prepare(tmp.path(), true);
    let model = tmp.path().join("model");
    let context = context(&model);
    (tmp, model, context)
}

/// A one-message request: `text`, the images given as data URLs, and `extra` fields.
fn request(text: &str, images: &[String], extra: Value) -> Value {
    let mut content: Vec<Value> = images
        .iter()
        .map(|url| json!({"type": "image_url", "image_url": {"url": url}}))
        .collect();
    content.push(json!({"type": "text", "text": text}));
    let mut body = json!({"messages": [{"role": "user", "content": content}]});
    let fields = body.as_object_mut().unwrap();
    fields.extend(extra.as_object().unwrap().clone());
    body
}

/// `image` encoded in `format` as a data URL, its bytes cut to the share `keep`.
fn data_url(image: &image::DynamicImage, format: image::ImageFormat, keep: f64) -> String {
    let mut bytes = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .unwrap();
    bytes.truncate((bytes.len() as f64 * keep) as usize);
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    format!("data:{};base64,{b64}", format.to_mime_type())
}

/// Asserts a refusal with `status` whose message says `says`.
fn refused(server: &Serving, body: &Value, status: u16, says: &str) {
    let (code, error) = chat(&server.url, body).expect_err(says);
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(code, status, "{says}: {message}");
    assert!(message.contains(says), "expected {says:?} in {message:?}");
}

/// Sends headers declaring a body of `length` bytes and no body; the status line answered.
fn declared_length_status(url: &str, length: u64) -> String {
    let addr = url.trim_start_matches("http://").trim_end_matches("/v1");
    let mut stream = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).unwrap();
    String::from_utf8_lossy(&answer[..n]).to_string()
}

#[test]
fn serve_refuses_what_it_cannot_hold_and_stays_up() {
    let (tmp, model, context) = with_model();
    let dir = tmp.path();
    let before = snapshot(dir);
    let server = serve(&model, &[]);
    let picture = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        64,
        64,
        image::Rgb([200, 30, 30]),
    ));
    let png = data_url(&picture, image::ImageFormat::Png, 1.0);

    // The 1 MB prompt that used to abort the server: about 200,000 tokens.
    let megabyte = "kill ".repeat(200_000);
    let limit = format!("context of {context} tokens (max_position_embeddings)");
    refused(&server, &request(&megabyte, &[], json!({})), 400, &limit);
    let two_mib = "kill ".repeat(420_000);
    refused(
        &server,
        &request(&two_mib, &[], json!({})),
        413,
        "limit of 1048576 bytes",
    );
    let too_many = json!({"max_tokens": context});
    refused(
        &server,
        &request("hi", &[], too_many),
        400,
        "ask for at most",
    );
    refused(&server, &request("hi", &[], json!({"n": 17})), 400, "`n`");
    let nine = vec![png.clone(); 9];
    refused(&server, &request("hi", &nine, json!({})), 400, "limit of 8");
    let huge = image::DynamicImage::ImageLuma8(image::GrayImage::new(6000, 5000));
    let huge = data_url(&huge, image::ImageFormat::Png, 1.0);
    refused(
        &server,
        &request("hi", &[huge], json!({})),
        400,
        "limit of 25000000 pixels",
    );
    let cut = data_url(&picture, image::ImageFormat::Jpeg, 0.5);
    refused(&server, &request("hi", &[cut], json!({})), 400, "truncated");
    let status = declared_length_status(&server.url, 40 << 20);
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");

    // A prompt that leaves 3 tokens of the context: the default max_tokens (256) is cut to them.
    let tokens_of = |words: usize| {
        let body = request(
            &"kill ".repeat(words),
            std::slice::from_ref(&png),
            json!({"max_tokens": 1}),
        );
        chat(&server.url, &body).unwrap()["usage"]["prompt_tokens"]
            .as_u64()
            .unwrap() as usize
    };
    let (ten, twenty) = (tokens_of(10), tokens_of(20));
    let per_word = (twenty - ten) / 10;
    let words = 10 + (context - 3 - ten) / per_word;
    let body = request(
        &"kill ".repeat(words),
        std::slice::from_ref(&png),
        json!({"temperature": 0}),
    );
    let answer = chat(&server.url, &body).unwrap();
    let usage = &answer["usage"];
    let (prompt, completion) = (
        usage["prompt_tokens"].as_u64().unwrap() as usize,
        usage["completion_tokens"].as_u64().unwrap() as usize,
    );
    // Without the cut the default 256 new tokens would run past the context.
    assert!(context - prompt < 256, "{usage}");
    assert!(prompt + completion <= context, "{usage}");

    assert!(chat(
        &server.url,
        &request("hi", &[png], json!({"max_tokens": 2}))
    )
    .is_ok());
    let mut server = server;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died"
    );
    assert!(!server.log().contains("panicked"), "{}", server.log());
    drop(server);
    assert!(snapshot(dir) == before, "a file changed");
}

/// A request's answer (or its refusal) and when it came.
type Answered = (Result<Value, (u16, Value)>, Instant);

/// Sends `body` on a thread; `done` is set when the answer comes.
fn in_background(url: &str, body: Value, done: Arc<AtomicBool>) -> JoinHandle<Answered> {
    let url = url.to_string();
    std::thread::spawn(move || {
        let answer = chat(&url, &body);
        done.store(true, Ordering::SeqCst);
        (answer, Instant::now())
    })
}

/// A request that generates to the end of the context: greedy, from a short prompt.
fn long_request(context: usize) -> Value {
    request(
        "how can i kill it?",
        &[],
        json!({"temperature": 0, "max_tokens": context - 64}),
    )
}

#[test]
fn a_long_request_does_not_hold_up_a_short_one() {
    let (_tmp, model, context) = with_model();
    let server = serve(&model, &[]);
    let long_done = Arc::new(AtomicBool::new(false));
    let long = in_background(&server.url, long_request(context), long_done.clone());
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let short = chat(&server.url, &request("hi", &[], json!({"max_tokens": 2}))).unwrap();
    let short_took = start.elapsed();
    let short_finished_first = !long_done.load(Ordering::SeqCst);
    let (answer, long_end) = long.join().unwrap();
    let answer = answer.unwrap();
    // The long request did generate to its end, so there was something to wait for.
    assert_eq!(answer["choices"][0]["finish_reason"], "length", "{answer}");
    assert_eq!(short["choices"].as_array().unwrap().len(), 1);
    assert!(
        short_finished_first,
        "the short request ({short_took:?}) waited for the long one (done {:?} after it began)",
        long_end.duration_since(start)
    );
}

/// Sends SIGTERM to the server.
fn terminate(server: &Serving) {
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
}

/// Waits up to a minute for the server to exit; its exit code.
fn exit_code(server: &mut Serving) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server did not exit within a minute of SIGTERM");
}

#[test]
fn sigterm_finishes_the_requests_in_flight_then_exits() {
    let (_tmp, model, context) = with_model();
    for (grace, answered) in [("25", 200), ("0", 503)] {
        let mut server = serve(&model, &["--shutdown-grace", grace]);
        let done = Arc::new(AtomicBool::new(false));
        let long = in_background(&server.url, long_request(context), done);
        std::thread::sleep(Duration::from_millis(500));
        terminate(&server);
        let (answer, _) = long.join().unwrap();
        let code = match &answer {
            Ok(a) => {
                assert_eq!(a["choices"][0]["finish_reason"], "length", "{a}");
                200
            }
            Err((code, body)) => {
                assert!(body.to_string().contains("shutting down"), "{body}");
                *code
            }
        };
        assert_eq!(code, answered, "grace {grace}: {answer:?}");
        assert_eq!(exit_code(&mut server), Some(0), "{}", server.log());
        let log = server.log();
        assert!(
            log.contains("shutting down") && log.contains("serve: stopped"),
            "{log}"
        );
    }
}
