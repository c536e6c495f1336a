//! Progress of a run on stderr: an indicatif bar (items/s, ETA) on a terminal, plain log lines
//! otherwise, or nothing.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar if stderr is a terminal, log lines if not.
    #[default]
    Auto,
    /// Plain log lines.
    Log,
    /// Nothing.
    Quiet,
}

impl std::str::FromStr for ProgressMode {
    type Err = String;

    /// `auto`, `log` or `quiet` (the `--progress` flag).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(ProgressMode::Auto),
            "log" => Ok(ProgressMode::Log),
            "quiet" => Ok(ProgressMode::Quiet),
            other => Err(format!(
                "unknown progress mode `{other}` (expected auto, log or quiet)"
            )),
        }
    }
}

/// Tracks finished items and reports them.
pub struct Progress {
    /// What is counted, at the start of each log line (`eval`, `distill`).
    label: &'static str,
    bar: Option<ProgressBar>,
    log: bool,
    total: u64,
    done: u64,
    start: Instant,
    last_log: Instant,
}

/// Seconds between two log lines.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    /// Starts reporting on `total` items of an evaluation.
    pub fn new(total: usize, mode: ProgressMode) -> Progress {
        Progress::labelled("eval", total, mode)
    }

    /// Starts reporting on `total` items; log lines start with `label`.
    pub fn labelled(label: &'static str, total: usize, mode: ProgressMode) -> Progress {
        let total = total as u64;
        let terminal = std::io::stderr().is_terminal();
        let bar = (mode == ProgressMode::Auto && terminal).then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{bar:40} {pos}/{len} items  {per_sec}  ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        let log = mode == ProgressMode::Log || (mode == ProgressMode::Auto && !terminal);
        let now = Instant::now();
        Progress {
            label,
            bar,
            log,
            total,
            done: 0,
            start: now,
            last_log: now,
        }
    }

    /// Writes a message above the bar (or as a log line).
    pub fn println(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None if self.log => eprintln!("{message}"),
            None => {}
        }
    }

    /// One more item finished.
    pub fn inc(&mut self) {
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
        } else if self.log && (self.last_log.elapsed() >= LOG_EVERY || self.done == self.total) {
            self.last_log = Instant::now();
            eprintln!("{}", self.line());
        }
    }

    /// `eval: 120/1523 items (7.9%), 3.2 items/s, ETA 7m 18s`.
    fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = self.done as f64 / secs;
        let pct = 100.0 * self.done as f64 / self.total.max(1) as f64;
        let eta = if rate > 0.0 {
            let left = (self.total - self.done.min(self.total)) as f64 / rate;
            format!("{}m {}s", (left / 60.0) as u64, (left % 60.0) as u64)
        } else {
            "unknown".to_string()
        };
        format!(
            "{}: {}/{} items ({pct:.1}%), {rate:.2} items/s, ETA {eta}",
            self.label, self.done, self.total
        )
    }

    /// Ends the bar (or logs a last line).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        } else if self.log && self.done != self.total {
            eprintln!("{}", self.line());
        }
    }
}
