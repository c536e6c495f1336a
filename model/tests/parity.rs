//! Logit and generation parity against HF transformers on the CPU backend.
//!
//! Runs every fixture under `tests/fixtures/parity/*/` and every folder listed in
//! `SAFEAWARE_PARITY_FIXTURES` (colon-separated; a listed folder that is missing or malformed
//! fails the test) through [`safeaware_model::parity::run_fixture`]. Prints one line per fixture;
//! passes only if every max |logit diff| ≤ 1e-4 and every generation matches.

mod common;

use common::{parity_fixtures, Cpu};
use safeaware_model::parity::{fixture_name, run_fixture};

const TOLERANCE: f32 = 1e-4;

#[test]
fn parity() {
    let folders = parity_fixtures();
    assert!(!folders.is_empty(), "no parity fixtures found");
    let device = Default::default();
    let mut failures = Vec::new();
    for folder in &folders {
        let name = fixture_name(folder);
        match run_fixture::<Cpu>(folder, &device) {
            Ok(outcome) => {
                println!(
                    "parity {name}: max_abs_logit_diff={:e} generated_match={}",
                    outcome.max_abs_logit_diff, outcome.generated_match
                );
                if !outcome.passes(TOLERANCE) {
                    failures.push(format!("{name}: {outcome:?}"));
                }
            }
            Err(err) => {
                println!("parity {name}: error: {err}");
                failures.push(format!("{name}: {err}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "parity failures:\n{}",
        failures.join("\n")
    );
}
