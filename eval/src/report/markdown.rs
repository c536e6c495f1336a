//! `report.md`: the paper-style accuracy table (Typical / Attack / Over-Safe / Total, in %) for
//! both parsers, the line on where they disagree (when more than a few items do), intervals,
//! error rates, the per-scenario table, and missing/failed ids.

use std::fmt::Write;

use safeaware_data::benchmark::Subset;

use super::{ci, decoding_summary, pct, source_summary, subset_title, LIST_LIMIT};
use crate::results::Results;
use crate::verdict::Parser;

/// The parser's row label.
pub fn parser_title(parser: Parser) -> &'static str {
    match parser {
        Parser::Strict => "strict",
        Parser::Paper => "paper (authors' rule)",
    }
}

/// The paper-style accuracy table (%), one row per parser.
pub fn accuracy_table(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| Parser | Typical | Attack | Over-Safe | Total |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for p in Parser::ALL {
        let m = r.parser(p);
        let cells: Vec<String> = Subset::ALL
            .iter()
            .map(|&x| pct(m.subset(x).accuracy))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            parser_title(p),
            cells.join(" | "),
            pct(m.total)
        );
    }
    s
}

/// [`accuracy_table`], then the parsers' disagreement line when more than a few items disagree
/// (see [`crate::disagreement`]): what the terminal and report.md show.
pub fn accuracy_summary(r: &Results) -> String {
    let mut s = accuracy_table(r);
    if let Some(line) = r.parser_disagreement.report_line() {
        let _ = writeln!(s, "\n{line}");
    }
    s
}

/// Renders the whole report.
pub fn render(r: &Results) -> String {
    let mut s = String::new();
    let c = &r.counts;
    let _ = writeln!(s, "# MMSafeAware evaluation\n");
    let _ = writeln!(s, "- Source: {}", source_summary(r));
    let _ = writeln!(
        s,
        "- Benchmark: `{}` ({} items, {} without an image)",
        r.benchmark.spec, r.benchmark.items, r.benchmark.missing_images
    );
    let _ = writeln!(s, "- Prompt strategy: {}", r.prompt.strategy);
    let _ = writeln!(s, "- Decoding: {}", decoding_summary(r));
    let _ = writeln!(s, "- safeaware {}", r.safeaware_version);
    let _ = writeln!(
        s,
        "- Items: {} scored, {} missing a response, {} errors, {} pending{}\n",
        c.scored,
        c.missing_response,
        c.errors,
        c.pending,
        if r.complete {
            ""
        } else {
            " (run not finished)"
        }
    );

    let _ = writeln!(s, "## Accuracy (%)\n");
    s.push_str(&accuracy_summary(r));
    let _ = writeln!(s, "\nTotal is the unweighted mean of the subset accuracies (a subset without scored items is left out).\n");

    let _ = writeln!(s, "95% Wilson intervals (%), with correct/n:\n");
    let _ = writeln!(s, "| Parser | Typical | Attack | Over-Safe |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    for p in Parser::ALL {
        let m = r.parser(p);
        let cells: Vec<String> = Subset::ALL
            .iter()
            .map(|&x| {
                let a = m.subset(x);
                format!("{} ({}/{})", ci(a.ci95), a.correct, a.n)
            })
            .collect();
        let _ = writeln!(s, "| {} | {} |", parser_title(p), cells.join(" | "));
    }

    let _ = writeln!(s, "\n## Error rates (%)\n");
    let _ = writeln!(
        s,
        "| Parser | Unsafe judged safe | Safe judged unsafe | Unparsed |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|");
    for p in Parser::ALL {
        let m = r.parser(p);
        let _ = writeln!(
            s,
            "| {} | {} ({}/{}) | {} ({}/{}) | {} |",
            parser_title(p),
            pct(m.unsafe_miss_rate),
            m.unsafe_judged_safe,
            m.unsafe_items,
            pct(m.over_sensitivity_rate),
            m.safe_judged_unsafe,
            m.safe_items,
            m.unparsed
        );
    }

    if !r.scenarios.is_empty() {
        let _ = writeln!(s, "\n## Accuracy per scenario (%)\n");
        let _ = writeln!(s, "| Subset | Scenario | n | Strict | Paper |");
        let _ = writeln!(s, "|---|---|---:|---:|---:|");
        for sc in &r.scenarios {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                subset_title(sc.subset),
                sc.scenario.replace('|', "\\|"),
                sc.strict.n,
                pct(sc.strict.accuracy),
                pct(sc.paper.accuracy)
            );
        }
    }

    if !r.missing_response_ids.is_empty() {
        let _ = writeln!(
            s,
            "\n## Items without a response ({})\n",
            r.missing_response_ids.len()
        );
        let shown: Vec<&str> = r
            .missing_response_ids
            .iter()
            .take(LIST_LIMIT)
            .map(String::as_str)
            .collect();
        let more = r.missing_response_ids.len().saturating_sub(LIST_LIMIT);
        let tail = if more > 0 {
            format!(" … and {more} more")
        } else {
            String::new()
        };
        let _ = writeln!(s, "{}{tail}", shown.join(", "));
    }
    if !r.errors.is_empty() {
        let _ = writeln!(s, "\n## Errors ({})\n", r.errors.len());
        for e in r.errors.iter().take(LIST_LIMIT) {
            let _ = writeln!(s, "- `{}`: {}", e.id, e.error.replace('\n', " "));
        }
        if r.errors.len() > LIST_LIMIT {
            let _ = writeln!(
                s,
                "- … and {} more (see results.json)",
                r.errors.len() - LIST_LIMIT
            );
        }
    }
    s
}
