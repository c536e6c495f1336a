//! Comparison rows, tests against baselines and the rendered pages.

use std::collections::BTreeMap;
use std::path::PathBuf;

use safeaware_data::benchmark::{Benchmark, BenchmarkItem, Subset, Verdict};

use super::*;
use crate::compare::Run;
use crate::decoding::DecodingSettings;
use crate::prompt::PromptStrategy;
use crate::results::Results;
use crate::samples::SampleRecord;
use crate::source::SourceInfo;

/// 20 items (8 typical, 4 attack, 8 over-safety); the run answers the first `right` correctly
/// and the rest wrongly.
fn run(label: &str, right: usize) -> Run {
    let items: Vec<BenchmarkItem> = (0..20)
        .map(|i| {
            let subset = match i % 5 {
                0 | 1 => Subset::Typical,
                2 => Subset::Attack,
                _ => Subset::OverSafety,
            };
            BenchmarkItem {
                id: i.to_string(),
                image: None,
                prompt: "p".into(),
                gold: if subset == Subset::OverSafety {
                    Verdict::Safe
                } else {
                    Verdict::Unsafe
                },
                subset,
                scenario: Some(format!("s{}", i % 2)),
                counterfactual: None,
            }
        })
        .collect();
    let samples: BTreeMap<String, SampleRecord> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let correct = i < right;
            let says_safe = (item.gold == Verdict::Safe) == correct;
            let answer = if says_safe { "Yes" } else { "No" };
            let record = SampleRecord::scored(item, "q".into(), None, answer.into());
            (item.id.clone(), record)
        })
        .collect();
    let bench = Benchmark {
        spec: "test".into(),
        items,
        missing_images: vec![],
    };
    let source = SourceInfo {
        kind: "scripted".into(),
        name: label.into(),
        details: Default::default(),
        counts: Default::default(),
    };
    let results = Results::build(
        &bench,
        source,
        PromptStrategy::Paper.info(),
        DecodingSettings::default(),
        &samples,
    );
    Run {
        label: label.into(),
        path: PathBuf::from(label),
        results,
        samples,
    }
}

fn arm(name: &str, baseline: Option<&str>, right: usize) -> ArmRun {
    ArmRun {
        name: name.into(),
        baseline: baseline.map(str::to_string),
        benchmark: "synthetic".into(),
        description: format!("{name} model"),
        run: run(name, right),
        failed: None,
    }
}

#[test]
fn rows_hold_the_issue_keys_and_the_mcnemar_p_against_the_baseline() {
    let arms = [arm("base", None, 10), arm("better", Some("base"), 20)];
    let c = Comparison::build(&arms);
    let json = serde_json::to_value(&c).unwrap();
    let keys: Vec<&str> = json["arms"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = [
        "name",
        "baseline",
        "benchmark",
        "typical",
        "attack",
        "over_safety",
        "total",
        "unsafe",
        "p_value",
        "image_reliance",
    ];
    want.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, want);
    assert!(json["arms"][0]["p_value"].is_null());
    assert!(json["arms"][0]["baseline"].is_null());
    assert!(json["arms"][1]["image_reliance"].is_null());
    // Items 0–9 right in both, 10–19 right only in `better`: b = 0, c = 10, p = 2 / 2^10.
    assert_eq!(c.arms[1].p_value, Some(2.0 / 1024.0));
    // The base: typical items are 0,1,5,6,10,11,15,16 (4 of 8 right), attack 2,7,12,17 (2/4).
    let base = &c.arms[0];
    assert_eq!((base.typical, base.attack), (Some(0.5), Some(0.5)));
    assert_eq!(base.unsafe_, Some(0.5));
    assert_eq!(c.arms[1].total, Some(1.0));
}

#[test]
fn mean_interval_is_centred_on_the_mean_with_agresti_coull_variances() {
    let a = Accuracy::new(8, 10);
    let b = Accuracy::new(5, 20);
    let [lo, hi] = mean_interval(&[&a, &b]).unwrap();
    let z2 = Z95 * Z95;
    let var = |x: f64, n: f64| {
        let p = (x + z2 / 2.0) / (n + z2);
        p * (1.0 - p) / (n + z2)
    };
    let half = Z95 * (var(8.0, 10.0) + var(5.0, 20.0)).sqrt() / 2.0;
    assert!((lo - (0.525 - half)).abs() < 1e-12 && (hi - (0.525 + half)).abs() < 1e-12);
    // An all-wrong subset still has a width.
    let [lo, hi] = mean_interval(&[&Accuracy::new(0, 6)]).unwrap();
    assert!(lo == 0.0 && hi > 0.1, "{hi}");
    assert_eq!(mean_interval(&[&Accuracy::new(0, 0)]), None);
}

