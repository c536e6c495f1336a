//! A GPU backend without its device: the CUDA driver library absent (as on every CPU machine, CI
//! included) or every GPU hidden (`CUDA_VISIBLE_DEVICES=""` on a GPU box), or no Vulkan adapter
//! (every driver manifest hidden with `VK_ICD_FILENAMES`, on lavapipe and real GPUs alike). Every command that would
//! touch the device prints one paragraph saying what is missing, exits with status 2, panics
//! nowhere and writes nothing. These tests run in binaries built with the `cuda` / `wgpu`
//! features (the README's test command builds both).

#![cfg(any(feature = "cuda", feature = "wgpu"))]

mod common;

use std::path::Path;
use std::process::Output;

use common::{safeaware_with_env, text};

/// `safeaware` with `args` and extra environment, asking for backtraces (none may appear).
fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut envs = envs.to_vec();
    envs.push(("RUST_BACKTRACE", "1"));
    safeaware_with_env(args, &envs)
}

/// Runs `train`, `eval`, `bench` and `doctor` on `device` and checks each refusal; `expect` is
/// the start of the error paragraph.
fn assert_refused_everywhere(device: &str, envs: &[(&str, &str)], expect: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.toml");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("model/tests/fixtures/parity/idefics3_tied_gqa_sf2_b2_1tile/model");
    let run_dir = tmp.path().join("run");
    let eval_dir = tmp.path().join("eval");
    let set_device = format!("train.device={device}");
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "train",
            "--recipe",
            recipe.to_str().unwrap(),
            "--out",
            run_dir.to_str().unwrap(),
            "--set",
            &set_device,
        ],
        vec![
            "eval",
            "--model",
            fixture.to_str().unwrap(),
            "--benchmark",
            "jsonl:/nonexistent-is-never-read.jsonl",
            "--out",
            eval_dir.to_str().unwrap(),
            "--device",
            device,
        ],
        vec!["bench", "train", "--model", "tiny", "--device", device],
        vec!["doctor", "--device", device],
    ];
    for args in commands {
        let out = run(&args, envs);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{}", text(&out));
        let error: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(error.len(), 1, "{args:?}: one error paragraph:\n{stderr}");
        assert!(error[0].starts_with(expect), "{args:?}:\n{stderr}");
        for noise in ["panicked", "RUST_BACKTRACE", "Stack backtrace", "Caused by"] {
            assert!(
                !stderr.contains(noise),
                "{args:?} printed {noise:?}:\n{stderr}"
            );
        }
    }
    assert!(!run_dir.exists(), "train wrote its run folder");
    assert!(!eval_dir.exists(), "eval wrote its output folder");
}

/// Whether the NVIDIA driver library is on the dynamic loader's path here (as the probe looks
/// for it: `ldconfig`'s cache or `LD_LIBRARY_PATH`).
#[cfg(feature = "cuda")]
fn nvidia_driver_installed() -> bool {
    let cached = std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("libcuda.so"))
        .unwrap_or(false);
    let on_path = std::env::var("LD_LIBRARY_PATH").is_ok_and(|dirs| {
        dirs.split(':').any(|d| {
            Path::new(d).join("libcuda.so.1").exists() || Path::new(d).join("libcuda.so").exists()
        })
    });
    cached || on_path
}

/// Every command refuses a CUDA device it cannot use: on a machine without the NVIDIA driver
/// (CI's) because the library is missing, on a GPU box because `CUDA_VISIBLE_DEVICES=""` hides
/// every GPU from the driver. An index past the GPUs found is refused the same way either way.
#[cfg(feature = "cuda")]
#[test]
fn cuda_without_a_usable_device_is_a_clear_error_for_every_command() {
    let reason = match nvidia_driver_installed() {
        // cuInit fails with no device visible, or the driver counts none.
        true => "error: device `cuda:0` cannot be used: the NVIDIA driver ",
        false => "error: device `cuda:0` cannot be used: the NVIDIA driver library was not found (looked for libcuda.so",
    };
    assert_refused_everywhere("cuda:0", &[("CUDA_VISIBLE_DEVICES", "")], reason);
    let out = run(
        &[
            "bench",
            "generate",
            "--model",
            "tiny",
            "--device",
            "cuda:4096",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let expected = match nvidia_driver_installed() {
        true => "the NVIDIA driver reports",
        false => "the NVIDIA driver library was not found",
    };
    assert!(
        text(&out).contains("device `cuda:4096` cannot be used: ") && text(&out).contains(expected),
        "{}",
        text(&out)
    );
}

/// No Vulkan driver manifest: a `wgpu` build names the missing adapter and how to check it.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_without_an_adapter_is_a_clear_error_for_every_command() {
    let nowhere = "/nonexistent/vulkan_icd.json";
    assert_refused_everywhere(
        "wgpu",
        &[("VK_ICD_FILENAMES", nowhere), ("VK_DRIVER_FILES", nowhere)],
        "error: device `wgpu` cannot be used: no Vulkan adapter was found",
    );
}
