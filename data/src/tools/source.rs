//! What a data command is pointed at: a training file (traces or ShareGPT lines), a pairs file
//! (labelled pairs, see [`crate::pairs`]), a preference file ([`crate::preferences`]) or a benchmark (`mmsafeaware:<dir>`, `jsonl:<file>`,
//! a release folder, or a JSONL file whose first item has a `gold` field).

use std::path::{Path, PathBuf};

use crate::benchmark::{Benchmark, BenchmarkError, Verdict};
use crate::pairs::{self, PairsFile};
use crate::preferences::{self, PreferenceAnswer, PreferenceFile};
use crate::sharegpt::Role;
use crate::traces::{self, Record, TraceError, TrainingFile};

/// A classified input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A training file.
    Traces(PathBuf),
    /// A file of labelled pairs.
    Pairs(PathBuf),
    /// A file of preference pairs (DPO).
    Preferences(PathBuf),
    /// A benchmark spec for [`Benchmark::open`].
    Benchmark(String),
}

impl Input {
    /// Classifies `arg`: a `mmsafeaware:`/`jsonl:` spec or a folder is a benchmark; a file is a
    /// benchmark if its first non-blank line is a JSON object with `gold`, a pairs file if that
    /// line is a labelled pair ([`pairs::is_pair`]), a preference file if it has `chosen` and
    /// `rejected` ([`preferences::is_preference`]), else a training file.
    pub fn classify(arg: &str) -> Input {
        if arg.starts_with("mmsafeaware:") || arg.starts_with("jsonl:") || Path::new(arg).is_dir() {
            return Input::Benchmark(arg.to_string());
        }
        let first = std::fs::read_to_string(arg).ok().and_then(|text| {
            text.lines()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        });
        match first {
            Some(v) if v.get("gold").is_some() => Input::Benchmark(format!("jsonl:{arg}")),
            Some(v) if pairs::is_pair(&v) => Input::Pairs(PathBuf::from(arg)),
            Some(v) if preferences::is_preference(&v) => Input::Preferences(PathBuf::from(arg)),
            _ => Input::Traces(PathBuf::from(arg)),
        }
    }
}

/// A loaded input.
#[derive(Debug, Clone)]
pub enum Loaded {
    Traces(TrainingFile),
    Pairs(PairsFile),
    Preferences(PreferenceFile),
    Benchmark(Benchmark),
}

/// An input could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error(transparent)]
    Benchmark(#[from] BenchmarkError),
}

/// One item of any input, as the preview and stats see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    /// Resolved image path (the first image of a conversation); `None` if absent.
    pub image: Option<PathBuf>,
    pub prompt: String,
    /// Gold verdict, trace verdict, or the verdict tag of a ShareGPT answer.
    pub verdict: Option<Verdict>,
    pub subset: Option<String>,
    pub scenario: Option<String>,
}

impl Loaded {
    /// Loads `arg` (see [`Input::classify`]); `annotations` applies to benchmarks only.
    pub fn open(arg: &str, annotations: Option<&Path>) -> Result<Loaded, LoadError> {
        Ok(match Input::classify(arg) {
            Input::Traces(path) => Loaded::Traces(traces::read_training_file(&path)?),
            Input::Pairs(path) => Loaded::Pairs(pairs::read_pairs(&path)?),
            Input::Preferences(path) => Loaded::Preferences(preferences::read_preferences(&path)?),
            Input::Benchmark(spec) => Loaded::Benchmark(Benchmark::open(&spec, annotations)?),
        })
    }

    /// Where it came from (a path or spec).
    pub fn name(&self) -> String {
        match self {
            Loaded::Traces(f) => f.path.display().to_string(),
            Loaded::Pairs(f) => f.path.display().to_string(),
            Loaded::Preferences(f) => f.path.display().to_string(),
            Loaded::Benchmark(b) => b.spec.clone(),
        }
    }

    /// Every item, in order.
    pub fn entries(&self) -> Vec<Entry> {
        match self {
            Loaded::Benchmark(b) => b
                .items
                .iter()
                .map(|i| Entry {
                    id: i.id.clone(),
                    image: i.image.clone(),
                    prompt: i.prompt.clone(),
                    verdict: Some(i.gold),
                    subset: Some(i.subset.as_str().to_string()),
                    scenario: i.scenario.clone(),
                })
                .collect(),
            Loaded::Traces(f) => f
                .records
                .iter()
                .map(|(_, r)| record_entry(r, &f.dir))
                .collect(),
            Loaded::Pairs(f) => f
                .pairs
                .iter()
                .map(|(_, p)| Entry {
                    verdict: Some(p.verdict),
                    ..Entry::of(
                        &p.id,
                        f.dir.join(&p.image),
                        &p.prompt,
                        p.subset,
                        &p.scenario,
                    )
                })
                .collect(),
            Loaded::Preferences(f) => f
                .pairs
                .iter()
                .map(|(_, p)| Entry {
                    verdict: answer_verdict(&p.chosen),
                    ..Entry::of(
                        &p.id,
                        f.dir.join(&p.image),
                        &p.prompt,
                        p.subset,
                        &p.scenario,
                    )
                })
                .collect(),
        }
    }
}

impl Entry {
    /// An entry with an image and labels, no verdict yet.
    fn of(
        id: &str,
        image: PathBuf,
        prompt: &str,
        subset: Option<crate::benchmark::Subset>,
        scenario: &Option<String>,
    ) -> Entry {
        Entry {
            id: id.to_string(),
            image: Some(image),
            prompt: prompt.to_string(),
            verdict: None,
            subset: subset.map(|s| s.as_str().to_string()),
            scenario: scenario.clone(),
        }
    }
}

/// The verdict of a preference answer: a trace's, or the verdict tag of a text.
fn answer_verdict(answer: &PreferenceAnswer) -> Option<crate::benchmark::Verdict> {
    match answer {
        PreferenceAnswer::Trace { verdict, .. } => Some(*verdict),
        PreferenceAnswer::Text(text) => traces::parse_verdict(text),
    }
}

fn record_entry(record: &Record, dir: &Path) -> Entry {
    match record {
        Record::Trace(t) => Entry {
            id: t.id.clone(),
            image: Some(dir.join(&t.image)),
            prompt: t.prompt.clone(),
            verdict: Some(t.verdict),
            subset: t.subset.map(|s| s.as_str().to_string()),
            scenario: t.scenario.clone(),
        },
        Record::Description(d) => Entry {
            id: d.id.clone(),
            image: Some(dir.join(&d.image)),
            prompt: d.prompt.clone(),
            verdict: None,
            subset: None,
            scenario: None,
        },
        Record::Chat(c) => {
            let last_of = |role: Role| {
                c.messages
                    .iter()
                    .rev()
                    .find(|m| m.role == role)
                    .map(|m| m.content.clone())
            };
            let prompt = last_of(Role::User).unwrap_or_default();
            Entry {
                id: c.id.clone(),
                image: c.images.first().map(|p| dir.join(p)),
                prompt: prompt
                    .replace(crate::sharegpt::IMAGE_PLACEHOLDER, "")
                    .trim()
                    .to_string(),
                verdict: last_of(Role::Assistant).and_then(|a| traces::parse_verdict(&a)),
                subset: None,
                scenario: None,
            }
        }
    }
}