#[test]
fn pages_show_every_arm_the_skipped_ones_and_quoted_rows_marked_as_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let arms = [arm("base", None, 10), arm("better", Some("base"), 20)];
    let skipped = [Skipped {
        name: "vcd".into(),
        reason: "VCD needs a local model".into(),
    }];
    let refs_path = dir.path().join("refs.toml");
    std::fs::write(
        &refs_path,
        "source = \"Paper, Table 1\"\n[[rows]]\nname = \"GPT-4V\"\ntypical = 63.9\ntotal = 57.8\n",
    )
    .unwrap();
    let refs = References::load(&refs_path).unwrap();
    write(dir.path(), "Methods", &arms, &skipped, Some(&refs)).unwrap();
    let md = std::fs::read_to_string(dir.path().join(COMPARISON_MD)).unwrap();
    assert!(md.contains("| better | base |"), "{md}");
    assert!(
        md.contains("| GPT-4V | quoted, not measured | 63.9 |"),
        "{md}"
    );
    assert!(md.contains("Quoted from: Paper, Table 1"), "{md}");
    assert!(
        md.contains("vcd: not evaluated — VCD needs a local model"),
        "{md}"
    );
    assert!(md.contains("accuracy per scenario"), "{md}");
    let html = std::fs::read_to_string(dir.path().join(COMPARISON_HTML)).unwrap();
    assert!(html.contains("<svg") && html.contains("GPT-4V"));
    assert!(
        !html.contains("src=") && !html.contains("href="),
        "nothing fetched"
    );
    let json: Comparison =
        serde_json::from_slice(&std::fs::read(dir.path().join(COMPARISON_JSON)).unwrap()).unwrap();
    assert_eq!(json.arms.len(), 2);
}

#[test]
fn a_reference_value_outside_0_to_100_names_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refs.toml");
    std::fs::write(
        &path,
        "source = \"x\"\n[[rows]]\nname = \"M\"\ntotal = 0.578e3\n",
    )
    .unwrap();
    let err = References::load(&path).unwrap_err().to_string();
    assert!(err.contains("row `M`") && err.contains("578"), "{err}");
}

#[test]
fn a_failed_arm_is_marked_and_gets_no_test_nor_do_the_arms_against_it() {
    let dir = tempfile::tempdir().unwrap();
    let failed = ArmRun {
        failed: Some("nothing was scored (20 item(s) asked)".into()),
        ..arm("dead", Some("base"), 0)
    };
    let mut against_dead = arm("after", Some("dead"), 20);
    against_dead.run.samples.clear();
    let arms = [arm("base", None, 10), failed, against_dead];
    let c = write(dir.path(), "Failures", &arms, &[], None).unwrap();
    assert_eq!(c.arms[1].p_value, None);
    assert_eq!(
        c.arms[1].failed.as_deref(),
        Some("nothing was scored (20 item(s) asked)")
    );
    assert_eq!(
        (c.arms[2].p_value, c.arms[2].failed.as_deref()),
        (None, None)
    );
    let md = std::fs::read_to_string(dir.path().join(COMPARISON_MD)).unwrap();
    assert!(md.contains("| dead (FAILED) | base |"), "{md}");
    assert!(
        md.contains("– (arm failed)") && md.contains("– (baseline failed)"),
        "{md}"
    );
    assert!(
        md.contains("dead on synthetic: FAILED — nothing was scored (20 item(s) asked)"),
        "{md}"
    );
    // Without failures, an arm sharing no scored item with its baseline has no p-value either.
    let unpaired = [arm("base", None, 10), {
        let mut a = arm("x", Some("base"), 5);
        a.run.samples.clear();
        a
    }];
    let c = Comparison::build(&unpaired);
    assert_eq!(c.arms[1].p_value, None);
    assert_eq!(untested(&unpaired[1], &unpaired), Some("no paired items"));
}
