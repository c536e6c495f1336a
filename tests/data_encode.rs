//! End-to-end tests of `safeaware data encode` on the processor fixtures of safeaware-data
//! (made by tools/make_processor_fixtures.py with HF's processors): the tensors written with
//! `--out` match HF's `processor(text=…, images=…)` (ids identical, pixels within 0.01 mean
//! absolute difference, HF's shapes), for a LLaVA, a SmolVLM and a Qwen2-VL folder (with its
//! `image_grid_thw`); the text and JSON summaries; errors.

mod common;

use std::path::{Path, PathBuf};

use common::{safeaware, text};
use serde_json::Value;

fn fixtures(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/tests/fixtures")
        .join(family)
}

fn case(family: &str, name: &str) -> Value {
    let cases: Value =
        serde_json::from_slice(&std::fs::read(fixtures(family).join("cases.json")).unwrap())
            .unwrap();
    let found = cases.as_array().unwrap().iter().find(|c| c["name"] == name);
    found.unwrap_or_else(|| panic!("no case {name}")).clone()
}

/// A tensor of a safetensors file: shape and raw little-endian bytes.
fn tensor(path: &Path, name: &str) -> (Vec<usize>, String, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    (
        t.shape().to_vec(),
        format!("{:?}", t.dtype()),
        t.data().to_vec(),
    )
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    let chunks = bytes.chunks_exact(4);
    chunks
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn i64s(bytes: &[u8]) -> Vec<i64> {
    let chunks = bytes.chunks_exact(8);
    chunks
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn mad(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .sum();
    sum / a.len() as f64
}

/// Runs `data encode` for a fixture case's folder, image and text; returns the --out file.
fn encode(dir: &Path, folder: &Path, case: &Value) -> PathBuf {
    let image = folder_root(folder).join(case["images"][0].as_str().unwrap());
    let prompt = case["messages"][0]["content"][1]["text"].as_str().unwrap();
    let out = dir.join("encoded.safetensors");
    let o = safeaware(&[
        "data",
        "encode",
        "--model",
        folder.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--prompt",
        prompt,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("{:?}", case["prompt"].as_str().unwrap())),
        "{}",
        text(&o)
    );
    out
}

/// The fixtures folder a processor folder's images are relative to.
fn folder_root(folder: &Path) -> PathBuf {
    if folder.join("cases.json").exists() {
        folder.to_path_buf()
    } else {
        folder.parent().unwrap().to_path_buf()
    }
}

fn expected_ids(case: &Value) -> Vec<i64> {
    let ids = case["input_ids"].as_array().unwrap().iter();
    ids.map(|v| v.as_i64().unwrap()).collect()
}

#[test]
fn llava_encoding_matches_hf() {
    let dir = tempfile::tempdir().unwrap();
    let case = case("processor_llava", "clip.hub/image_first/landscape_odd");
    let folder = fixtures("processor_llava").join("clip.hub");
    let out = encode(dir.path(), &folder, &case);
    let (shape, dtype, ids) = tensor(&out, "input_ids");
    assert_eq!(
        (shape, dtype.as_str()),
        (vec![1, expected_ids(&case).len()], "I64")
    );
    assert_eq!(i64s(&ids), expected_ids(&case));
    let (shape, _, mask) = tensor(&out, "attention_mask");
    assert_eq!(shape, vec![1, ids.len() / 8]);
    assert!(i64s(&mask).iter().all(|m| *m == 1));
    let (shape, dtype, pixels) = tensor(&out, "pixel_values");
    assert_eq!((shape, dtype.as_str()), (vec![1, 3, 28, 28], "F32"));
    let file = fixtures("processor_llava").join(case["pixels"][0].as_str().unwrap());
    let (_, _, expected) = tensor(&file, "pixel_values");
    let m = mad(&f32s(&pixels), &f32s(&expected));
    assert!(m < 0.01, "pixel MAD {m}");
    eprintln!("llava clip.hub landscape_odd: pixel MAD {m:.2e}");
}

#[test]
fn qwen2_vl_encoding_writes_hf_patches_and_grid() {
    let dir = tempfile::tempdir().unwrap();
    let case = case("processor_qwen2_vl", "small.v5/image_first/large_rgb");
    let folder = fixtures("processor_qwen2_vl").join("small.v5");
    let out = encode(dir.path(), &folder, &case);
    let (_, _, ids) = tensor(&out, "input_ids");
    assert_eq!(i64s(&ids), expected_ids(&case));
    let (shape, dtype, grid) = tensor(&out, "image_grid_thw");
    assert_eq!((shape, dtype.as_str()), (vec![1, 3], "I64"));
    let want = case["image_grid_thw"][0].as_array().unwrap().iter();
    assert_eq!(
        i64s(&grid),
        want.map(|v| v.as_i64().unwrap()).collect::<Vec<_>>()
    );
    let (shape, _, pixels) = tensor(&out, "pixel_values");
    let file = fixtures("processor_qwen2_vl").join(case["pixels"][0].as_str().unwrap());
    let (expected_shape, _, expected) = tensor(&file, "pixel_values");
    assert_eq!(shape, expected_shape);
    assert_eq!(f32s(&pixels), f32s(&expected));
}

#[test]
fn smolvlm_encoding_matches_hf() {
    let dir = tempfile::tempdir().unwrap();
    let case = case("processor", "image_first/large_rgb");
    let out = encode(dir.path(), &fixtures("processor"), &case);
    let (_, _, ids) = tensor(&out, "input_ids");
    assert_eq!(i64s(&ids), expected_ids(&case));
    let (shape, _, pixels) = tensor(&out, "pixel_values");
    let n = case["pixel_shape"][0].as_u64().unwrap() as usize;
    assert_eq!(shape, vec![1, n, 3, 64, 64]);
    let file = fixtures("processor").join(case["pixels"][0].as_str().unwrap());
    let (_, _, expected) = tensor(&file, "pixel_values");
    let m = mad(&f32s(&pixels), &f32s(&expected));
    assert!(m < 0.01, "pixel MAD {m}");
    eprintln!("smolvlm large_rgb: pixel MAD {m:.2e}");
    let (shape, dtype, mask) = tensor(&out, "pixel_attention_mask");
    assert_eq!((shape, dtype.as_str()), (vec![1, n, 64, 64], "I64"));
    assert!(i64s(&mask).iter().all(|m| *m == 1));
}

#[test]
fn summaries_compress_the_image_tokens() {
    let folder = fixtures("processor_llava").join("clip336.hub");
    let image = fixtures("processor_llava").join("images/large_rgb.png");
    let args = [
        "data",
        "encode",
        "--model",
        folder.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--prompt",
        "Is this scene safe for a child?",
    ];
    let o = safeaware(&args);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("\"<image>\" ×576") && t.contains("[1, 3, 336, 336]"),
        "{t}"
    );
    let o = safeaware(&[&args[..], &["--json"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["family"], "llava");
    let image_run = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["count"] == 576);
    assert_eq!(image_run.unwrap()["token"], "<image>");
    let case = case("processor_llava", "clip336.hub/image_first/large_rgb");
    assert_eq!(v["num_tokens"], case["input_ids"].as_array().unwrap().len());
    let stats = &v["pixel_values"]["stats"];
    let mean = case["pixel_stats"][0]["mean"].as_f64().unwrap();
    assert!(
        (stats["mean"].as_f64().unwrap() - mean).abs() < 1e-4,
        "{stats}"
    );
}

#[test]
fn errors_name_the_input_and_exit_1() {
    let folder = fixtures("processor_llava").join("clip.hub");
    let o = safeaware(&[
        "data",
        "encode",
        "--model",
        folder.to_str().unwrap(),
        "--image",
        "/nonexistent/photo.png",
        "--prompt",
        "hi",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("photo.png"), "{}", text(&o));
    let o = safeaware(&[
        "data",
        "encode",
        "--model",
        "/nonexistent/model",
        "--image",
        "x.png",
        "--prompt",
        "hi",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("/nonexistent/model"), "{}", text(&o));
}
