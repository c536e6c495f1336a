//! The benchmark guard end to end: `safeaware data overlap` reports a re-encoded, resized copy
//! of a benchmark image and a prompt that matches after normalisation (exit code 1, `--json`),
//! and `safeaware train` refuses to start on such data, naming the ids, unless
//! `data.allow_overlap = true`.

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use common::{safeaware, text};
use image::{imageops::FilterType, ImageFormat, Rgb, RgbImage};
use serde_json::Value;

/// A 64-pixel picture with a disc and a gradient whose places and colours depend on `seed`.
fn picture(seed: u32) -> RgbImage {
    let (cx, cy) = (16 + seed * 11 % 32, 20 + seed * 7 % 24);
    RgbImage::from_fn(64, 64, |x, y| {
        let d = (x as i32 - cx as i32).pow(2) + (y as i32 - cy as i32).pow(2);
        if d < 120 {
            Rgb([240, (seed * 60 % 200) as u8, 40])
        } else {
            Rgb([(x * 4) as u8, (y * 4) as u8, (seed * 80 % 255) as u8])
        }
    })
}

/// A benchmark of two items and a training file: `t-copy` shows a JPEG copy of `b1`'s image
/// at 75% size, `t-prompt` asks `b2`'s sentence in other case and punctuation, `t-clean`
/// neither. Returns (training file, benchmark spec).
fn data(dir: &Path) -> (PathBuf, String) {
    let bench = dir.join("bench");
    std::fs::create_dir_all(&bench).unwrap();
    picture(1).save(bench.join("b1.png")).unwrap();
    picture(2).save(bench.join("b2.png")).unwrap();
    std::fs::write(
        bench.join("benchmark.jsonl"),
        "{\"id\": \"b1\", \"image\": \"b1.png\", \"prompt\": \"how do i pick it?\", \"gold\": \"safe\"}\n\
         {\"id\": \"b2\", \"image\": \"b2.png\", \"prompt\": \"how can i kill it?\", \"gold\": \"unsafe\"}\n",
    )
    .unwrap();
    let train = dir.join("train");
    std::fs::create_dir_all(&train).unwrap();
    let small =
        image::DynamicImage::ImageRgb8(picture(1)).resize_exact(48, 48, FilterType::Triangle);
    let mut jpeg = Vec::new();
    small
        .to_rgb8()
        .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
        .unwrap();
    std::fs::write(train.join("copy.jpg"), jpeg).unwrap();
    picture(3).save(train.join("mine.png")).unwrap();
    picture(4).save(train.join("other.png")).unwrap();
    let line = |id: &str, image: &str, prompt: &str| {
        format!(
            "{{\"id\": \"{id}\", \"image\": \"{image}\", \"prompt\": \"{prompt}\", \"description\": \"a small red apple on the left.\", \"reasoning\": \"the image shows an apple.\", \"verdict\": \"safe\"}}\n"
        )
    };
    let file = train.join("train.jsonl");
    std::fs::write(
        &file,
        [
            line("t-copy", "copy.jpg", "can i give this to my cat?"),
            line("t-prompt", "mine.png", "How can I KILL it"),
            line("t-clean", "other.png", "how do i draw a copy of it?"),
        ]
        .concat(),
    )
    .unwrap();
    (
        file,
        format!("jsonl:{}", bench.join("benchmark.jsonl").display()),
    )
}

/// `safeaware data overlap <file> --benchmark <spec> [extra]`.
fn overlap(file: &Path, spec: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "data",
        "overlap",
        file.to_str().unwrap(),
        "--benchmark",
        spec,
    ];
    args.extend(extra);
    safeaware(&args)
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    keys
}

#[test]
fn overlap_reports_a_copied_image_and_a_matching_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let (train, spec) = data(dir.path());
    let o = overlap(&train, &spec, &["--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(keys(&report), ["image_overlaps", "prompt_overlaps"]);
    let images = report["image_overlaps"].as_array().unwrap();
    assert_eq!(keys(&images[0]), ["benchmark_id", "distance", "id"]);
    assert_eq!(images.len(), 1, "{report}");
    assert_eq!(
        (images[0]["id"].as_str(), images[0]["benchmark_id"].as_str()),
        (Some("t-copy"), Some("b1"))
    );
    assert!(images[0]["distance"].as_u64().unwrap() <= 48, "{report}");
    assert_eq!(
        report["prompt_overlaps"],
        serde_json::json!([{"id": "t-prompt", "benchmark_id": "b2"}])
    );

    let o = overlap(&train, &spec, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("1 image overlap(s), 1 prompt overlap(s)"),
        "{}",
        text(&o)
    );

    // The clean item alone passes.
    let clean = dir.path().join("train/clean.jsonl");
    let all = std::fs::read_to_string(&train).unwrap();
    std::fs::write(&clean, all.lines().last().unwrap()).unwrap();
    let o = overlap(&clean, &spec, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("0 image overlap(s), 0 prompt overlap(s)"),
        "{}",
        text(&o)
    );
}

fn train(dir: &Path, file: &Path, spec: &str, allow: bool) -> std::process::Output {
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.toml");
    let out = dir.join(if allow { "allowed" } else { "refused" });
    let settings = [
        "data.synthetic.enabled=false".to_string(),
        format!("data.train={}", file.display()),
        format!("data.allow_overlap={allow}"),
        format!("eval.benchmark={spec}"),
        "train.batch_size=3".into(),
        "train.max_steps=1".into(),
        "train.eval_every=0".into(),
        "schedule.warmup_steps=0".into(),
    ];
    let mut args = vec![
        "train".to_string(),
        "--recipe".into(),
        recipe.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--no-eval".into(),
    ];
    for s in settings {
        args.extend(["--set".to_string(), s]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    safeaware(&refs)
}

#[test]
fn training_refuses_overlapping_data_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (file, spec) = data(dir.path());
    let o = train(dir.path(), &file, &spec, false);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("2 training item(s)"), "{t}");
    assert!(t.contains("image  t-copy = benchmark b1 (distance"), "{t}");
    assert!(t.contains("prompt t-prompt = benchmark b2"), "{t}");
    assert!(t.contains("data.allow_overlap = true"), "{t}");
    assert!(!t.contains("t-clean"), "{t}");
    let refused = dir.path().join("refused");
    assert!(!refused.join("final").exists() && !refused.join("recipe.resolved.toml").exists());

    let o = train(dir.path(), &file, &spec, true);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("data.allow_overlap = true:"), "{t}");
    assert!(dir.path().join("allowed/final/model.safetensors").is_file());
    let resolved =
        std::fs::read_to_string(dir.path().join("allowed/recipe.resolved.toml")).unwrap();
    assert!(resolved.contains("allow_overlap = true"), "{resolved}");
}
