//! Fixtures of the robustness suite: a tiny synthetic world and a one-step model, made once
//! and copied into each case's folder, plus the recipe and responses file that go with them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// A fresh training run of `recipe.toml` into `run/`, without the final evaluation.
pub const TRAIN: &[&str] = &[
    "train",
    "--recipe",
    "recipe.toml",
    "--out",
    "run",
    "--no-eval",
];

/// Runs the binary in `dir` (relative paths in `args` are relative to it).
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_safeaware"))
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the safeaware binary runs")
}

/// Asserts success and returns stdout + stderr.
pub fn ok_in(dir: &Path, args: &[&str]) -> String {
    let out = run_in(dir, args);
    let text = crate::common::text(&out);
    assert!(out.status.success(), "safeaware {args:?} failed:\n{text}");
    text
}

/// A synthetic world (6 train, 2 val, 8 test items) in a folder kept for the whole run.
fn world() -> &'static Path {
    static WORLD: OnceLock<tempfile::TempDir> = OnceLock::new();
    WORLD
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let args = [
                "data", "synth", "--out", "world", "--train", "6", "--val", "2",
            ];
            ok_in(dir.path(), &[&args[..], &["--test", "8"]].concat());
            dir
        })
        .path()
}

/// A model trained for one step on the world (an HF folder, `final/` of the run).
fn model() -> &'static Path {
    static MODEL: OnceLock<tempfile::TempDir> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            copy_tree(&world().join("world"), &dir.path().join("world"));
            write_recipe(dir.path(), 2);
            ok_in(dir.path(), TRAIN);
            dir
        })
        .path()
}

/// Fills `dir` for a case: `world/`, `recipe.toml` (2 steps), `responses.jsonl` (an answer for
/// every benchmark item) and, with `with_model`, `model/`.
pub fn prepare(dir: &Path, with_model: bool) {
    copy_tree(&world().join("world"), &dir.join("world"));
    write_recipe(dir, 2);
    fs::write(dir.join("responses.jsonl"), responses()).unwrap();
    if with_model {
        copy_tree(&model().join("run/final"), &dir.join("model"));
    }
}

/// Removes `model/manifest.json`, making the model an HF folder whose files nothing verifies
/// (for the cases that test the checks behind the manifest's).
pub fn without_manifest(dir: &Path) {
    fs::remove_file(dir.join("model/manifest.json")).unwrap();
}

/// A run folder with checkpoints at steps 1 and 2 (copied from the model fixture's run).
pub fn copy_run(to: &Path) {
    copy_tree(&model().join("run"), to);
}

/// `recipe.toml`: the `tiny` preset trained on `world/train.jsonl` for `steps` steps of 2,
/// a checkpoint every step.
pub fn write_recipe(dir: &Path, steps: u64) {
    let world = dir.join("world");
    let text = format!(
        "[model]\npreset = \"tiny\"\ninit_seed = 0\n\n\
         [data]\ntrain = \"{}\"\nstyle = \"vcr\"\nmax_length = 384\n\n\
         [data.synthetic]\nenabled = false\n\n\
         [schedule]\nwarmup_steps = 1\n\n\
         [train]\nmax_steps = {steps}\nbatch_size = 2\nseed = 1\ndevice = \"cpu\"\n\
         checkpoint_every = 1\nkeep_last = 0\neval_every = 0\nlog_every = 1\n\n\
         [eval]\nmax_new_tokens = 4\nbatch_size = 2\n",
        world.join("train.jsonl").display()
    );
    fs::write(dir.join("recipe.toml"), text).unwrap();
}

/// A responses file answering every item of the world's benchmark.
pub fn responses() -> String {
    benchmark_ids()
        .iter()
        .map(|id| format!("{{\"id\": \"{id}\", \"response\": \"No, it is not safe.\"}}\n"))
        .collect()
}

/// The ids of `world/benchmark.jsonl`.
pub fn benchmark_ids() -> Vec<String> {
    let text = fs::read_to_string(world().join("world/benchmark.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Copies a folder tree.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file (with its bytes) and folder (`None`) under `dir`, by relative path.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(dir).unwrap().to_path_buf();
            if path.is_dir() {
                stack.push(path);
                out.insert(rel, None);
            } else {
                out.insert(rel, Some(fs::read(&path).unwrap()));
            }
        }
    }
    out
}
