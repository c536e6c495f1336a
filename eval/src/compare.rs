//! `safeaware eval compare`: several runs side by side, with deltas against the first run and a
//! paired McNemar test on the items both runs scored.
//!
//! The McNemar test used is the exact one: a two-sided binomial test of the discordant pairs
//! (`b` = only the first run correct, `c` = only the other run correct) against p = ½, so
//! `p = min(1, 2·P[X ≤ min(b, c)])` with `X ~ Bin(b + c, ½)`. It is valid for small and large
//! discordant counts alike (no continuity correction needed).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use safeaware_data::benchmark::{BenchmarkSpec, Subset};
use safeaware_data::fileio::normalise;

use crate::report::table::Table;
use crate::report::{decoding_summary, parser_title, pct, source_summary};
use crate::results::Results;
use crate::runner::SAMPLES_FILE;
use crate::samples::{read_samples, SampleRecord, Status};
use crate::verdict::Parser;
use crate::EvalError;

/// One run: its results and its scored samples by id.
#[derive(Debug, Clone)]
pub struct Run {
    /// A short name: the output folder's name.
    pub label: String,
    pub path: PathBuf,
    pub results: Results,
    /// Scored records by id (from samples.jsonl next to results.json; empty if absent).
    pub samples: BTreeMap<String, SampleRecord>,
}

impl Run {
    /// Reads `results.json` and the `samples.jsonl` beside it.
    pub fn load(results_path: &Path) -> Result<Run, EvalError> {
        let results = Results::read(results_path)?;
        let dir = results_path.parent().unwrap_or(Path::new("."));
        let (records, _) = read_samples(&dir.join(SAMPLES_FILE))?;
        let samples = records
            .into_iter()
            .filter(|r| r.status == Status::Scored)
            .map(|r| (r.id.clone(), r))
            .collect();
        let label = std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| results_path.display().to_string());
        Ok(Run {
            label,
            path: results_path.to_path_buf(),
            results,
            samples,
        })
    }
}

/// Refuses runs that cannot be compared: every run must be of the first run's benchmark (by
/// the spec recorded in results.json, unless `allow_different`) and share scored items with
/// it (runs of different benchmarks may share ids by chance, and their deltas would mean
/// nothing).
pub fn check_comparable(runs: &[Run], allow_different: bool) -> Result<(), EvalError> {
    let Some((first, rest)) = runs.split_first() else {
        return Ok(());
    };
    for run in rest {
        let (a, b) = (&first.results.benchmark.spec, &run.results.benchmark.spec);
        if !allow_different && !same_benchmark(a, b) {
            return Err(EvalError::Config(format!(
                "{} and {} are runs of different benchmarks ({a} and {b}); pass \
                 --allow-different to pair their items by id anyway",
                first.path.display(),
                run.path.display(),
            )));
        }
        if !run.samples.keys().any(|id| first.samples.contains_key(id)) {
            return Err(EvalError::Config(format!(
                "{} and {} share no scored item (benchmarks {a} and {b}): nothing to compare",
                first.path.display(),
                run.path.display(),
            )));
        }
    }
    Ok(())
}

/// Whether two benchmark specs name the same benchmark: the same kind (`mmsafeaware:`,
/// `jsonl:`, or what a bare path is) and the same path, `./`, `a/..` and trailing slashes aside.
/// A spec that no longer parses (a bare path since removed) is compared as written.
fn same_benchmark(a: &str, b: &str) -> bool {
    let key = |spec: &str| -> (u8, PathBuf) {
        match BenchmarkSpec::parse(spec.trim()) {
            Ok(BenchmarkSpec::MmSafeAware(dir)) => (1, normalise(&dir)),
            Ok(BenchmarkSpec::Jsonl(file)) => (2, normalise(&file)),
            Err(_) => (0, PathBuf::from(spec.trim())),
        }
    };
    key(a) == key(b)
}

/// The outcome of a paired McNemar test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct McNemar {
    /// Items scored in both runs.
    pub shared: usize,
    /// Only the first run correct.
    pub only_first: usize,
    /// Only the second run correct.
    pub only_second: usize,
    /// Exact two-sided p-value.
    pub p_value: f64,
}

