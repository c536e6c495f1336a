//! The `safeaware eval` command line: a responses run on a JSONL benchmark, `eval compare`,
//! and the errors for impossible flag combinations.

mod common;

use std::path::Path;

use common::{safeaware, text};

fn write_inputs(dir: &Path) {
    let bench = [
        r#"{"id": 1, "prompt": "a", "gold": "unsafe", "subset": "typical", "scenario": "x"}"#,
        r#"{"id": 2, "prompt": "b", "gold": "unsafe", "subset": "attack"}"#,
        r#"{"id": 3, "prompt": "c", "gold": "safe", "subset": "over_safety"}"#,
        r#"{"id": 4, "prompt": "d", "gold": "safe", "subset": "over_safety"}"#,
    ];
    std::fs::write(dir.join("bench.jsonl"), bench.join("\n")).unwrap();
    let responses = [
        r#"{"id": 1, "response": "No."}"#,
        r#"{"id": "2", "response": "I cannot say"}"#,
        r#"{"id": 3, "response": "Yes"}"#,
        r#"{"id": 42, "response": "Yes"}"#,
    ];
    std::fs::write(dir.join("responses.jsonl"), responses.join("\n")).unwrap();
}

/// `safeaware eval` of `dir/responses.jsonl` on `dir/bench.jsonl` into `out`.
fn score_responses(dir: &Path, out: &Path) -> std::process::Output {
    let bench = format!("jsonl:{}", dir.join("bench.jsonl").display());
    let responses = dir.join("responses.jsonl");
    safeaware(&[
        "eval",
        "--benchmark",
        &bench,
        "--responses",
        responses.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--progress",
        "quiet",
    ])
}

#[test]
fn responses_run_then_compare() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path());
    let out = dir.path().join("run");
    let run = score_responses(dir.path(), &out);
    assert!(run.status.success(), "{}", text(&run));
    let stdout = text(&run);
    assert!(
        stdout.contains("4 items: 3 scored, 1 missing a response, 0 errors"),
        "{stdout}"
    );
    assert!(stdout.contains("unknown_ids: 1"), "{stdout}");
    // strict: typical 1/1, attack 0/1 (unparsed), over-safety 1/1 → total 66.7.
    assert!(stdout.contains("66.7"), "{stdout}");
    for f in ["results.json", "samples.jsonl", "report.md", "report.html"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let results = out.join("results.json");
    let cmp = safeaware(&[
        "eval",
        "compare",
        results.to_str().unwrap(),
        results.to_str().unwrap(),
    ]);
    assert!(cmp.status.success(), "{}", text(&cmp));
    assert!(
        text(&cmp).contains("| 2. run | strict | 3 | 0 | 0 | 1.0000 |"),
        "{}",
        text(&cmp)
    );
}

#[test]
fn the_summary_says_why_the_parsers_disagree() {
    let dir = tempfile::tempdir().unwrap();
    let mut bench = Vec::new();
    let mut responses = Vec::new();
    for id in 0..6 {
        let gold = if id < 5 { "safe" } else { "unsafe" };
        bench.push(format!(
            r#"{{"id": {id}, "prompt": "p{id}", "gold": "{gold}"}}"#
        ));
        // The older trace wording: the authors' rule finds no "yes" in `safe`, no "no" in
        // `unsafe`.
        let answer = format!("<verdict>{gold}</verdict>");
        responses.push(serde_json::json!({"id": id, "response": answer}).to_string());
    }
    std::fs::write(dir.path().join("bench.jsonl"), bench.join("\n")).unwrap();
    std::fs::write(dir.path().join("responses.jsonl"), responses.join("\n")).unwrap();
    let out = dir.path().join("run");
    let run = score_responses(dir.path(), &out);
    assert!(run.status.success(), "{}", text(&run));
    let line = "Parsers disagree on 6 of 6 items; main cause: the authors' rule found no 'yes' in \
                the verdict 'safe' in 5 answers";
    assert!(text(&run).contains(line), "{}", text(&run));
    let results = out.join("results.json");
    let cmp = safeaware(&["eval", "compare", results.to_str().unwrap()]);
    assert!(text(&cmp).contains(line), "{}", text(&cmp));
}

#[test]
fn impossible_flag_combinations_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path());
    let bench = format!("jsonl:{}", dir.path().join("bench.jsonl").display());
    let out = dir.path().join("run");
    let base = [
        "eval",
        "--benchmark",
        &bench,
        "--out",
        out.to_str().unwrap(),
    ];
    let with = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        safeaware(&args)
    };
    let vcd = with(&[
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--endpoint-model",
        "m",
        "--decoding",
        "vcd",
    ]);
    assert!(
        !vcd.status.success() && text(&vcd).contains("vcd"),
        "{}",
        text(&vcd)
    );
    let no_model = with(&["--endpoint", "http://127.0.0.1:9/v1"]);
    assert!(!no_model.status.success() && text(&no_model).contains("endpoint-model"));
    let both = with(&[
        "--responses",
        "r.jsonl",
        "--endpoint",
        "http://x/v1",
        "--endpoint-model",
        "m",
    ]);
    assert!(
        !both.status.success() && text(&both).contains("cannot be used with"),
        "{}",
        text(&both)
    );
    let none = with(&[]);
    assert!(
        !none.status.success() && text(&none).contains("--responses"),
        "{}",
        text(&none)
    );
    let local = with(&["--model", "no/such/folder", "--responses", "r.jsonl"]);
    assert!(
        !local.status.success() && text(&local).contains("cannot be used with"),
        "{}",
        text(&local)
    );
    let missing = with(&["--model", "no/such/folder"]);
    assert!(
        !missing.status.success() && text(&missing).contains("no/such/folder"),
        "{}",
        text(&missing)
    );
    let template = with(&["--responses", "r.jsonl", "--prompt", "no-such-template.txt"]);
    assert!(!template.status.success() && text(&template).contains("template"));
    let responses = dir.path().join("responses.jsonl");
    let ablation = with(&[
        "--responses",
        responses.to_str().unwrap(),
        "--image-ablation",
        "blank",
    ]);
    assert!(
        !ablation.status.success() && text(&ablation).contains("recorded responses"),
        "{}",
        text(&ablation)
    );
    assert!(!out.join("results.json").exists(), "no run started");
}
