//! End-to-end tests of `safeaware train`: the binary is run on a shrunk quickstart recipe (18
//! synthetic training examples, batches of 4, 6 steps; seconds per run), each test in its own
//! temporary folder (so each has its own synthetic-data cache), and the run folders are
//! inspected: exact resume, a SIGKILL in the middle of a checkpoint write, refusals, checkpoint
//! contents and pruning, determinism. Where a test says so it runs for every model family
//! (`common::FAMILIES`: LLaVA is the same recipe on the `tiny-llava` preset).
//!
//! With 18 examples and batches of 4 an epoch is 5 micro-batches, the last one short, so six
//! steps cross epoch boundaries and partial batches (with `train.grad_accum = 2` twice over).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{text, Family, FAMILIES};
use safeaware_common::output_dir::{LOCK_FILE, MARKER_FILE};
use safeaware_model::{VisionLanguageModel, Vlm};
use safeaware_trainer::fail_points::{CHECKPOINT_WRITE, TRAIN_STEP};
use safeaware_trainer::recipe::load_recipe;
use serde_json::Value;

/// Overrides that shrink the quickstart recipe to a few seconds of training.
const SMALL: &[&str] = &[
    "data.synthetic.train=18",
    "data.synthetic.val=4",
    "data.synthetic.test=4",
    "train.batch_size=4",
    "train.max_steps=6",
    "train.eval_every=0",
    "train.checkpoint_every=2",
    "train.keep_last=0",
    "train.log_every=1",
    "schedule.warmup_steps=2",
    "eval.max_new_tokens=8",
    "eval.batch_size=4",
];

/// Files of an HF model folder as the trainer writes it.
const MODEL_FILES: &[&str] = &[
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "chat_template.json",
];

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.toml")
}

/// The quickstart recipe's `train.seed`, which a run records.
fn quickstart_seed() -> u64 {
    let recipe = load_recipe(&quickstart(), &[]).expect("the quickstart recipe loads");
    recipe.recipe.train.seed
}

/// One `safeaware train` invocation.
struct Train {
    args: Vec<String>,
    envs: Vec<(&'static str, String)>,
}

impl Train {
    /// A fresh run of the shrunk quickstart recipe into `out`.
    fn fresh(out: &Path) -> Self {
        SMALL.iter().fold(Train::quickstart(out), |t, kv| t.set(kv))
    }

    /// A fresh run of the quickstart recipe into `out` as it is (no shrinking).
    fn quickstart(out: &Path) -> Self {
        Train {
            args: vec![
                "--recipe".into(),
                quickstart().display().to_string(),
                "--out".into(),
                out.display().to_string(),
            ],
            envs: Vec::new(),
        }
    }

    /// A fresh run of the shrunk quickstart recipe into `out`, with `extra` overrides.
    fn fresh_with(out: &Path, extra: &[&str]) -> Self {
        extra.iter().fold(Train::fresh(out), |t, kv| t.set(kv))
    }

    /// `--resume <run>`.
    fn resume(run: &Path) -> Self {
        Train {
            args: vec!["--resume".into(), run.display().to_string()],
            envs: Vec::new(),
        }
    }

    fn set(self, kv: &str) -> Self {
        self.arg("--set").arg(kv)
    }

    fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    fn no_eval(self) -> Self {
        self.arg("--no-eval")
    }

    fn stop_at(self, step: u64) -> Self {
        self.arg("--stop-at-step").arg(&step.to_string())
    }

    fn env(mut self, key: &'static str, value: &str) -> Self {
        self.envs.push((key, value.to_string()));
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_safeaware"));
        // Errors as a user sees them (the environment may ask for backtraces); fail points
        // only where a test sets them.
        c.arg("train")
            .args(&self.args)
            .env("RUST_BACKTRACE", "0")
            .env_remove("FAILPOINTS");
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c
    }

    fn output(&self) -> Output {
        self.command().output().expect("running safeaware")
    }

    /// Runs it and asserts success; returns stdout + stderr.
    fn ok(&self) -> String {
        let out = self.output();
        let text = text(&out);
        assert!(
            out.status.success(),
            "safeaware train {:?} failed ({}):\n{text}",
            self.args,
            out.status
        );
        text
    }

