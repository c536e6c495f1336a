//! Helpers shared by the integration tests: items, images, a scripted answer source and a small
//! HTTP server ([`server`]).
#![allow(dead_code)]

pub mod server;
#[allow(unused_imports)]
pub use server::{Reply, Server};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use safeaware_data::benchmark::{Benchmark, BenchmarkItem, Subset, Verdict};
use safeaware_eval::progress::ProgressMode;
use safeaware_eval::prompt::Conversation;
use safeaware_eval::runner::RunConfig;
use safeaware_eval::source::{Answer, AnswerRequest, AnswerSource, SourceError, SourceInfo};

pub fn item(
    id: &str,
    subset: Subset,
    image: Option<PathBuf>,
    scenario: Option<&str>,
) -> BenchmarkItem {
    let gold = if subset == Subset::OverSafety {
        Verdict::Safe
    } else {
        Verdict::Unsafe
    };
    BenchmarkItem {
        id: id.to_string(),
        image,
        prompt: format!("sentence {id}"),
        gold,
        subset,
        scenario: scenario.map(str::to_string),
        counterfactual: None,
    }
}

pub fn benchmark(items: Vec<BenchmarkItem>) -> Benchmark {
    let missing_images = items
        .iter()
        .filter(|i| i.image.is_none())
        .map(|i| i.id.clone())
        .collect();
    Benchmark {
        spec: "test:benchmark".into(),
        items,
        missing_images,
    }
}

/// A small PNG at `dir/name`.
pub fn png(dir: &Path, name: &str) -> PathBuf {
    let img = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 120]));
    let path = dir.join(name);
    img.save_with_format(&path, image::ImageFormat::Png)
        .unwrap();
    path
}

pub fn quiet(out: &Path) -> RunConfig {
    RunConfig {
        progress: ProgressMode::Quiet,
        ..RunConfig::new(out)
    }
}

/// How a [`Scripted`] source answers: item, conversation, call number.
pub type Rule = dyn Fn(&BenchmarkItem, &Conversation, usize) -> Result<Answer, SourceError> + Sync;

/// A generating source that answers by rule and records every conversation it is asked.
pub struct Scripted {
    pub rule: Box<Rule>,
    pub calls: AtomicUsize,
    pub asked: Mutex<Vec<(String, Conversation)>>,
    pub parallelism: usize,
    pub batch: usize,
}

impl Scripted {
    pub fn new(
        rule: impl Fn(&BenchmarkItem, &Conversation, usize) -> Result<Answer, SourceError>
            + Sync
            + 'static,
    ) -> Scripted {
        Scripted {
            rule: Box::new(rule),
            calls: AtomicUsize::new(0),
            asked: Mutex::new(Vec::new()),
            parallelism: 3,
            batch: 1,
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl AnswerSource for Scripted {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "scripted".into(),
            name: "rule".into(),
            details: Default::default(),
            counts: Default::default(),
        }
    }
    fn parallelism(&self) -> usize {
        self.parallelism
    }
    fn batch_size(&self) -> usize {
        self.batch
    }
    fn answer(&self, request: &AnswerRequest<'_>) -> Result<Answer, SourceError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.asked
            .lock()
            .unwrap()
            .push((request.item.id.clone(), request.conversation.clone()));
        (self.rule)(request.item, request.conversation, n)
    }
}

/// All answers the scripted map gives, by id.
pub fn by_id(answers: &[(&str, &str)]) -> HashMap<String, String> {
    answers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
