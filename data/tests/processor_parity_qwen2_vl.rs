//! Parity of the Rust processor with HF's `Qwen2VLProcessor` (PIL `Qwen2VLImageProcessor`) on the
//! fixtures made by tools/make_processor_fixtures.py (`--only qwen2_vl`): rendered prompts (the
//! template's `namespace()` included), input_ids and `image_grid_thw` identical in the hub's and
//! transformers 5's folder layouts; pixels equal for lossless inputs and within 0.01 mean absolute
//! difference for the JPEG; HF's default bounds checked on statistics and a strided sample;
//! training labels as derived in Python; folders written back; bad input named in errors.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use safeaware_data::processor::{
    Encoded, Family, ImageSource, Processor, Qwen2VlImageProcessorConfig, Qwen2VlParts,
};
use serde_json::Value;
use support::{check_sampled, diff, ints, load_f32, read_json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/processor_qwen2_vl")
}

fn cases() -> Vec<Value> {
    support::cases(&fixtures())
}

fn encode(processor: &Processor, case: &Value) -> Encoded {
    support::encode(&fixtures(), processor, case)
}

fn processors() -> HashMap<String, Processor> {
    let mut out = HashMap::new();
    for case in cases() {
        let folder = case["folder"].as_str().unwrap().to_string();
        out.entry(folder.clone()).or_insert_with(|| {
            let p = Processor::from_folder(&fixtures().join(&folder)).expect("fixture loads");
            assert_eq!(p.family(), Family::Qwen2Vl, "{folder}");
            p
        });
    }
    out
}

/// Each image's pixels in `enc`, split by its grid's patch count.
fn per_image(enc: &Encoded) -> Vec<&[f32]> {
    let patch = enc.pixel_shape[1] * enc.pixel_shape[2] * enc.pixel_shape[3];
    let mut rest = enc.pixel_values.as_slice();
    let mut out = Vec::new();
    for [t, h, w] in &enc.image_grid_thw {
        let (image, tail) = rest.split_at(t * h * w * patch);
        out.push(image);
        rest = tail;
    }
    assert!(rest.is_empty(), "pixels beyond the grids");
    out
}

/// Checks one case's ids, grids, labels and pixels; returns the pixels' (MAD, max).
fn check_case(processor: &Processor, case: &Value) -> Option<(f64, f64)> {
    let name = case["name"].as_str().unwrap();
    let enc = encode(processor, case);
    assert_eq!(
        enc.input_ids,
        ints::<u32>(&case["input_ids"]),
        "{name}: ids"
    );
    if let Some(labels) = case.get("labels") {
        let expected = ints::<i64>(labels);
        assert_eq!(enc.labels.as_ref().unwrap(), &expected, "{name}: labels");
    }
    let Some(grids) = case.get("image_grid_thw") else {
        assert_eq!(
            (enc.num_tiles(), enc.image_grid_thw.len()),
            (0, 0),
            "{name}"
        );
        return None;
    };
    let grids: Vec<Vec<usize>> = grids.as_array().unwrap().iter().map(ints).collect();
    let ours: Vec<Vec<usize>> = enc.image_grid_thw.iter().map(|g| g.to_vec()).collect();
    assert_eq!(ours, grids, "{name}: image_grid_thw");
    // HF's [patches, C·T·P·P] is our [patches, 3, T·P, P].
    let shape = ints::<usize>(&case["pixel_shape"]);
    let [n, c, h, w] = enc.pixel_shape;
    assert_eq!(vec![n, c * h * w], shape, "{name}: pixel_shape");
    if let Some(files) = case.get("pixels") {
        let files = files.as_array().unwrap().iter();
        let expected: Vec<f32> = files
            .flat_map(|f| load_f32(&fixtures().join(f.as_str().unwrap())))
            .collect();
        return Some(diff(&enc.pixel_values, &expected));
    }
    Some(check_sampled(&fixtures(), &per_image(&enc), case))
}

#[test]
fn processor_matches_hf_on_every_qwen2_vl_fixture_case() {
    let processors = processors();
    let mut checked = 0;
    for case in cases() {
        let folder = case["folder"].as_str().unwrap();
        let name = case["name"].as_str().unwrap();
        let Some((mad, max)) = check_case(&processors[folder], &case) else {
            continue;
        };
        checked += 1;
        assert!(mad < 0.01, "{name}: pixel MAD {mad}");
        if !case["images"].to_string().contains(".jpg") {
            assert!(max <= 1e-6, "{name}: lossless input, pixel max diff {max}");
        }
    }
    assert!(checked >= 40, "only {checked} cases with images");
}

