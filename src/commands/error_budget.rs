//! `--max-error-rate`, the flag of `eval`, `experiment run` and `data distill` that says how
//! many failed items a run may have and still exit with status 0 (the rule is
//! [`safeaware_eval::outcome`]), and how a failed run is reported: its causes on stderr, its
//! summary as the command's error.

use safeaware_eval::outcome::{ErrorBudget, RunFailure};

/// The `--max-error-rate` flag.
#[derive(clap::Args)]
pub struct ErrorBudgetArgs {
    /// Largest share of failed items (0..1) that still exits with status 0; the default 0
    /// makes any failed item an error. A run where nothing succeeded always fails.
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    pub max_error_rate: f64,
}

impl ErrorBudgetArgs {
    /// The budget, checked (a share between 0 and 1).
    pub fn budget(&self) -> anyhow::Result<ErrorBudget> {
        Ok(ErrorBudget::new(self.max_error_rate)?)
    }
}

/// Prints the failure's causes (one line each) on stderr and returns it as an error.
pub fn report(failure: RunFailure) -> anyhow::Error {
    for line in failure.cause_lines() {
        eprintln!("{line}");
    }
    failure.into()
}