    /// Runs it and asserts a clean failure (non-zero exit, an error message, no panic);
    /// returns stderr.
    fn fails(&self) -> String {
        let out = self.output();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "safeaware train {:?} should have failed:\n{}",
            self.args,
            text(&out)
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "not a clean error exit:\n{stderr}"
        );
        assert!(
            stderr.lines().any(|l| l.starts_with("error: ")),
            "no error message:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "panicked:\n{stderr}");
        stderr
    }
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The weights file of a model folder: the HF model's, or a LoRA run's adapters.
fn weights(dir: &Path) -> Vec<u8> {
    let adapter = dir.join("adapter_model.safetensors");
    match adapter.is_file() {
        true => read(&adapter),
        false => read(&dir.join("model.safetensors")),
    }
}

fn final_weights(run: &Path) -> Vec<u8> {
    weights(&run.join("final"))
}

fn ckpt(run: &Path, step: u64) -> PathBuf {
    run.join("checkpoints").join(format!("step_{step}"))
}

/// What `checkpoints/latest` says.
fn latest(run: &Path) -> String {
    String::from_utf8(read(&run.join("checkpoints/latest")))
        .unwrap()
        .trim()
        .to_string()
}

/// Steps of the `step_N` folders, ascending.
fn step_dirs(run: &Path) -> Vec<u64> {
    let mut steps: Vec<u64> = fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_prefix("step_")?
                .parse()
                .ok()
        })
        .collect();
    steps.sort();
    steps
}

/// Names starting with a dot in `dir` (temporary leftovers), `.cache` and the folder's marker
/// and lock files aside.
fn hidden_entries(dir: &Path) -> Vec<String> {
    let kept = [".cache", MARKER_FILE, LOCK_FILE];
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && !kept.contains(&n.as_str()))
        .collect()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&read(path))
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// `trainer_state/state.json` of a checkpoint.
fn state(ckpt: &Path) -> Value {
    json(&ckpt.join("trainer_state/state.json"))
}

/// `(step, loss)` of every line of `metrics.jsonl`; every line must parse.
fn metrics(run: &Path) -> Vec<(u64, f64)> {
    let text = String::from_utf8(read(&run.join("metrics.jsonl"))).unwrap();
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("bad metrics line {line:?}: {e}"));
            (
                v["step"].as_u64().expect("step"),
                v["loss"].as_f64().expect("loss"),
            )
        })
        .collect()
}

fn metric_steps(run: &Path) -> Vec<u64> {
    metrics(run).into_iter().map(|(s, _)| s).collect()
}

/// The `[train]` table of `<run>/recipe.resolved.toml`.
fn resolved_train(run: &Path) -> toml::Table {
    let text = String::from_utf8(read(&run.join("recipe.resolved.toml"))).unwrap();
    let table: toml::Table = text.parse().unwrap();
    table["train"].as_table().unwrap().clone()
}

/// A run paused with `--stop-at-step` then resumed (through the given intermediate pauses)
/// ends byte-identical to the same run done in one go, with the same per-step losses and one
/// metrics line per step.
fn assert_exact_resume(extra: &[&str], pauses: &[u64]) {
    let tmp = tempfile::tempdir().unwrap();
    let (one_go, paused) = (tmp.path().join("one-go"), tmp.path().join("paused"));
    Train::fresh_with(&one_go, extra).no_eval().ok();
    assert_ne!(
        final_weights(&one_go),
        weights(&ckpt(&one_go, 2)),
        "training did not change the weights: the comparison would prove nothing"
    );

    let (first, rest) = pauses.split_first().expect("at least one pause");
    let out = Train::fresh_with(&paused, extra)
        .no_eval()
        .stop_at(*first)
        .ok();
    assert!(out.contains(&format!("paused at step {first}")), "{out}");
    assert!(!paused.join("final").exists(), "a paused run wrote final/");
    assert_eq!(latest(&paused), format!("step_{first}"));
    assert_eq!(state(&ckpt(&paused, *first))["step"], *first);
    for &pause in rest {
        Train::resume(&paused).no_eval().stop_at(pause).ok();
        assert_eq!(latest(&paused), format!("step_{pause}"));
    }
    Train::resume(&paused).no_eval().ok();

    assert!(
        final_weights(&one_go) == final_weights(&paused),
        "resumed final model differs from the one-go run"
    );
    assert!(
        weights(&ckpt(&one_go, 6)) == weights(&ckpt(&paused, 6)),
        "step_6 checkpoints differ"
    );
    let (a, b) = (state(&ckpt(&one_go, 6)), state(&ckpt(&paused, 6)));
    for key in [
        "step",
        "epoch",
        "data_position",
        "tokens_seen",
        "images_seen",
        "run",
    ] {
        assert_eq!(
            a[key], b[key],
            "trainer state `{key}` differs after resuming"
        );
    }
    assert_eq!(
        metric_steps(&paused),
        (1..=6).collect::<Vec<_>>(),
        "metrics.jsonl must hold each step once"
    );
    assert_eq!(
        metrics(&paused),
        metrics(&one_go),
        "per-step losses differ after resuming"
    );
}

/// In every family.
#[test]
fn resume_after_pauses_matches_the_uninterrupted_run() {
    for family in &FAMILIES {
        // Paused mid-epoch (step 3) and exactly at the end of the first epoch (step 5).
        assert_exact_resume(&family.with(&[]), &[3, 5]);
    }
}

