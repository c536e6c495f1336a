//! Parity of the Rust processor with HF's `LlavaProcessor` (PIL `CLIPImageProcessor` /
//! `LlavaImageProcessor`) on the fixtures made by tools/make_processor_fixtures.py: rendered
//! prompts and input_ids identical in the hub's and transformers 5's folder layouts, with and
//! without pad-to-square, pixels equal for lossless inputs and within 0.01 mean absolute
//! difference for the JPEG, llava-1.5's real 336/14 settings (576 tokens) checked on statistics
//! and a strided sample, training labels as derived in Python, and the folders written back.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safeaware_data::processor::{ClipImageProcessorConfig, Family, LlavaParts, Processor};
use serde_json::Value;
use support::{check_sampled, diff, ints, load_f32, read_json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/processor_llava")
}

fn cases() -> Vec<Value> {
    support::cases(&fixtures())
}

fn encode(processor: &Processor, case: &Value) -> safeaware_data::processor::Encoded {
    support::encode(&fixtures(), processor, case)
}

/// Checks one case's ids, labels and pixels; returns the pixels' (MAD, max) and whether the
/// images are lossless.
fn check_case(processor: &Processor, case: &Value) -> Option<((f64, f64), bool)> {
    let name = case["name"].as_str().unwrap();
    let enc = encode(processor, case);
    assert_eq!(
        enc.input_ids,
        ints::<u32>(&case["input_ids"]),
        "{name}: input_ids"
    );
    assert!(case["attention_mask"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m == 1));
    if let Some(labels) = case.get("labels") {
        assert_eq!(
            enc.labels.as_ref().unwrap(),
            &ints::<i64>(labels),
            "{name}: labels"
        );
    }
    let Some(shape) = case.get("pixel_shape") else {
        assert_eq!(enc.num_tiles(), 0, "{name}");
        return None;
    };
    assert_eq!(
        enc.pixel_shape.to_vec(),
        ints::<usize>(shape),
        "{name}: pixel_shape"
    );
    let lossless = !case["images"].to_string().contains(".jpg");
    if let Some(files) = case.get("pixels") {
        let files = files.as_array().unwrap().iter();
        let expected: Vec<f32> = files
            .flat_map(|f| load_f32(&fixtures().join(f.as_str().unwrap())))
            .collect();
        return Some((diff(&enc.pixel_values, &expected), lossless));
    }
    let per_image = enc.pixel_values.len() / enc.num_tiles();
    let images: Vec<&[f32]> = enc.pixel_values.chunks(per_image).collect();
    Some((check_sampled(&fixtures(), &images, case), lossless))
}

fn processors() -> HashMap<String, Processor> {
    let mut out = HashMap::new();
    for case in cases() {
        let folder = case["folder"].as_str().unwrap().to_string();
        out.entry(folder.clone()).or_insert_with(|| {
            let p =
                Processor::from_folder(&fixtures().join(&folder)).expect("fixture folder loads");
            assert_eq!(p.family(), Family::Llava, "{folder}");
            p
        });
    }
    out
}

#[test]
fn processor_matches_hf_on_every_llava_fixture_case() {
    let processors = processors();
    let mut worst: HashMap<String, (f64, f64)> = HashMap::new();
    for case in cases() {
        let folder = case["folder"].as_str().unwrap();
        let name = case["name"].as_str().unwrap();
        let Some(((mad, max), lossless)) = check_case(&processors[folder], &case) else {
            continue;
        };
        assert!(mad < 0.01, "{name}: pixel MAD {mad}");
        if lossless {
            assert!(max <= 1e-6, "{name}: lossless input, pixel max diff {max}");
        }
        let key = format!("{folder}{}", if lossless { "" } else { " (jpeg)" });
        let w = worst.entry(key).or_default();
        *w = (w.0.max(mad), w.1.max(max));
    }
    let mut report: Vec<_> = worst.into_iter().collect();
    report.sort_by(|a, b| a.0.cmp(&b.0));
    for (folder, (mad, max)) in report {
        eprintln!("{folder}: worst pixel MAD {mad:.2e}, max {max:.2e}");
    }
}

#[test]
fn llava_1_5_settings_give_576_image_tokens() {
    let p = Processor::from_folder(&fixtures().join("clip336.hub")).unwrap();
    assert_eq!(p.image_seq_len(), 576);
    assert_eq!(p.frame_size(), (336, 336));
    let case = cases()
        .into_iter()
        .find(|c| c["folder"] == "clip336.hub")
        .unwrap();
    let enc = encode(&p, &case);
    let image = p.special_tokens().image;
    assert_eq!(enc.input_ids.iter().filter(|t| **t == image).count(), 576);
}

