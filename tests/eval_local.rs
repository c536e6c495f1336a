//! End-to-end test of local generation in `safeaware eval`: a tiny model of the real
//! architecture is made by a two-step training run (an HF folder with its processor files), then
//! evaluated through `--model` with greedy decoding and with visual contrastive decoding, and
//! through `--checkpoint`, and with `--image-ablation counterfactual`, in every model family
//! (`common::FAMILIES`); the results files must record every item and the settings used.

mod common;

use std::path::Path;

use common::{safeaware, text, train_quickstart, Family, FAMILIES};
use serde_json::Value;

fn ok(out: std::process::Output) -> String {
    let text = text(&out);
    assert!(out.status.success(), "safeaware failed:\n{text}");
    text
}

fn results(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap()
}

#[test]
fn a_tiny_model_answers_through_model_and_checkpoint_with_greedy_and_vcd() {
    for family in &FAMILIES {
        answers_through_model_and_checkpoint_with_greedy_and_vcd(family);
    }
}

fn answers_through_model_and_checkpoint_with_greedy_and_vcd(family: &Family) {
    let tmp = tempfile::tempdir().unwrap();
    let (run, spec) = train_quickstart(
        tmp.path(),
        &family.with(&[
            "data.synthetic.train=8",
            "data.synthetic.val=0",
            "data.synthetic.test=6",
            "train.batch_size=4",
            "train.max_steps=8",
            "schedule.warmup_steps=1",
            "train.eval_every=0",
            "train.checkpoint_every=4",
        ]),
    );
    let model = run.join("final");

    for (source, folder, decoding) in [
        ("--model", &model, "greedy"),
        ("--model", &model, "vcd"),
        ("--checkpoint", &run.join("checkpoints/step_4"), "greedy"),
    ] {
        let out = tmp.path().join(format!(
            "eval-{decoding}-{}",
            source.trim_start_matches('-')
        ));
        let text = ok(safeaware(&[
            "eval",
            source,
            folder.to_str().unwrap(),
            "--benchmark",
            &spec,
            "--out",
            out.to_str().unwrap(),
            "--decoding",
            decoding,
            "--max-tokens",
            "6",
            "--batch-size",
            "4",
            "--progress",
            "quiet",
        ]));
        assert!(text.contains("Total"), "{}: {text}", family.name);
        let r = results(&out);
        assert_eq!(r["counts"]["items"], 6, "{r}");
        assert_eq!(r["counts"]["scored"], 6, "{r}");
        assert_eq!(r["counts"]["errors"], 0, "{r}");
        assert_eq!(r["decoding"]["mode"], decoding, "{r}");
        assert_eq!(r["source"]["kind"], "model", "{r}");
        let samples = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
        assert_eq!(samples.lines().count(), 6);
        for line in samples.lines() {
            let s: Value = serde_json::from_str(line).unwrap();
            assert!(
                !s["response"].as_str().unwrap_or("").is_empty(),
                "empty answer: {s}"
            );
        }
        assert!(out.join("report.md").is_file() && out.join("report.html").is_file());
    }

    // Image reliance through the CLI: every item asked again with its counterfactual image.
    let out = tmp.path().join("eval-counterfactual");
    let text = ok(safeaware(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--benchmark",
        &spec,
        "--out",
        out.to_str().unwrap(),
        "--max-tokens",
        "6",
        "--image-ablation",
        "counterfactual",
        "--progress",
        "quiet",
    ]));
    assert!(text.contains("Image reliance"), "{text}");
    let ir = &results(&out)["image_reliance"];
    assert_eq!(ir["ablation"], "counterfactual", "{ir}");
    assert_eq!(ir["paired"], 6, "{ir}");
    assert!(ir["change_rate"]
        .as_f64()
        .is_some_and(|r| (0.0..=1.0).contains(&r)));
    assert_eq!(
        results(&out.join("ablation-counterfactual"))["counts"]["scored"],
        6
    );
}

#[test]
fn a_folder_without_a_model_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = tmp.path().join("b.jsonl");
    std::fs::write(&bench, "{\"id\":1,\"image\":\"x.png\",\"prompt\":\"p\",\"gold\":\"safe\",\"subset\":\"over_safety\"}\n").unwrap();
    let out = safeaware(&[
        "eval",
        "--model",
        tmp.path().to_str().unwrap(),
        "--benchmark",
        &format!("jsonl:{}", bench.display()),
        "--out",
        tmp.path().join("o").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.json"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
