//! validate / stats / preview on real and synthetic inputs, including the corrupt-image and
//! missing-image reports.

use std::path::Path;

use safeaware_data::processor::Processor;
use safeaware_data::synth::{self, SynthConfig};
use safeaware_data::tools::preview::{self, CELL_WIDTH, COLUMNS};
use safeaware_data::tools::stats::stats;
use safeaware_data::tools::validate::{validate, TokenCheck, ValidateOptions};
use safeaware_data::tools::{Input, Loaded};
use safeaware_data::traces::TargetStyle;

fn release_data() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/mmsafeaware/data");
    format!("mmsafeaware:{}", dir.display())
}

fn synth_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        train: 20,
        val: 2,
        test: 8,
        ..SynthConfig::default()
    };
    synth::generate(dir.path(), &cfg).unwrap();
    dir
}

#[test]
fn inputs_are_classified_by_spec_or_content() {
    let dir = synth_dir();
    let train = dir.path().join("train.jsonl");
    let bench = dir.path().join("benchmark.jsonl");
    assert_eq!(
        Input::classify(train.to_str().unwrap()),
        Input::Traces(train.clone())
    );
    assert_eq!(
        Input::classify(bench.to_str().unwrap()),
        Input::Benchmark(format!("jsonl:{}", bench.display()))
    );
    assert!(matches!(
        Input::classify(&release_data()),
        Input::Benchmark(_)
    ));
}

#[test]
fn a_corrupt_and_a_missing_image_are_reported_with_their_place() {
    let dir = synth_dir();
    let train = dir.path().join("train.jsonl");
    std::fs::write(
        dir.path().join("images/train-00003.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("images/train-00007.png")).unwrap();
    let mut text = std::fs::read_to_string(&train).unwrap();
    text.push_str("{\"id\": \"extra\", \"image\": 5}\n");
    std::fs::write(&train, text).unwrap();
    let report = validate(train.to_str().unwrap(), &ValidateOptions::default());
    let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].contains("train.jsonl:4: id train-00003: image") && lines[0].contains("truncated"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("train.jsonl:8: id train-00007: image")
            && lines[1].contains("does not exist"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("train.jsonl:21:") && lines[2].contains("bad trace"),
        "{}",
        lines[2]
    );
    assert_eq!(report.checked, 21);

    // The benchmark form names the item id.
    std::fs::write(dir.path().join("images/test-00001.png"), b"garbage").unwrap();
    let report = validate(
        dir.path().join("benchmark.jsonl").to_str().unwrap(),
        &ValidateOptions::default(),
    );
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0]
            .to_string()
            .starts_with("id test-00001: image"),
        "{}",
        report.problems[0]
    );
}

#[test]
fn the_release_validates_except_for_its_missing_images() {
    let report = validate(&release_data(), &ValidateOptions::default());
    assert_eq!(report.checked, 1523);
    assert_eq!(
        report.problems.len(),
        77,
        "{:?}",
        &report.problems[..report.problems.len().min(5)]
    );
    assert!(report.problems.iter().all(|p| p.message == "image missing"));
    assert!(report.problems.iter().any(|p| p.place == "id 2301"));
    let lenient = validate(
        &release_data(),
        &ValidateOptions {
            allow_missing_images: true,
            ..Default::default()
        },
    );
    assert!(lenient.ok() && lenient.warnings.len() == 77);
}

#[test]
fn stats_count_subsets_and_list_missing_images() {
    let s = stats(&Loaded::open(&release_data(), None).unwrap());
    assert_eq!(s.items, 1523);
    assert_eq!(
        (
            s.subsets["typical"],
            s.subsets["attack"],
            s.subsets["over_safety"]
        ),
        (171, 855, 497)
    );
    assert_eq!(s.missing_images.len(), 77);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["items"], 1523);
    assert_eq!(json["missing_images"][0], "18");

    let dir = synth_dir();
    let s = stats(&Loaded::open(dir.path().join("train.jsonl").to_str().unwrap(), None).unwrap());
    assert_eq!(s.items, 20);
    assert_eq!(s.verdicts.values().sum::<usize>(), 20);
    assert!(s.missing_images.is_empty());
}