#[test]
fn resume_is_exact_in_bf16_mixed_and_in_bf16() {
    assert_exact_resume(&["train.precision=\"bf16-mixed\""], &[3]);
    assert_exact_resume(&["train.precision=\"bf16\""], &[3]);
}

/// LoRA on the text model's attention and MLP, with dropout (seeded per step) and the
/// connector trained in full.
const LORA: &[&str] = &[
    "lora.rank=4",
    "lora.alpha=8",
    "lora.dropout=0.1",
    "lora.targets=[\"q_proj\", \"v_proj\", \"gate_proj\"]",
    "lora.parts=[\"text\"]",
    "lora.train_parts=[\"connector\"]",
];

/// In every family.
#[test]
fn lora_resume_is_exact() {
    for family in &FAMILIES {
        assert_exact_resume(&family.with(LORA), &[3]);
    }
}

/// bf16-mixed holds frozen parts in bf16 (the vision tower; LoRA's base): runs with them still
/// resume exactly, in every family.
#[test]
fn resume_is_exact_with_frozen_parts_held_in_bf16_in_every_family() {
    let mixed = "train.precision=\"bf16-mixed\"";
    for family in &FAMILIES {
        assert_exact_resume(&family.with(&[mixed, "train.freeze=[\"vision\"]"]), &[3]);
        let lora: Vec<&str> = LORA.iter().copied().chain([mixed]).collect();
        assert_exact_resume(&family.with(&lora), &[3]);
    }
}

#[test]
fn resume_with_grad_accum_matches_the_uninterrupted_run() {
    assert_exact_resume(&["train.grad_accum=2"], &[3]);
}

/// `train.activation_checkpointing` on.
const CHECKPOINTING: &str = "train.activation_checkpointing=true";

/// Two runs are the same: identical per-step losses, step-6 checkpoint and final weights.
fn assert_same_run(a: &Path, b: &Path, what: &str) {
    assert_eq!(metrics(a), metrics(b), "{what}: per-step losses differ");
    assert!(
        weights(&ckpt(a, 6)) == weights(&ckpt(b, 6)),
        "{what}: step_6 checkpoints differ"
    );
    assert!(
        final_weights(a) == final_weights(b),
        "{what}: final weights differ"
    );
}

/// Activation checkpointing recomputes the same numbers on the CPU: losses and weights are
/// identical (not merely close) with it and without, and a checkpoint written with it on
/// resumes with it off, and the other way round, to the same final model.
#[test]
fn activation_checkpointing_changes_no_number_and_resumes_switched_either_way() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| tmp.path().join(name);
    let off = Train::fresh(&dir("off")).no_eval().ok();
    let on = Train::fresh_with(&dir("on"), &[CHECKPOINTING])
        .no_eval()
        .ok();
    assert!(!off.contains("activation checkpointing"), "{off}");
    assert!(on.contains("with activation checkpointing"), "{on}");
    assert_eq!(
        resolved_train(&dir("on")).get("activation_checkpointing"),
        Some(&toml::Value::Boolean(true))
    );
    assert_same_run(&dir("off"), &dir("on"), "with checkpointing");
    for (name, first, then) in [
        ("on-then-off", true, "false"),
        ("off-then-on", false, "true"),
    ] {
        let extra: &[&str] = if first { &[CHECKPOINTING] } else { &[] };
        Train::fresh_with(&dir(name), extra)
            .no_eval()
            .stop_at(3)
            .ok();
        Train::resume(&dir(name))
            .set(&format!("train.activation_checkpointing={then}"))
            .no_eval()
            .ok();
        assert_same_run(&dir("off"), &dir(name), name);
    }
}

/// The same with the features that change which activations exist, in every family:
/// bf16-mixed with the vision tower frozen, LoRA with dropout, and LoRA with dropout on two
/// data-parallel workers (whose dropout masks come from per-worker generators, so two runs draw
/// the same ones).
#[test]
fn activation_checkpointing_is_exact_with_bf16_mixed_frozen_parts_lora_and_workers() {
    for family in &FAMILIES {
        assert_checkpointing_is_exact_for(family);
    }
}

