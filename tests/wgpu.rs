//! The GPU code path on a Vulkan device: Burn's wgpu backend with the CubeCL kernels, fusion,
//! autotune and autodiff that a GPU runs. CI has no GPU and runs it on Mesa's software Vulkan
//! driver (lavapipe; `tools/test.sh` installs it). Checked against the CPU backend:
//! - `safeaware doctor --device wgpu`: HF parity on every shipped fixture (|Δlogit| ≤ 1e-3, the
//!   same greedy tokens), training steps, timing;
//! - 20 quickstart steps from the same weights and data: each loss within 1e-3 (relative);
//! - checkpoints written on one device resume on the other;
//! - `eval --checkpoint` gives the same answers and verdicts on both;
//! - the memory-efficient attention op (values and q/k/v gradients) against Burn's attention.

#![cfg(feature = "wgpu")]

#[path = "../model/tests/support/attention_cases.rs"]
mod attention_cases;
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{safeaware, text};
use serde_json::Value;

const LOSS_TOLERANCE: f64 = 1e-3;

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.toml")
}

/// Runs `safeaware train` with `args`, asserting success.
fn train(args: &[&str]) {
    let mut all = vec!["train", "--no-eval"];
    all.extend_from_slice(args);
    let out = safeaware(&all);
    assert!(out.status.success(), "train {args:?}:\n{}", text(&out));
}

/// `(step, loss)` of every line of `<run>/metrics.jsonl`.
fn losses(run: &Path) -> Vec<(u64, f64)> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter_map(|r| Some((r["step"].as_u64()?, r["loss"].as_f64()?)))
        .collect()
}

