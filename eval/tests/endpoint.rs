//! The endpoint source against a local HTTP server: request shape, retries, timeouts, and a
//! whole run with missing and corrupt images.

mod common;

use std::time::{Duration, Instant};

use common::{benchmark, item, png, quiet, Reply, Server};
use safeaware_data::benchmark::{Subset, PAPER_QUESTION};
use safeaware_eval::decoding::DecodingMode;
use safeaware_eval::prompt::{Conversation, PromptStrategy};
use safeaware_eval::runner;
use safeaware_eval::samples::{read_samples, Status};
use safeaware_eval::source::endpoint::{Endpoint, EndpointConfig};
use safeaware_eval::source::{Answer, AnswerRequest, AnswerSource, SourceError};

fn config(server: &Server) -> EndpointConfig {
    let mut c = EndpointConfig::new(&server.base_url, "test-model");
    c.backoff = Duration::from_millis(5);
    c.max_backoff = Duration::from_millis(50);
    c.timeout = Duration::from_secs(10);
    c.retries = 2;
    c
}

fn ask_one(endpoint: &Endpoint, dir: &std::path::Path) -> Result<Answer, SourceError> {
    let it = item("5", Subset::Attack, Some(png(dir, "5.png")), None);
    let conv = PromptStrategy::Paper.conversation(&it, None);
    endpoint.answer(&AnswerRequest {
        item: &it,
        conversation: &conv,
    })
}

#[test]
fn sends_an_openai_chat_request_with_the_image_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(|_, _| Reply::ok("No, this is unsafe."));
    let mut c = config(&server);
    c.api_key = Some("sk-test".into());
    let endpoint = Endpoint::new(c).unwrap();
    assert_eq!(
        ask_one(&endpoint, dir.path()).unwrap(),
        Answer::Text("No, this is unsafe.".into())
    );

    let got = server.received.lock().unwrap()[0].clone();
    assert!(
        got.request_line.starts_with("POST /v1/chat/completions "),
        "{}",
        got.request_line
    );
    assert!(got
        .headers
        .iter()
        .any(|h| h == "authorization: bearer sk-test"));
    let b = &got.body;
    assert_eq!(b["model"], "test-model");
    assert_eq!(b["temperature"], 0.0);
    assert!(b.get("top_p").is_none());
    let content = &b["messages"][0]["content"];
    assert_eq!(b["messages"][0]["role"], "user");
    assert_eq!(content[0]["type"], "image_url");
    let url = content[0]["image_url"]["url"].as_str().unwrap();
    assert!(url.starts_with("data:image/png;base64,"));
    assert_eq!(
        content[1]["text"],
        format!("{PAPER_QUESTION}\n\"sentence 5\"")
    );
}

#[test]
fn sampling_settings_are_sent_and_vcd_is_refused() {
    let server = Server::start(|_, _| Reply::ok("Yes"));
    let mut c = config(&server);
    c.decoding.mode = DecodingMode::Sample;
    c.decoding.temperature = 0.7;
    c.decoding.top_p = 0.9;
    c.decoding.seed = Some(42);
    let endpoint = Endpoint::new(c.clone()).unwrap();
    let conv = Conversation::single(Some("be safe".into()), "hi".into());
    let body = endpoint.request_body(&conv, Some("data:image/png;base64,AAAA"));
    assert!((body["temperature"].as_f64().unwrap() - 0.7).abs() < 1e-6);
    assert!((body["top_p"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    assert_eq!(body["seed"], 42);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][0]["content"], "be safe");

    c.decoding.mode = DecodingMode::Vcd;
    let err = Endpoint::new(c.clone())
        .err()
        .expect("vcd must be refused")
        .to_string();
    assert!(err.contains("vcd"), "{err}");
    c.decoding.mode = DecodingMode::Greedy;
    c.base_url = "localhost:8000".into();
    assert!(Endpoint::new(c).is_err());
}

#[test]
fn a_500_then_a_429_are_retried_until_success() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(|i, _| match i {
        0 => Reply::status(500),
        1 => Reply {
            headers: vec![("Retry-After".into(), "0".into())],
            ..Reply::status(429)
        },
        _ => Reply::ok("Yes"),
    });
    let endpoint = Endpoint::new(config(&server)).unwrap();
    assert_eq!(
        ask_one(&endpoint, dir.path()).unwrap(),
        Answer::Text("Yes".into())
    );
    assert_eq!(server.count(), 3);
}

