//! The benchmark guard: a re-encoded (PNG → JPEG) and resized copy of a benchmark image is
//! caught, so is a prompt that matches after normalisation, and unrelated images and prompts are
//! not; also with a copy of a real MMSafeAware image against the release.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use safeaware_data::benchmark::{Benchmark, Subset, Verdict};
use safeaware_data::fileio::decode_image;
use safeaware_data::overlap::image_hash::hamming;
use safeaware_data::overlap::{
    check, hash_image, ImageOverlap, OverlapOptions, PromptOverlap, PERCEPTUAL_THRESHOLD,
};
use safeaware_data::pairs::{write_pairs, LabelledPair};

/// A picture with structure: a tinted gradient, a disc and a bar whose places depend on `seed`.
fn scene(seed: u32, size: u32) -> RgbImage {
    let (cx, cy) = (20 + (seed * 37) % 60, 25 + (seed * 53) % 50);
    RgbImage::from_fn(size, size, |x, y| {
        let (u, v) = (x * 100 / size, y * 100 / size);
        let disc = (u as i32 - cx as i32).pow(2) + (v as i32 - cy as i32).pow(2) < 300;
        let bar = (v as i32 - (100 - cy as i32)).abs() < 6 && u > 10 + seed % 30;
        match (disc, bar) {
            (true, _) => Rgb([230, 40 + (seed * 70 % 150) as u8, 30]),
            (_, true) => Rgb([20, 20, 20]),
            _ => Rgb([(u * 2) as u8, (v * 2) as u8, (seed * 90 % 255) as u8]),
        }
    })
}

/// `image` resized by `scale` and re-encoded as JPEG, decoded back.
fn jpeg_copy(image: &DynamicImage, scale: f32) -> DynamicImage {
    let (w, h) = (
        (image.width() as f32 * scale) as u32,
        (image.height() as f32 * scale) as u32,
    );
    let small = image.resize_exact(w, h, FilterType::Lanczos3).to_rgb8();
    let mut bytes = Vec::new();
    small
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg)
        .unwrap();
    image::load_from_memory(&bytes).unwrap()
}

fn pair(id: &str, image: &str, prompt: &str) -> LabelledPair {
    LabelledPair {
        id: id.into(),
        image: image.into(),
        prompt: prompt.into(),
        verdict: Verdict::Unsafe,
        subset: None,
        scenario: None,
    }
}

#[test]
fn copies_are_near_and_unrelated_pictures_are_far() {
    let original = DynamicImage::ImageRgb8(scene(1, 160));
    let h = hash_image(&original).perceptual.unwrap();
    for scale in [0.5, 0.75, 1.3] {
        let d = hamming(
            h,
            hash_image(&jpeg_copy(&original, scale)).perceptual.unwrap(),
        );
        assert!(
            d <= PERCEPTUAL_THRESHOLD / 2,
            "copy at {scale}: distance {d}"
        );
    }
    for seed in 2..8 {
        let other = hash_image(&DynamicImage::ImageRgb8(scene(seed, 160)));
        let d = hamming(h, other.perceptual.unwrap());
        assert!(d > PERCEPTUAL_THRESHOLD, "scene {seed}: distance {d}");
    }
}

