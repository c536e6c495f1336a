//! What the commands print on stdout, and how `main` reports an error.
//!
//! Rust's `print!` panics when stdout is closed (`safeaware … | head -1` once `head` has its
//! line). Commands print through [`out!`] and [`outln!`] instead: a closed stdout becomes a
//! [`ClosedStdout`] error, which `main` ends quietly with status 0, as a filter stops when its
//! reader leaves (the reader has what it wanted). Restoring SIGPIPE's default action would do
//! the same for stdout, but it needs `unsafe` and would also let a peer that closes a socket or a
//! child's pipe kill the process (`serve`, endpoint clients) instead of failing one write.
//!
//! Errors print as `error: <what>` followed by one indented `caused by: <cause>` paragraph per
//! cause ([`render_error`]), never with a backtrace, whatever `RUST_BACKTRACE` says.

use std::fmt;
use std::io::{self, Write};

/// Stdout was closed by its reader: the command stops, and the process exits quietly.
#[derive(Debug)]
pub struct ClosedStdout;

impl fmt::Display for ClosedStdout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed by its reader")
    }
}

impl std::error::Error for ClosedStdout {}

/// Writes `args` to stdout and flushes; a closed stdout is [`ClosedStdout`], any other write
/// failure an I/O error.
pub fn write(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(ClosedStdout.into()),
        other => Ok(other?),
    }
}

/// `print!` that returns an error instead of panicking (see [`write`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))
    };
}

/// `println!` that returns an error instead of panicking (see [`write`]).
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};

/// Whether `err` is stdout closed by its reader (anywhere in its chain).
pub fn is_closed_stdout(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<ClosedStdout>())
}

/// `err` as the user reads it: `error: <what>`, then each cause on its own `caused by:` line
/// indented by two spaces (a multi-line message keeps its lines, indented alike). Only the
/// messages: anyhow's backtrace is never part of it.
pub fn render_error(err: &anyhow::Error) -> String {
    let mut text = paragraph("error: ", &err.to_string());
    for cause in err.chain().skip(1) {
        text.push('\n');
        text.push_str(&paragraph("  caused by: ", &cause.to_string()));
    }
    text
}

/// `message` after `label`, its later lines indented to line up with the first.
fn paragraph(label: &str, message: &str) -> String {
    let indent = " ".repeat(label.len());
    let mut lines = message.lines();
    let mut text = format!("{label}{}", lines.next().unwrap_or_default());
    for line in lines {
        text.push('\n');
        if !line.is_empty() {
            text.push_str(&indent);
        }
        text.push_str(line);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn an_error_is_one_paragraph_per_cause() {
        let err = Err::<(), _>(io::Error::other("disk full\nretry later"))
            .context("writing run/metrics.jsonl")
            .context("step 3")
            .unwrap_err();
        assert_eq!(
            render_error(&err),
            "error: step 3\n  caused by: writing run/metrics.jsonl\n  caused by: disk full\n             retry later"
        );
    }

    #[test]
    fn a_closed_stdout_is_recognised_through_context() {
        let err = anyhow::Error::new(ClosedStdout).context("printing the summary");
        assert!(is_closed_stdout(&err));
        assert!(!is_closed_stdout(&anyhow::anyhow!("broken pipe")));
    }
}
