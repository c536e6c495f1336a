//! Helpers shared by the tests of the `safeaware` binary.

#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs the `safeaware` binary built for the tests with `args`.
pub fn safeaware(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_safeaware"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the safeaware binary runs")
}

/// Everything the process printed: stdout, then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
