//! Image reliance (`eval --image-ablation blank|counterfactual`): every item is asked again with
//! its image replaced — by a blank grey image, or by the item's counterfactual (the same prompt
//! with an image that flips the gold verdict, which the synthetic world always knows) — and the
//! share of verdicts that change is reported, with, for counterfactuals, the accuracy on the
//! counterfactual set. A model that judges from the words alone keeps every verdict: 0 change.
//!
//! The ablated run is an ordinary run in `<out>/ablation-<kind>/` (resumable, with its own
//! results and reports); the original run's results.json gets the summary as `image_reliance`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use image::{Rgb, RgbImage};
use safeaware_common::fsio::write_atomic;
use safeaware_data::benchmark::{Benchmark, BenchmarkItem};
use serde::{Deserialize, Serialize};

use crate::metrics::{wilson_interval, Accuracy, Z95};
use crate::results::Results;
use crate::runner::{self, RunConfig, SAMPLES_FILE};
use crate::samples::{read_samples, SampleRecord, Status};
use crate::source::AnswerSource;
use crate::verdict::Parser;
use crate::EvalError;

/// What replaces each item's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageAblation {
    /// One uniform grey image for every item: nothing to see.
    Blank,
    /// The item's counterfactual image, whose gold verdict is the opposite; items without one
    /// are left out.
    Counterfactual,
}

impl ImageAblation {
    /// `blank` or `counterfactual`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageAblation::Blank => "blank",
            ImageAblation::Counterfactual => "counterfactual",
        }
    }

    /// The ablated run's folder inside the output folder `out`.
    pub fn folder(self, out: &Path) -> PathBuf {
        out.join(format!("ablation-{}", self.as_str()))
    }
}

impl fmt::Display for ImageAblation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageAblation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [ImageAblation::Blank, ImageAblation::Counterfactual]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown image ablation `{s}` (expected blank or counterfactual)")
            })
    }
}

/// File name of the blank image, written into the run's output folder (beside, not inside, the
/// ablated run's folder, which its run claims empty).
pub const BLANK_IMAGE: &str = "ablation-blank.png";
/// Side of the blank image in pixels, and its grey level.
const BLANK_SIDE: u32 = 384;
const BLANK_GREY: u8 = 128;

/// The summary recorded in the original run's results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageReliance {
    pub ablation: ImageAblation,
    /// The ablated run's folder, relative to the run's output folder.
    pub folder: String,
    /// Items scored both with their image and with the replacement.
    pub paired: usize,
    /// Of those, the items whose verdict (the strict parser's reading: yes, no or unreadable)
    /// changed.
    pub changed: usize,
    /// `changed / paired` in [0, 1]: 0 for a model that never looks at the image.
    pub change_rate: Option<f64>,
    /// Wilson 95% interval of the change rate.
    pub change_ci95: Option<[f64; 2]>,
    /// Counterfactual only: strict accuracy over every counterfactual item scored (their gold
    /// verdicts are the flipped ones), with its Wilson interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Accuracy>,
    /// Counterfactual only: the strict Total (unweighted mean of the subset accuracies) on the
    /// counterfactual set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
}

/// The benchmark with every image replaced as `kind` says; the blank image is written into
/// `out`, the original run's folder. Ids stay the same, so the ablated run pairs with the
/// original item by item.
pub fn ablated_benchmark(
    benchmark: &Benchmark,
    kind: ImageAblation,
    out: &Path,
) -> Result<Benchmark, EvalError> {
    let items: Vec<BenchmarkItem> = match kind {
        ImageAblation::Blank => {
            let blank = write_blank(out)?;
            let with_blank = |item: &BenchmarkItem| BenchmarkItem {
                image: item.image.as_ref().map(|_| blank.clone()),
                counterfactual: None,
                ..item.clone()
            };
            benchmark.items.iter().map(with_blank).collect()
        }
        ImageAblation::Counterfactual => benchmark
            .items
            .iter()
            .filter_map(counterfactual_item)
            .collect(),
    };
    if items.is_empty() {
        return Err(EvalError::Config(format!(
            "--image-ablation {kind}: no item of {} knows a counterfactual image (the synthetic \
             world's benchmark.jsonl does; a JSONL item gives one as `counterfactual`)",
            benchmark.spec
        )));
    }
    let missing_images = items
        .iter()
        .filter(|i| !i.image.as_deref().is_some_and(Path::is_file))
        .map(|i| i.id.clone())
        .collect();
    Ok(Benchmark {
        spec: format!("{} (image ablation: {kind})", benchmark.spec),
        items,
        missing_images,
    })
}