#[test]
fn saved_folders_load_back_and_match_the_hub_layout() {
    for folder in ["clip.v5", "pad.v5", "clip.hub", "full.hub"] {
        let p = Processor::from_folder(&fixtures().join(folder)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        p.save(dir.path()).unwrap();
        let again = Processor::from_folder(dir.path()).unwrap();
        // Saving adds processor_class, which transformers 5 keeps out of a nested config.
        let image_config = |p: &Processor| {
            let mut c = p.image_processor().as_clip().unwrap().config().clone();
            c.extra.remove("processor_class");
            c
        };
        assert_eq!(image_config(&again), image_config(&p), "{folder}");
        assert_eq!(again.processor_config(), p.processor_config(), "{folder}");
        assert_eq!(again.chat_template().source(), p.chat_template().source());
        // The hub folders were loaded by AutoProcessor when made; the saved files say the same.
        let hub = fixtures().join(folder.replace(".v5", ".hub"));
        for file in [
            "preprocessor_config.json",
            "processor_config.json",
            "chat_template.json",
        ] {
            let saved = read_json(&dir.path().join(file));
            assert_eq!(saved, read_json(&hub.join(file)), "{folder}: {file}");
        }
    }
}

#[test]
fn in_memory_parts_encode_like_the_folder() {
    let folder = fixtures().join("pad.hub");
    let p = Processor::from_folder(&folder).unwrap();
    let image_config: ClipImageProcessorConfig =
        serde_json::from_value(read_json(&folder.join("preprocessor_config.json"))).unwrap();
    let parts = Processor::from_llava_parts(LlavaParts {
        tokenizer: p.tokenizer().clone(),
        tokenizer_config: p.tokenizer_config().clone(),
        image_config,
        processor_config: p.processor_config().as_llava().unwrap().clone(),
        image_seq_length: None,
        chat_template: None, // llava-hf's template, the one the fixtures use
    })
    .unwrap();
    for case in cases().iter().filter(|c| c["folder"] == "pad.hub") {
        assert_eq!(encode(&parts, case), encode(&p, case), "{}", case["name"]);
    }
}

/// A copy of a fixture folder to break.
fn copy(folder: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join(folder)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let mut value = read_json(path);
    edit(value.as_object_mut().unwrap());
    std::fs::write(path, serde_json::to_string(&value).unwrap()).unwrap();
}

fn load_err(dir: &Path) -> String {
    let result = Processor::from_folder(dir);
    result.map(|_| ()).unwrap_err().to_string()
}

#[test]
fn token_count_falls_back_to_the_model_config() {
    let dir = copy("clip.hub");
    let processor_config = dir.path().join("processor_config.json");
    edit_json(&processor_config, |c| {
        c.remove("patch_size");
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("patch_size") && e.contains("image_seq_length"),
        "{e}"
    );
    edit_json(&dir.path().join("config.json"), |c| {
        c.insert("image_seq_length".into(), 4.into());
    });
    let p = Processor::from_folder(dir.path()).unwrap();
    let case = cases()
        .into_iter()
        .find(|c| c["folder"] == "clip.hub")
        .unwrap();
    assert_eq!(encode(&p, &case).input_ids, ints::<u32>(&case["input_ids"]));
}

#[test]
fn broken_folders_are_named_in_errors() {
    let dir = copy("clip.hub");
    let path = dir.path().join("preprocessor_config.json");
    std::fs::write(&path, "{\"size\": ").unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("preprocessor_config.json") && e.contains("line"),
        "{e}"
    );
    let dir = copy("clip.hub");
    std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("tokenizer.json"), "{e}");
}

#[test]
fn bad_values_and_families_are_reported() {
    let dir = copy("clip.hub");
    let pre = dir.path().join("preprocessor_config.json");
    edit_json(&pre, |c| {
        c.insert("crop_size".into(), serde_json::json!({"height": 28}));
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("preprocessor_config.json") && e.contains("crop_size"),
        "{e}"
    );

    let dir = copy("clip.v5");
    edit_json(&dir.path().join("processor_config.json"), |c| {
        c.remove("image_processor");
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("preprocessor_config.json") && e.contains("image_processor"),
        "{e}"
    );

    let dir = copy("clip.hub");
    edit_json(&dir.path().join("config.json"), |c| {
        c.insert("image_token_index".into(), 7.into());
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("config.json") && e.contains("image_token_index"),
        "{e}"
    );

    let dir = copy("clip.hub");
    edit_json(&dir.path().join("config.json"), |c| {
        c.insert("model_type".into(), "llava_next".into());
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("llava_next") && e.contains("qwen2_vl") && e.contains("idefics3"),
        "{e}"
    );

    let dir = copy("clip.hub");
    edit_json(&dir.path().join("processor_config.json"), |c| {
        c.insert("image_token".into(), "<img>".into());
    });
    let e = load_err(dir.path());
    assert!(e.contains("<img>"), "{e}");
}
