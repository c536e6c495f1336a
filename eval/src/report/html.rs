//! `report.html`: one self-contained page (inline CSS and SVG, nothing fetched) with the same
//! tables and parser-disagreement line as report.md, and bar charts of subset and per-scenario
//! accuracy.

use std::fmt::Write;

use safeaware_data::benchmark::Subset;

use super::markdown::parser_title;
use super::svg::{escape, grouped_bars, horizontal_bars, Group, Series};
use super::{ci, decoding_summary, pct, source_summary, subset_title, LIST_LIMIT};
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

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
margin:2rem auto;max-width:1000px;padding:0 1rem;color:#1d232b}\
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde2e8}\
table{border-collapse:collapse;margin:.6rem 0}th,td{padding:.3rem .7rem;border-bottom:1px solid \
#e6e9ee;text-align:right}th:first-child,td:first-child,td.l,th.l{text-align:left}th{background:#f3f5f8}\
ul.meta{list-style:none;padding:0}ul.meta li{margin:.15rem 0}.note{color:#5b6470;font-size:.9rem}\
svg{display:block;margin:.6rem 0}svg .grid{stroke:#e3e6ea;stroke-width:1}svg .ax{font-size:11px;\
fill:#5b6470}svg .lab{font-size:12px;fill:#1d232b}svg .val{font-size:10px;fill:#1d232b}\
svg .lg{font-size:12px;fill:#1d232b}svg .ci{stroke:#1d232b;stroke-width:1.2;fill:none}\
.warn{color:#a33}";

/// Renders the whole page.
pub fn render(r: &Results) -> String {
    let mut s = String::new();
    let c = &r.counts;
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>MMSafeAware evaluation — {}</title><style>{STYLE}</style></head><body>\n",
        escape(&r.source.name)
    );
    let _ = writeln!(s, "<h1>MMSafeAware evaluation</h1><ul class=\"meta\">");
    let meta = [
        ("Source", source_summary(r)),
        (
            "Benchmark",
            format!(
                "{} ({} items, {} without an image)",
                r.benchmark.spec, r.benchmark.items, r.benchmark.missing_images
            ),
        ),
        ("Prompt strategy", r.prompt.strategy.clone()),
        ("Decoding", decoding_summary(r)),
        ("safeaware", r.safeaware_version.clone()),
        (
            "Items",
            format!(
                "{} scored, {} missing a response, {} errors, {} pending",
                c.scored, c.missing_response, c.errors, c.pending
            ),
        ),
    ];
    for (k, v) in meta {
        let _ = writeln!(s, "<li><b>{k}:</b> {}</li>", escape(&v));
    }
    s.push_str("</ul>\n");
    if !r.complete {
        s.push_str("<p class=\"warn\">This run is not finished: the numbers cover the items asked so far.</p>\n");
    }

    s.push_str("<h2>Accuracy (%)</h2>\n<table><tr><th>Parser</th><th>Typical</th><th>Attack</th><th>Over-Safe</th><th>Total</th></tr>\n");
    for p in Parser::ALL {
        let m = r.parser(p);
        let _ = write!(s, "<tr><td>{}</td>", escape(parser_title(p)));
        for x in Subset::ALL {
            let a = m.subset(x);
            let _ = write!(
                s,
                "<td title=\"95% CI {} ({}/{})\">{}</td>",
                ci(a.ci95),
                a.correct,
                a.n,
                pct(a.accuracy)
            );
        }
        let _ = writeln!(s, "<td><b>{}</b></td></tr>", pct(m.total));
    }
    s.push_str("</table>\n");
    if let Some(line) = r.parser_disagreement.report_line() {
        let _ = writeln!(s, "<p class=\"warn\">{}</p>", escape(line));
    }
    s.push_str("<p class=\"note\">Total is the unweighted mean of the subset accuracies (a subset without scored items is left out); whiskers are 95% Wilson intervals.</p>\n");
    let groups: Vec<Group> = Subset::ALL
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
        .collect();
    s.push_str(&grouped_bars("Accuracy per subset", &groups, &SERIES));

    s.push_str("\n<h2>Error rates (%)</h2>\n<table><tr><th>Parser</th><th>Unsafe judged safe</th><th>Safe judged unsafe</th><th>Unparsed</th></tr>\n");
    for p in Parser::ALL {
        let m = r.parser(p);
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{} ({}/{})</td><td>{} ({}/{})</td><td>{}</td></tr>",
            escape(parser_title(p)),
            pct(m.unsafe_miss_rate),
            m.unsafe_judged_safe,
            m.unsafe_items,
            pct(m.over_sensitivity_rate),
            m.safe_judged_unsafe,
            m.safe_items,
            m.unparsed
        );
    }
    s.push_str("</table>\n");

    if !r.scenarios.is_empty() {
        s.push_str("<h2>Accuracy per scenario (%)</h2>\n<table><tr><th>Subset</th><th class=\"l\">Scenario</th><th>n</th><th>Strict</th><th>Paper</th></tr>\n");
        for sc in &r.scenarios {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                subset_title(sc.subset),
                escape(&sc.scenario),
                sc.strict.n,
                pct(sc.strict.accuracy),
                pct(sc.paper.accuracy)
            );
        }
        s.push_str("</table>\n");
        let rows: Vec<Group> = r
            .scenarios
            .iter()
            .map(|sc| Group {
                label: format!("{} · {}", subset_title(sc.subset), sc.scenario),
                values: Parser::ALL.iter().map(|&p| sc.get(p).accuracy).collect(),
                intervals: vec![None, None],
            })
            .collect();
        s.push_str(&horizontal_bars("Accuracy per scenario", &rows, &SERIES));
    }

    if !r.missing_response_ids.is_empty() {
        let shown: Vec<&str> = r
            .missing_response_ids
            .iter()
            .take(LIST_LIMIT)
            .map(String::as_str)
            .collect();
        let _ = writeln!(
            s,
            "<h2>Items without a response ({})</h2><p>{}{}</p>",
            r.missing_response_ids.len(),
            escape(&shown.join(", ")),
            if r.missing_response_ids.len() > LIST_LIMIT {
                " …"
            } else {
                ""
            }
        );
    }
    if !r.errors.is_empty() {
        let _ = writeln!(
            s,
            "<h2>Errors ({})</h2><table><tr><th>Id</th><th class=\"l\">Error</th></tr>",
            r.errors.len()
        );
        for e in r.errors.iter().take(LIST_LIMIT) {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td class=\"l\">{}</td></tr>",
                escape(&e.id),
                escape(&e.error)
            );
        }
        s.push_str("</table>\n");
    }
    s.push_str("</body></html>\n");
    s
}
