//! `safeaware doctor` on the CPU: it lists backends and devices, checks the parity fixtures
//! built into the binary (one `parity <name>: …` line each) and any `--fixtures` folder, times
//! the model, and fails with the fixture's name when a fixture disagrees with the model.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{safeaware, text};
use serde_json::Value;

fn shipped_fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/tests/fixtures/parity");
    safeaware_model::parity::fixture_folders(&root)
}

/// Copies fixture folder `from` into `to`.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).unwrap();
        }
    }
}

/// Adds `delta` to the first value of f32 tensor `name` in safetensors file `path`.
fn nudge_first_value(path: &Path, name: &str, delta: f32) {
    let mut bytes = fs::read(path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let start = 8 + header_len + header[name]["data_offsets"][0].as_u64().unwrap() as usize;
    let value = f32::from_le_bytes(bytes[start..start + 4].try_into().unwrap()) + delta;
    bytes[start..start + 4].copy_from_slice(&value.to_le_bytes());
    fs::write(path, bytes).unwrap();
}

#[test]
fn doctor_passes_on_the_cpu_with_a_parity_line_per_shipped_fixture() {
    let out = safeaware(&["doctor", "--device", "cpu"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("backends built in: cpu"), "{all}");
    let fixtures = shipped_fixtures();
    assert!(fixtures.len() >= 5, "{fixtures:?}");
    for folder in fixtures {
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        let line = all
            .lines()
            .find(|l| l.contains(&format!("parity {name}: max_abs_logit_diff=")))
            .unwrap_or_else(|| panic!("no parity line for {name}:\n{all}"));
        assert!(
            line.starts_with("ok") && line.ends_with("generated_match=true"),
            "{line}"
        );
    }
    assert!(
        all.contains("ok   training: skipped: the device is the CPU"),
        "{all}"
    );
    assert!(all.contains("ok   timing: tiny: train step"), "{all}");
    // One check per fixture, plus the device, training and timing checks.
    let checks = shipped_fixtures().len() + 3;
    assert!(
        all.contains(&format!("doctor: all {checks} checks passed on cpu")),
        "{all}"
    );
}

#[test]
fn a_wrong_or_broken_fixture_fails_doctor_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let source = &shipped_fixtures()[0];
    let wrong = tmp.path().join("wrong_logits");
    copy_dir(source, &wrong);
    nudge_first_value(&wrong.join("expected.safetensors"), "logits", 0.5);
    let broken = tmp.path().join("no_inputs");
    copy_dir(source, &broken);
    fs::remove_file(broken.join("inputs.safetensors")).unwrap();

    let out = safeaware(&[
        "doctor",
        "--device",
        "cpu",
        "--fixtures",
        wrong.to_str().unwrap(),
        "--fixtures",
        broken.to_str().unwrap(),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The shipped fixtures, the two given, and the device, training and timing checks.
    let checks = shipped_fixtures().len() + 2 + 3;
    assert!(
        stderr.contains(&format!("2 of {checks} checks failed on cpu")),
        "{stderr}"
    );
    assert!(
        stderr.contains("parity wrong_logits: max_abs_logit_diff="),
        "{stderr}"
    );
    assert!(stderr.contains("parity no_inputs: reading"), "{stderr}");
    assert!(stderr.contains("inputs.safetensors"), "{stderr}");

    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["passed"], false);
    let checks = report["checks"].as_array().unwrap();
    let wrong = checks
        .iter()
        .find(|c| c["name"] == "parity wrong_logits")
        .unwrap();
    assert_eq!(wrong["ok"], false);
    assert_eq!(wrong["generated_match"], true);
    let diff = wrong["max_abs_logit_diff"].as_f64().unwrap();
    assert!((diff - 0.5).abs() < 1e-3, "{diff}");
}