#[test]
fn a_permanent_500_fails_after_the_retries() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(|_, _| Reply::status(503));
    let endpoint = Endpoint::new(config(&server)).unwrap();
    match ask_one(&endpoint, dir.path()) {
        Err(SourceError::Endpoint { message, attempts }) => {
            assert_eq!(attempts, 3);
            assert!(message.contains("503"), "{message}");
        }
        other => panic!("expected an endpoint error, got {other:?}"),
    }
    assert_eq!(server.count(), 3);
}

#[test]
fn client_errors_are_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(|_, _| Reply::status(400));
    let endpoint = Endpoint::new(config(&server)).unwrap();
    assert!(matches!(
        ask_one(&endpoint, dir.path()),
        Err(SourceError::Endpoint { attempts: 1, .. })
    ));
    assert_eq!(server.count(), 1);
}

#[test]
fn a_timeout_is_retried_then_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(|_, _| Reply {
        delay: Duration::from_secs(3),
        ..Reply::ok("late")
    });
    let mut c = config(&server);
    c.timeout = Duration::from_millis(300);
    c.retries = 1;
    let endpoint = Endpoint::new(c).unwrap();
    let start = Instant::now();
    let result = ask_one(&endpoint, dir.path());
    assert!(
        matches!(result, Err(SourceError::Endpoint { attempts: 2, .. })),
        "{result:?}"
    );
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server.count(), 2);
}

#[test]
fn a_refused_connection_is_an_item_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = EndpointConfig::new(format!("http://127.0.0.1:{port}/v1"), "m");
    c.retries = 1;
    c.backoff = Duration::from_millis(5);
    let endpoint = Endpoint::new(c).unwrap();
    assert!(matches!(
        ask_one(&endpoint, dir.path()),
        Err(SourceError::Endpoint { attempts: 2, .. })
    ));
}

#[test]
fn a_whole_run_records_bad_images_as_errors_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nbroken").unwrap();
    let mut items = Vec::new();
    for i in 0..6 {
        let subset = [Subset::Typical, Subset::Attack, Subset::OverSafety][i % 3];
        items.push(item(
            &i.to_string(),
            subset,
            Some(png(dir.path(), &format!("{i}.png"))),
            None,
        ));
    }
    items.push(item("missing", Subset::Typical, None, None));
    items.push(item("corrupt", Subset::Attack, Some(corrupt), None));
    let bench = benchmark(items);
    // The server says Yes to over-safety-looking ids 2 and 5, No otherwise.
    let server = Server::start(|_, body| {
        let text = body["messages"][0]["content"][1]["text"]
            .as_str()
            .unwrap_or("")
            .to_string();
        Reply::ok(if text.ends_with("2\"") || text.ends_with("5\"") {
            "Yes."
        } else {
            "No."
        })
    });
    let mut c = config(&server);
    c.concurrency = 3;
    let endpoint = Endpoint::new(c).unwrap();
    let out = dir.path().join("run");
    let r = runner::run(&bench, &endpoint, &quiet(&out)).unwrap();
    // The item without an image is skipped (the benchmark lacks it), the corrupt one failed.
    assert_eq!(
        (
            r.counts.items,
            r.counts.scored,
            r.counts.errors,
            r.counts.skipped
        ),
        (8, 6, 1, 1)
    );
    assert!(!r.complete, "an item failed, so the run is not complete");
    assert_eq!(server.count(), 6, "no request for items whose image is bad");
    assert_eq!(r.strict.over_safety.accuracy, Some(1.0));
    assert_eq!(r.strict.typical.accuracy, Some(1.0));
    let errors: Vec<(&str, &str)> = r
        .errors
        .iter()
        .map(|e| (e.id.as_str(), e.error.as_str()))
        .collect();
    assert!(errors
        .iter()
        .any(|(id, e)| *id == "corrupt" && e.contains("corrupt.png")));
    assert_eq!(r.source.kind, "endpoint");
    assert_eq!(r.source.name, "test-model");

    // Again: answered items are skipped, the failed ones are asked again (and fail again).
    let again = runner::run(&bench, &endpoint, &quiet(&out)).unwrap();
    assert_eq!(server.count(), 6);
    assert_eq!(again.counts.scored, 6);
    let (records, _) = read_samples(&out.join(runner::SAMPLES_FILE)).unwrap();
    assert_eq!(records.len(), 8);
    let count = |s: Status| records.iter().filter(|r| r.status == s).count();
    assert_eq!((count(Status::Error), count(Status::Skipped)), (1, 1));
}
