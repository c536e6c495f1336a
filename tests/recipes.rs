//! The shipped recipes validate, say how to run them, and the `safeaware recipe` command
//! validates, resolves and reports errors by line.

mod common;

use safeaware_runtime::device::DeviceSpec;
use safeaware_trainer::recipe::{load_recipe, parse_recipe, Recipe, TargetStyle};
use std::path::{Path, PathBuf};

fn recipes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes")
}

fn shipped() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(recipes_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn safeaware(args: &[&str]) -> (bool, String, String) {
    let out = common::safeaware(args);
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn every_shipped_recipe_validates_and_starts_with_its_command() {
    let files = shipped();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "quickstart.toml",
        "quickstart-direct.toml",
        "smolvlm-256m-vcr.toml",
        "smolvlm-256m-distilled.toml",
        "smolvlm-500m-vcr-lora.toml",
        "smolvlm-2.2b-vcr-lora.toml",
        "quickstart-llava.toml",
        "llava-1.5-7b-vcr-lora.toml",
        "quickstart-qwen2vl.toml",
        "qwen2-vl-2b-vcr-lora.toml",
        "qwen2.5-vl-7b-vcr-lora.toml",
        "quickstart-dpo.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing recipes/{expected}"
        );
    }
    for (path, name) in files.iter().zip(&names) {
        let text = std::fs::read_to_string(path).unwrap();
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("# Run: safeaware train --recipe recipes/{name}")),
            "{name} does not start with its command: {first}"
        );
        load_recipe(path, &[]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    }
}

#[test]
fn quickstart_recipes_differ_only_in_style() {
    let vcr = load_recipe(&recipes_dir().join("quickstart.toml"), &[])
        .unwrap()
        .recipe;
    let direct = load_recipe(&recipes_dir().join("quickstart-direct.toml"), &[])
        .unwrap()
        .recipe;
    assert_eq!(vcr.model.preset.as_deref(), Some("tiny"));
    assert!(vcr.data.synthetic.enabled);
    assert_eq!(vcr.data.style, TargetStyle::Vcr);
    assert_eq!(vcr.train.device, DeviceSpec::Cpu);
    assert_eq!(vcr.train.batch_size, 16);
    assert_eq!(direct.data.style, TargetStyle::Direct);
    let mut same = direct.clone();
    same.data.style = TargetStyle::Vcr;
    assert_eq!(same, vcr);
}

#[test]
fn smolvlm_recipe_takes_its_model_from_set() {
    let path = recipes_dir().join("smolvlm-256m-vcr.toml");
    let loaded = load_recipe(&path, &["model.path=/models/SmolVLM-256M-Instruct".into()]).unwrap();
    assert_eq!(
        loaded.recipe.model.path.as_deref(),
        Some(Path::new("/models/SmolVLM-256M-Instruct"))
    );
    assert_eq!(loaded.recipe.train.device, DeviceSpec::Cuda(0));
    assert_eq!(loaded.run_dir(), Path::new("checkpoints/smolvlm-256m-vcr"));
}

#[test]
fn the_distilled_recipe_is_guarded_and_the_synthetic_ones_are_not() {
    let distilled = load_recipe(&recipes_dir().join("smolvlm-256m-distilled.toml"), &[])
        .unwrap()
        .recipe;
    assert_eq!(
        distilled.data.train.as_deref(),
        Some(Path::new("runs/distilled/train.jsonl"))
    );
    assert!(!distilled.data.synthetic.enabled);
    assert!(!distilled.data.allow_overlap);
    let bench = distilled.eval.benchmark.unwrap_or_default();
    assert!(bench.starts_with("mmsafeaware:"), "{bench}");
    // The synthetic world's test split shares every prompt with training by design.
    for name in ["quickstart.toml", "quickstart-direct.toml"] {
        let r = load_recipe(&recipes_dir().join(name), &[]).unwrap().recipe;
        assert!(r.data.allow_overlap, "{name}");
    }
}

#[test]
fn show_prints_a_lossless_resolved_recipe_with_overrides() {
    let path = recipes_dir().join("quickstart.toml");
    let (ok, out, err) = safeaware(&[
        "recipe",
        "show",
        path.to_str().unwrap(),
        "--set",
        "train.max_steps=7",
        "--set",
        "data.style=cot",
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("# Resolved from "), "{out}");
    let shown: Recipe = parse_recipe(&out, "shown").unwrap();
    let mut expected = load_recipe(&path, &[]).unwrap().recipe;
    expected.train.max_steps = Some(7);
    expected.data.style = TargetStyle::Cot;
    assert_eq!(shown, expected);
    // Defaults are filled in: keys the file does not write appear.
    assert!(out.contains("freeze = []"), "{out}");
    assert!(out.contains("wrap_prob = 0.5"), "{out}");
}

#[test]
fn validate_reports_errors_by_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[model]\npreset = \"tiny\"\nlayers = 3\n").unwrap();
    let (ok, _, err) = safeaware(&["recipe", "validate", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("bad.toml:3:1: unknown field `layers`"),
        "{err}"
    );

    let (ok, _, err) = safeaware(&[
        "recipe",
        "validate",
        bad.to_str().unwrap(),
        "--set",
        "model.layers=3",
    ]);
    assert!(!ok, "{err}");

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[model]\npreset = \"tiny\"\n[data.synthetic]\nenabled = true\n",
    )
    .unwrap();
    let (ok, out, err) = safeaware(&["recipe", "validate", good.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.starts_with("ok: "), "{out}");
    let (ok, _, err) = safeaware(&[
        "recipe",
        "validate",
        good.to_str().unwrap(),
        "--set",
        "train.batch_size=-1",
    ]);
    assert!(!ok);
    assert!(err.contains("--set train.batch_size=-1"), "{err}");
}