#[test]
fn image_tokens_follow_each_images_grid() {
    let p = Processor::from_folder(&fixtures().join("default.hub")).unwrap();
    let case = cases()
        .into_iter()
        .find(|c| c["folder"] == "default.hub" && c["name"].to_string().contains("large_rgb"))
        .unwrap();
    let enc = encode(&p, &case);
    let image = p.special_tokens().image;
    let tokens = enc.input_ids.iter().filter(|t| **t == image).count();
    let merged: usize = enc
        .image_grid_thw
        .iter()
        .map(|[t, h, w]| t * h * w / 4)
        .sum();
    assert_eq!(tokens, merged);
    assert!(
        merged > 16,
        "the default bounds keep large images large: {merged}"
    );
}

#[test]
fn saved_folders_load_back_in_the_hub_layout() {
    for folder in ["small.v5", "small.hub", "default.v5"] {
        let p = Processor::from_folder(&fixtures().join(folder)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        p.save(dir.path()).unwrap();
        let again = Processor::from_folder(dir.path()).unwrap();
        // Saving adds processor_class, which transformers 5 keeps out of a nested config.
        let config = |p: &Processor| {
            let mut c = p.image_processor().as_qwen2_vl().unwrap().config().clone();
            c.extra.remove("processor_class");
            c
        };
        assert_eq!(config(&again), config(&p), "{folder}");
        assert_eq!(again.processor_config(), p.processor_config(), "{folder}");
        assert_eq!(again.chat_template().source(), p.chat_template().source());
        let saved = read_json(&dir.path().join("preprocessor_config.json"));
        assert_eq!(saved["processor_class"], "Qwen2VLProcessor", "{folder}");
        for case in cases().iter().filter(|c| c["folder"] == folder) {
            assert_eq!(encode(&again, case), encode(&p, case), "{}", case["name"]);
        }
    }
}

#[test]
fn in_memory_parts_encode_like_the_folder() {
    let folder = fixtures().join("small.hub");
    let p = Processor::from_folder(&folder).unwrap();
    let image_config: Qwen2VlImageProcessorConfig =
        serde_json::from_value(read_json(&folder.join("preprocessor_config.json"))).unwrap();
    let parts = Processor::from_qwen2_vl_parts(Qwen2VlParts {
        tokenizer: p.tokenizer().clone(),
        tokenizer_config: p.tokenizer_config().clone(),
        image_config,
        processor_config: Default::default(),
        chat_template: None, // the built-in template is the one the fixtures use
    })
    .unwrap();
    for case in cases().iter().filter(|c| c["folder"] == "small.hub") {
        assert_eq!(encode(&parts, case), encode(&p, case), "{}", case["name"]);
    }
}

#[test]
fn extreme_aspect_ratios_and_broken_configs_are_named() {
    let p = Processor::from_folder(&fixtures().join("small.hub")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let strip = dir.path().join("strip.png");
    RgbImage::from_pixel(403, 2, Rgb([9, 9, 9]))
        .save(&strip)
        .unwrap();
    let source = ImageSource::Path(strip.clone());
    let e = p
        .image_processor()
        .process_source(&source)
        .unwrap_err()
        .to_string();
    assert!(e.contains("strip.png") && e.contains("aspect ratio"), "{e}");
    std::fs::remove_file(strip).unwrap();

    for entry in std::fs::read_dir(fixtures().join("small.hub")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let pre = dir.path().join("preprocessor_config.json");
    let mut value = read_json(&pre);
    value["max_pixels"] = 10.into();
    std::fs::write(&pre, value.to_string()).unwrap();
    let e = Processor::from_folder(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("preprocessor_config.json") && e.contains("min_pixels"),
        "{e}"
    );

    value["max_pixels"] = 3136.into();
    std::fs::write(&pre, value.to_string()).unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"model_type": "qwen2_vl", "image_token_id": 3}"#,
    )
    .unwrap();
    let e = Processor::from_folder(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("config.json") && e.contains("image_token_id"),
        "{e}"
    );
}
