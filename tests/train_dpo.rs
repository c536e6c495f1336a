//! DPO end to end (`train.objective = "dpo"`, `recipes/quickstart-dpo.toml`): a tiny SFT model
//! is trained for a few steps, then tuned with DPO on the synthetic world's preference pairs.
//! Every DPO window holds all 8 pairs (2 micro-batches of 4), so the reference's mean
//! log-probability `logps/chosen − rewards/chosen / β` is the same at every step exactly when the
//! reference stays frozen. Checked: the first loss is ln 2 (policy = reference), the loss falls
//! and the rewards separate, a resumed run logs the same losses and ends with the same weights,
//! LoRA-DPO's reference is the base with its adapters off, a mismatched data file is refused,
//! and the first step equals an independent computation with HF transformers
//! (`tools/dpo_reference.py`, in `tools/.venv`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{safeaware_with_env, text, train_quickstart};
use serde_json::Value;

/// The SFT model the DPO runs start from: a few steps of the shrunk quickstart.
const SFT: &[&str] = &[
    "data.synthetic.train=12",
    "data.synthetic.val=0",
    "data.synthetic.test=4",
    "data.synthetic.describe_only=0",
    "train.batch_size=4",
    "train.max_steps=4",
    "train.eval_every=0",
    "train.checkpoint_every=2",
    "train.keep_last=0",
    "schedule.warmup_steps=0",
];

/// The DPO quickstart shrunk: 8 pairs a window, 6 steps.
const DPO: &[&str] = &[
    "data.synthetic.train=8",
    "data.synthetic.val=0",
    "data.synthetic.test=4",
    "train.batch_size=4",
    "train.grad_accum=2",
    "train.max_steps=6",
    "train.eval_every=0",
    "train.checkpoint_every=3",
    "train.keep_last=0",
    "train.log_every=1",
    "schedule.warmup_steps=0",
    "optim.lr_text=1e-3",
    "optim.lr_connector=1e-3",
    "optim.lr_vision=1e-3",
];

const BETA: f64 = 0.1;

fn dpo_recipe() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart-dpo.toml")
}

/// `safeaware train` with the DPO recipe from the model `model` into `out`, with `extra`
/// overrides, the flags `flags` and the environment `env`; returns the process's output.
fn run_dpo_with(
    out: &Path,
    model: &Path,
    extra: &[&str],
    flags: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let recipe = dpo_recipe();
    let model = format!("model.path={}", model.display());
    let mut args = vec![
        "train",
        "--recipe",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-eval",
        "--set",
        &model,
    ];
    args.extend(flags);
    for kv in DPO.iter().chain(extra) {
        args.extend(["--set", kv]);
    }
    safeaware_with_env(&args, env)
}

fn run_dpo(out: &Path, model: &Path, extra: &[&str]) -> std::process::Output {
    run_dpo_with(out, model, extra, &[], &[])
}

fn dpo_ok(out: &Path, model: &Path, extra: &[&str], flags: &[&str]) {
    let o = run_dpo_with(out, model, extra, flags, &[]);
    assert!(o.status.success(), "DPO run failed:\n{}", text(&o));
}