fn assert_checkpointing_is_exact_for(family: &Family) {
    let mixed_frozen = [
        "train.precision=\"bf16-mixed\"",
        "train.freeze=[\"vision\"]",
    ];
    let workers = ["train.devices=[\"cpu:0\", \"cpu:1\"]"];
    let lora_workers: Vec<&str> = LORA.iter().chain(&workers).copied().collect();
    let tmp = tempfile::tempdir().unwrap();
    for (name, extra) in [
        ("mixed-frozen", &mixed_frozen[..]),
        ("lora", LORA),
        ("lora-workers", &lora_workers),
    ] {
        let (off, on) = (tmp.path().join(name), tmp.path().join(format!("{name}-ac")));
        Train::fresh_with(&off, &family.with(extra)).no_eval().ok();
        let with: Vec<&str> = extra.iter().copied().chain([CHECKPOINTING]).collect();
        Train::fresh_with(&on, &family.with(&with)).no_eval().ok();
        assert_same_run(&off, &on, &format!("{} {name}", family.name));
    }
}

/// In every family.
#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn sigkill_during_a_checkpoint_write_leaves_the_previous_one_resumable() {
    for family in &FAMILIES {
        assert_sigkill_in_a_checkpoint_write_resumes(family);
    }
}

fn assert_sigkill_in_a_checkpoint_write_resumes(family: &Family) {
    let tmp = tempfile::tempdir().unwrap();
    let (one_go, run) = (tmp.path().join("one-go"), tmp.path().join("killed"));
    Train::fresh_with(&one_go, family.sets).no_eval().ok();
    Train::fresh_with(&run, family.sets)
        .no_eval()
        .stop_at(2)
        .ok();

    // Resume with the crash hook: the step-4 checkpoint stalls once its model files are written.
    let mut child = Train::resume(&run)
        .no_eval()
        .env("FAILPOINTS", &format!("{CHECKPOINT_WRITE}=sleep(600000)"))
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tmp_ckpt = run.join("checkpoints/.tmp-step_4");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !MODEL_FILES.iter().all(|f| tmp_ckpt.join(f).is_file()) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child exited ({status}) before stalling in the step-4 checkpoint");
        }
        assert!(
            Instant::now() < deadline,
            "the child never reached the step-4 checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "not killed by SIGKILL: {status}");
    }

    // The interrupted checkpoint exists only as a temporary folder without its trainer state.
    assert!(tmp_ckpt.is_dir());
    assert!(!tmp_ckpt.join("trainer_state/state.json").exists());
    assert!(!ckpt(&run, 4).exists());
    assert!(!run.join("final").exists());
    assert_eq!(latest(&run), "step_2");
    assert_eq!(step_dirs(&run), [2]);
    let previous = ckpt(&run, 2);
    assert_eq!(state(&previous)["step"], 2);
    assert!(previous.join("trainer_state/optimizer.mpk").is_file());
    assert!(
        read(&previous.join("model.safetensors"))
            == read(&ckpt(&one_go, 2).join("model.safetensors"))
    );

    Train::resume(&run).no_eval().ok();
    assert!(
        !tmp_ckpt.exists(),
        "the leftover temporary checkpoint was not cleaned up"
    );
    assert!(
        final_weights(&run) == final_weights(&one_go),
        "{}: final model after kill + resume differs",
        family.name
    );
    assert_eq!(
        metric_steps(&run),
        (1..=6).collect::<Vec<_>>(),
        "metrics.jsonl must hold each step once"
    );
    assert_eq!(metrics(&run), metrics(&one_go));
}

