//! Progress of long jobs (training, evaluation): an `indicatif` bar when stderr is a terminal,
//! plain rate-limited log lines otherwise (CI, `nohup`, pipes), or nothing — behind one small
//! type so every job reports the same way.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Default minimum interval between plain progress lines.
pub const PLAIN_INTERVAL: Duration = Duration::from_secs(10);

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

    /// `auto`, `log` or `quiet` (the `--progress` flag of `eval` and `data distill`).
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

enum Sink {
    Bar(ProgressBar),
    Plain {
        out: Box<dyn Write + Send>,
        every: Duration,
        last: Option<Instant>,
    },
    Quiet,
}

/// A progress reporter over `total` units (steps, items, …), possibly starting part-way.
pub struct Progress {
    sink: Sink,
    label: String,
    total: u64,
    start_pos: u64,
    pos: u64,
    started: Instant,
}

impl Progress {
    /// A bar on a terminal, plain lines on stderr every [`PLAIN_INTERVAL`] otherwise.
    /// `start` is where a resumed job begins (rates and ETA count from there).
    pub fn new(label: impl Into<String>, total: u64, start: u64) -> Self {
        Self::with_mode(label, total, start, ProgressMode::Auto)
    }

    /// Like [`Progress::new`], shown as `mode` asks.
    pub fn with_mode(label: impl Into<String>, total: u64, start: u64, mode: ProgressMode) -> Self {
        let label = label.into();
        let terminal = std::io::stderr().is_terminal();
        match mode {
            ProgressMode::Auto if terminal => {
                Self::with_sink(Sink::Bar(bar(&label, total, start)), label, total, start)
            }
            ProgressMode::Auto | ProgressMode::Log => Self::plain(
                label,
                total,
                start,
                Box::new(std::io::stderr()),
                PLAIN_INTERVAL,
            ),
            ProgressMode::Quiet => Self::with_sink(Sink::Quiet, label, total, start),
        }
    }

    /// Plain lines to `out`, at most one per `every` (plus the last one and the end).
    pub fn plain(
        label: impl Into<String>,
        total: u64,
        start: u64,
        out: Box<dyn Write + Send>,
        every: Duration,
    ) -> Self {
        let sink = Sink::Plain {
            out,
            every,
            last: None,
        };
        Self::with_sink(sink, label.into(), total, start)
    }

    fn with_sink(sink: Sink, label: String, total: u64, start: u64) -> Self {
        Self {
            sink,
            label,
            total,
            start_pos: start,
            pos: start,
            started: Instant::now(),
        }
    }

    /// Current position.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// One more unit done.
    pub fn inc(&mut self) {
        self.set(self.pos + 1, "");
    }

    /// Moves to `pos` with a short status `message` (e.g. "loss 1.23").
    pub fn set(&mut self, pos: u64, message: &str) {
        self.pos = pos;
        let line = self.line(message);
        match &mut self.sink {
            Sink::Bar(bar) => {
                bar.set_position(pos);
                bar.set_message(message.to_string());
            }
            Sink::Plain { out, every, last } => {
                let due = last.is_none_or(|t| t.elapsed() >= *every) || pos >= self.total;
                if due {
                    let _ = writeln!(out, "{line}");
                    *last = Some(Instant::now());
                }
            }
            Sink::Quiet => {}
        }
    }

    /// Prints a line without disturbing the bar (always printed in plain mode, never in
    /// quiet mode).
    pub fn println(&mut self, line: &str) {
        match &mut self.sink {
            Sink::Bar(bar) => bar.println(line),
            Sink::Plain { out, .. } => {
                let _ = writeln!(out, "{line}");
            }
            Sink::Quiet => {}
        }
    }

    /// Seconds elapsed since this reporter was created.
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Estimated seconds to reach `total`, from the rate since creation.
    pub fn eta_s(&self) -> Option<f64> {
        eta_seconds(
            self.pos.saturating_sub(self.start_pos),
            self.total.saturating_sub(self.pos),
            self.elapsed_s(),
        )
    }

    /// Ends the report with `message`.
    pub fn finish(&mut self, message: &str) {
        let line = format!(
            "[{}] done {}/{} in {} {message}",
            self.label,
            self.pos,
            self.total,
            hms(self.elapsed_s())
        );
        match &mut self.sink {
            Sink::Bar(bar) => bar.finish_with_message(message.to_string()),
            Sink::Plain { out, .. } => {
                let _ = writeln!(out, "{}", line.trim_end());
            }
            Sink::Quiet => {}
        }
    }

    fn line(&self, message: &str) -> String {
        let pct = if self.total == 0 {
            100.0
        } else {
            100.0 * self.pos as f64 / self.total as f64
        };
        let eta = self.eta_s().map_or_else(|| "?".to_string(), hms);
        format!(
            "[{}] {}/{} ({pct:.1}%) elapsed {} eta {eta} {message}",
            self.label,
            self.pos,
            self.total,
            hms(self.elapsed_s())
        )
        .trim_end()
        .to_string()
    }
}

/// The terminal bar: label, elapsed time, bar, position, rate, ETA and the status message.
fn bar(label: &str, total: u64, start: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(format!("[{label}]"));
    bar.set_position(start);
    bar.reset_eta();
    bar
}

/// Remaining time at the observed rate: `remaining * elapsed / done` (`None` before any
/// progress or with a non-positive elapsed time).
pub fn eta_seconds(done: u64, remaining: u64, elapsed_s: f64) -> Option<f64> {
    (done > 0 && elapsed_s > 0.0).then(|| remaining as f64 * elapsed_s / done as f64)
}

/// `h:mm:ss`.
pub fn hms(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    #[test]
    fn eta_and_hms() {
        assert_eq!(eta_seconds(0, 10, 5.0), None);
        assert_eq!(eta_seconds(10, 30, 5.0), Some(15.0));
        assert_eq!(hms(3725.4), "1:02:05");
        assert_eq!(hms(-1.0), "0:00:00");
    }

    #[test]
    fn plain_mode_is_rate_limited_but_prints_messages_and_the_end() {
        let out = Shared::default();
        let mut p = Progress::plain(
            "train",
            4,
            1,
            Box::new(out.clone()),
            Duration::from_secs(3600),
        );
        p.set(2, "loss 2.0"); // first update prints
        p.set(3, "loss 1.5"); // rate-limited
        p.println("eval: accuracy 0.5");
        p.set(4, "loss 1.0"); // reaching the total prints
        p.finish("");
        let lines = out.lines();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(
            lines[0].starts_with("[train] 2/4 (50.0%) elapsed 0:00:00 eta "),
            "{}",
            lines[0]
        );
        assert!(lines[0].ends_with("loss 2.0"));
        assert_eq!(lines[1], "eval: accuracy 0.5");
        assert!(lines[2].contains("4/4 (100.0%)") && lines[2].ends_with("loss 1.0"));
        assert!(lines[3].starts_with("[train] done 4/4 in "), "{}", lines[3]);
    }

    #[test]
    fn inc_counts_from_the_resumed_position_and_quiet_counts_silently() {
        let out = Shared::default();
        let mut p = Progress::plain("eval", 3, 1, Box::new(out.clone()), PLAIN_INTERVAL);
        p.inc();
        assert_eq!(p.position(), 2);
        assert!(
            out.lines()[0].starts_with("[eval] 2/3 (66.7%)"),
            "{:?}",
            out.lines()
        );
        let mut quiet = Progress::with_mode("eval", 3, 0, ProgressMode::Quiet);
        quiet.inc();
        quiet.println("not shown");
        quiet.finish("");
        assert_eq!(quiet.position(), 1);
    }
}
