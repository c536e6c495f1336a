//! The synthetic world: determinism, clean validation, held-out combinations, text-only chance,
//! and a vocabulary that covers everything it writes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use safeaware_data::benchmark::{Benchmark, Subset, Verdict};
use safeaware_data::synth::world::{self, TEMPLATES, WRAPPERS};
use safeaware_data::synth::{self, make_item, Split, SynthConfig};
use safeaware_data::tools::validate::{validate, ValidateOptions};
use safeaware_data::traces::{read_training_file, TargetStyle};

fn small(seed: u64) -> SynthConfig {
    SynthConfig {
        seed,
        train: 120,
        val: 12,
        test: 40,
        image_size: 64,
        ..SynthConfig::default()
    }
}

fn all_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    synth::generate(a.path(), &small(3)).unwrap();
    synth::generate(b.path(), &small(3)).unwrap();
    synth::generate(c.path(), &small(4)).unwrap();
    let (fa, fb, fc) = (
        all_files(a.path()),
        all_files(b.path()),
        all_files(c.path()),
    );
    assert_eq!(
        fa.len(),
        120 + 12 + 40 + 40 + 6,
        "images + counterfactual images + 3 trace files + benchmark + vocabulary + world"
    );
    assert!(fa == fb, "same seed, different bytes");
    assert_ne!(fa["train.jsonl"], fc["train.jsonl"]);
}

#[test]
fn generated_data_validates_cleanly_and_loads_as_a_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    synth::generate(dir.path(), &small(1)).unwrap();
    for name in ["train.jsonl", "val.jsonl", "test.jsonl", "benchmark.jsonl"] {
        let path = dir.path().join(name);
        let report = validate(path.to_str().unwrap(), &ValidateOptions::default());
        assert!(report.ok(), "{name}: {:?}", report.problems);
        assert!(report.checked > 0);
    }
    let spec = format!("jsonl:{}", dir.path().join("benchmark.jsonl").display());
    let bench = Benchmark::open(&spec, None).unwrap();
    assert_eq!(bench.items.len(), 40);
    assert!(bench.missing_images.is_empty());
    // Every test item knows its counterfactual: another image, the other verdict.
    for item in &bench.items {
        let cf = item.counterfactual.as_ref().expect("a counterfactual");
        assert!(cf.image.is_file(), "{}", cf.image.display());
        assert_ne!(cf.gold, item.gold, "{}", item.id);
        assert_eq!(cf.subset == Subset::OverSafety, cf.gold == Verdict::Safe);
    }
    let test = read_training_file(&dir.path().join("test.jsonl")).unwrap();
    for ((_, record), item) in test.records.iter().zip(&bench.items) {
        let conv = record.to_conversation(TargetStyle::Direct, &test.dir);
        assert_eq!(
            conv.images[0],
            item.image.clone().unwrap(),
            "same image file"
        );
        assert!(conv.messages[0].content.contains(&item.prompt));
    }
    let png = image::open(dir.path().join("images/train-00000.png")).unwrap();
    assert_eq!((png.width(), png.height()), (64, 64));
}

#[test]
fn test_split_holds_only_combinations_never_seen_in_training() {
    let cfg = SynthConfig {
        train: 1500,
        val: 100,
        test: 200,
        ..SynthConfig::default()
    };
    let held = world::held_out(cfg.seed);
    let train: BTreeSet<_> = (0..cfg.train)
        .map(|i| make_item(&cfg, &held, Split::Train, i).spec.combo)
        .collect();
    let val: BTreeSet<_> = (0..cfg.val)
        .map(|i| make_item(&cfg, &held, Split::Val, i).spec.combo)
        .collect();
    let test: BTreeSet<_> = (0..cfg.test)
        .map(|i| make_item(&cfg, &held, Split::Test, i).spec.combo)
        .collect();
    assert!(train.is_disjoint(&test) && val.is_disjoint(&test));
    assert!(test.len() >= 20, "test covers {} combinations", test.len());
    let train_objects: BTreeSet<_> = train.iter().map(|c| c.object).collect();
    assert!(
        test.iter().all(|c| train_objects.contains(&c.object)),
        "test objects are all seen in training"
    );
}

#[test]
fn the_prompt_alone_does_not_tell_the_verdict() {
    let cfg = SynthConfig {
        train: 2000,
        ..SynthConfig::default()
    };
    let held = world::held_out(cfg.seed);
    let mut by_prompt: BTreeMap<String, [usize; 2]> = BTreeMap::new();
    let mut subsets = BTreeMap::new();
    let mut scenarios = BTreeSet::new();
    for i in 0..cfg.train {
        let item = make_item(&cfg, &held, Split::Train, i);
        let slot = usize::from(item.trace.verdict == Verdict::Unsafe);
        by_prompt.entry(item.trace.prompt.clone()).or_default()[slot] += 1;
        *subsets.entry(item.trace.subset.unwrap()).or_insert(0) += 1;
        scenarios.insert(item.trace.scenario.clone().unwrap());
    }
    assert_eq!(
        by_prompt.len(),
        TEMPLATES.len() * (1 + WRAPPERS.len()),
        "every prompt occurs"
    );
    for (prompt, [safe, unsafe_]) in &by_prompt {
        assert!(*safe > 0 && *unsafe_ > 0, "`{prompt}` has one verdict only");
    }
    // The best text-only rule (majority verdict per prompt) stays near chance.
    let majority: usize = by_prompt.values().map(|[s, u]| s.max(u)).sum();
    let acc = majority as f64 / cfg.train as f64;
    assert!(acc < 0.62, "text-only accuracy {acc:.3}");
    assert_eq!(subsets.len(), 3, "{subsets:?}");
    assert!(subsets[&Subset::Typical] > 100 && subsets[&Subset::Attack] > 100);
    assert_eq!(scenarios.len(), 29, "{scenarios:?}");
}

#[test]
fn the_vocabulary_covers_every_word_written() {
    let vocab: BTreeSet<String> = synth::vocabulary().into_iter().collect();
    let cfg = SynthConfig {
        train: 800,
        ..SynthConfig::default()
    };
    let held = world::held_out(cfg.seed);
    for i in 0..cfg.train {
        let t = make_item(&cfg, &held, Split::Train, i).trace;
        for style in TargetStyle::ALL {
            for text in [t.question(), t.answer(style)] {
                for w in synth::words(&text) {
                    assert!(
                        vocab.contains(w),
                        "`{w}` of `{text}` is not in the vocabulary"
                    );
                }
            }
        }
    }
}

#[test]
fn bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = SynthConfig {
        image_size: 4,
        ..small(0)
    };
    let err = synth::generate(dir.path(), &bad).unwrap_err().to_string();
    assert!(err.contains("image size 4"), "{err}");
    let bad = SynthConfig {
        wrap_prob: 1.5,
        ..small(0)
    };
    assert!(synth::generate(dir.path(), &bad)
        .unwrap_err()
        .to_string()
        .contains("wrap probability"));
}
