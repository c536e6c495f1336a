//! `report.html`: one self-contained page (inline CSS and SVG, nothing fetched) with the
//! tables of [`super::tables`] (the same as report.md's, the intervals on hover and as
//! whiskers) and bar charts of subset and per-scenario accuracy.

use std::fmt::Write;

use safeaware_data::benchmark::Subset;

use super::subset_title;
use super::svg::{escape, grouped_bars, horizontal_bars, Group, Series};
use super::tables::{self, NOT_FINISHED};
use crate::results::Results;
use crate::verdict::Parser;

/// Bar colours of the strict and paper parsers.
pub const SERIES: [Series<'static>; 2] = [
    Series {
        name: "strict",
        color: "#3b6fb6",
    },
    Series {
        name: "paper (authors' rule)",
        color: "#e08a2c",
    },
];

/// The stylesheet of the HTML pages (report.html and comparison.html).
pub const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
margin:2rem auto;max-width:1000px;padding:0 1rem;color:#1d232b}\
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde2e8}\
table{border-collapse:collapse;margin:.6rem 0}th,td{padding:.3rem .7rem;border-bottom:1px solid \
#e6e9ee;text-align:right}td.l,th.l{text-align:left}th{background:#f3f5f8}\
ul.meta{list-style:none;padding:0}ul.meta li{margin:.15rem 0}.note{color:#5b6470;font-size:.9rem}\
svg{display:block;margin:.6rem 0}svg .grid{stroke:#e3e6ea;stroke-width:1}svg .ax{font-size:11px;\
fill:#5b6470}svg .lab{font-size:12px;fill:#1d232b}svg .val{font-size:10px;fill:#1d232b}\
svg .lg{font-size:12px;fill:#1d232b}svg .ci{stroke:#1d232b;stroke-width:1.2;fill:none}\
.warn{color:#a33}";

/// Renders the whole page.
pub fn render(r: &Results) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>MMSafeAware evaluation — {}</title><style>{STYLE}</style></head><body>\n",
        escape(&r.source.name)
    );
    let _ = writeln!(s, "<h1>MMSafeAware evaluation</h1><ul class=\"meta\">");
    for (label, value) in tables::run_facts(r) {
        let _ = writeln!(s, "<li><b>{label}:</b> {}</li>", escape(&value));
    }
    s.push_str("</ul>\n");
    if r.counts.pending > 0 {
        let _ = writeln!(s, "<p class=\"warn\">{NOT_FINISHED}</p>");
    }

    s.push_str("<h2>Accuracy (%)</h2>\n");
    s.push_str(&tables::accuracy(r).to_html());
    s.push_str("<p class=\"note\">Total is the unweighted mean of the subset accuracies (a subset without scored items is left out); whiskers are 95% Wilson intervals.</p>\n");
    s.push_str(&grouped_bars(
        "Accuracy per subset",
        &subset_groups(r),
        &SERIES,
    ));

    s.push_str("\n<h2>Error rates (%)</h2>\n");
    s.push_str(&tables::error_rates(r).to_html());

    if let Some(table) = tables::image_reliance(r) {
        s.push_str("<h2>Image reliance</h2>\n");
        s.push_str(&table.to_html());
    }
    if !r.scenarios.is_empty() {
        s.push_str("<h2>Accuracy per scenario (%)</h2>\n");
        s.push_str(&tables::scenarios(r).to_html());
        s.push_str(&horizontal_bars(
            "Accuracy per scenario",
            &scenario_groups(r),
            &SERIES,
        ));
    }
    if !r.missing_response_ids.is_empty() {
        let _ = writeln!(
            s,
            "<h2>Items without a response ({})</h2><p>{}</p>",
            r.missing_response_ids.len(),
            escape(&tables::missing_ids(r))
        );
    }
    if !r.errors.is_empty() {
        let _ = writeln!(s, "<h2>Errors ({})</h2>", r.errors.len());
        s.push_str(&tables::errors(r).to_html());
    }
    s.push_str("</body></html>\n");
    s
}

/// One group of bars per subset (with interval whiskers) and one for the Total.
fn subset_groups(r: &Results) -> Vec<Group> {
    Subset::ALL
        .iter()
        .map(|&x| Group {
            label: subset_title(x).to_string(),
            values: Parser::ALL
                .iter()
                .map(|&p| r.parser(p).subset(x).accuracy)
                .collect(),
            intervals: Parser::ALL
                .iter()
                .map(|&p| r.parser(p).subset(x).ci95)
                .collect(),
        })
        .chain(std::iter::once(Group {
            label: "Total".into(),
            values: Parser::ALL.iter().map(|&p| r.parser(p).total).collect(),
            intervals: vec![None, None],
        }))
        .collect()
}

/// One group of bars per scenario.
fn scenario_groups(r: &Results) -> Vec<Group> {
    r.scenarios
        .iter()
        .map(|sc| Group {
            label: format!("{} · {}", subset_title(sc.subset), sc.scenario),
            values: Parser::ALL.iter().map(|&p| sc.get(p).accuracy).collect(),
            intervals: vec![None, None],
        })
        .collect()
}