/// Asserts that `run`'s losses at `steps` are within [`LOSS_TOLERANCE`] of `reference`'s.
fn assert_losses_match(
    what: &str,
    run: &Path,
    reference: &[(u64, f64)],
    steps: std::ops::RangeInclusive<u64>,
) {
    let ours = losses(run);
    for step in steps {
        let find = |v: &[(u64, f64)]| v.iter().find(|(s, _)| *s == step).map(|&(_, l)| l);
        let (Some(a), Some(b)) = (find(&ours), find(reference)) else {
            panic!("{what}: no loss for step {step}: {ours:?} vs {reference:?}");
        };
        let relative = (a - b).abs() / b.abs();
        assert!(
            relative <= LOSS_TOLERANCE,
            "{what}: step {step} loss {a} vs CPU {b} ({relative:e})"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn doctor_passes_on_wgpu_with_parity_on_every_shipped_fixture() {
    let out = safeaware(&["doctor", "--device", "wgpu", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["device"], "wgpu");
    let checks = report["checks"].as_array().unwrap();
    let parity: Vec<&Value> = checks
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("parity "))
        .collect();
    assert!(parity.len() >= 5, "{report}");
    for check in parity {
        let diff = check["max_abs_logit_diff"].as_f64().unwrap();
        assert!(diff <= 1e-3, "{check}");
        assert_eq!(check["generated_match"], true, "{check}");
    }
    let training = checks.iter().find(|c| c["name"] == "training").unwrap();
    assert!(
        training["max_rel_loss_diff"].as_f64().unwrap() <= LOSS_TOLERANCE,
        "{training}"
    );
    assert!(checks.iter().all(|c| c["ok"] == true), "{report}");
}

/// 20 quickstart steps on each device from the same seeds and data, paused at step 10; the
/// step-10 checkpoint of each device then resumes on the other.
#[test]
fn quickstart_steps_on_wgpu_match_the_cpu_and_checkpoints_move_between_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = quickstart();
    let recipe = recipe.to_str().unwrap();
    let run = |name: &str| tmp.path().join(name);
    let cadence = [
        "train.max_steps=20",
        "train.log_every=1",
        "train.eval_every=0",
        "train.checkpoint_every=10",
        "train.keep_last=0",
    ];
    let start = |name: &str, device: &str| {
        let out = run(name);
        let device = format!("train.device={device}");
        let mut args = vec![
            "--recipe",
            recipe,
            "--out",
            out.to_str().unwrap(),
            "--set",
            &device,
            "--stop-at-step",
            "10",
        ];
        for kv in &cadence {
            args.extend(["--set", kv]);
        }
        train(&args);
    };
    let resume = |name: &str, device: &str, to_step: u64| {
        let out = run(name);
        let device = format!("train.device={device}");
        let steps = format!("train.max_steps={to_step}");
        train(&[
            "--resume",
            out.to_str().unwrap(),
            "--set",
            &device,
            "--set",
            &steps,
        ]);
    };

    start("cpu", "cpu");
    start("wgpu", "wgpu");
    copy_dir(&run("cpu"), &run("cpu_then_wgpu"));
    copy_dir(&run("wgpu"), &run("wgpu_then_cpu"));
    resume("cpu", "cpu", 20);
    resume("wgpu", "wgpu", 20);
    let reference = losses(&run("cpu"));
    assert_losses_match("wgpu", &run("wgpu"), &reference, 1..=20);

    // Three steps each way show that the checkpoint loads and trains on the other device.
    for (name, device, what) in [
        ("wgpu_then_cpu", "cpu", "wgpu checkpoint on the cpu"),
        ("cpu_then_wgpu", "wgpu", "cpu checkpoint on wgpu"),
    ] {
        resume(name, device, 13);
        assert_losses_match(what, &run(name), &reference, 11..=13);
    }
}

/// A checkpoint trained on the CPU until it writes verdicts answers 20 held-out items with the
/// same text, hence the same verdicts, on wgpu.
#[test]
fn eval_checkpoint_on_wgpu_gives_the_cpu_answers_and_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(&[
        "--recipe",
        quickstart().to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--set",
        "train.max_steps=150",
        "--set",
        "train.eval_every=0",
        "--set",
        "train.checkpoint_every=0",
    ]);
    let cache = fs::read_dir(tmp.path().join(".cache"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let benchmark = format!("jsonl:{}", cache.join("benchmark.jsonl").display());
    let answers = |device: &str| -> Vec<(String, String, Value)> {
        let out_dir = tmp.path().join(format!("eval_{device}"));
        let out = safeaware(&[
            "eval",
            "--checkpoint",
            run.join("final").to_str().unwrap(),
            "--benchmark",
            &benchmark,
            "--limit",
            "20",
            "--device",
            device,
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "eval on {device}:\n{}", text(&out));
        fs::read_to_string(out_dir.join("samples.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    s["response"].as_str().unwrap().to_string(),
                    s["verdict"].clone(),
                )
            })
            .collect()
    };
    let cpu = answers("cpu");
    assert_eq!(cpu.len(), 20);
    let with_verdict = cpu
        .iter()
        .filter(|(_, _, v)| v["strict"] != "unparsed")
        .count();
    assert!(
        with_verdict >= 15,
        "the model should write verdicts by now: {cpu:?}"
    );
    assert_eq!(answers("wgpu"), cpu);
}

/// `bench train --device wgpu` reports the device's memory: the CubeCL pools' most bytes
/// reserved (the peak) and in use, the live tensors of a step fitting in what was reserved.
#[test]
fn bench_train_on_wgpu_reports_the_pools_peak_memory() {
    let out = safeaware(&[
        "bench", "train", "--model", "tiny", "--device", "wgpu", "--seq", "48", "--steps", "1",
        "--warmup", "0", "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reserved = report["pool_reserved_peak_mib"].as_f64().unwrap();
    let in_use = report["pool_in_use_peak_mib"].as_f64().unwrap();
    assert_eq!(report["peak_mem_mib"].as_f64(), Some(reserved), "{report}");
    assert!(in_use > 0.0 && in_use <= reserved, "{report}");
}

/// The chunked LM-head loss on `Autodiff<Wgpu>` (two chunks, the second partial) against
/// Burn's unfused formulation on the same device: the value and both gradients within 1e-4
/// (absolute, unit-scale inputs).
#[test]
fn chunked_cross_entropy_on_wgpu_matches_the_unfused_loss_and_gradients() {
    use burn::backend::{Autodiff, Wgpu};
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Distribution, Int, Tensor, TensorData};
    use safeaware_model::chunked_ce::{loss_sum, CHUNK_ROWS};
    type B = Autodiff<Wgpu>;
    let (rows, vocab, width) = (CHUNK_ROWS + 5, 50, 8);
    let device = Default::default();
    let random = |r, c| Tensor::<B, 2>::random([r, c], Distribution::Normal(0.0, 1.0), &device);
    let targets: Vec<i64> = (0..rows).map(|r| ((r * 7 + 3) % vocab) as i64).collect();
    let run = |chunked: bool, h: &Tensor<B, 2>, w: &Tensor<B, 2>| {
        let (h, w) = (h.clone().require_grad(), w.clone().require_grad());
        let loss = if chunked {
            loss_sum(h.clone(), w.clone(), &targets).expect("the op runs on Autodiff<Wgpu>")
        } else {
            let t = TensorData::new(targets.clone(), [rows, 1]);
            let t = Tensor::<B, 2, Int>::from_data(t, &device);
            log_softmax(h.clone().matmul(w.clone().transpose()), 1)
                .gather(1, t)
                .sum()
                .neg()
        };
        let grads = loss.backward();
        let (gh, gw) = (h.grad(&grads).unwrap(), w.grad(&grads).unwrap());
        (loss.into_scalar(), gh, gw)
    };
    let (h, w) = (random(rows, width), random(vocab, width));
    let (loss, gh, gw) = run(true, &h, &w);
    let (want, want_h, want_w) = run(false, &h, &w);
    assert!((loss - want).abs() <= 1e-4 * want.abs(), "{loss} vs {want}");
    let diff = |a: Tensor<Wgpu, 2>, b: Tensor<Wgpu, 2>| (a - b).abs().max().into_scalar();
    assert!(diff(gh, want_h) < 1e-4, "grad(hidden)");
    assert!(diff(gw, want_w) < 1e-4, "grad(weight)");
}

/// The memory-efficient attention op on wgpu under autodiff against Burn's unfused attention
/// there, on the cases the CPU test runs (every mask form, GQA, odd lengths, a folded length
/// past one block). Tolerance: 1e-4 absolute and relative (f32; GPU products reduce in another
/// order than the CPU's).
#[test]
fn memory_efficient_attention_on_wgpu_matches_burns_attention() {
    type Ad = burn::backend::Autodiff<burn::backend::Wgpu>;
    for case in attention_cases::SMALL {
        attention_cases::check::<Ad>(case, 1e-4, &Default::default());
    }
}
