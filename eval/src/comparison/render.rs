//! comparison.md and comparison.html: per benchmark, the arms side by side, their intervals, the
//! McNemar tests and accuracy per scenario; the skipped arms; the quoted reference rows. The
//! HTML page is self-contained (inline CSS and SVG charts, nothing fetched).

use std::fmt::Write;

use super::{tables, ArmRun, References, Skipped};
use crate::report::html::STYLE;
use crate::report::svg::{escape, horizontal_bars, Group, Series};
use crate::report::table::Table;

/// What one comparison page shows.
pub struct Page<'a> {
    pub title: &'a str,
    pub arms: &'a [ArmRun],
    pub skipped: &'a [Skipped],
    pub references: Option<&'a References>,
}

/// One section of the page: a heading, an optional paragraph and a table.
struct Section {
    heading: String,
    text: Option<String>,
    table: Table,
}

const ARMS_TEXT: &str = "Accuracy (%) with the strict parser; Total is the unweighted mean of \
the subset accuracies and Unsafe the mean of Typical and Attack (the paper's Table 3). Δ Total and \
p compare each arm with its baseline arm: p is the exact two-sided McNemar test on the items both \
scored. Image reliance is the share of verdicts that change when each item is asked again with \
its image replaced (a model that ignores the image changes none); counterfactual accuracy is the \
accuracy on the counterfactual images, whose gold verdicts are flipped.";

const INTERVALS_TEXT: &str = "95% intervals (%): Wilson score intervals for the subset \
accuracies and the image-reliance change rate; for Unsafe and Total (means of independent subset \
accuracies) the normal approximation with Agresti–Coull variances, \
mean ± 1.96·√(Σ p̃(1−p̃)/(n+1.96²))/k.";

/// The benchmarks in the order their first arm appears.
fn benchmarks(arms: &[ArmRun]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for a in arms {
        if !names.contains(&a.benchmark.as_str()) {
            names.push(&a.benchmark);
        }
    }
    names
}

fn sections(page: &Page<'_>) -> Vec<Section> {
    let mut out = Vec::new();
    for bench in benchmarks(page.arms) {
        let arms: Vec<&ArmRun> = page.arms.iter().filter(|a| a.benchmark == bench).collect();
        out.push(Section {
            heading: format!("{bench}: arms side by side"),
            text: Some(ARMS_TEXT.to_string()),
            table: tables::arms(&arms, page.arms),
        });
        out.push(Section {
            heading: format!("{bench}: 95% intervals"),
            text: Some(INTERVALS_TEXT.to_string()),
            table: tables::intervals(&arms),
        });
        let tests = tables::mcnemar(&arms, page.arms);
        if !tests.rows.is_empty() {
            out.push(Section {
                heading: format!("{bench}: McNemar tests against the baselines"),
                text: None,
                table: tests,
            });
        }
        if let Some(table) = tables::scenarios(&arms) {
            out.push(Section {
                heading: format!("{bench}: accuracy per scenario (%, strict)"),
                text: None,
                table,
            });
        }
    }
    if let Some(refs) = page.references {
        out.push(Section {
            heading: "Reference rows (quoted, not measured)".into(),
            text: None,
            table: tables::references(refs),
        });
    }
    out
}

/// The arms, one line each.
fn arm_lines(page: &Page<'_>) -> Vec<String> {
    let mut seen = Vec::new();
    let mut lines = Vec::new();
    for a in page.arms {
        if !seen.contains(&a.name) {
            seen.push(a.name.clone());
            lines.push(format!("{}: {}", a.name, a.description));
        }
    }
    lines.extend(
        page.skipped
            .iter()
            .map(|s| format!("{}: not evaluated — {}", s.name, s.reason)),
    );
    lines.extend(page.arms.iter().filter_map(|a| {
        let why = a.failed.as_deref()?;
        Some(format!("{} on {}: FAILED — {why}", a.name, a.benchmark))
    }));
    lines
}

/// comparison.md.
pub fn markdown(page: &Page<'_>) -> String {
    let mut s = format!("# {}\n\n", page.title);
    for line in arm_lines(page) {
        let _ = writeln!(s, "- {line}");
    }
    for sec in sections(page) {
        let _ = writeln!(s, "\n## {}\n", sec.heading);
        if let Some(text) = &sec.text {
            let _ = writeln!(s, "{text}\n");
        }
        s.push_str(&sec.table.to_markdown());
    }
    s
}

/// comparison.html.
pub fn html(page: &Page<'_>) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n<h1>{}</h1><ul class=\"meta\">\n",
        escape(page.title),
        escape(page.title)
    );
    for line in arm_lines(page) {
        let _ = writeln!(s, "<li>{}</li>", escape(&line));
    }
    s.push_str("</ul>\n");
    for bench in benchmarks(page.arms) {
        let arms: Vec<&ArmRun> = page.arms.iter().filter(|a| a.benchmark == bench).collect();
        s.push_str(&charts(bench, &arms));
    }
    for sec in sections(page) {
        let _ = writeln!(s, "<h2>{}</h2>", escape(&sec.heading));
        if let Some(text) = &sec.text {
            let _ = writeln!(s, "<p class=\"note\">{}</p>", escape(text));
        }
        s.push_str(&sec.table.to_html());
    }
    s.push_str("</body></html>\n");
    s
}

const ACCURACY_SERIES: [Series<'static>; 4] = [
    Series {
        name: "Typical",
        color: "#3b6fb6",
    },
    Series {
        name: "Attack",
        color: "#7a4fb0",
    },
    Series {
        name: "Over-Safe",
        color: "#e08a2c",
    },
    Series {
        name: "Total",
        color: "#2e8b57",
    },
];

const RELIANCE_SERIES: [Series<'static>; 2] = [
    Series {
        name: "verdicts changed",
        color: "#b03a48",
    },
    Series {
        name: "counterfactual accuracy",
        color: "#5b6470",
    },
];

/// Bar charts of one benchmark: accuracy per arm (the paper's three subsets and Total; Unsafe
/// is in the tables), and image reliance where measured.
fn charts(bench: &str, arms: &[&ArmRun]) -> String {
    let rows: Vec<Group> = arms
        .iter()
        .map(|a| {
            let m = &a.run.results.strict;
            Group {
                label: a.name.clone(),
                values: vec![
                    m.typical.accuracy,
                    m.attack.accuracy,
                    m.over_safety.accuracy,
                    m.total,
                ],
                intervals: vec![None; 4],
            }
        })
        .collect();
    let mut s = format!("<h2>{}: accuracy per arm</h2>\n", escape(bench));
    s.push_str(&horizontal_bars(
        &format!("{bench}: accuracy per arm"),
        &rows,
        &ACCURACY_SERIES,
    ));
    let measured: Vec<Group> = arms
        .iter()
        .filter_map(|a| {
            let ir = a.run.results.image_reliance.as_ref()?;
            Some(Group {
                label: a.name.clone(),
                values: vec![ir.change_rate, ir.accuracy.and_then(|x| x.accuracy)],
                intervals: vec![None; 2],
            })
        })
        .collect();
    if !measured.is_empty() {
        let _ = writeln!(s, "\n<h2>{}: image reliance</h2>", escape(bench));
        s.push_str(&horizontal_bars(
            &format!("{bench}: image reliance"),
            &measured,
            &RELIANCE_SERIES,
        ));
    }
    s.push('\n');
    s
}
