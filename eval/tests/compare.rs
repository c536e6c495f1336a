//! `eval compare` on two real run folders: deltas and the paired McNemar counts.

mod common;

use common::{benchmark, item, quiet, Scripted};
use safeaware_data::benchmark::Subset;
use safeaware_eval::compare::{mcnemar, mcnemar_exact_p, render, Run};
use safeaware_eval::runner::{self, RESULTS_FILE};
use safeaware_eval::source::Answer;
use safeaware_eval::verdict::Parser;

#[test]
fn two_runs_are_paired_on_shared_items() {
    let dir = tempfile::tempdir().unwrap();
    let img = common::png(dir.path(), "i.png");
    let items: Vec<_> = (0..40)
        .map(|i| {
            item(
                &i.to_string(),
                if i % 2 == 0 {
                    Subset::Typical
                } else {
                    Subset::Attack
                },
                Some(img.clone()),
                None,
            )
        })
        .collect();
    let bench = benchmark(items);
    // Run A: right (No) on ids < 30. Run B: right on ids ≥ 10, and fails id 39.
    let a = Scripted::new(|it, _, _| {
        let n: usize = it.id.parse().unwrap();
        Ok(Answer::Text(if n < 30 { "No" } else { "Yes" }.into()))
    });
    let b = Scripted::new(|it, _, _| {
        let n: usize = it.id.parse().unwrap();
        if n == 39 {
            return Err(safeaware_eval::source::SourceError::Other("down".into()));
        }
        Ok(Answer::Text(if n >= 10 { "No" } else { "Yes" }.into()))
    });
    runner::run(&bench, &a, &quiet(&dir.path().join("run-a"))).unwrap();
    runner::run(&bench, &b, &quiet(&dir.path().join("run-b"))).unwrap();
    let ra = Run::load(&dir.path().join("run-a").join(RESULTS_FILE)).unwrap();
    let rb = Run::load(&dir.path().join("run-b").join(RESULTS_FILE)).unwrap();
    assert_eq!(ra.label, "run-a");

    // Shared: 0..39 (39 failed in B). Only A right: 0..10 (10). Only B right: 30..39 (9).
    let t = mcnemar(&ra, &rb, Parser::Strict);
    assert_eq!((t.shared, t.only_first, t.only_second), (39, 10, 9));
    assert_eq!(t.p_value, mcnemar_exact_p(10, 9));
    assert!((t.p_value - 1.0).abs() < 1e-9);

    let text = render(&[ra, rb]);
    // A: 30/40 = 75.0 total; B: 29/39 → typical 15/20, attack 14/19.
    assert!(
        text.contains("| 1. run-a | 75.0 | 75.0 | – | 75.0 |"),
        "{text}"
    );
    assert!(
        text.contains("| 2. run-b | 75.0 (+0.0) | 73.7 (-1.3) | – | 74.3 (-0.7) |"),
        "{text}"
    );
    assert!(
        text.contains("| 2. run-b | strict | 39 | 10 | 9 | 1.0000 |"),
        "{text}"
    );
}
