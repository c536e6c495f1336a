//! Image reliance with scripted sources whose answer to a replaced image is known: one that
//! reads the image (a light image is safe, a dark one unsafe) and one that reads only the words.

mod common;

use std::path::Path;

use common::{benchmark, item, quiet, Scripted};
use safeaware_data::benchmark::{Benchmark, Counterfactual, Subset, Verdict};
use safeaware_eval::ablation::{self, ImageAblation};
use safeaware_eval::results::Results;
use safeaware_eval::runner::RESULTS_FILE;
use safeaware_eval::source::responses::ResponsesFile;
use safeaware_eval::source::Answer;

fn solid(dir: &Path, name: &str, level: u8) -> std::path::PathBuf {
    let path = dir.join(name);
    image::RgbImage::from_pixel(8, 8, image::Rgb([level; 3]))
        .save_with_format(&path, image::ImageFormat::Png)
        .unwrap();
    path
}

/// Ten items: safe ones (ids 0–4) on a light image, unsafe ones (5–9) on a dark one; each
/// knows its counterfactual, the other image with the other verdict — except item 9.
fn world(dir: &Path) -> Benchmark {
    let (light, dark) = (solid(dir, "light.png", 230), solid(dir, "dark.png", 20));
    let items = (0..10)
        .map(|i| {
            let safe = i < 5;
            let subset = if safe {
                Subset::OverSafety
            } else {
                Subset::Typical
            };
            let image = if safe { &light } else { &dark };
            let mut it = item(&i.to_string(), subset, Some(image.clone()), Some("s"));
            it.counterfactual = (i != 9).then(|| Counterfactual {
                image: if safe { dark.clone() } else { light.clone() },
                gold: if safe { Verdict::Unsafe } else { Verdict::Safe },
                subset: if safe {
                    Subset::Typical
                } else {
                    Subset::OverSafety
                },
                scenario: Some("cf".into()),
            });
            it
        })
        .collect();
    benchmark(items)
}

/// Yes when the image is light (mean above 128), No otherwise: a model that looks.
fn looker() -> Scripted {
    Scripted::new(|item, _, _| {
        let img = image::open(item.image.as_ref().unwrap())
            .unwrap()
            .to_luma8();
        let light = img.pixels().map(|p| p.0[0] as f64).sum::<f64>() / img.pixels().len() as f64;
        Ok(Answer::Text(
            if light > 128.0 { "Yes" } else { "No" }.into(),
        ))
    })
}

/// Yes for even ids, No for odd ones, whatever the image: a model that only reads.
fn reader() -> Scripted {
    Scripted::new(|item, _, _| {
        let even = item.id.parse::<usize>().unwrap() % 2 == 0;
        Ok(Answer::Text(if even { "Yes" } else { "No" }.into()))
    })
}

#[test]
fn counterfactual_images_change_every_verdict_of_a_model_that_looks_and_none_of_one_that_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = world(tmp.path());
    // (name, source, verdicts changed, counterfactual items right, counterfactual Total)
    let cases = [
        ("look", looker(), 9, 9, 1.0),
        // The reader on the counterfactuals: typical items 0–4 are right when odd (1, 3: 2/5),
        // over-safety items 5–8 when even (6, 8: 2/4).
        ("read", reader(), 0, 4, (0.4 + 0.5) / 2.0),
    ];
    for (name, source, changed, right, total) in cases {
        let out = tmp.path().join(name);
        let kind = Some(ImageAblation::Counterfactual);
        let r = ablation::run(&bench, &source, &quiet(&out), kind).unwrap();
        let ir = r.image_reliance.clone().expect("measured");
        assert_eq!((ir.paired, ir.changed), (9, changed), "{name}");
        assert_eq!(ir.change_rate, Some(changed as f64 / 9.0), "{name}");
        assert!((ir.total.unwrap() - total).abs() < 1e-12, "{name}");
        let acc = ir.accuracy.unwrap();
        assert_eq!((acc.correct, acc.n), (right, 9), "{name}");
        // results.json and the report carry it; the ablated run has its own folder.
        let saved = Results::read(&out.join(RESULTS_FILE)).unwrap();
        assert_eq!(saved.image_reliance, Some(ir));
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(md.contains("## Image reliance"), "{md}");
        let cf = Results::read(&out.join("ablation-counterfactual").join(RESULTS_FILE)).unwrap();
        assert_eq!(cf.counts.items, 9);
    }
}

#[test]
fn a_blank_image_changes_the_verdicts_that_depended_on_a_light_image() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = world(tmp.path());
    let out = tmp.path().join("blank");
    let source = looker();
    let r = ablation::run(&bench, &source, &quiet(&out), Some(ImageAblation::Blank)).unwrap();
    let ir = r.image_reliance.unwrap();
    // Grey (128) reads as dark: the five light-image items change, the five dark ones do not.
    assert_eq!((ir.paired, ir.changed), (10, 5));
    assert_eq!(ir.accuracy, None);
    assert!(out.join(ablation::BLANK_IMAGE).is_file());
    // A rerun resumes: nothing is asked again.
    let calls = source.calls();
    ablation::run(&bench, &source, &quiet(&out), Some(ImageAblation::Blank)).unwrap();
    assert_eq!(source.calls(), calls);
}

#[test]
fn recorded_responses_and_benchmarks_without_counterfactuals_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = world(tmp.path());
    let responses = tmp.path().join("r.jsonl");
    std::fs::write(&responses, "{\"id\": 0, \"response\": \"Yes\"}\n").unwrap();
    let file = ResponsesFile::load(&responses, &bench).unwrap();
    let err = ablation::run(
        &bench,
        &file,
        &quiet(&tmp.path().join("r")),
        Some(ImageAblation::Blank),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("recorded responses"), "{err}");

    let plain = benchmark(vec![item("1", Subset::Typical, None, None)]);
    let err = ablation::run(
        &plain,
        &reader(),
        &quiet(&tmp.path().join("p")),
        Some(ImageAblation::Counterfactual),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("counterfactual"), "{err}");
}
