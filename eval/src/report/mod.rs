//! Human-readable reports of a run: the tables ([`tables`], one [`table::Table`] model) rendered
//! as `report.md` ([`markdown`]), as a self-contained `report.html` with inline SVG bar charts
//! ([`html`], [`svg`]) and as the terminal [`summary`].

pub mod html;
pub mod markdown;
pub mod svg;
pub mod table;
pub mod tables;

use std::fmt::Write;
use std::path::Path;

use safeaware_common::fsio::write_atomic;
use safeaware_data::benchmark::Subset;

use crate::decoding::DecodingMode;
use crate::results::Results;
use crate::source::responses::RESPONSES_KIND;
use crate::verdict::Parser;
use crate::EvalError;

/// File names inside the output folder.
pub const REPORT_MD: &str = "report.md";
pub const REPORT_HTML: &str = "report.html";

/// How many ids the reports list for missing responses and errors.
pub const LIST_LIMIT: usize = 50;

/// Writes report.md and report.html into `out`, atomically.
pub fn write_reports(out: &Path, results: &Results) -> Result<(), EvalError> {
    for (name, text) in [
        (REPORT_MD, markdown::render(results)),
        (REPORT_HTML, html::render(results)),
    ] {
        let path = out.join(name);
        write_atomic(&path, text.as_bytes()).map_err(EvalError::io(&path))?;
    }
    Ok(())
}

/// What the terminal shows after a run: the item counts (and where responses came from), the
/// accuracy table and the parsers' disagreement line — the report's own table, in Markdown as
/// lm-evaluation-harness prints its results.
pub fn summary(r: &Results) -> String {
    let c = &r.counts;
    let mut s = format!(
        "{} items: {} scored, {} missing a response, {} errors\n",
        c.items, c.scored, c.missing_response, c.errors
    );
    for (name, n) in c.source.iter().filter(|(_, n)| **n > 0) {
        let _ = writeln!(s, "  {name}: {n}");
    }
    s.push_str(&markdown::accuracy_summary(r));
    if let Some(table) = tables::image_reliance(r) {
        s.push_str("\nImage reliance:\n\n");
        s.push_str(&table.to_markdown());
    }
    s
}

/// A fraction as a percentage with one decimal, or `–` when there is none.
pub fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{:.1}", 100.0 * v))
}

/// A Wilson interval as `lo–hi` in percent.
pub fn ci(value: Option<[f64; 2]>) -> String {
    value.map_or_else(
        || "–".to_string(),
        |[lo, hi]| format!("{:.1}–{:.1}", 100.0 * lo, 100.0 * hi),
    )
}

/// A parser's row label.
pub fn parser_title(parser: Parser) -> &'static str {
    match parser {
        Parser::Strict => "strict",
        Parser::Paper => "paper (authors' rule)",
    }
}

/// The paper's column name of a subset.
pub fn subset_title(subset: Subset) -> &'static str {
    match subset {
        Subset::Typical => "Typical",
        Subset::Attack => "Attack",
        Subset::OverSafety => "Over-Safe",
    }
}

/// One line describing the decoding settings (none apply to recorded responses).
pub fn decoding_summary(results: &Results) -> String {
    if results.source.kind == RESPONSES_KIND {
        return "none (recorded responses)".to_string();
    }
    let d = &results.decoding;
    let seed = d.seed.map_or_else(String::new, |s| format!(", seed {s}"));
    let rest = match d.mode {
        DecodingMode::Greedy => String::new(),
        DecodingMode::Sample => format!(", temperature {}, top-p {}", d.temperature, d.top_p),
        DecodingMode::Vcd => {
            format!(
                ", α {}, β {}, noise step {}",
                d.vcd.alpha, d.vcd.beta, d.vcd.noise_step
            )
        }
    };
    format!(
        "{}{rest}{seed}, at most {} new tokens",
        d.mode, d.max_tokens
    )
}

/// One line naming the source, e.g. `endpoint gpt-4o (http://…)`.
pub fn source_summary(results: &Results) -> String {
    let s = &results.source;
    let place = s
        .details
        .get("url")
        .or_else(|| s.details.get("path"))
        .and_then(|v| v.as_str())
        .map_or_else(String::new, |p| format!(" ({p})"));
    format!("{} {}{place}", s.kind, s.name)
}
