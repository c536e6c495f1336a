//! Helpers shared by the integration tests: items, images, a scripted answer source and a small
//! HTTP server.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use safeaware_data::benchmark::{Benchmark, BenchmarkItem, Subset, Verdict};
use safeaware_eval::progress::ProgressMode;
use safeaware_eval::prompt::Conversation;
use safeaware_eval::runner::RunConfig;
use safeaware_eval::source::{Answer, AnswerRequest, AnswerSource, SourceError, SourceInfo};

pub fn item(
    id: &str,
    subset: Subset,
    image: Option<PathBuf>,
    scenario: Option<&str>,
) -> BenchmarkItem {
    let gold = if subset == Subset::OverSafety {
        Verdict::Safe
    } else {
        Verdict::Unsafe
    };
    BenchmarkItem {
        id: id.to_string(),
        image,
        prompt: format!("sentence {id}"),
        gold,
        subset,
        scenario: scenario.map(str::to_string),
        counterfactual: None,
    }
}

pub fn benchmark(items: Vec<BenchmarkItem>) -> Benchmark {
    let missing_images = items
        .iter()
        .filter(|i| i.image.is_none())
        .map(|i| i.id.clone())
        .collect();
    Benchmark {
        spec: "test:benchmark".into(),
        items,
        missing_images,
    }
}

/// A small PNG at `dir/name`.
pub fn png(dir: &Path, name: &str) -> PathBuf {
    let img = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 120]));
    let path = dir.join(name);
    img.save_with_format(&path, image::ImageFormat::Png)
        .unwrap();
    path
}

pub fn quiet(out: &Path) -> RunConfig {
    RunConfig {
        progress: ProgressMode::Quiet,
        ..RunConfig::new(out)
    }
}

/// How a [`Scripted`] source answers: item, conversation, call number.
pub type Rule = dyn Fn(&BenchmarkItem, &Conversation, usize) -> Result<Answer, SourceError> + Sync;

/// A generating source that answers by rule and records every conversation it is asked.
pub struct Scripted {
    pub rule: Box<Rule>,
    pub calls: AtomicUsize,
    pub asked: Mutex<Vec<(String, Conversation)>>,
    pub parallelism: usize,
    pub batch: usize,
}

impl Scripted {
    pub fn new(
        rule: impl Fn(&BenchmarkItem, &Conversation, usize) -> Result<Answer, SourceError>
            + Sync
            + 'static,
    ) -> Scripted {
        Scripted {
            rule: Box::new(rule),
            calls: AtomicUsize::new(0),
            asked: Mutex::new(Vec::new()),
            parallelism: 3,
            batch: 1,
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl AnswerSource for Scripted {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "scripted".into(),
            name: "rule".into(),
            details: Default::default(),
            counts: Default::default(),
        }
    }
    fn parallelism(&self) -> usize {
        self.parallelism
    }
    fn batch_size(&self) -> usize {
        self.batch
    }
    fn answer(&self, request: &AnswerRequest<'_>) -> Result<Answer, SourceError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.asked
            .lock()
            .unwrap()
            .push((request.item.id.clone(), request.conversation.clone()));
        (self.rule)(request.item, request.conversation, n)
    }
}

/// What the test server replies.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn ok(content: &str) -> Reply {
        let body = serde_json::json!({"choices": [{"message": {"role": "assistant", "content": content}}]});
        Reply {
            status: 200,
            body: body.to_string(),
            delay: Duration::ZERO,
            headers: vec![],
        }
    }
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: "{\"error\": \"scripted\"}".into(),
            delay: Duration::ZERO,
            headers: vec![],
        }
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub request_line: String,
    /// Header lines, lower-cased.
    pub headers: Vec<String>,
    pub body: serde_json::Value,
}

/// An HTTP/1.1 server on 127.0.0.1 that answers each request with `handler(index, body)`.
pub struct Server {
    pub base_url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    pub fn start(
        handler: impl Fn(usize, &serde_json::Value) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let rec = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (rec, handler) = (rec.clone(), handler.clone());
                std::thread::spawn(move || serve(stream, &rec, &*handler));
            }
        });
        Server { base_url, received }
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

fn serve(
    mut stream: TcpStream,
    received: &Mutex<Vec<Received>>,
    handler: &(dyn Fn(usize, &serde_json::Value) -> Reply + Send + Sync),
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_string();
    let headers: Vec<String> = lines.map(|l| l.to_ascii_lowercase()).collect();
    let length: usize = headers
        .iter()
        .find_map(|h| h.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[header_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let index = {
        let mut r = received.lock().unwrap();
        r.push(Received {
            request_line,
            headers,
            body: body.clone(),
        });
        r.len() - 1
    };
    let reply = handler(index, &body);
    std::thread::sleep(reply.delay);
    let extra: String = reply
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let response = format!(
        "HTTP/1.1 {} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{}",
        reply.status,
        reply.body.len(),
        reply.body
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

/// All answers the scripted map gives, by id.
pub fn by_id(answers: &[(&str, &str)]) -> HashMap<String, String> {
    answers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
