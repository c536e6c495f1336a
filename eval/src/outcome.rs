//! When a run that asks many items counts as failed, one rule for `eval`, each arm of
//! `experiment run` and `data distill`: nothing succeeded, or a larger share of the asked items
//! failed than `--max-error-rate` ([`ErrorBudget`]) allows. The outputs are written either way;
//! the command exits non-zero and prints the failed items counted by cause.

use std::collections::BTreeMap;

use crate::EvalError;

/// The largest share of failed items a run may have and still succeed (`--max-error-rate`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorBudget(f64);

impl ErrorBudget {
    /// A budget of `share` (0 to 1).
    pub fn new(share: f64) -> Result<ErrorBudget, EvalError> {
        if !(0.0..=1.0).contains(&share) {
            return Err(EvalError::Config(format!(
                "--max-error-rate must be a share between 0 and 1, got {share}"
            )));
        }
        Ok(ErrorBudget(share))
    }

    /// The failure of a run with `tally`, if it is one.
    pub fn judge(&self, tally: Tally<'_>) -> Result<(), RunFailure> {
        let share = tally.failed as f64 / tally.asked.max(1) as f64;
        if tally.succeeded > 0 && share <= self.0 {
            return Ok(());
        }
        let summary = if tally.succeeded == 0 {
            format!(
                "nothing was {} ({} {}(s) asked)",
                tally.verb, tally.asked, tally.noun
            )
        } else {
            format!(
                "{} of {} {}(s) failed ({:.1}%, above --max-error-rate {})",
                tally.failed,
                tally.asked,
                tally.noun,
                100.0 * share,
                self.0
            )
        };
        Err(RunFailure {
            summary,
            noun: tally.noun.to_string(),
            causes: tally.causes,
        })
    }
}

/// How the asked items of a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally<'a> {
    /// Items asked.
    pub asked: usize,
    /// Items answered as wanted (scored, or answered by a teacher).
    pub succeeded: usize,
    /// Items that failed.
    pub failed: usize,
    /// The items that did not succeed counted by cause, most frequent first.
    pub causes: Vec<(String, usize)>,
    /// What an item is called (`item`, `pair`).
    pub noun: &'a str,
    /// What success is called (`scored`, `answered by the teacher`).
    pub verb: &'a str,
}

/// Why a run failed, with the causes of its items' failures.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{summary}")]
pub struct RunFailure {
    pub summary: String,
    pub noun: String,
    pub causes: Vec<(String, usize)>,
}

impl RunFailure {
    /// One line per cause: `  N item(s): cause`.
    pub fn cause_lines(&self) -> Vec<String> {
        self.causes
            .iter()
            .map(|(cause, n)| format!("  {n} {}(s): {cause}", self.noun))
            .collect()
    }

    /// The summary and the most frequent cause, in one line (a comparison's note).
    pub fn short(&self) -> String {
        match self.causes.first() {
            Some((cause, n)) => format!("{}; {n} {}(s): {cause}", self.summary, self.noun),
            None => self.summary.clone(),
        }
    }
}

/// Errors counted by cause (the error without what names the item: its image path or its
/// responses-file line), most frequent first.
pub fn count_causes<'a>(errors: impl IntoIterator<Item = &'a str>) -> Vec<(String, usize)> {
    let mut by_cause: BTreeMap<String, usize> = BTreeMap::new();
    for e in errors {
        *by_cause.entry(cause_of(e)).or_default() += 1;
    }
    let mut causes: Vec<(String, usize)> = by_cause.into_iter().collect();
    causes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    causes
}

/// An item's error with what names the item (an image path, a responses-file line) left out,
/// so that items failing the same way are counted together.
fn cause_of(error: &str) -> String {
    if let Some((head, _)) = error.split_once(": ") {
        // The prompt's own length is left out: items too long for the context count together.
        if head.starts_with("prompt too long") {
            return head.to_string();
        }
    }
    for (prefix, label) in [
        ("image ", "image"),
        ("responses file line ", "responses file"),
    ] {
        if let Some((head, reason)) = error.split_once(": ") {
            if head.starts_with(prefix) {
                return format!("{label}: {reason}");
            }
        }
    }
    error.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_leave_out_what_names_the_item() {
        assert_eq!(cause_of("image /d/7.jpg: truncated"), "image: truncated");
        assert_eq!(
            cause_of("responses file line 3: invalid JSON"),
            "responses file: invalid JSON"
        );
        assert_eq!(
            cause_of("prompt too long for the model's context of 2048 tokens (max_position_embeddings): the prompt is 4000 tokens"),
            "prompt too long for the model's context of 2048 tokens (max_position_embeddings)"
        );
        assert_eq!(
            cause_of("endpoint: HTTP 500 (after 4 attempt(s))"),
            "endpoint: HTTP 500 (after 4 attempt(s))"
        );
        let counted = count_causes(["image /a.png: truncated", "x", "image /b.png: truncated"]);
        assert_eq!(
            counted,
            [("image: truncated".to_string(), 2), ("x".into(), 1)]
        );
    }

    fn tally(asked: usize, succeeded: usize, failed: usize) -> Tally<'static> {
        Tally {
            asked,
            succeeded,
            failed,
            causes: vec![("endpoint: refused".into(), failed)],
            noun: "pair",
            verb: "answered by the teacher",
        }
    }

    #[test]
    fn nothing_succeeded_or_too_many_failures_fail_the_run() {
        let none = ErrorBudget::new(0.0).unwrap();
        assert_eq!(none.judge(tally(4, 4, 0)), Ok(()));
        let all_failed = none.judge(tally(4, 0, 4)).unwrap_err();
        assert_eq!(
            all_failed.summary,
            "nothing was answered by the teacher (4 pair(s) asked)"
        );
        assert_eq!(all_failed.cause_lines(), ["  4 pair(s): endpoint: refused"]);
        let one = none.judge(tally(4, 3, 1)).unwrap_err();
        assert!(
            one.summary.starts_with("1 of 4 pair(s) failed (25.0%"),
            "{one}"
        );
        let half = ErrorBudget::new(0.5).unwrap();
        assert_eq!(half.judge(tally(4, 3, 1)), Ok(()));
        // A budget never excuses a run where nothing succeeded.
        assert!(ErrorBudget::new(1.0)
            .unwrap()
            .judge(tally(4, 0, 4))
            .is_err());
        assert!(ErrorBudget::new(1.5).is_err() && ErrorBudget::new(-0.1).is_err());
        assert!(ErrorBudget::new(f64::NAN).is_err());
    }
}
