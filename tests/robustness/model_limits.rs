//! Cases of the model's own limits, run through `cases::check_all` (exit status, the message,
//! nothing changed or created): lengths beyond the model's context (2048 tokens for the `tiny`
//! preset) in `train`, `recipe validate` and `eval`, and model folders whose files no longer
//! match their manifest.json in every loader (`eval`, `inspect`, `export`, `serve`).

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::cases::{check_all, Case, BASE, EVAL_MODEL, OUT_FILES};
use crate::fixtures::{prepare, run_in, TRAIN};

/// A benchmark item like the first whose prompt is 1 MB of words (about 200,000 tokens).
fn megabyte_prompt_item(dir: &Path) {
    let path = dir.join("world/benchmark.jsonl");
    let text = fs::read_to_string(&path).unwrap();
    let mut item: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    item["id"] = "long".into();
    item["prompt"] = "kill ".repeat(200_000).into();
    let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
    writeln!(file, "{item}").unwrap();
}

/// Changes one byte of the model's weights (in the last tensor's data, not its header): the
/// file loads, but no longer matches manifest.json.
fn flip_weight_byte(dir: &Path) {
    let path = dir.join("model/model.safetensors");
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

/// What a refused model folder's message says.
const MISMATCH: &[&str] = &[
    "model/model.safetensors",
    "does not match its manifest.json",
    "checksum differs",
];

fn cases() -> Vec<Case> {
    vec![
        // --- lengths beyond the context ---------------------------------------------------
        Case {
            name: "train with data.max_length beyond the context",
            args: [TRAIN, &["--set", "data.max_length=1000000"]]
                .concat()
                .leak(),
            says: &["data.max_length = 1000000", "context of 2048 tokens"],
            ..BASE
        },
        Case {
            name: "recipe validate with data.max_length beyond the context",
            args: &[
                "recipe",
                "validate",
                "recipe.toml",
                "--set",
                "data.max_length=1000000",
            ],
            says: &["data.max_length = 1000000", "context of 2048 tokens"],
            ..BASE
        },
        Case {
            name: "eval of an item whose prompt is 1 MB",
            setup: megabyte_prompt_item,
            args: EVAL_MODEL,
            says: &[
                "1 of 9 item(s) failed",
                "prompt too long for the model's context of 2048 tokens",
            ],
            writes: OUT_FILES,
            model: true,
            ..BASE
        },
        // --- model folders that no longer match their manifest ----------------------------
        Case {
            name: "eval of a model whose weights differ from its manifest",
            setup: flip_weight_byte,
            args: EVAL_MODEL,
            says: MISMATCH,
            model: true,
            ..BASE
        },
        Case {
            name: "inspect a model whose weights differ from its manifest",
            setup: flip_weight_byte,
            args: &["inspect", "model"],
            says: MISMATCH,
            model: true,
            ..BASE
        },
        Case {
            name: "export a model whose weights differ from its manifest",
            setup: flip_weight_byte,
            args: &[
                "export", "--merge", "model", "--base", "model", "--out", "merged",
            ],
            says: MISMATCH,
            model: true,
            ..BASE
        },
        Case {
            name: "serve a model whose weights differ from its manifest",
            setup: flip_weight_byte,
            args: &["serve", "--checkpoint", "model", "--port", "0"],
            says: MISMATCH,
            model: true,
            ..BASE
        },
    ]
}

#[test]
fn lengths_beyond_the_context_and_unverified_folders_fail_clearly() {
    check_all(&cases());
}

/// The item too long for the context fails alone, the others are scored, and running the same
/// command again (which asks failed items again) fails it the same way instead of aborting.
#[test]
fn an_eval_rerun_fails_the_too_long_item_again_and_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    prepare(dir, true);
    megabyte_prompt_item(dir);
    for run in ["first", "rerun"] {
        let out = run_in(dir, EVAL_MODEL);
        let text = crate::common::text(&out);
        assert_eq!(out.status.code(), Some(1), "{run}: {text}");
        assert!(text.contains("prompt too long"), "{run}: {text}");
        let results: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("out/results.json")).unwrap()).unwrap();
        let counts = &results["counts"];
        assert_eq!(
            (counts["scored"].as_u64(), counts["errors"].as_u64()),
            (Some(8), Some(1)),
            "{run}: {results}"
        );
    }
}
