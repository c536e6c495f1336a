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
    let cache = std::fs::read_dir(dir.join(".cache"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let spec = format!("jsonl:{}", cache.join("benchmark.jsonl").display());
    (run, spec)
}
