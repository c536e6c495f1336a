//! End-to-end test of `safeaware experiment run`: three tiny models trained from the quickstart
//! recipes (Idefics3 direct and vcr, LLaVA vcr), arms over them and a recorded-responses file,
//! killed after the first arm finished and run again: the rerun reuses the trained models and
//! the finished arms and writes the comparison.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::{safeaware, text};
use serde_json::Value;

const TINY: &str = r#"["data.synthetic.train=8", "data.synthetic.val=0", "data.synthetic.test=6",
  "data.synthetic.describe_only=0", "train.batch_size=4", "train.max_steps=4",
  "schedule.warmup_steps=1", "train.eval_every=0", "train.checkpoint_every=2"]"#;

fn experiment_file(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let responses = dir.join("responses.jsonl");
    std::fs::write(
        &responses,
        "{\"id\": \"test-00000\", \"response\": \"Yes\"}\n",
    )
    .unwrap();
    let text = format!(
        r#"title = "tiny"
image_ablation = "counterfactual"
[eval]
max_tokens = 6
batch_size = 4
[models.direct]
recipe = "{direct}"
set = {TINY}
[models.vcr]
recipe = "{vcr}"
set = {TINY}
[models.llava]
recipe = "{llava}"
set = {TINY}
[models.recorded]
responses = "{responses}"
[benchmarks.synthetic]
recipe = "{vcr}"
set = {TINY}
[[arms]]
name = "direct"
model = "direct"
[[arms]]
name = "direct+describe-first"
model = "direct"
prompt = "describe-first"
baseline = "direct"
[[arms]]
name = "direct+vcd"
model = "direct"
decoding = "vcd"
baseline = "direct"
[[arms]]
name = "vcr"
model = "vcr"
baseline = "direct"
[[arms]]
name = "llava"
model = "llava"
baseline = "vcr"
[[arms]]
name = "recorded"
model = "recorded"
baseline = "direct"
[[arms]]
name = "recorded+vcd"
model = "recorded"
decoding = "vcd"
baseline = "recorded"
"#,
        direct = root.join("recipes/quickstart-direct.toml").display(),
        vcr = root.join("recipes/quickstart.toml").display(),
        llava = root.join("recipes/quickstart-llava.toml").display(),
        responses = responses.display(),
    );
    let path = dir.join("experiment.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// Starts the experiment and kills it as soon as the first arm has finished.
fn run_and_kill_after_first_arm(file: &Path, out: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_safeaware"))
        .args([
            "experiment",
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = out.join("evals/synthetic/direct/finished.json");
    let start = Instant::now();
    while !marker.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the first arm never finished"
        );
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().unwrap();
}

#[test]
fn a_killed_experiment_reruns_without_redoing_finished_work_and_writes_the_comparison() {
    let tmp = tempfile::tempdir().unwrap();
    let file = experiment_file(tmp.path());
    let out = tmp.path().join("out");
    run_and_kill_after_first_arm(&file, &out);
    assert!(
        !out.join("comparison.json").exists(),
        "the experiment ended before it was killed"
    );
    let direct_samples = out.join("evals/synthetic/direct/samples.jsonl");
    let before = modified(&direct_samples);

    let rerun = safeaware(&[
        "experiment",
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let log = text(&rerun);
    assert!(rerun.status.success(), "{log}");
    assert!(log.contains("model direct: reusing"), "{log}");
    assert!(log.contains("model vcr: reusing"), "{log}");
    assert!(log.contains("model llava: reusing"), "{log}");
    assert!(
        log.contains("direct on synthetic: finished before, reused"),
        "{log}"
    );
    assert!(
        log.contains("on synthetic: evaluating"),
        "the rest was left to do: {log}"
    );
    assert!(!log.contains("generating the synthetic"), "{log}");
    assert_eq!(
        modified(&direct_samples),
        before,
        "the finished arm was evaluated again"
    );
    assert!(
        log.contains("arm recorded+vcd skipped: VCD needs a local model"),
        "{log}"
    );

    let json: Value =
        serde_json::from_slice(&std::fs::read(out.join("comparison.json")).unwrap()).unwrap();
    let arms = json["arms"].as_array().unwrap();
    let names: Vec<&str> = arms.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "direct",
            "direct+describe-first",
            "direct+vcd",
            "vcr",
            "llava",
            "recorded"
        ]
    );
    for arm in arms {
        assert_eq!(arm.as_object().unwrap().len(), 10, "{arm}");
        assert_eq!(arm["benchmark"], "synthetic");
        let total = arm["total"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&total), "{arm}");
    }
    assert!(arms[0]["p_value"].is_null() && arms[0]["baseline"].is_null());
    for local in &arms[3..5] {
        let p = local["p_value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{local}");
        // Local arms measured their image reliance; recorded responses cannot be asked again.
        assert!(local["image_reliance"].is_f64(), "{local}");
    }
    assert_eq!(arms[4]["baseline"], "vcr");
    assert!(arms[5]["image_reliance"].is_null());
    let md = std::fs::read_to_string(out.join("comparison.md")).unwrap();
    assert!(
        md.contains("McNemar") && md.contains("accuracy per scenario"),
        "{md}"
    );
    let html = std::fs::read_to_string(out.join("comparison.html")).unwrap();
    assert!(html.contains("<svg"));
}

#[test]
fn a_model_left_to_set_is_a_clear_error_naming_the_set_to_give() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = root.join("experiments/methods-mmsafeaware.toml");
    let tmp = tempfile::tempdir().unwrap();
    let out = safeaware(&[
        "experiment",
        "run",
        file.to_str().unwrap(),
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    let log = text(&out);
    assert!(!out.status.success());
    assert!(log.contains("--set models.base.path="), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
