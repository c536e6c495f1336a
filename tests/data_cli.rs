//! End-to-end tests of `safeaware data synth | validate | stats | preview`.

mod common;

use std::path::Path;

use common::{safeaware, text};

fn release() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/mmsafeaware/data");
    assert!(
        dir.join("prompt.txt").is_file(),
        "the MMSafeAware release is expected at {}",
        dir.display()
    );
    format!("mmsafeaware:{}", dir.display())
}

#[test]
fn synth_then_validate_stats_and_preview() {
    let dir = tempfile::tempdir().unwrap();
    let synth = |out: &Path| {
        safeaware(&[
            "data",
            "synth",
            "--out",
            out.to_str().unwrap(),
            "--seed",
            "5",
            "--train",
            "40",
            "--val",
            "5",
            "--test",
            "12",
            "--image-size",
            "48",
        ])
    };
    let out = dir.path().join("world");
    let o = synth(&out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("wrote 40 train, 5 val, 12 test items"),
        "{}",
        text(&o)
    );
    let again = dir.path().join("again");
    let o = synth(&again);
    assert!(o.status.success());
    for f in [
        "train.jsonl",
        "test.jsonl",
        "benchmark.jsonl",
        "images/val-00004.png",
    ] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f} differs"
        );
    }
    assert_eq!(
        image::open(out.join("images/train-00000.png"))
            .unwrap()
            .width(),
        48
    );

    for f in ["train.jsonl", "val.jsonl", "test.jsonl", "benchmark.jsonl"] {
        let o = safeaware(&["data", "validate", out.join(f).to_str().unwrap()]);
        assert!(o.status.success(), "{f}: {}", text(&o));
        assert!(text(&o).contains("0 problem(s)"), "{}", text(&o));
    }

    let o = safeaware(&[
        "data",
        "stats",
        out.join("benchmark.jsonl").to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["items"], 12);
    let per_subset: u64 = json["subsets"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(per_subset, 12);
    assert_eq!(json["missing_images"].as_array().unwrap().len(), 0);

    let sheet = dir.path().join("sheet.png");
    let o = safeaware(&[
        "data",
        "preview",
        out.join("train.jsonl").to_str().unwrap(),
        "--out",
        sheet.to_str().unwrap(),
        "-n",
        "8",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let img = image::open(&sheet).unwrap();
    assert!(img.width() >= 512 && img.height() >= 300);
}

#[test]
fn validate_fails_with_the_place_of_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w");
    let o = safeaware(&[
        "data",
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--train",
        "10",
        "--val",
        "0",
        "--test",
        "3",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let train = out.join("train.jsonl");
    let mut lines = std::fs::read_to_string(&train).unwrap();
    lines.push_str("{\"id\": \"x\", \"image\": \"images/none.png\"\n");
    std::fs::write(&train, lines).unwrap();
    std::fs::write(out.join("images/train-00002.png"), b"not a png").unwrap();
    let o = safeaware(&["data", "validate", train.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("train.jsonl:3: id train-00002: image"), "{t}");
    assert!(t.contains("train.jsonl:11: invalid JSON"), "{t}");
    assert!(t.contains("2 problem(s)"), "{t}");
}

#[test]
fn stats_of_the_real_release() {
    let o = safeaware(&["data", "stats", &release(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["items"], 1523);
    assert_eq!(json["subsets"]["typical"], 171);
    assert_eq!(json["subsets"]["attack"], 855);
    assert_eq!(json["subsets"]["over_safety"], 497);
    let missing = json["missing_images"].as_array().unwrap();
    assert_eq!(missing.len(), 77);
    assert!(
        missing.contains(&serde_json::json!("1142"))
            && missing.contains(&serde_json::json!("2301"))
    );

    let o = safeaware(&["data", "validate", &release(), "--allow-missing-images"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("1523 checked, 0 problem(s), 77 warning(s)"),
        "{}",
        text(&o)
    );
}
