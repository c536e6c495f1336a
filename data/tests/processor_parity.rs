//! Parity of the Rust processor with HF's `Idefics3Processor` (PIL backend) on the fixtures made
//! by tools/make_processor_fixtures.py: rendered prompts and input_ids identical, tile grids
//! identical, pixels within 0.01 mean absolute difference (and within 1e-6 on tiles that
//! involve no resampling), training labels as derived independently in Python, and Pillow's
//! resize reproduced exactly for every filter.

use std::path::{Path, PathBuf};

use image::RgbImage;
use safeaware_data::processor::{
    resize, Encoded, Grid, ImageProcessorConfig, ImageSource, Message, Part, Processor,
    ProcessorParts, Resample, Role,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/processor")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn split_processor() -> Processor {
    Processor::from_folder(&fixtures()).expect("fixture folder loads")
}

/// The same processor with image splitting off, built from in-memory parts.
fn nosplit_processor(split: &Processor) -> Processor {
    let config: ImageProcessorConfig = serde_json::from_value(read_json(
        &fixtures().join("nosplit_preprocessor_config.json"),
    ))
    .unwrap();
    Processor::from_parts(ProcessorParts {
        tokenizer: split.tokenizer().clone(),
        tokenizer_config: split.tokenizer_config().clone(),
        image_config: config,
        processor_config: split.processor_config().as_idefics3().unwrap().clone(),
        chat_template: Some(split.chat_template().source().to_string()),
    })
    .unwrap()
}

/// HF-style messages of a case, with `{"type": "image"}` parts taking the case's images in order.
fn messages(case: &Value) -> Vec<Message> {
    let mut images = case["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| fixtures().join(p.as_str().unwrap()));
    case["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let role = match m["role"].as_str().unwrap() {
                "system" => Role::System,
                "user" => Role::User,
                _ => Role::Assistant,
            };
            let content = m["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| match p["type"].as_str().unwrap() {
                    "image" => Part::image(images.next().expect("an image per placeholder")),
                    _ => Part::text(p["text"].as_str().unwrap()),
                })
                .collect();
            Message::new(role, content)
        })
        .collect()
}

fn load_f32(path: &Path) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("pixel_values").unwrap();
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (values, t.shape().to_vec())
}

fn ints<T: TryFrom<i64>>(v: &Value) -> Vec<T>
where
    T::Error: std::fmt::Debug,
{
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| T::try_from(x.as_i64().unwrap()).unwrap())
        .collect()
}

/// Compares one case; returns (mean abs diff, max abs diff) of its pixels.
fn check_case(processor: &Processor, case: &Value) -> (f64, f64) {
    let name = case["name"].as_str().unwrap();
    let msgs = messages(case);
    let generation = case["add_generation_prompt"].as_bool().unwrap();
    assert_eq!(
        processor.render(&msgs, generation).unwrap(),
        case["prompt"].as_str().unwrap(),
        "{name}: prompt"
    );
    let enc: Encoded = if generation {
        processor.encode_prompt(&msgs).unwrap()
    } else {
        processor.encode_training(&msgs).unwrap()
    };
    let ids: Vec<u32> = ints(&case["input_ids"]);
    assert_eq!(
        enc.input_ids.len(),
        ids.len(),
        "{name}: number of input_ids"
    );
    assert_eq!(enc.input_ids, ids, "{name}: input_ids");
    let rows: Vec<usize> = ints(&case["rows"]);
    let cols: Vec<usize> = ints(&case["cols"]);
    let grids: Vec<Grid> = rows
        .iter()
        .zip(&cols)
        .map(|(&rows, &cols)| Grid { rows, cols })
        .collect();
    assert_eq!(enc.grids, grids, "{name}: grids");
    match case.get("labels") {
        Some(labels) => assert_eq!(
            enc.labels.as_deref(),
            Some(&ints::<i64>(labels)[..]),
            "{name}: labels"
        ),
        None => assert!(enc.labels.is_none(), "{name}: prompts have no labels"),
    }

    let mut expected = Vec::new();
    for file in case["pixels"].as_array().unwrap() {
        expected.extend(load_f32(&fixtures().join(file.as_str().unwrap())).0);
    }
    if expected.is_empty() {
        assert_eq!(enc.num_tiles(), 0, "{name}: no images, no tiles");
        return (0.0, 0.0);
    }
    let shape: Vec<usize> = ints(&case["pixel_shape"]);
    assert_eq!(enc.pixel_shape.to_vec(), shape, "{name}: pixel shape");
    assert_eq!(
        enc.pixel_values.len(),
        expected.len(),
        "{name}: number of pixel values"
    );
    let diffs: Vec<f64> = enc
        .pixel_values
        .iter()
        .zip(&expected)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .collect();
    let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
    let max = diffs.iter().cloned().fold(0.0, f64::max);
    assert!(mean <= 0.01, "{name}: pixel mean abs diff {mean}");
    let tile_len = shape[1] * shape[2] * shape[3];
    for t in ints::<usize>(&case["exact_tiles"]) {
        let worst = diffs[t * tile_len..(t + 1) * tile_len]
            .iter()
            .cloned()
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-6,
            "{name}: unresized tile {t} differs by {worst}"
        );
    }
    (mean, max)
}

