//! `safeaware data import jsonl` then `safeaware data distill` against a scripted teacher on
//! 127.0.0.1: the process is killed in the middle of the run, and a rerun finishes it with every
//! pair written once, each trace with its gold verdict.

mod common;
#[path = "../eval/tests/common/server.rs"]
mod stub_server;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{safeaware, text};
use serde_json::Value;
use stub_server::{Reply, Server};

const PAIRS: usize = 16;

/// A JSONL table of `PAIRS` pairs (even ones safe) and its images.
fn table(dir: &Path) -> std::path::PathBuf {
    let mut rows = String::new();
    for i in 0..PAIRS {
        let name = format!("img{i}.png");
        image::RgbImage::from_fn(8, 8, |x, y| {
            image::Rgb([x as u8 * 30, y as u8 * 30, i as u8 * 9])
        })
        .save(dir.join(&name))
        .unwrap();
        let label = if i % 2 == 0 { "safe" } else { "unsafe" };
        rows.push_str(&format!(
            "{{\"id\": \"q{i}\", \"image\": \"{name}\", \"prompt\": \"question {i}\", \"label\": \"{label}\"}}\n"
        ));
    }
    let path = dir.join("table.jsonl");
    std::fs::write(&path, rows).unwrap();
    path
}

/// Answers every pair rightly (even numbers safe), slowly enough to be killed mid-run.
fn teacher() -> Server {
    Server::start(|_, body| {
        let text = body["messages"][0]["content"][1]["text"]
            .as_str()
            .unwrap_or("");
        let n: usize = text
            .rsplit("question ")
            .next()
            .and_then(|s| s.trim_matches('"').parse().ok())
            .unwrap_or(1);
        let verdict = if n.is_multiple_of(2) { "Yes" } else { "No" };
        Reply {
            delay: Duration::from_millis(150),
            ..Reply::ok(&format!(
                "<description>a tile</description><reasoning>question {n}</reasoning><verdict>{verdict}</verdict>"
            ))
        }
    })
}

fn distill_args<'a>(pairs: &'a str, url: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "data",
        "distill",
        "--pairs",
        pairs,
        "--teacher",
        url,
        "--teacher-model",
        "stub",
        "--out",
        out,
        "--temperature",
        "0",
        "--samples",
        "1",
        "--concurrency",
        "2",
        "--progress",
        "log",
    ]
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("only whole lines"))
        .collect()
}

#[test]
fn a_killed_distillation_resumes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.jsonl");
    let o = safeaware(&[
        "data",
        "import",
        "jsonl",
        table(dir.path()).to_str().unwrap(),
        "--out",
        pairs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("wrote {PAIRS} pairs (8 safe, 8 unsafe)")),
        "{}",
        text(&o)
    );

    let server = teacher();
    let out = dir.path().join("distilled/traces.jsonl");
    let args = distill_args(
        pairs.to_str().unwrap(),
        &server.base_url,
        out.to_str().unwrap(),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_safeaware"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while lines(&out).len() < 4 {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = lines(&out).len();
    assert!(before < PAIRS, "killed before the end ({before} written)");

    let o = safeaware(&args);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains(&format!("resuming: {before} of {PAIRS} pairs done")),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "{PAIRS} pairs: {before} already done, {} kept, 0 rejected, 0 teacher error(s)",
            PAIRS - before
        )),
        "{t}"
    );
    let kept = lines(&out);
    let mut count: HashMap<String, usize> = HashMap::new();
    for trace in &kept {
        let id = trace["id"].as_str().unwrap();
        *count.entry(id.to_string()).or_default() += 1;
        let n: usize = id.trim_start_matches('q').parse().unwrap();
        let gold = if n.is_multiple_of(2) {
            "safe"
        } else {
            "unsafe"
        };
        assert_eq!(trace["verdict"], gold, "{trace}");
    }
    assert_eq!(count.len(), PAIRS);
    assert!(count.values().all(|&n| n == 1), "{count:?}");
    // At most the requests in flight at the kill were asked twice.
    assert!(server.count() <= PAIRS + 2, "{} requests", server.count());
    let validate = safeaware(&["data", "validate", out.to_str().unwrap()]);
    assert!(validate.status.success(), "{}", text(&validate));
}
