//! Helpers shared by the tests of the `safeaware` binary.

#![allow(dead_code)]

pub mod serving;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `safeaware` binary built for the tests with `args`.
pub fn safeaware(args: &[&str]) -> Output {
    safeaware_with_env(args, &[])
}

/// Runs the `safeaware` binary with `args` and extra environment variables.
pub fn safeaware_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_safeaware"));
    command.args(args).env("RUST_BACKTRACE", "0");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the safeaware binary runs")
}

/// Everything the process printed: stdout, then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A model family, trained from its tiny preset: the quickstart recipe with `sets` (the LLaVA
/// quickstart recipe is the quickstart with only `model.preset` changed, which
/// `tests/recipes.rs` checks), so a test runs the same for every family.
pub struct Family {
    pub name: &'static str,
    /// `--set` overrides that pick the family's preset.
    pub sets: &'static [&'static str],
    /// Its connector's module name in PEFT's `modules_to_save`.
    pub connector_module: &'static str,
    /// Its own quickstart recipe in `recipes/`.
    pub quickstart: &'static str,
}

impl Family {
    /// The family's overrides followed by `extra`.
    pub fn with<'a>(&self, extra: &[&'a str]) -> Vec<&'a str> {
        self.sets.iter().chain(extra).copied().collect()
    }
}

/// Idefics3/SmolVLM (`tiny`), LLaVA-1.5 (`tiny-llava`) and Qwen2-VL (`tiny-qwen2vl`); the
/// last two's quickstarts train with seed 2.
pub const FAMILIES: [Family; 3] = [
    Family {
        name: "idefics3",
        sets: &[],
        connector_module: "connector",
        quickstart: "quickstart.toml",
    },
    Family {
        name: "llava",
        sets: &["model.preset=\"tiny-llava\"", "train.seed=2"],
        connector_module: "multi_modal_projector",
        quickstart: "quickstart-llava.toml",
    },
    Family {
        name: "qwen2_vl",
        sets: &["model.preset=\"tiny-qwen2vl\"", "train.seed=2"],
        connector_module: "merger",
        quickstart: "quickstart-qwen2vl.toml",
    },
];

/// The `jsonl:` spec of the held-out benchmark of the synthetic world cached in `dir/.cache`.
pub fn cached_benchmark(dir: &Path) -> String {
    let cache = std::fs::read_dir(dir.join(".cache"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    format!("jsonl:{}", cache.join("benchmark.jsonl").display())
}

/// Trains with `recipes/quickstart.toml` and the `--set` overrides `settings`, without the final
/// evaluation, into `dir/run` (the synthetic world is cached in `dir/.cache`); returns the run
/// folder and the `jsonl:` spec of the world's held-out benchmark.
pub fn train_quickstart(dir: &Path, settings: &[&str]) -> (PathBuf, String) {
    let run = dir.join("run");
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.toml");
    let mut args = vec![
        "train",
        "--recipe",
        recipe.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--no-eval",
    ];
    for kv in settings {
        args.extend(["--set", kv]);
    }
    let out = safeaware(&args);
    assert!(out.status.success(), "training failed:\n{}", text(&out));
    (run, cached_benchmark(dir))
}