/// Exact two-sided McNemar p-value for discordant counts `b` and `c`.
pub fn mcnemar_exact_p(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // ln C(n, i) built up term by term; each term is C(n, i) / 2^n.
    let ln2n = n as f64 * std::f64::consts::LN_2;
    let mut ln_choose = 0.0;
    let mut tail = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose - ln2n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Pairs the scored items of `first` and `second` under `parser`.
pub fn mcnemar(first: &Run, second: &Run, parser: Parser) -> McNemar {
    let (mut shared, mut only_first, mut only_second) = (0, 0, 0);
    for (id, a) in &first.samples {
        let Some(b) = second.samples.get(id) else {
            continue;
        };
        let (Some(x), Some(y)) = (a.is_correct(parser), b.is_correct(parser)) else {
            continue;
        };
        shared += 1;
        only_first += usize::from(x && !y);
        only_second += usize::from(!x && y);
    }
    McNemar {
        shared,
        only_first,
        only_second,
        p_value: mcnemar_exact_p(only_first, only_second),
    }
}

fn with_delta(value: Option<f64>, base: Option<f64>, first: bool) -> String {
    match (value, base, first) {
        (Some(v), Some(b), false) => format!("{} ({:+.1})", pct(Some(v)), 100.0 * (v - b)),
        _ => pct(value),
    }
}

/// The comparison as Markdown: a table per parser and the McNemar tests against the first run.
pub fn render(runs: &[Run]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Comparison of {} runs\n", runs.len());
    for (i, run) in runs.iter().enumerate() {
        let r = &run.results;
        let _ = writeln!(
            s,
            "{}. **{}** — {}; prompt {}; decoding {}; {} scored (`{}`)",
            i + 1,
            run.label,
            source_summary(r),
            r.prompt.strategy,
            decoding_summary(r),
            r.counts.scored,
            run.path.display()
        );
        if let Some(line) = r.parser_disagreement.report_line() {
            let _ = writeln!(s, "   {line}");
        }
    }
    let Some(base) = runs.first() else { return s };
    for parser in Parser::ALL {
        let _ = writeln!(
            s,
            "\n## Accuracy (%), {} — deltas against run 1\n",
            parser_title(parser)
        );
        s.push_str(&accuracy_deltas(runs, base, parser).to_markdown());
    }
    if runs.len() > 1 {
        let _ = writeln!(
            s,
            "\n## Paired McNemar tests against run 1\n\nExact test: two-sided binomial test \
             of the discordant pairs against ½, on the items both runs scored.\n"
        );
        s.push_str(&mcnemar_table(runs, base).to_markdown());
    }
    s
}

/// Accuracy of every run under `parser`, with its difference to `base` in points.
fn accuracy_deltas(runs: &[Run], base: &Run, parser: Parser) -> Table {
    let mut t = Table::new(&["Run", "Typical", "Attack", "Over-Safe", "Total"], 1);
    let b = base.results.parser(parser);
    for (i, run) in runs.iter().enumerate() {
        let m = run.results.parser(parser);
        let mut row = vec![format!("{}. {}", i + 1, run.label).into()];
        row.extend(
            Subset::ALL
                .iter()
                .map(|&x| with_delta(m.subset(x).accuracy, b.subset(x).accuracy, i == 0).into()),
        );
        row.push(with_delta(m.total, b.total, i == 0).into());
        t.push_row(row);
    }
    t
}

/// The paired McNemar test of every later run against `base`, per parser.
fn mcnemar_table(runs: &[Run], base: &Run) -> Table {
    let headers = [
        "Run",
        "Parser",
        "Shared items",
        "Only run 1 correct",
        "Only this run correct",
        "p-value",
    ];
    let mut t = Table::new(&headers, 2);
    for (i, run) in runs.iter().enumerate().skip(1) {
        for parser in Parser::ALL {
            let m = mcnemar(base, run, parser);
            t.push_row(vec![
                format!("{}. {}", i + 1, run.label).into(),
                parser.as_str().into(),
                m.shared.to_string().into(),
                m.only_first.to_string().into(),
                m.only_second.to_string().into(),
                format_p(m.p_value).into(),
            ]);
        }
    }
    t
}

/// A p-value as the reports print it: four decimals, or scientific below 10⁻⁴.
pub fn format_p(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(n: u64, k: u64) -> f64 {
        (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
    }

    #[test]
    fn exact_p_matches_the_binomial_sum() {
        // b=1, c=6: 2·(C(7,0)+C(7,1))/2^7 = 16/128.
        assert!((mcnemar_exact_p(1, 6) - 0.125).abs() < 1e-12);
        assert!((mcnemar_exact_p(6, 1) - 0.125).abs() < 1e-12);
        assert_eq!(mcnemar_exact_p(0, 0), 1.0);
        assert_eq!(mcnemar_exact_p(5, 5), 1.0);
        for (b, c) in [(3usize, 17usize), (20, 45), (0, 9)] {
            let n = (b + c) as u64;
            let tail: f64 =
                (0..=b.min(c) as u64).map(|i| choose(n, i)).sum::<f64>() / 2f64.powi(n as i32);
            let want = (2.0 * tail).min(1.0);
            let got = mcnemar_exact_p(b, c);
            assert!(
                ((got - want) / want).abs() < 1e-9,
                "{b},{c}: {got} vs {want}"
            );
        }
        // Large counts stay finite and tiny.
        let p = mcnemar_exact_p(100, 400);
        assert!(p > 0.0 && p < 1e-30);
    }

    #[test]
    fn benchmarks_are_the_same_by_kind_and_path_however_written() {
        assert!(same_benchmark(
            "jsonl:world/b.jsonl",
            "jsonl:./world/b.jsonl"
        ));
        assert!(same_benchmark("mmsafeaware:data/", "mmsafeaware:data/x/.."));
        assert!(!same_benchmark(
            "jsonl:world/b.jsonl",
            "jsonl:world/copy.jsonl"
        ));
        assert!(!same_benchmark("jsonl:data", "mmsafeaware:data"));
        // A bare path that no longer exists is compared as written.
        assert!(same_benchmark("gone/b.jsonl", "gone/b.jsonl"));
        assert!(!same_benchmark("gone/b.jsonl", "gone/c.jsonl"));
    }
}