/// The lines of `<run>/metrics.jsonl`.
fn metrics(run: &Path) -> Vec<Value> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn num(line: &Value, key: &str) -> f64 {
    line[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no `{key}` in {line}"))
}

/// The reference's mean chosen log-probability a line implies.
fn reference_logp(line: &Value) -> f64 {
    num(line, "logps/chosen") - num(line, "rewards/chosen") / BETA
}

/// Asserts the first loss is ln 2 and the reference stayed the same frozen model (the policy's
/// starting point) over every step.
fn assert_starts_at_ln2_against_a_frozen_reference(lines: &[Value]) {
    assert_eq!(lines.len(), 6, "one line per step");
    let first = num(&lines[0], "loss");
    assert!(
        (first - std::f64::consts::LN_2).abs() < 1e-5,
        "first loss {first}"
    );
    let start = num(&lines[0], "logps/chosen");
    for line in lines {
        let reference = reference_logp(line);
        assert!(
            (reference - start).abs() < 1e-3 * start.abs().max(1.0),
            "the reference moved: {reference} vs {start} at {line}"
        );
    }
}

#[test]
fn dpo_starts_at_ln2_learns_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (sft, _) = train_quickstart(tmp.path(), SFT);
    let model = sft.join("final");
    let full = tmp.path().join("dpo");
    dpo_ok(&full, &model, &[], &[]);
    let lines = metrics(&full);
    assert_starts_at_ln2_against_a_frozen_reference(&lines);
    let (first, last) = (&lines[0], &lines[5]);
    assert!(
        num(last, "loss") < num(first, "loss") - 0.05,
        "the loss did not fall: {first} → {last}"
    );
    assert!(
        num(last, "rewards/margins") > 0.0 && num(last, "rewards/accuracies") >= 0.75,
        "the rewards did not separate: {last}"
    );
    assert!(num(last, "rewards/accuracies") > num(first, "rewards/accuracies"));

    // Stopped after the checkpoint at step 3, then resumed: the same steps.
    let interrupted = tmp.path().join("dpo-interrupted");
    dpo_ok(&interrupted, &model, &[], &["--stop-at-step", "3"]);
    let o = safeaware_with_env(
        &[
            "train",
            "--resume",
            interrupted.to_str().unwrap(),
            "--no-eval",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let losses = |run: &Path| -> Vec<String> {
        metrics(run)
            .iter()
            .map(|l| format!("{} {}", l["loss"], l["rewards/margins"]))
            .collect()
    };
    assert_eq!(losses(&interrupted), losses(&full));
    let weights = |run: &Path| fs::read(run.join("final/model.safetensors")).unwrap();
    assert!(
        weights(&interrupted) == weights(&full),
        "resumed weights differ"
    );

    refuses_mismatched_data(tmp.path(), &model);
}

/// A preference file given to an SFT run, and a trace file to a DPO run, are refused with a
/// message naming the objective each needs.
fn refuses_mismatched_data(dir: &Path, model: &Path) {
    let cache = fs::read_dir(dir.join(".cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("train-preferences.jsonl").is_file())
        .expect("the DPO run's synthetic world");
    let preferences = format!(
        "data.train={}",
        cache.join("train-preferences.jsonl").display()
    );
    let traces = format!("data.train={}", cache.join("train.jsonl").display());
    let sft = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.toml");
    let out = dir.join("refused-sft");
    let o = safeaware_with_env(
        &[
            "train",
            "--recipe",
            sft.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--set",
            "data.synthetic.enabled=false",
            "--set",
            "train.eval_every=0",
            "--set",
            &preferences,
        ],
        &[],
    );
    let message = text(&o);
    assert!(!o.status.success(), "{message}");
    assert!(
        message.contains("train.objective = \"dpo\"") && message.contains("preference pairs"),
        "{message}"
    );
    let o = run_dpo(
        &dir.join("refused-dpo"),
        model,
        &["data.synthetic.enabled=false", &traces],
    );
    let message = text(&o);
    assert!(!o.status.success(), "{message}");
    assert!(
        message.contains("holds no preference pairs") && message.contains("train.jsonl"),
        "{message}"
    );
}

/// With `[lora]` (no dropout, so policy = reference at the start) the first loss is ln 2 and
/// the reference is the base with the adapters off: frozen at the base's log-probabilities
/// while the adapters move the policy away from it.
#[test]
fn lora_dpo_reference_is_the_base_with_adapters_off() {
    let tmp = tempfile::tempdir().unwrap();
    let (sft, _) = train_quickstart(tmp.path(), SFT);
    let run = tmp.path().join("dpo-lora");
    dpo_ok(
        &run,
        &sft.join("final"),
        &["lora.rank=4", "lora.dropout=0.0", "optim.lr_text=1e-2"],
        &[],
    );
    let lines = metrics(&run);
    assert_starts_at_ln2_against_a_frozen_reference(&lines);
    let last = &lines[5];
    assert!(
        num(last, "rewards/chosen").abs() > 1e-4,
        "the policy never left the reference: {last}"
    );
    assert!(run.join("final/adapter_model.safetensors").is_file());
}

/// The first logged step of a DPO run (sigmoid with an NLL term, then ipo) equals TRL's
/// formulas computed with HF transformers on the dumped batch, for a reference that is not the
/// policy (an earlier SFT checkpoint, `dpo.reference`).
#[test]
fn first_dpo_step_matches_an_independent_hf_computation() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/.venv/bin/python");
    assert!(python.is_file(), "no {}", python.display());
    let tmp = tempfile::tempdir().unwrap();
    let (sft, _) = train_quickstart(tmp.path(), SFT);
    let (policy, reference) = (sft.join("final"), sft.join("checkpoints/step_2"));
    for (name, loss, sft_weight) in [("sigmoid", "sigmoid", "0.5"), ("ipo", "ipo", "0.0")] {
        let run = tmp.path().join(format!("dpo-{name}"));
        let dump = tmp.path().join(format!("{name}-batch.json"));
        let sets = [
            format!("dpo.reference={}", reference.display()),
            format!("dpo.loss=\"{loss}\""),
            format!("dpo.sft_weight={sft_weight}"),
            "train.max_steps=1".to_string(),
        ];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let dump_env = [("SAFEAWARE_DPO_DUMP", dump.to_str().unwrap())];
        let o = run_dpo_with(&run, &policy, &sets, &[], &dump_env);
        assert!(o.status.success(), "{}", text(&o));
        let out = Command::new(&python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/dpo_reference.py"))
            .args([&policy, &reference, &dump])
            .args([&BETA.to_string(), loss, sft_weight])
            .env("HF_HUB_OFFLINE", "1")
            .env("TRANSFORMERS_OFFLINE", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out));
        let expected: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(expected["pairs"], 8);
        let ours = &metrics(&run)[0];
        for key in [
            "loss",
            "rewards/chosen",
            "rewards/rejected",
            "rewards/margins",
            "rewards/accuracies",
            "logps/chosen",
            "logps/rejected",
        ] {
            let (a, b) = (num(ours, key), num(&expected, key));
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{name}: {key} = {a}, transformers says {b}"
            );
        }
        assert!(
            num(ours, "rewards/chosen").abs() > 1e-3,
            "{name}: the reference equals the policy, so the check would be weak: {ours}"
        );
    }
}
