//! A scripted OpenAI-compatible HTTP/1.1 server on 127.0.0.1 for tests of endpoint clients
//! (the evaluator's here; `data distill` and `serve` in the binary's tests include this file
//! by path): each request is recorded and answered by a handler of its index and JSON body.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
