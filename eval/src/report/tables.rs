//! What a run's reports say, built once from its results: the facts of the run, the
//! paper-style accuracy table (with the parsers' disagreement line), Wilson intervals, error
//! rates, accuracy per scenario, and the items that failed. The Markdown and HTML pages and
//! the terminal summary render these same tables.

use safeaware_data::benchmark::Subset;

use super::table::{Cell, Table};
use super::{ci, decoding_summary, parser_title, pct, source_summary, subset_title, LIST_LIMIT};
use crate::results::Results;
use crate::verdict::Parser;

/// The facts of a run, as `(label, value)` pairs: source, benchmark, prompt, decoding,
/// version and item counts.
pub fn run_facts(r: &Results) -> Vec<(&'static str, String)> {
    let c = &r.counts;
    let b = &r.benchmark;
    vec![
        ("Source", source_summary(r)),
        (
            "Benchmark",
            format!(
                "{} ({} items, {} without an image)",
                b.spec, b.items, b.missing_images
            ),
        ),
        ("Prompt strategy", r.prompt.strategy.clone()),
        ("Decoding", decoding_summary(r)),
        ("safeaware", r.safeaware_version.clone()),
        (
            "Items",
            format!(
                "{} scored, {} missing a response, {} errors, {} skipped (no image), {} pending",
                c.scored, c.missing_response, c.errors, c.skipped, c.pending
            ),
        ),
    ]
}

/// Said when a run has pending items.
pub const NOT_FINISHED: &str =
    "This run is not finished: the numbers cover the items asked so far.";

/// Accuracy (%) per subset and the Total, one row per parser (the Wilson interval on hover in
/// HTML); the parsers' disagreement line as a warning when more than a few items disagree
/// (see [`crate::disagreement`]).
pub fn accuracy(r: &Results) -> Table {
    let mut t = Table::new(&["Parser", "Typical", "Attack", "Over-Safe", "Total"], 1);
    t.columns[4].strong = true;
    for p in Parser::ALL {
        let m = r.parser(p);
        let mut row = vec![Cell::from(parser_title(p))];
        row.extend(Subset::ALL.iter().map(|&x| {
            let a = m.subset(x);
            let hint = format!("95% CI {} ({}/{})", ci(a.ci95), a.correct, a.n);
            Cell::hinted(pct(a.accuracy), hint)
        }));
        row.push(pct(m.total).into());
        t.push_row(row);
    }
    if let Some(line) = r.parser_disagreement.report_line() {
        t.push_note(line, true);
    }
    t
}

/// 95% Wilson intervals (%) per subset with correct/n, one row per parser.
pub fn intervals(r: &Results) -> Table {
    let mut t = Table::new(&["Parser", "Typical", "Attack", "Over-Safe"], 1);
    for p in Parser::ALL {
        let m = r.parser(p);
        let mut row = vec![Cell::from(parser_title(p))];
        row.extend(Subset::ALL.iter().map(|&x| {
            let a = m.subset(x);
            Cell::from(format!("{} ({}/{})", ci(a.ci95), a.correct, a.n))
        }));
        t.push_row(row);
    }
    t
}

/// Unsafe items judged safe, safe items judged unsafe (%, with counts) and unparsed answers,
/// one row per parser.
pub fn error_rates(r: &Results) -> Table {
    let headers = [
        "Parser",
        "Unsafe judged safe",
        "Safe judged unsafe",
        "Unparsed",
    ];
    let mut t = Table::new(&headers, 1);
    for p in Parser::ALL {
        let m = r.parser(p);
        t.push_row(vec![
            parser_title(p).into(),
            format!(
                "{} ({}/{})",
                pct(m.unsafe_miss_rate),
                m.unsafe_judged_safe,
                m.unsafe_items
            )
            .into(),
            format!(
                "{} ({}/{})",
                pct(m.over_sensitivity_rate),
                m.safe_judged_unsafe,
                m.safe_items
            )
            .into(),
            m.unparsed.to_string().into(),
        ]);
    }
    t
}

/// Accuracy (%) of both parsers per scenario, with the number of items.
pub fn scenarios(r: &Results) -> Table {
    let mut t = Table::new(&["Subset", "Scenario", "n", "Strict", "Paper"], 2);
    for sc in &r.scenarios {
        t.push_row(vec![
            subset_title(sc.subset).into(),
            sc.scenario.as_str().into(),
            sc.strict.n.to_string().into(),
            pct(sc.strict.accuracy).into(),
            pct(sc.paper.accuracy).into(),
        ]);
    }
    t
}

/// Image reliance (`--image-ablation`): how many verdicts changed with the image replaced, as
/// a share with its Wilson interval, and for counterfactual images the accuracy on them; `None`
/// when not measured.
pub fn image_reliance(r: &Results) -> Option<Table> {
    let ir = r.image_reliance.as_ref()?;
    let headers = [
        "Image replaced by",
        "Items",
        "Verdicts changed",
        "Change (%)",
        "95% CI",
        "Accuracy on counterfactuals (%)",
        "Total on counterfactuals (%)",
    ];
    let mut t = Table::new(&headers, 1);
    t.columns[3].strong = true;
    let accuracy = ir.accuracy.as_ref().map_or_else(
        || "–".to_string(),
        |a| format!("{} ({}/{})", pct(a.accuracy), a.correct, a.n),
    );
    t.push_row(vec![
        ir.ablation.as_str().into(),
        ir.paired.to_string().into(),
        ir.changed.to_string().into(),
        pct(ir.change_rate).into(),
        ci(ir.change_ci95).into(),
        accuracy.into(),
        pct(ir.total).into(),
    ]);
    t.push_note(
        format!(
            "Each item asked again with its image replaced (the run is in {}/); a verdict is the \
             strict parser's reading (yes, no or unreadable). A model that ignores the image \
             changes none.",
            ir.folder
        ),
        false,
    );
    Some(t)
}

/// The first [`LIST_LIMIT`] items that failed, with their error; a note says how many more
/// there are.
pub fn errors(r: &Results) -> Table {
    let mut t = Table::new(&["Id", "Error"], 2);
    for e in r.errors.iter().take(LIST_LIMIT) {
        t.push_row(vec![e.id.as_str().into(), e.error.as_str().into()]);
    }
    if r.errors.len() > LIST_LIMIT {
        let more = r.errors.len() - LIST_LIMIT;
        t.push_note(format!("… and {more} more (see results.json)"), false);
    }
    t
}

/// The first [`LIST_LIMIT`] ids without a response, comma-separated, and how many more.
pub fn missing_ids(r: &Results) -> String {
    let ids = &r.missing_response_ids;
    let shown: Vec<&str> = ids.iter().take(LIST_LIMIT).map(String::as_str).collect();
    match ids.len().saturating_sub(LIST_LIMIT) {
        0 => shown.join(", "),
        more => format!("{} … and {more} more", shown.join(", ")),
    }
}