/// Each family's quickstart (LLaVA's, Qwen2-VL's) is the quickstart with its preset and seed,
/// nothing else: the end-to-end tests run every family as the quickstart recipe with
/// `common::FAMILIES`' overrides, which this keeps true.
#[test]
fn each_family_quickstart_is_the_quickstart_on_its_preset() {
    let load = |name: &str, sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        load_recipe(&recipes_dir().join(name), &sets)
            .unwrap()
            .recipe
    };
    for family in &common::FAMILIES {
        assert_eq!(
            load("quickstart.toml", family.sets),
            load(family.quickstart, &[]),
            "{}",
            family.name
        );
    }
}

/// The plan in each SmolVLM, LLaVA and Qwen recipe's header is what `safeaware plan` says for it on
/// the config-only fixture of its size.
#[test]
fn recipe_headers_hold_their_plans() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/tests/fixtures/config_only");
    for (recipe, size, image) in [
        ("smolvlm-256m-vcr.toml", "smolvlm-256m", None),
        ("smolvlm-500m-vcr-lora.toml", "smolvlm-500m", None),
        ("smolvlm-2.2b-vcr-lora.toml", "smolvlm-2.2b", None),
        ("llava-1.5-7b-vcr-lora.toml", "llava-1.5-7b", None),
        ("qwen2-vl-2b-vcr-lora.toml", "qwen2-vl-2b", Some("1024x768")),
        (
            "qwen2.5-vl-7b-vcr-lora.toml",
            "qwen2.5-vl-7b",
            Some("1024x768"),
        ),
    ] {
        let path = recipes_dir().join(recipe);
        let model = format!("model.path={}", fixtures.join(size).display());
        let mut args = vec!["plan", "--recipe", path.to_str().unwrap()];
        args.extend(["--set", &model, "--memory", "80GiB"]);
        if let Some(image) = image {
            args.extend(["--image-size", image]);
        }
        let out = common::safeaware(&args);
        assert!(out.status.success(), "{}", common::text(&out));
        let header = std::fs::read_to_string(&path).unwrap();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let total = line.contains("total") || line.contains("largest");
            if total {
                let value = line.split_whitespace().rev().take(2).collect::<Vec<_>>();
                assert!(
                    header.contains(value[1]) && header.contains(value[0]),
                    "{recipe}: the header lacks `{line}`"
                );
            }
        }
    }
}

/// `safeaware plan` with `train.activation_checkpointing`: the same weights, gradients and
/// optimiser state, fewer activations, larger micro-batches; a value that is not a boolean is
/// a clear error naming the override.
#[test]
fn plan_accounts_for_activation_checkpointing() {
    let recipe = recipes_dir().join("smolvlm-256m-vcr.toml");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("model/tests/fixtures/config_only/smolvlm-256m");
    let model = format!("model.path={}", fixture.display());
    let plan = |checkpointing: &str, json: bool| {
        let set = format!("train.activation_checkpointing={checkpointing}");
        let mut args = vec!["plan", "--recipe", recipe.to_str().unwrap()];
        args.extend(["--set", &model, "--set", &set, "--memory", "120GiB"]);
        if json {
            args.push("--json");
        }
        safeaware(&args)
    };
    let json = |checkpointing| {
        let (ok, out, err) = plan(checkpointing, true);
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let (off, on) = (json("false"), json("true"));
    for key in ["weights", "gradients", "optimizer"] {
        assert_eq!(off["per_device"][key], on["per_device"][key], "{key}");
    }
    let bytes = |v: &serde_json::Value, key: &str| v["per_device"][key].as_u64().unwrap();
    assert!(bytes(&on, "activations") < bytes(&off, "activations"));
    assert!(bytes(&on, "total") < bytes(&off, "total"));
    assert!(on["max_micro_batch"].as_u64() > off["max_micro_batch"].as_u64());
    let (ok, text, err) = plan("true", false);
    assert!(
        ok && text.contains("activation checkpointing"),
        "{text}{err}"
    );
    let (ok, _, err) = plan("1", true);
    assert!(!ok);
    assert!(
        err.contains("--set train.activation_checkpointing=1") && !err.contains("panicked"),
        "{err}"
    );
}
