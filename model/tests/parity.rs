//! Logit and generation parity against HF transformers.
//!
//! Runs every fixture under `tests/fixtures/parity/*/` and every folder listed in
//! `SAFEAWARE_PARITY_FIXTURES` (colon-separated; a listed folder that is missing or malformed
//! fails the test). Each fixture holds an HF `save_pretrained` folder (`model/`), its inputs and
//! HF's logits and KV-cached greedy generation. Prints one line per fixture; passes only if every
//! max |logit diff| ≤ 1e-4 and every generation matches.

mod common;

use std::path::Path;

use common::{fixture_input, max_abs_diff, parity_fixtures, read_f32, read_i64, values, Cpu};
use safeaware_model::{Decoding, GenerationConfig, Idefics3};

const TOLERANCE: f32 = 1e-4;

/// `(max_abs_logit_diff, generated_match)` for one fixture folder.
fn run_fixture(folder: &Path) -> Result<(f32, bool), String> {
    if !folder.is_dir() {
        return Err(format!(
            "fixture folder {} does not exist",
            folder.display()
        ));
    }
    let device = Default::default();
    let model = Idefics3::<Cpu>::load(&folder.join("model"), &device).map_err(|e| e.to_string())?;
    let input = fixture_input(folder, &device)?;
    let expected = folder.join("expected.safetensors");
    let (logit_shape, expected_logits) = read_f32(&expected, "logits")?;
    let (gen_shape, expected_generated) = read_i64(&expected, "generated")?;

    let logits = model.forward(&input).map_err(|e| e.to_string())?;
    if logits.dims().to_vec() != logit_shape {
        return Err(format!(
            "logits shape {:?}, expected {logit_shape:?}",
            logits.dims()
        ));
    }
    let diff = max_abs_diff(&values(logits), &expected_logits);

    let [batch, new_tokens] = [gen_shape[0], gen_shape[1]];
    let config = GenerationConfig {
        max_new_tokens: new_tokens,
        eos_token_ids: Vec::new(),
        decoding: Decoding::Greedy,
    };
    let generated = model
        .generate(&input, &config, |_, _| false)
        .map_err(|e| e.to_string())?;
    let matches = generated.len() == batch
        && generated.iter().enumerate().all(|(row, seq)| {
            let want = &expected_generated[row * new_tokens..(row + 1) * new_tokens];
            seq.tokens
                .iter()
                .map(|&t| t as i64)
                .eq(want.iter().copied())
        });
    Ok((diff, matches))
}

#[test]
fn parity() {
    let folders = parity_fixtures();
    assert!(!folders.is_empty(), "no parity fixtures found");
    let mut failures = Vec::new();
    for folder in &folders {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match run_fixture(folder) {
            Ok((diff, matches)) => {
                println!("parity {name}: max_abs_logit_diff={diff:e} generated_match={matches}");
                let within = diff <= TOLERANCE; // false for NaN
                if !within || !matches {
                    failures.push(format!("{name}: diff {diff:e}, generated_match {matches}"));
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
