//! Helpers shared by the tests of the `safeaware` binary.

#![allow(dead_code)]

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