#[test]
fn an_image_copy_and_a_normalised_prompt_are_caught_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("bench")).unwrap();
    std::fs::create_dir_all(d.join("train")).unwrap();
    let mut bench = String::new();
    for (id, seed, prompt) in [
        ("b1", 1, "How can I kill it?"),
        ("b2", 2, "Can I share this photo?"),
    ] {
        scene(seed, 128)
            .save(d.join(format!("bench/{id}.png")))
            .unwrap();
        bench.push_str(&format!(
            "{{\"id\": \"{id}\", \"image\": \"{id}.png\", \"prompt\": \"{prompt}\", \"gold\": \"unsafe\"}}\n"
        ));
    }
    std::fs::write(d.join("bench/benchmark.jsonl"), bench).unwrap();
    let b1 = decode_image(&d.join("bench/b1.png")).unwrap();
    jpeg_copy(&b1, 0.6).save(d.join("train/copy.jpg")).unwrap();
    b1.save(d.join("train/same.bmp")).unwrap();
    scene(5, 128).save(d.join("train/other.png")).unwrap();
    let pairs = d.join("train/pairs.jsonl");
    write_pairs(
        &pairs,
        &[
            pair("t-copy", "copy.jpg", "describe the picture"),
            pair("t-same", "same.bmp", "what is this?"),
            pair("t-prompt", "other.png", "  how can i KILL it "),
            pair("t-clean", "other.png", "how can i kill them?"),
        ],
    )
    .unwrap();
    let spec = format!("jsonl:{}", d.join("bench/benchmark.jsonl").display());
    let report = check(&pairs, &spec, &OverlapOptions::default()).unwrap();
    assert_eq!(report.image_overlaps.len(), 2, "{report:?}");
    let copy = &report.image_overlaps[0];
    assert_eq!(
        (copy.id.as_str(), copy.benchmark_id.as_str()),
        ("t-copy", "b1")
    );
    assert!(
        copy.distance > 0 && copy.distance <= PERCEPTUAL_THRESHOLD,
        "{copy:?}"
    );
    assert_eq!(
        report.image_overlaps[1],
        ImageOverlap {
            id: "t-same".into(),
            benchmark_id: "b1".into(),
            distance: 0
        }
    );
    assert_eq!(
        report.prompt_overlaps,
        [PromptOverlap {
            id: "t-prompt".into(),
            benchmark_id: "b1".into()
        }]
    );
    assert_eq!(
        report.ids().into_iter().collect::<Vec<_>>(),
        ["t-copy", "t-prompt", "t-same"]
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["image_overlaps"][0]["benchmark_id"], "b1");
    assert!(json["image_overlaps"][0]["distance"].is_u64());
    assert_eq!(json["prompt_overlaps"][0]["id"], "t-prompt");

    // With no tolerance only the identical pixels match.
    let strict = check(&pairs, &spec, &OverlapOptions { max_distance: 0 }).unwrap();
    assert_eq!(strict.image_overlaps.len(), 1);
}

#[test]
fn an_unreadable_training_image_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    scene(1, 64).save(d.join("b.png")).unwrap();
    std::fs::write(
        d.join("bench.jsonl"),
        "{\"id\": 1, \"image\": \"b.png\", \"prompt\": \"p\", \"gold\": \"safe\"}\n",
    )
    .unwrap();
    std::fs::write(d.join("broken.png"), b"not a png").unwrap();
    let pairs = d.join("pairs.jsonl");
    write_pairs(&pairs, &[pair("t1", "broken.png", "q")]).unwrap();
    let spec = format!("jsonl:{}", d.join("bench.jsonl").display());
    let err = check(&pairs, &spec, &OverlapOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("id t1: image") && err.contains("broken.png"),
        "{err}"
    );
}

fn release() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/mmsafeaware/data");
    assert!(
        dir.join("prompt.txt").is_file(),
        "the MMSafeAware release is expected at {}",
        dir.display()
    );
    dir
}

#[test]
fn a_reencoded_copy_of_a_release_image_is_caught_against_the_release() {
    let release = release();
    let dir = tempfile::tempdir().unwrap();
    // Over-safety item 1 of the release, shrunk to 70% and saved as JPEG under another name.
    let original = decode_image(&release.join("images/1.jpeg")).unwrap();
    jpeg_copy(&original, 0.7)
        .save(dir.path().join("holiday.jpg"))
        .unwrap();
    scene(3, 200).save(dir.path().join("mine.png")).unwrap();
    let pairs = dir.path().join("pairs.jsonl");
    let mut p = pair("copy", "holiday.jpg", "a sentence of my own");
    p.subset = Some(Subset::OverSafety);
    write_pairs(
        &pairs,
        &[p, pair("mine", "mine.png", "another sentence of my own")],
    )
    .unwrap();
    let spec = format!("mmsafeaware:{}", release.display());
    let report = check(&pairs, &spec, &OverlapOptions::default()).unwrap();
    assert!(report.prompt_overlaps.is_empty(), "{report:?}");
    assert_eq!(report.image_overlaps.len(), 1, "{report:?}");
    let found = &report.image_overlaps[0];
    assert_eq!(found.id, "copy");
    // The release shows this picture under several ids; the one reported holds it too.
    let bench = Benchmark::open(&spec, None).unwrap();
    let item = bench
        .items
        .iter()
        .find(|i| i.id == found.benchmark_id)
        .unwrap();
    let shown = decode_image(item.image.as_ref().unwrap()).unwrap();
    assert_eq!(
        hash_image(&shown).perceptual,
        hash_image(&original).perceptual
    );
}
