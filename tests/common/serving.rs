//! A `safeaware serve` child process for the tests that talk to it over HTTP: started on a free
//! port, its stderr collected, killed when dropped; and the requests the tests send.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A running server: its base URL (`http://127.0.0.1:N/v1`) and what it writes to stderr.
pub struct Serving {
    pub child: Child,
    pub url: String,
    pub log: Arc<Mutex<String>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serving {
    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// Starts `safeaware serve --checkpoint folder --port 0` with `extra` flags and waits for the
/// line that gives its address.
pub fn serve(folder: &Path, extra: &[&str]) -> Serving {
    let mut child = Command::new(env!("CARGO_BIN_EXE_safeaware"))
        .args(["serve", "--checkpoint", folder.to_str().unwrap()])
        .args(["--port", "0"])
        .args(extra)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}: {}", log.lock().unwrap()))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    Serving { child, url, log }
}

/// The JSON of a response body (`Null` when it is not JSON).
pub fn json_of(r: ureq::Response) -> Value {
    serde_json::from_str(&r.into_string().unwrap()).unwrap_or(Value::Null)
}

/// POSTs a chat completion; `Err` holds the status and body of a refusal.
pub fn chat(url: &str, body: &Value) -> Result<Value, (u16, Value)> {
    let request =
        ureq::post(&format!("{url}/chat/completions")).set("Content-Type", "application/json");
    match request.send_string(&body.to_string()) {
        Ok(r) => Ok(json_of(r)),
        Err(ureq::Error::Status(code, r)) => Err((code, json_of(r))),
        Err(e) => panic!("{e}"),
    }
}
