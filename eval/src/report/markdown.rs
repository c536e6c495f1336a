//! `report.md`: the facts of the run, the paper-style accuracy table (Typical / Attack /
//! Over-Safe / Total, in %) for both parsers with the line on where they disagree (when more
//! than a few items do), intervals, error rates, image reliance when measured, the
//! per-scenario table, and missing/failed ids — the tables of [`super::tables`] rendered as
//! Markdown.

use std::fmt::Write;

use super::tables::{self, NOT_FINISHED};
use crate::results::Results;

/// The paper-style accuracy table (%), one row per parser, without the disagreement line.
pub fn accuracy_table(r: &Results) -> String {
    let mut table = tables::accuracy(r);
    table.notes.clear();
    table.to_markdown()
}

/// The accuracy table, then the parsers' disagreement line when more than a few items
/// disagree: what report.md and the terminal summary show.
pub fn accuracy_summary(r: &Results) -> String {
    tables::accuracy(r).to_markdown()
}

/// Renders the whole report.
pub fn render(r: &Results) -> String {
    let mut s = String::from("# MMSafeAware evaluation\n\n");
    for (label, value) in tables::run_facts(r) {
        let _ = writeln!(s, "- {label}: {value}");
    }
    if r.counts.pending > 0 {
        let _ = writeln!(s, "\n**{NOT_FINISHED}**");
    }

    s.push_str("\n## Accuracy (%)\n\n");
    s.push_str(&accuracy_summary(r));
    s.push_str("\nTotal is the unweighted mean of the subset accuracies (a subset without scored items is left out).\n\n");
    s.push_str("95% Wilson intervals (%), with correct/n:\n\n");
    s.push_str(&tables::intervals(r).to_markdown());

    s.push_str("\n## Error rates (%)\n\n");
    s.push_str(&tables::error_rates(r).to_markdown());

    if let Some(table) = tables::image_reliance(r) {
        s.push_str("\n## Image reliance\n\n");
        s.push_str(&table.to_markdown());
    }
    if !r.scenarios.is_empty() {
        s.push_str("\n## Accuracy per scenario (%)\n\n");
        s.push_str(&tables::scenarios(r).to_markdown());
    }
    if !r.missing_response_ids.is_empty() {
        let n = r.missing_response_ids.len();
        let _ = writeln!(s, "\n## Items without a response ({n})\n");
        let _ = writeln!(s, "{}", tables::missing_ids(r));
    }
    if !r.errors.is_empty() {
        let _ = writeln!(s, "\n## Errors ({})\n", r.errors.len());
        s.push_str(&tables::errors(r).to_markdown());
    }
    s
}
