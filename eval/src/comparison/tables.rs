//! The comparison's tables, built once and rendered as Markdown and HTML: the arms of one
//! benchmark side by side, their 95% intervals, the McNemar tests against the baselines,
//! accuracy per scenario, and the quoted reference rows.

use std::collections::BTreeSet;

use safeaware_data::benchmark::Subset;

use super::ArmRun;
use super::{against_baseline, baseline_of, mean_interval, subsets, unsafe_accuracy, untested};
use super::{Reference, References};
use crate::compare::format_p;
use crate::report::table::{Cell, Table};
use crate::report::{ci, pct, subset_title};

/// The arms of one benchmark: Typical, Attack, Over-Safe, Unsafe and Total (strict, %; the
/// interval on hover in HTML), the difference in Total to the baseline with its McNemar
/// p-value, the image reliance and the Total under the authors' rule.
pub fn arms(arms: &[&ArmRun], all: &[ArmRun]) -> Table {
    let headers = [
        "Arm",
        "Baseline",
        "Typical",
        "Attack",
        "Over-Safe",
        "Unsafe",
        "Total",
        "Δ Total",
        "p (McNemar)",
        "Image reliance (% changed)",
        "Counterfactual acc.",
        "Total, authors' rule",
    ];
    let mut t = Table::new(&headers, 2);
    t.columns[6].strong = true;
    for arm in arms {
        let r = &arm.run.results;
        let m = &r.strict;
        let name = match &arm.failed {
            Some(why) => Cell::hinted(format!("{} (FAILED)", arm.name), why.clone()),
            None => arm.name.as_str().into(),
        };
        let mut row: Vec<Cell> = vec![name, arm.baseline.as_deref().unwrap_or("–").into()];
        row.extend(subsets(m).iter().map(|a| {
            let hint = format!("95% Wilson interval {} ({}/{})", ci(a.ci95), a.correct, a.n);
            Cell::hinted(pct(a.accuracy), hint)
        }));
        row.push(pct(unsafe_accuracy(m)).into());
        row.push(pct(m.total).into());
        let test = against_baseline(arm, all);
        let delta = baseline_of(arm, all)
            .filter(|_| test.is_some())
            .and_then(|b| Some(m.total? - b.run.results.strict.total?))
            .map_or_else(|| "–".to_string(), |d| format!("{:+.1}", 100.0 * d));
        row.push(delta.into());
        let p = match (test, untested(arm, all)) {
            (Some(t), _) => format_p(t.p_value),
            (None, Some(why)) => format!("– ({why})"),
            (None, None) => "–".to_string(),
        };
        row.push(p.into());
        let ir = r.image_reliance.as_ref();
        row.push(match ir {
            Some(ir) => Cell::hinted(
                pct(ir.change_rate),
                format!(
                    "{} of {} verdicts changed with a {} image; 95% Wilson interval {}",
                    ir.changed,
                    ir.paired,
                    ir.ablation,
                    ci(ir.change_ci95)
                ),
            ),
            None => "–".into(),
        });
        row.push(pct(ir.and_then(|ir| ir.accuracy.and_then(|a| a.accuracy))).into());
        row.push(pct(r.paper.total).into());
        t.push_row(row);
    }
    t
}

/// 95% intervals (%) of every arm: Wilson for the subsets and the image-reliance change rate,
/// [`super::mean_interval`] for Unsafe and Total (means of subset accuracies).
pub fn intervals(arms: &[&ArmRun]) -> Table {
    let headers = [
        "Arm",
        "Typical",
        "Attack",
        "Over-Safe",
        "Unsafe",
        "Total",
        "Image reliance",
    ];
    let mut t = Table::new(&headers, 1);
    for arm in arms {
        let r = &arm.run.results;
        let [typ, att, over] = subsets(&r.strict);
        let mut row: Vec<Cell> = vec![arm.name.as_str().into()];
        row.extend(
            [typ, att, over]
                .iter()
                .map(|a| Cell::from(format!("{} ({}/{})", ci(a.ci95), a.correct, a.n))),
        );
        row.push(ci(mean_interval(&[typ, att])).into());
        row.push(ci(mean_interval(&[typ, att, over])).into());
        row.push(ci(r.image_reliance.as_ref().and_then(|ir| ir.change_ci95)).into());
        t.push_row(row);
    }
    t
}

/// The paired McNemar test of every arm that has a baseline.
pub fn mcnemar(arms: &[&ArmRun], all: &[ArmRun]) -> Table {
    let headers = [
        "Arm",
        "Baseline",
        "Paired items",
        "Only baseline right",
        "Only arm right",
        "p-value",
    ];
    let mut t = Table::new(&headers, 2);
    for arm in arms {
        let (Some(base), Some(test)) = (arm.baseline.as_deref(), against_baseline(arm, all)) else {
            continue;
        };
        t.push_row(vec![
            arm.name.as_str().into(),
            base.into(),
            test.shared.to_string().into(),
            test.only_first.to_string().into(),
            test.only_second.to_string().into(),
            format_p(test.p_value).into(),
        ]);
    }
    t
}

/// Strict accuracy (%) per scenario, one column per arm; `None` when no arm has scenarios.
pub fn scenarios(arms: &[&ArmRun]) -> Option<Table> {
    let keys: BTreeSet<(Subset, &str)> = arms
        .iter()
        .flat_map(|a| a.run.results.scenarios.iter())
        .map(|s| (s.subset, s.scenario.as_str()))
        .collect();
    if keys.is_empty() {
        return None;
    }
    let mut headers = vec!["Subset", "Scenario", "n"];
    headers.extend(arms.iter().map(|a| a.name.as_str()));
    let mut t = Table::new(&headers, 2);
    for (subset, scenario) in keys {
        let find = |a: &ArmRun| {
            a.run
                .results
                .scenarios
                .iter()
                .find(|s| s.subset == subset && s.scenario == scenario)
                .map(|s| s.strict)
        };
        let n = arms.iter().find_map(|a| find(a)).map_or(0, |a| a.n);
        let mut row: Vec<Cell> = vec![
            subset_title(subset).into(),
            scenario.into(),
            n.to_string().into(),
        ];
        row.extend(
            arms.iter()
                .map(|a| Cell::from(pct(find(a).and_then(|s| s.accuracy)))),
        );
        t.push_row(row);
    }
    Some(t)
}

/// The quoted rows, each marked as quoted, with the source as a note.
pub fn references(refs: &References) -> Table {
    let headers = [
        "Model",
        "Kind",
        "Typical",
        "Attack",
        "Over-Safe",
        "Unsafe",
        "Total",
    ];
    let mut t = Table::new(&headers, 2);
    let quoted = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.1}"));
    for r in &refs.rows {
        let Reference { name, .. } = r;
        let mut row: Vec<Cell> = vec![name.as_str().into(), "quoted, not measured".into()];
        row.extend(r.values().into_iter().map(|v| Cell::from(quoted(v))));
        t.push_row(row);
    }
    t.push_note(format!("Quoted from: {}", refs.source), false);
    if let Some(note) = &refs.note {
        t.push_note(note.clone(), false);
    }
    t
}
