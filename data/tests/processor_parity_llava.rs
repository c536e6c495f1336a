//! Parity of the Rust processor with HF's `LlavaProcessor` (PIL `CLIPImageProcessor` /
//! `LlavaImageProcessor`) on the fixtures made by tools/make_processor_fixtures.py: rendered
//! prompts and input_ids identical in the hub's and transformers 5's folder layouts, with and
//! without pad-to-square, pixels equal for lossless inputs and within 0.01 mean absolute
//! difference for the JPEG, llava-1.5's real 336/14 settings (576 tokens) checked on statistics
//! and a strided sample, training labels as derived in Python, and the folders written back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safeaware_data::processor::{
    ClipImageProcessorConfig, Encoded, Family, LlavaParts, Message, Part, Processor, Role,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/processor_llava")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cases() -> Vec<Value> {
    read_json(&fixtures().join("cases.json"))
        .as_array()
        .unwrap()
        .clone()
}

/// HF-style messages of a case, with `{"type": "image"}` parts taking the case's images in order.
fn messages(case: &Value) -> Vec<Message> {
    let mut images = case["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| fixtures().join(p.as_str().unwrap()));
    let message = |m: &Value| {
        let role = match m["role"].as_str().unwrap() {
            "system" => Role::System,
            "user" => Role::User,
            _ => Role::Assistant,
        };
        let parts = m["content"].as_array().unwrap().iter();
        let content = parts
            .map(|p| match p["type"].as_str().unwrap() {
                "image" => Part::image(images.next().expect("an image per placeholder")),
                _ => Part::text(p["text"].as_str().unwrap()),
            })
            .collect();
        Message::new(role, content)
    };
    case["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(message)
        .collect()
}

fn load_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("pixel_values").unwrap();
    let values = t.data().chunks_exact(4);
    values
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn ints<T: TryFrom<i64>>(v: &Value) -> Vec<T>
where
    T::Error: std::fmt::Debug,
{
    let items = v.as_array().unwrap().iter();
    items
        .map(|x| T::try_from(x.as_i64().unwrap()).unwrap())
        .collect()
}

/// (mean, max) absolute difference.
fn diff(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs());
    let (sum, max) = d.fold((0.0, 0.0f64), |(s, m), v| (s + v, m.max(v)));
    (sum / a.len().max(1) as f64, max)
}

/// Encodes a case as HF did: the generation prompt, or the training conversation.
fn encode(processor: &Processor, case: &Value) -> Encoded {
    let msgs = messages(case);
    let name = case["name"].as_str().unwrap();
    let generation = case["add_generation_prompt"].as_bool().unwrap();
    let rendered = processor.render(&msgs, generation).unwrap();
    assert_eq!(rendered, case["prompt"].as_str().unwrap(), "{name}: prompt");
    if generation {
        processor.encode_prompt(&msgs).unwrap()
    } else {
        processor.encode_training(&msgs).unwrap()
    }
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
    Some((check_sampled(&enc, case), lossless))
}

/// The 336 case: statistics per image and every `stride`-th value.
fn check_sampled(enc: &Encoded, case: &Value) -> (f64, f64) {
    let name = case["name"].as_str().unwrap();
    let stride = case["pixel_sample_stride"].as_u64().unwrap() as usize;
    let per_image = enc.pixel_values.len() / enc.num_tiles();
    let (mut mad, mut max) = (0.0f64, 0.0f64);
    for (k, stats) in case["pixel_stats"].as_array().unwrap().iter().enumerate() {
        let values = &enc.pixel_values[k * per_image..(k + 1) * per_image];
        let n = values.len() as f64;
        let mean = values.iter().map(|v| *v as f64).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|v| (*v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            (mean - stats["mean"].as_f64().unwrap()).abs() < 1e-4,
            "{name}: mean"
        );
        assert!(
            (var.sqrt() - stats["std"].as_f64().unwrap()).abs() < 1e-4,
            "{name}: std"
        );
        let sample: Vec<f32> = values.iter().step_by(stride).copied().collect();
        let file = case["pixel_samples"][k].as_str().unwrap();
        let (m, x) = diff(&sample, &load_f32(&fixtures().join(file)));
        (mad, max) = (mad.max(m), max.max(x));
    }
    (mad, max)
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
        c.insert("model_type".into(), "qwen2_vl".into());
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("qwen2_vl") && e.contains("llava") && e.contains("idefics3"),
        "{e}"
    );

    let dir = copy("clip.hub");
    edit_json(&dir.path().join("processor_config.json"), |c| {
        c.insert("image_token".into(), "<img>".into());
    });
    let e = load_err(dir.path());
    assert!(e.contains("<img>"), "{e}");
}
