//! `safeaware data import jsonl` then `safeaware data distill` against a scripted teacher on
//! 127.0.0.1: the process is killed in the middle of the run, and a rerun finishes it with every
//! pair written once, each trace with its gold verdict; a second distillation on the same
//! `--out` fails at once naming the first's pid; a teacher that fails every call (HTTP 500, an
//! answer that is not JSON) makes the command exit non-zero with the cause.

mod common;
#[path = "../eval/tests/common/server.rs"]
mod stub_server;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
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
    teacher_with_delay(Duration::from_millis(150))
}

/// [`teacher`] taking `delay` per answer.
fn teacher_with_delay(delay: Duration) -> Server {
    Server::start(move |_, body| {
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
            delay,
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

/// Imports the table of [`table`] into `<dir>/pairs.jsonl`.
fn import_pairs(dir: &Path) -> std::path::PathBuf {
    let pairs = dir.join("pairs.jsonl");
    let o = safeaware(&[
        "data",
        "import",
        "jsonl",
        table(dir).to_str().unwrap(),
        "--out",
        pairs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("wrote {PAIRS} pairs (8 safe, 8 unsafe)")),
        "{}",
        text(&o)
    );
    pairs
}

/// Starts `safeaware args` and returns it once `out` holds at least `lines_written` lines.
fn spawn_until_written(args: &[&str], out: &Path, lines_written: usize) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_safeaware"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while lines(out).len() < lines_written {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn a_killed_distillation_resumes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = import_pairs(dir.path());

    let server = teacher();
    let out = dir.path().join("distilled/traces.jsonl");
    let args = distill_args(
        pairs.to_str().unwrap(),
        &server.base_url,
        out.to_str().unwrap(),
    );
    let mut child = spawn_until_written(&args, &out, 4);
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

#[test]
fn a_second_distillation_on_the_same_out_fails_at_once_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = import_pairs(dir.path());
    let server = teacher_with_delay(Duration::from_millis(400));
    let out = dir.path().join("traces.jsonl");
    let args = distill_args(
        pairs.to_str().unwrap(),
        &server.base_url,
        out.to_str().unwrap(),
    );
    let mut first = spawn_until_written(&args, &out, 1);
    let second = safeaware(&args);
    let still_running = first.try_wait().unwrap().is_none();
    let finished = first.wait().unwrap();
    assert!(
        still_running,
        "the first distillation ended too soon to test the lock"
    );
    assert!(finished.success());
    let t = text(&second);
    assert_eq!(second.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "is in use by another safeaware process (pid {})",
            first.id()
        )),
        "{t}"
    );
    // Every pair once: the second process wrote nothing.
    let kept = lines(&out);
    assert_eq!(kept.len(), PAIRS);
    let ids: std::collections::HashSet<&str> =
        kept.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), PAIRS);
}

#[test]
fn a_teacher_that_fails_every_call_makes_distill_exit_non_zero_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = import_pairs(dir.path());
    let failing = [
        (Server::start(|_, _| Reply::status(500)), "HTTP 500"),
        (
            Server::start(|_, _| Reply {
                body: "not json".into(),
                ..Reply::ok("")
            }),
            "endpoint",
        ),
    ];
    for (i, (server, cause)) in failing.iter().enumerate() {
        let out = dir.path().join(format!("traces-{i}.jsonl"));
        let mut args = distill_args(
            pairs.to_str().unwrap(),
            &server.base_url,
            out.to_str().unwrap(),
        );
        args.extend(["--retries", "0"]);
        let o = safeaware(&args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(
            t.contains(&format!(
                "nothing was answered by the teacher ({PAIRS} pair(s) asked)"
            )),
            "{t}"
        );
        assert!(
            t.contains(&format!("{PAIRS} pair(s): ")) && t.contains(cause),
            "{t}"
        );
        assert!(lines(&out).is_empty());
        // A budget never excuses a run where the teacher answered nothing.
        let again = safeaware(&[&args[..], &["--max-error-rate", "1"]].concat());
        assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    }
}