#[test]
fn resume_refuses_another_seed_or_data_accepts_more_steps_and_fresh_runs_never_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    Train::fresh(&run).no_eval().stop_at(3).ok();
    let recipe_before = read(&run.join("recipe.resolved.toml"));
    let weights_before = read(&ckpt(&run, 3).join("model.safetensors"));
    let untouched = |what: &str| {
        assert!(
            read(&run.join("recipe.resolved.toml")) == recipe_before,
            "{what} rewrote recipe.resolved.toml"
        );
        assert_eq!(step_dirs(&run), [2, 3], "{what} changed the checkpoints");
        assert_eq!(latest(&run), "step_3", "{what} moved `latest`");
        assert!(
            read(&ckpt(&run, 3).join("model.safetensors")) == weights_before,
            "{what} changed step_3"
        );
    };

    // Another seed.
    let err = Train::resume(&run).set("train.seed=7").no_eval().fails();
    assert!(err.contains("refusing to resume"), "{err}");
    let seed = quickstart_seed();
    assert!(err.contains(&format!("train.seed 7 != {seed}")), "{err}");
    untouched("a refused resume with another seed");

    // Other data: the cached training file changed behind the run's back.
    let cache = fs::read_dir(tmp.path().join(".cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("train.jsonl").is_file())
        .expect("a synthetic cache");
    let train_file = cache.join("train.jsonl");
    let original = read(&train_file);
    let text = String::from_utf8(original.clone()).unwrap();
    let fewer: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    fs::write(&train_file, fewer).unwrap();
    let err = Train::resume(&run).no_eval().fails();
    assert!(
        err.contains("refusing to resume") && err.contains("data fingerprint"),
        "{err}"
    );
    assert!(!err.contains("train.seed"), "only the data changed: {err}");
    untouched("a refused resume with other data");
    fs::write(&train_file, &original).unwrap();

    // A fresh run into the same folder.
    let err = Train::fresh(&run).set("train.seed=7").no_eval().fails();
    assert!(
        err.contains("already holds checkpoints") && err.contains("--resume"),
        "{err}"
    );
    untouched("a refused fresh run into the folder");

    // More steps than planned: accepted, and training continues to the new end.
    Train::resume(&run).set("train.max_steps=8").no_eval().ok();
    assert_eq!(latest(&run), "step_8");
    assert_eq!(state(&ckpt(&run, 8))["step"], 8);
    assert!(run.join("final/model.safetensors").is_file());
    assert_eq!(metric_steps(&run), (1..=8).collect::<Vec<_>>());
    let train = resolved_train(&run);
    assert_eq!(train["max_steps"].as_integer(), Some(8));
    assert_eq!(train["seed"].as_integer(), Some(seed as i64));
}

#[test]
fn resume_without_a_checkpoint_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();

    // Not a run folder at all.
    let err = Train::resume(&tmp.path().join("nowhere")).fails();
    assert!(
        err.contains("is not a run folder") && err.contains("recipe.resolved.toml"),
        "{err}"
    );

    // A run folder whose only checkpoint never completed.
    let run = tmp.path().join("run");
    fs::create_dir_all(run.join("checkpoints/.tmp-step_2/trainer_state")).unwrap();
    fs::copy(quickstart(), run.join("recipe.resolved.toml")).unwrap();
    let err = Train::resume(&run).fails();
    assert!(
        err.contains("nothing to resume") && err.contains("no complete checkpoint"),
        "{err}"
    );
    assert!(!run.join("final").exists());
}

#[test]
fn a_pause_logs_the_open_metrics_window() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    Train::fresh(&run)
        .set("train.log_every=4")
        .no_eval()
        .stop_at(3)
        .ok();
    assert_eq!(
        metric_steps(&run),
        [3],
        "the losses of steps 1-3 must be logged when pausing"
    );
    Train::resume(&run).no_eval().ok();
    assert_eq!(metric_steps(&run), [3, 4, 6]);
}

#[test]
fn a_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    // Step 1 has a learning rate of 0 (warmup); the first real step throws the weights out of
    // range, so a later loss overflows.
    let err = [
        "optim.lr_vision=1e30",
        "optim.lr_connector=1e30",
        "optim.lr_text=1e30",
        "train.checkpoint_every=1",
    ]
    .iter()
    .fold(Train::fresh(&run), |t, kv| t.set(kv))
    .no_eval()
    .fails();
    let step: u64 = err
        .split("error: step ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the error names no step: {err}"));
    assert!(
        err.contains("the loss is") || err.contains("the gradient norm is"),
        "{err}"
    );
    assert!(err.contains("last good checkpoint"), "{err}");
    assert!((2..=6).contains(&step), "stopped at step {step}:\n{err}");

    assert!(
        !run.join("final").exists(),
        "a failed run must not publish final/"
    );
    assert_eq!(latest(&run), format!("step_{}", step - 1));
    assert_eq!(*step_dirs(&run).last().unwrap(), step - 1);
    assert_eq!(state(&ckpt(&run, step - 1))["step"], step - 1);
    assert!(ckpt(&run, step - 1)
        .join("trainer_state/optimizer.mpk")
        .is_file());
    assert!(hidden_entries(&run.join("checkpoints")).is_empty());
    assert!(
        metric_steps(&run).iter().all(|&s| s < step),
        "the failed step was logged"
    );
}

/// A backend that fails in the middle of a run (as a GPU lost to a driver reset does, by a
/// panic in Burn's runtime) ends it with one error naming the step and exit status 2; the last
/// checkpoint resumes to the end.
#[test]
#[cfg_attr(not(feature = "failpoints"), ignore = "needs --features failpoints")]
fn a_device_lost_mid_run_names_the_step_and_the_last_checkpoint_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let out = Train::fresh(&run)
        .no_eval()
        .env(
            "FAILPOINTS",
            &format!("{TRAIN_STEP}=3*off->panic(simulated device loss)"),
        )
        .output();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("step 4 on cpu stopped: the backend failed"),
        "{stderr}"
    );
    assert!(stderr.contains("simulated device loss"), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    assert!(!run.join("final").exists());
    assert_eq!(latest(&run), "step_2");
    assert!(
        metric_steps(&run).iter().all(|&s| s < 4),
        "the failed step was logged"
    );

    Train::resume(&run).no_eval().ok();
    assert_eq!(state(&ckpt(&run, 6))["step"], 6);
    assert!(run.join("final/model.safetensors").is_file());
}