#[test]
fn previews_are_a_grid_of_cells() {
    let dir = synth_dir();
    let loaded = Loaded::open(dir.path().join("train.jsonl").to_str().unwrap(), None).unwrap();
    let out = dir.path().join("sheet.png");
    assert_eq!(
        preview::write_preview(&loaded.entries(), 6, &out).unwrap(),
        6
    );
    let sheet = image::open(&out).unwrap();
    assert_eq!(sheet.width(), CELL_WIDTH * COLUMNS as u32);
    let one_row = sheet.height();
    preview::write_preview(&loaded.entries(), 3, &out).unwrap();
    let sheet = image::open(&out).unwrap();
    assert_eq!(
        (sheet.width(), sheet.height()),
        (CELL_WIDTH * 3, one_row / 2)
    );
}

#[test]
fn token_lengths_are_checked_with_the_processor() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/processor");
    let processor = Processor::from_folder(&folder).unwrap();
    let dir = synth_dir();
    let train = dir.path().join("train.jsonl");
    let check = |max| {
        let tokens = Some(TokenCheck {
            processor: &processor,
            max_tokens: max,
            style: TargetStyle::Vcr,
        });
        validate(
            train.to_str().unwrap(),
            &ValidateOptions {
                tokens,
                ..Default::default()
            },
        )
    };
    let report = check(100_000);
    assert!(report.ok(), "{:?}", report.problems);
    let (_, longest) = report.longest.clone().unwrap();
    assert!(longest > 50);
    let report = check(longest - 1);
    assert!(!report.ok());
    assert!(report.problems[0]
        .message
        .contains(&format!("more than the limit of {}", longest - 1)));
}

#[test]
fn pairs_files_are_classified_validated_and_summarised() {
    let dir = synth_dir();
    let pairs = dir.path().join("pairs.jsonl");
    std::fs::write(
        &pairs,
        "{\"id\": \"a\", \"image\": \"images/train-00000.png\", \"prompt\": \"how do i pick it?\", \"verdict\": \"safe\"}\n\
         {\"id\": \"b\", \"image\": \"images/none.png\", \"prompt\": \"p\", \"verdict\": \"unsafe\"}\n\
         {\"id\": \"a\", \"image\": \"images/train-00001.png\", \"prompt\": \"q\", \"verdict\": \"maybe\"}\n",
    )
    .unwrap();
    let arg = pairs.to_str().unwrap();
    assert_eq!(Input::classify(arg), Input::Pairs(pairs.clone()));
    let report = validate(arg, &ValidateOptions::default());
    let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(report.checked, 3);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains(":2: id b: image") && problems[0].contains("does not exist"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains(":3: id a: `verdict` is `maybe`"),
        "{problems:?}"
    );

    // Without the bad lines, the pairs load, summarise, and are not traces to train on.
    let text = std::fs::read_to_string(&pairs).unwrap();
    std::fs::write(&pairs, text.lines().next().unwrap()).unwrap();
    let s = stats(&Loaded::open(arg, None).unwrap());
    assert_eq!((s.items, s.verdicts["safe"]), (1, 1));
    let err = safeaware_data::traces::read_training_file(&pairs)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a labelled pair") && err.contains("data distill"),
        "{err}"
    );
}

#[test]
fn preference_files_are_classified_validated_and_summarised() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        train: 12,
        val: 2,
        test: 2,
        preferences: true,
        ..SynthConfig::default()
    };
    synth::generate(dir.path(), &cfg).unwrap();
    let prefs = dir.path().join("train-preferences.jsonl");
    let arg = prefs.to_str().unwrap();
    assert_eq!(Input::classify(arg), Input::Preferences(prefs.clone()));
    let report = validate(arg, &ValidateOptions::default());
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.checked, 12);
    assert!(dir.path().join("val-preferences.jsonl").is_file());
    assert!(!dir.path().join("test-preferences.jsonl").exists());
    let s = stats(&Loaded::open(arg, None).unwrap());
    assert_eq!(s.items, 12);

    // A missing image and a pair whose answers are the same are reported with their places.
    let text = std::fs::read_to_string(&prefs).unwrap();
    let first = text.lines().next().unwrap();
    let mut missing: serde_json::Value = serde_json::from_str(first).unwrap();
    missing["id"] = "missing".into();
    missing["image"] = "images/none.png".into();
    let mut same: serde_json::Value = serde_json::from_str(first).unwrap();
    same["id"] = "same".into();
    same["rejected"] = same["chosen"].clone();
    std::fs::write(&prefs, format!("{first}\n{missing}\n{same}\n")).unwrap();
    let report = validate(arg, &ValidateOptions::default());
    let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains(":2: id missing") && p.contains("does not exist")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains(":3: id same: `chosen` and `rejected`")),
        "{problems:?}"
    );
    let err = safeaware_data::traces::read_training_file(&prefs)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":1: a preference pair") && err.contains("DPO"),
        "{err}"
    );
}