/// The item asked with its counterfactual image, gold, subset and scenario.
fn counterfactual_item(item: &BenchmarkItem) -> Option<BenchmarkItem> {
    let cf = item.counterfactual.as_ref()?;
    Some(BenchmarkItem {
        id: item.id.clone(),
        image: Some(cf.image.clone()),
        prompt: item.prompt.clone(),
        gold: cf.gold,
        subset: cf.subset,
        scenario: cf.scenario.clone(),
        counterfactual: None,
    })
}

fn write_blank(dir: &Path) -> Result<PathBuf, EvalError> {
    let path = dir.join(BLANK_IMAGE);
    let image = RgbImage::from_pixel(BLANK_SIDE, BLANK_SIDE, Rgb([BLANK_GREY; 3]));
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| EvalError::Config(format!("encoding the blank image: {e}")))?;
    std::fs::create_dir_all(dir).map_err(EvalError::io(dir))?;
    write_atomic(&path, &bytes).map_err(EvalError::io(&path))?;
    Ok(path)
}

/// Runs `benchmark` as [`runner::run`] does, then, when `ablation` is given, the ablated run in
/// its folder, and records the image reliance in the original results (rewritten with their
/// reports). Both runs resume.
pub fn run(
    benchmark: &Benchmark,
    source: &dyn AnswerSource,
    config: &RunConfig,
    ablation: Option<ImageAblation>,
) -> Result<Results, EvalError> {
    if let Some(kind) = ablation {
        if !source.generates() {
            return Err(EvalError::Config(format!(
                "--image-ablation {kind} asks every item again with another image, so it needs a \
                 model, checkpoint or endpoint; recorded responses cannot be asked again"
            )));
        }
    }
    let mut results = runner::run(benchmark, source, config)?;
    let Some(kind) = ablation else {
        return Ok(results);
    };
    let dir = kind.folder(&config.out);
    let ablated = ablated_benchmark(benchmark, kind, &config.out)?;
    let sub = RunConfig {
        out: dir.clone(),
        ..config.clone()
    };
    let ablated_results = runner::run(&ablated, source, &sub)?;
    results.image_reliance = Some(measure(kind, &config.out, &dir, &ablated_results)?);
    runner::write_outputs(&config.out, &results)?;
    Ok(results)
}

/// Pairs the scored samples of the original run in `out` with those of the ablated run in
/// `dir` and summarises them.
pub fn measure(
    kind: ImageAblation,
    out: &Path,
    dir: &Path,
    ablated: &Results,
) -> Result<ImageReliance, EvalError> {
    let original = scored_samples(out)?;
    let replaced = scored_samples(dir)?;
    let verdict = |r: &SampleRecord| r.judgment(Parser::Strict);
    let (mut paired, mut changed) = (0, 0);
    for (id, a) in &original {
        if let Some(b) = replaced.get(id) {
            paired += 1;
            changed += usize::from(verdict(a) != verdict(b));
        }
    }
    let counterfactual = kind == ImageAblation::Counterfactual;
    let strict = &ablated.strict;
    let pooled = [&strict.typical, &strict.attack, &strict.over_safety];
    let accuracy = Accuracy::new(
        pooled.iter().map(|a| a.correct).sum(),
        pooled.iter().map(|a| a.n).sum(),
    );
    Ok(ImageReliance {
        ablation: kind,
        folder: dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        paired,
        changed,
        change_rate: (paired > 0).then(|| changed as f64 / paired as f64),
        change_ci95: wilson_interval(changed, paired, Z95),
        accuracy: counterfactual.then_some(accuracy),
        total: if counterfactual { strict.total } else { None },
    })
}

/// The scored records of the run in `dir`, by id.
fn scored_samples(dir: &Path) -> Result<BTreeMap<String, SampleRecord>, EvalError> {
    let (records, _) = read_samples(&dir.join(SAMPLES_FILE))?;
    Ok(records
        .into_iter()
        .filter(|r| r.status == Status::Scored)
        .map(|r| (r.id.clone(), r))
        .collect())
}