#[test]
fn checkpoints_hold_an_hf_folder_and_trainer_state_and_are_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    // With the final evaluation on the held-out synthetic benchmark.
    let out = Train::fresh(&run)
        .set("train.checkpoint_every=1")
        .set("train.keep_last=2")
        .ok();

    assert_eq!(
        step_dirs(&run),
        [5, 6],
        "keep_last = 2 must leave exactly the two newest"
    );
    assert_eq!(latest(&run), "step_6");
    assert!(hidden_entries(&run.join("checkpoints")).is_empty());
    assert!(hidden_entries(&run).is_empty());
    for step in [5, 6] {
        let dir = ckpt(&run, step);
        for file in MODEL_FILES
            .iter()
            .chain(&["trainer_state/state.json", "trainer_state/optimizer.mpk"])
        {
            let path = dir.join(file);
            assert!(
                fs::metadata(&path).map(|m| m.len() > 0).unwrap_or(false),
                "missing or empty {}",
                path.display()
            );
        }
        let s = state(&dir);
        assert_eq!(s["step"], step);
        assert_eq!(s["format"], 2);
        assert_eq!(s["run"]["seed"], quickstart_seed());
        assert_eq!(json(&dir.join("config.json"))["model_type"], "idefics3");
        assert_safetensors_f32(&dir.join("model.safetensors"));
    }
    // A later checkpoint is a different model; final/ is the last one, without trainer state.
    assert!(
        read(&ckpt(&run, 5).join("model.safetensors"))
            != read(&ckpt(&run, 6).join("model.safetensors"))
    );
    assert!(final_weights(&run) == read(&ckpt(&run, 6).join("model.safetensors")));
    for file in MODEL_FILES {
        assert!(
            run.join("final").join(file).is_file(),
            "final/ lacks {file}"
        );
    }
    assert!(!run.join("final/trainer_state").exists());

    assert_eq!(metric_steps(&run), (1..=6).collect::<Vec<_>>());
    assert!(metrics(&run)
        .iter()
        .all(|(_, loss)| loss.is_finite() && *loss > 0.0));
    assert!(
        fs::read_dir(run.join("tb")).unwrap().count() > 0,
        "no TensorBoard events"
    );
    assert!(
        run.join("eval/final/report.md").is_file(),
        "no final evaluation:\n{out}"
    );
    let samples = String::from_utf8(read(&run.join("eval/final/samples.jsonl"))).unwrap();
    assert_eq!(
        samples.lines().count(),
        4,
        "one sample per held-out benchmark item"
    );
    assert!(
        out.contains("| Parser |"),
        "no accuracy table printed:\n{out}"
    );
}

/// The safetensors header parses, and every tensor is F32 with data inside the file.
fn assert_safetensors_f32(path: &Path) {
    let bytes = read(path);
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data_len = (bytes.len() - 8 - n) as u64;
    let tensors: Vec<_> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .collect();
    assert!(!tensors.is_empty());
    for (name, t) in tensors {
        assert_eq!(t["dtype"], "F32", "{name}");
        let end = t["data_offsets"][1].as_u64().unwrap();
        assert!(end <= data_len, "{name} ends past the data");
    }
}

#[test]
fn same_seed_gives_identical_weights_and_another_seed_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    Train::fresh(&a).no_eval().ok();
    Train::fresh(&b).no_eval().ok();
    Train::fresh(&c).set("train.seed=7").no_eval().ok();
    assert!(
        final_weights(&a) == final_weights(&b),
        "two runs with the same seed differ"
    );
    assert_eq!(metrics(&a), metrics(&b));
    // Another seed shuffles the data differently (the initialisation is model.init_seed's).
    assert!(
        final_weights(&a) != final_weights(&c),
        "train.seed has no effect"
    );
}

/// Loads `final/` with HF transformers (needs `tools/.venv`): no missing or unexpected keys,
/// the processor loads, and greedy answers to the held-out items match the ones safeaware's
/// own evaluation generated (tools/test.sh makes the venv), in every family but Qwen2-VL, whose
/// answers differ (an open bug; its weights and processor are still checked) (the model class
/// is the one `config.json` names).
#[test]
fn final_folder_loads_in_hf_transformers() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/.venv/bin/python");
    assert!(python.is_file(), "no {}", python.display());
    for family in &FAMILIES {
        assert_final_folder_loads_in_hf(&python, family);
    }
}

