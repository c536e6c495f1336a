//! What the processor parity tests of the LLaVA and Qwen2-VL fixtures share: reading
//! cases.json (made by tools/make_processor_fixtures.py), turning a case into messages, encoding
//! it as HF did, and comparing pixels (whole, or as statistics and a strided sample).

#![allow(dead_code)] // each test target uses part of it

use std::path::Path;

use safeaware_data::processor::{Encoded, Message, Part, Processor, Role};
use serde_json::Value;

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The cases of the fixture folder `dir`.
pub fn cases(dir: &Path) -> Vec<Value> {
    read_json(&dir.join("cases.json"))
        .as_array()
        .unwrap()
        .clone()
}

/// HF-style messages of a case, with `{"type": "image"}` parts taking the case's images in order.
pub fn messages(dir: &Path, case: &Value) -> Vec<Message> {
    let mut images = case["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| dir.join(p.as_str().unwrap()));
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

pub fn load_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("pixel_values").unwrap();
    let values = t.data().chunks_exact(4);
    values
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

pub fn ints<T: TryFrom<i64>>(v: &Value) -> Vec<T>
where
    T::Error: std::fmt::Debug,
{
    let items = v.as_array().unwrap().iter();
    items
        .map(|x| T::try_from(x.as_i64().unwrap()).unwrap())
        .collect()
}

/// (mean, max) absolute difference.
pub fn diff(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs());
    let (sum, max) = d.fold((0.0, 0.0f64), |(s, m), v| (s + v, m.max(v)));
    (sum / a.len().max(1) as f64, max)
}

/// Encodes a case as HF did: the generation prompt, or the training conversation.
pub fn encode(dir: &Path, processor: &Processor, case: &Value) -> Encoded {
    let msgs = messages(dir, case);
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

/// Pixels too large to store: statistics per image and every `stride`-th value.
/// `images` are the encoded pixels of each image of `case`, in order.
pub fn check_sampled(dir: &Path, images: &[&[f32]], case: &Value) -> (f64, f64) {
    let name = case["name"].as_str().unwrap();
    let stride = case["pixel_sample_stride"].as_u64().unwrap() as usize;
    let (mut mad, mut max) = (0.0f64, 0.0f64);
    let stats = case["pixel_stats"].as_array().unwrap();
    assert_eq!(stats.len(), images.len(), "{name}: images");
    for (k, (stats, values)) in stats.iter().zip(images).enumerate() {
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
        let (m, x) = diff(&sample, &load_f32(&dir.join(file)));
        (mad, max) = (mad.max(m), max.max(x));
    }
    (mad, max)
}
