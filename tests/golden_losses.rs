//! Pinned numbers: 20 steps of `recipes/quickstart.toml` from its seeds (data, initialisation,
//! training) must give the per-step losses and gradient norms stored in
//! `tests/golden/quickstart-20-steps.json`, so a change to the arithmetic (a kernel, an
//! initialiser, the data order) shows in review as a diff of that file instead of going unseen.
//!
//! Tolerance: 1e-4 relative per value. Runs on one machine are bit-identical (same seed, same
//! CPU results); another x86 CPU may take the AVX2 rather than the AVX-512 paths of the fused
//! kernels, whose other summation order changes values by rounding only, which the tolerance
//! leaves room for. A real change (another initialiser, batch order or formula) moves the
//! losses of the first steps by far more.
//!
//! Regenerate after an intended change: `tools/update_golden.sh` (sets
//! `SAFEAWARE_UPDATE_GOLDEN=1`, which makes this test write the file instead of comparing).

mod common;

use std::path::Path;

use common::train_quickstart;
use serde_json::{json, Value};

const TOLERANCE: f64 = 1e-4;
const STEPS: u64 = 20;

fn golden_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/quickstart-20-steps.json")
}

/// `(step, loss, grad_norm)` of each logged step of `run`.
fn trajectory(run: &Path) -> Vec<(u64, f64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter_map(|r| {
            Some((
                r["step"].as_u64()?,
                r["loss"].as_f64()?,
                r["grad_norm"].as_f64()?,
            ))
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOLERANCE * b.abs().max(1e-12)
}

#[test]
fn quickstart_losses_and_gradient_norms_match_the_pinned_values() {
    let tmp = tempfile::tempdir().unwrap();
    let steps = format!("train.max_steps={STEPS}");
    let (run, _) = train_quickstart(
        tmp.path(),
        &[
            &steps,
            "train.log_every=1",
            "train.eval_every=0",
            "train.checkpoint_every=0",
        ],
    );
    let got = trajectory(&run);
    assert_eq!(
        got.len(),
        STEPS as usize,
        "one metrics line per step: {got:?}"
    );
    if std::env::var_os("SAFEAWARE_UPDATE_GOLDEN").is_some() {
        let rows: Vec<Value> = got
            .iter()
            .map(|&(step, loss, grad_norm)| json!({"step": step, "loss": loss, "grad_norm": grad_norm}))
            .collect();
        let text = serde_json::to_string_pretty(&json!({
            "recipe": "recipes/quickstart.toml",
            "overrides": [steps, "train.log_every=1", "train.eval_every=0", "train.checkpoint_every=0"],
            "tolerance_relative": TOLERANCE,
            "steps": rows,
        }))
        .unwrap();
        std::fs::write(golden_file(), text + "\n").unwrap();
        return;
    }
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(golden_file()).unwrap()).unwrap();
    let want: Vec<(u64, f64, f64)> = golden["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["step"].as_u64().unwrap(),
                r["loss"].as_f64().unwrap(),
                r["grad_norm"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(want.len(), got.len());
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w.0, g.0, "step numbers");
        assert!(
            close(g.1, w.1) && close(g.2, w.2),
            "step {}: loss {} grad_norm {} vs pinned {} {} (tolerance {TOLERANCE} relative; \
             regenerate with tools/update_golden.sh if the change is intended)",
            g.0,
            g.1,
            g.2,
            w.1,
            w.2
        );
    }
}