fn assert_final_folder_loads_in_hf(python: &Path, family: &Family) {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    Train::fresh_with(&run, family.sets).ok();
    let cache = fs::read_dir(tmp.path().join(".cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("benchmark.jsonl").is_file())
        .expect("a synthetic cache");
    let out = Command::new(python)
        .arg("-c")
        .arg(HF_CHECK)
        .arg(run.join("final"))
        .arg(cache)
        .arg(run.join("eval/final/samples.jsonl"))
        .arg(if family.name == "qwen2_vl" {
            "weights"
        } else {
            "answers"
        })
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: HF check failed:\n{}",
        family.name,
        text(&out)
    );
}

const HF_CHECK: &str = r#"
import json, re, sys
from pathlib import Path
import torch, transformers
from PIL import Image
from safetensors.torch import load_file
transformers.logging.set_verbosity_error()
folder, cache, samples = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
# "weights": load and compare every tensor only. Qwen2-VL's tiny trained folder gives other
# greedy answers in transformers than in safeaware (issue 28, open), so its answers are not
# compared yet; its logits match transformers on the parity fixtures.
answers = sys.argv[4] == "answers"

architecture = json.loads((folder / "config.json").read_text())["architectures"][0]
model, info = getattr(transformers, architecture).from_pretrained(
    folder, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
model.eval()
bad = {k: v for k, v in info.items() if v}
assert not bad, f"loading problems: {bad}"
state = model.state_dict()
# LLaVA and Qwen2-VL are saved in the hub's layout, which transformers 5 renames when it loads
# (the first matching pattern renames a name).
renames = [("^language_model.model.", "model.language_model."), ("^language_model.lm_head.", "lm_head."),
           ("^vision_tower.vision_model.", "model.vision_tower."),
           ("^multi_modal_projector.", "model.multi_modal_projector.")]
if architecture.startswith("Qwen2"):
    renames = [("^visual.", "model.visual."), ("^model.", "model.language_model.")]
    # The Qwen2-VL processor's video processor needs torchvision, which the venv does not
    # have; images never touch it.
    cls = transformers.Qwen2VLProcessor
    attributes = cls.get_attributes.__func__
    cls.get_attributes = classmethod(lambda c: [a for a in attributes(c) if a != "video_processor"])
for name, t in load_file(str(folder / "model.safetensors")).items():
    loaded = next((re.sub(p, r, name) for p, r in renames if re.match(p, name)), name)
    assert torch.equal(state[loaded], t), f"{name} differs after loading"
processor = transformers.AutoProcessor.from_pretrained(folder)
if not answers:
    print("ok: weights")
    sys.exit(0)
items = {j["id"]: j for j in map(json.loads, (cache / "benchmark.jsonl").read_text().splitlines())}
mismatches, compared = [], 0
for line in samples.read_text().splitlines():
    compared += 1
    s = json.loads(line)
    item = items[s["id"]]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": s["prompt"]}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    image = Image.open(cache / item["image"]).convert("RGB")
    inputs = processor(text=prompt, images=[image], return_tensors="pt")
    with torch.no_grad():
        seq = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    text = processor.decode(seq[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    if text != s["response"].strip():
        mismatches.append((s["id"], text, s["response"]))
assert compared == len(items) > 0, f"compared {compared} of {len(items)} items"
assert not mismatches, f"HF answers differ from safeaware's: {mismatches}"
print(f"ok: {compared} items")
"#;

/// The quickstart recipe over 50 steps on 800 synthetic examples (batches of 16), one metrics
/// line per step.
const QUICKSTART_50: &[&str] = &[
    "train.max_steps=50",
    "data.synthetic.train=800",
    "data.synthetic.val=16",
    "data.synthetic.test=16",
    "data.synthetic.describe_only=0",
    "train.eval_every=0",
    "train.checkpoint_every=0",
    "train.log_every=1",
];

/// The largest relative difference per step between the bf16-mixed and the f32 loss allowed
/// over 50 quickstart steps (measured on the CPU: 0.36%, see README).
const BF16_MIXED_LOSS_BOUND: f64 = 0.02;

#[test]
fn bf16_mixed_tracks_the_f32_loss_over_50_quickstart_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, precision: &str| {
        let dir = tmp.path().join(name);
        let train = QUICKSTART_50
            .iter()
            .fold(Train::quickstart(&dir), |t, kv| t.set(kv));
        train
            .set(&format!("train.precision=\"{precision}\""))
            .no_eval()
            .ok();
        metrics(&dir)
    };
    let (full, mixed) = (run("f32", "f32"), run("mixed", "bf16-mixed"));
    assert_eq!(full.len(), 50);
    assert_ne!(
        full, mixed,
        "bf16-mixed computed exactly what f32 did: no bf16 ran"
    );
    let worst = full
        .iter()
        .zip(&mixed)
        .map(|((s, a), (t, b))| {
            assert_eq!(s, t);
            (a - b).abs() / a
        })
        .fold(0.0, f64::max);
    eprintln!("bf16-mixed vs f32: largest relative loss difference {worst:.5}");
    assert!(
        worst <= BF16_MIXED_LOSS_BOUND,
        "bf16-mixed strays {worst:.4} from f32"
    );
    assert!(full[49].1 < full[0].1 * 0.7, "the runs did not learn");
}

#[test]
fn unknown_lora_targets_are_a_recipe_error_listing_the_valid_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let err = Train::fresh_with(&run, LORA)
        .set("lora.targets=[\"q_proj\", \"query\"]")
        .fails();
    assert!(err.contains("lora.targets"), "{err}");
    assert!(err.contains("`query`"), "{err}");
    assert!(err.contains("gate_proj, k_proj"), "{err}");
    assert!(!run.join("checkpoints").exists());
}

/// Token ids (no image; ordinary words in both presets' vocabularies) for comparing two
/// models' logits.
fn text_only_input(
    device: &burn::backend::flex::FlexDevice,
) -> safeaware_model::VlmInput<burn::backend::Flex> {
    use burn::tensor::{Int, Tensor, TensorData};
    let ids: Vec<i64> = vec![1, 5, 7, 9, 11, 13, 17, 19];
    let ids =
        Tensor::<burn::backend::Flex, 2, Int>::from_data(TensorData::new(ids, [1, 8]), device);
    safeaware_model::VlmInput::new(ids, None)
}

/// The next-token logits of `model` after [`text_only_input`].
fn logits(model: &Vlm<burn::backend::Flex>) -> Vec<f32> {
    let device = Default::default();
    let (out, _) = model.prefill(&text_only_input(&device)).unwrap();
    out.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// In every family: a LoRA run writes PEFT adapter folders (evaluated at the end of the run on
/// their base), `export --merge` folds one into a folder with the logits of base + adapter, and
/// `eval --model` evaluates that folder.
#[test]
fn lora_runs_write_peft_folders_that_evaluate_and_merge() {
    for family in &FAMILIES {
        let tmp = tempfile::tempdir().unwrap();
        let (fin, base) = assert_lora_run_writes_a_peft_folder(tmp.path(), family);
        let merged = tmp.path().join("merged");
        let export = common::safeaware(&[
            "export",
            "--merge",
            fin.to_str().unwrap(),
            "--out",
            merged.to_str().unwrap(),
        ]);
        assert!(export.status.success(), "{}", text(&export));
        let device = Default::default();
        let base_model = Vlm::<burn::backend::Flex>::load(&base, &device).unwrap();
        let plain = logits(&base_model);
        let adapted = logits(&base_model.load_adapter(&fin).unwrap());
        let merged_logits = logits(&Vlm::load(&merged, &device).unwrap());
        let name = family.name;
        assert!(
            max_diff(&plain, &adapted) > 1e-4,
            "{name}: training changed nothing"
        );
        let diff = max_diff(&adapted, &merged_logits);
        assert!(
            diff < 1e-4,
            "{name}: merged logits differ from base + adapter by {diff}"
        );
        assert_evaluates(tmp.path(), &merged);
    }
}

/// Trains `family` with [`LORA`] (and the final evaluation) in `dir/run`; checks `final/` is a
/// PEFT adapter folder over `<run>/base` and returns both.
fn assert_lora_run_writes_a_peft_folder(dir: &Path, family: &Family) -> (PathBuf, PathBuf) {
    let run = dir.join("run");
    let out = Train::fresh_with(&run, &family.with(LORA)).ok();
    let fin = run.join("final");
    assert!(fin.join("adapter_model.safetensors").is_file());
    assert!(
        !fin.join("model.safetensors").exists(),
        "final/ holds the whole model"
    );
    let config = json(&fin.join("adapter_config.json"));
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);
    assert_eq!(
        config["modules_to_save"],
        serde_json::json!([family.connector_module])
    );
    let base = std::path::absolute(run.join("base")).unwrap();
    assert_eq!(
        config["base_model_name_or_path"],
        base.display().to_string()
    );
    assert!(
        run.join("eval/final/report.md").is_file(),
        "no final evaluation:\n{out}"
    );
    (fin, base)
}

/// `eval --model folder` on the held-out benchmark cached in `dir` scores every item.
fn assert_evaluates(dir: &Path, folder: &Path) {
    let out = dir.join("eval-merged");
    let eval = common::safeaware(&[
        "eval",
        "--model",
        folder.to_str().unwrap(),
        "--benchmark",
        &common::cached_benchmark(dir),
        "--out",
        out.to_str().unwrap(),
        "--max-tokens",
        "8",
        "--progress",
        "quiet",
    ]);
    assert!(eval.status.success(), "{}", text(&eval));
    let results = json(&out.join("results.json"));
    assert_eq!(results["counts"]["scored"], 4, "{results}");
    assert_eq!(results["counts"]["errors"], 0, "{results}");
}