#[test]
fn processor_matches_hf_on_every_fixture_case() {
    let split = split_processor();
    let nosplit = nosplit_processor(&split);
    let cases = read_json(&fixtures().join("cases.json"));
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 20, "fixture set looks incomplete");
    for case in cases {
        let processor = if case["config"] == "nosplit" {
            &nosplit
        } else {
            &split
        };
        let (mean, max) = check_case(processor, case);
        println!(
            "{:<34} tokens {:>4}  pixel mean|diff| {:.3e}  max|diff| {:.3e}",
            case["name"].as_str().unwrap(),
            case["input_ids"].as_array().unwrap().len(),
            mean,
            max
        );
    }
}

#[test]
fn training_labels_cover_exactly_the_answer_and_its_end_of_utterance() {
    let processor = split_processor();
    let cases = read_json(&fixtures().join("cases.json"));
    let case = cases
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c.get("labels").is_some())
        .unwrap();
    let enc = processor.encode_training(&messages(case)).unwrap();
    let labels = enc.labels.unwrap();
    let learned: Vec<u32> = labels
        .iter()
        .filter(|l| **l >= 0)
        .map(|l| *l as u32)
        .collect();
    let text = processor.decode(&learned, false).unwrap();
    assert_eq!(
        text,
        " Unsafe: the knife is within reach of the toddler.<end_of_utterance>"
    );
    // The learned tokens are one contiguous run, followed only by masked template text.
    let first = labels.iter().position(|l| *l >= 0).unwrap();
    assert!(labels[first..first + learned.len()].iter().all(|l| *l >= 0));
    assert!(labels[first + learned.len()..].iter().all(|l| *l == -100));
    assert_eq!(
        *labels.last().unwrap(),
        -100,
        "the template's trailing newline is not learned"
    );
}

#[test]
fn saved_folder_loads_back_identically() {
    let processor = split_processor();
    let dir = tempfile::tempdir().unwrap();
    processor.save(dir.path()).unwrap();
    for file in [
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
        "processor_config.json",
        "chat_template.json",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} written");
    }
    let again = Processor::from_folder(dir.path()).unwrap();
    assert_eq!(again.image_processor(), processor.image_processor());
    assert_eq!(again.processor_config(), processor.processor_config());
    assert_eq!(again.tokenizer_config(), processor.tokenizer_config());
    assert_eq!(
        again.chat_template().source(),
        processor.chat_template().source()
    );
    let cases = read_json(&fixtures().join("cases.json"));
    let case = &cases.as_array().unwrap()[0];
    assert_eq!(
        again.encode_prompt(&messages(case)).unwrap(),
        processor.encode_prompt(&messages(case)).unwrap()
    );
}

#[test]
fn pillow_resize_is_reproduced_exactly_for_every_filter() {
    let dir = fixtures().join("resample");
    let source = ImageSource::from(dir.join("source.png"))
        .load_rgb(true)
        .unwrap();
    for entry in read_json(&dir.join("index.json")).as_array().unwrap() {
        let filter = Resample::from_code(entry["filter"].as_u64().unwrap()).unwrap();
        let (w, h) = (
            entry["width"].as_u64().unwrap() as u32,
            entry["height"].as_u64().unwrap() as u32,
        );
        let expected: RgbImage = image::open(dir.join(entry["file"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        let ours = resize(&source, w, h, filter);
        let differing = ours
            .pixels()
            .zip(expected.pixels())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differing, 0,
            "{filter:?} {w}x{h}: {differing} pixels differ from Pillow"
        );
    }
}

#[test]
fn bad_conversations_are_reported_not_panicked_on() {
    let processor = split_processor();
    let prompt_only = vec![Message::user(vec![Part::text("Hello")])];
    let e = processor
        .encode_training(&prompt_only)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no assistant message"), "{e}");

    // A literal "<image>" in user text is one placeholder too many (as in HF).
    let literal = vec![Message::user(vec![Part::text("What does <image> mean?")])];
    let e = processor.encode_prompt(&literal).unwrap_err().to_string();
    assert!(e.contains("1 <image> placeholder(s) but 0 image(s)"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.webp");
    std::fs::write(&broken, b"RIFF\x10\x00\x00\x00WEBPVP8 garbage").unwrap();
    let msgs = vec![Message::user(vec![
        Part::image(broken),
        Part::text("Safe?"),
    ])];
    let e = processor.encode_prompt(&msgs).unwrap_err().to_string();
    assert!(e.contains("broken.webp"), "{e}");
}

#[test]
fn in_memory_images_encode_like_their_files() {
    let processor = split_processor();
    let path = fixtures().join("images/tiny_rgba.png");
    let decoded = image::open(&path).unwrap();
    let from_file = vec![Message::user(vec![Part::image(path), Part::text("Safe?")])];
    let in_memory = vec![Message::user(vec![
        Part::image(decoded),
        Part::text("Safe?"),
    ])];
    assert_eq!(
        processor.encode_prompt(&from_file).unwrap(),
        processor.encode_prompt(&in_memory).unwrap()
    );
}
