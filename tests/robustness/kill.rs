//! Faults of a running process: `kill -9` at seeded points of training and evaluation, then a
//! resume whose results are byte-identical to an uninterrupted run; a resume past a truncated
//! checkpoint; a second process on a live run folder.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use safeaware_trainer::fail_points::CHECKPOINT_WRITE;

use crate::fixtures::{copy_run, ok_in, prepare, run_in, write_recipe, TRAIN};

/// The kill points: the number of lines a log must hold before the kill, drawn from `seed`
/// (SplitMix64) in `1..=max`.
fn kill_points(seed: u64, count: usize, max: u64) -> Vec<u64> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            1 + (z ^ (z >> 31)) % max
        })
        .collect()
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_safeaware"))
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn lines(path: &Path) -> u64 {
    fs::read_to_string(path)
        .map(|t| t.lines().count() as u64)
        .unwrap_or(0)
}

/// Kills `child` with SIGKILL once `log` holds `at` lines; asserts it was still running.
fn kill_when(mut child: Child, log: &Path, at: u64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while lines(log) < at {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the process ended ({status}) before {} had {at} lines",
                log.display()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} never reached {at} lines",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "not killed by SIGKILL: {status}");
}

/// Per-step losses of a run's metrics.jsonl.
fn losses(run: &Path) -> Vec<(u64, String)> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].to_string())
        })
        .collect()
}

#[test]
fn training_killed_at_seeded_points_resumes_to_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    prepare(dir, false);
    write_recipe(dir, 6);
    ok_in(
        dir,
        &[
            "train",
            "--recipe",
            "recipe.toml",
            "--out",
            "one",
            "--no-eval",
        ],
    );

    let mut points = kill_points(17, 2, 4);
    points.sort();
    let child = spawn(
        dir,
        &[
            "train",
            "--recipe",
            "recipe.toml",
            "--out",
            "killed",
            "--no-eval",
        ],
    );
    kill_when(child, &dir.join("killed/metrics.jsonl"), points[0]);
    let child = spawn(dir, &["train", "--resume", "killed", "--no-eval"]);
    kill_when(
        child,
        &dir.join("killed/metrics.jsonl"),
        points[1].max(points[0] + 1),
    );
    ok_in(dir, &["train", "--resume", "killed", "--no-eval"]);

    let weights = |run: &str| fs::read(dir.join(run).join("final/model.safetensors")).unwrap();
    assert!(
        weights("one") == weights("killed"),
        "kill points {points:?}: final models differ"
    );
    assert_eq!(losses(&dir.join("killed")), losses(&dir.join("one")));
}

#[test]
fn evaluation_killed_at_a_seeded_point_resumes_to_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    prepare(dir, true);
    let args = |out: &'static str| {
        vec![
            "eval",
            "--benchmark",
            "jsonl:world/benchmark.jsonl",
            "--model",
            "model",
            "--out",
            out,
            "--progress",
            "quiet",
            "--batch-size",
            "1",
            "--max-tokens",
            "24",
        ]
    };
    ok_in(dir, &args("one"));
    let at = kill_points(5, 1, 4)[0];
    kill_when(
        spawn(dir, &args("killed")),
        &dir.join("killed/samples.jsonl"),
        at,
    );
    ok_in(dir, &args("killed"));
    for file in ["samples.jsonl", "results.json"] {
        let read = |out: &str| fs::read(dir.join(out).join(file)).unwrap();
        assert!(
            read("one") == read("killed"),
            "{file} differs after a kill at {at} samples"
        );
    }
}

#[test]
fn a_resume_falls_back_past_a_truncated_checkpoint_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    prepare(dir, true);
    copy_run(&dir.join("run"));
    let step2 = dir.join("run/checkpoints/step_2/model.safetensors");
    fs::OpenOptions::new()
        .write(true)
        .open(&step2)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let out = ok_in(dir, &["train", "--resume", "run", "--no-eval"]);
    assert!(
        out.contains("step_2/model.safetensors is truncated (1000 of"),
        "{out}"
    );
    assert!(
        out.contains("resuming from run/checkpoints/step_1 (verified)"),
        "{out}"
    );
    // Step 2 is trained again from step 1: the same model as the uninterrupted run.
    let fresh = fs::read(dir.join("model/model.safetensors")).unwrap();
    assert!(fs::read(dir.join("run/final/model.safetensors")).unwrap() == fresh);
    assert!(
        fs::read(&step2).unwrap().len() > 1000,
        "step_2 was not rewritten"
    );
}

#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_second_process_on_a_live_run_is_refused_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    prepare(dir, false);
    // The first run stalls in its first checkpoint write.
    let mut first = Command::new(env!("CARGO_BIN_EXE_safeaware"))
        .args(TRAIN)
        .current_dir(dir)
        .env("FAILPOINTS", format!("{CHECKPOINT_WRITE}=sleep(600000)"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = dir
        .join("run")
        .join(safeaware_common::output_dir::LOCK_FILE);
    let pid = first.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !dir.join("run/checkpoints/.tmp-step_1/config.json").exists() {
        assert!(Instant::now() < deadline && first.try_wait().unwrap().is_none());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fs::read_to_string(&lock).unwrap().trim(), pid);
    let second = run_in(dir, &["train", "--resume", "run", "--no-eval"]);
    let eval = run_in(
        dir,
        &[
            "eval",
            "--benchmark",
            "jsonl:world/benchmark.jsonl",
            "--responses",
            "responses.jsonl",
            "--out",
            "run",
        ],
    );
    first.kill().unwrap();
    first.wait().unwrap();
    for out in [second, eval] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("in use by another safeaware process (pid {pid})")),
            "{stderr}"
        );
    }
    assert!(
        dir.join("run/checkpoints/.tmp-step_1").is_dir(),
        "the live run's work was touched"
    );
}
