//! How every command ends on an error or a closed stdout: `error: <what>` and one indented
//! `caused by:` paragraph per cause, exit 1 for usage and data errors, never a backtrace
//! whatever `RUST_BACKTRACE` asks; and a stdout its reader closed (`safeaware … | head -1`)
//! ends the command quietly instead of in a broken-pipe panic.

mod common;

use std::process::{Command, Output, Stdio};

use common::text;

/// Runs the binary with backtraces asked for everywhere they can be.
fn with_backtraces(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_safeaware"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .expect("the safeaware binary runs")
}

/// Asserts a user error: status 1, stderr opening with `error: `, no backtrace or panic.
fn assert_user_error(args: &[&str]) -> String {
    let out = with_backtraces(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}:\n{}", text(&out));
    assert!(stderr.starts_with("error: "), "{args:?}:\n{stderr}");
    for noise in ["Stack backtrace", "stack backtrace", "panicked", "Error: "] {
        assert!(
            !stderr.contains(noise),
            "{args:?} printed {noise:?}:\n{stderr}"
        );
    }
    stderr
}

#[test]
fn errors_print_their_causes_as_paragraphs_without_a_backtrace() {
    let missing = "/nonexistent/safeaware-recipe.toml";
    let stderr = assert_user_error(&["recipe", "show", missing]);
    assert!(stderr.contains(missing), "{stderr}");
    // Every line after the first is a cause (or a cause's continuation), indented.
    assert!(
        stderr.lines().skip(1).all(|l| l.starts_with("  ")),
        "{stderr}"
    );
    assert_user_error(&["inspect", "/nonexistent/safeaware-model"]);
    assert_user_error(&["data", "stats", "/nonexistent/traces.jsonl"]);
}

/// Runs `args` with stdout a pipe whose reader is already closed, so every write fails with
/// `EPIPE`.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_safeaware"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("the safeaware binary runs")
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let recipe = concat!(env!("CARGO_MANIFEST_DIR"), "/recipes/quickstart.toml");
    let recipes = concat!(env!("CARGO_MANIFEST_DIR"), "/recipes");
    for args in [
        vec!["recipe", "show", recipe],
        vec!["recipe", "list", recipes],
    ] {
        let out = with_closed_stdout(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}:\n{stderr}");
        assert!(stderr.is_empty(), "{args:?} printed:\n{stderr}");
    }
}
