//! The evaluation loop: asks a source about every benchmark item, scores the answers and keeps
//! the output folder valid throughout.
//!
//! Output folder: `samples.jsonl` (appended and flushed per item), `results.json`, `report.md`
//! and `report.html` (rewritten atomically at checkpoints and at the end). Running again with
//! the same folder requires the same settings (benchmark, source, prompt, decoding) and resumes a
//! generating source: items already answered are skipped, items that failed are asked again. A
//! recorded responses file is always scored afresh.

use std::collections::{BTreeMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use safeaware_common::output_dir::OutputDir;
use safeaware_data::benchmark::{Benchmark, BenchmarkItem};

use crate::decoding::DecodingSettings;
use crate::progress::{Progress, ProgressMode};
use crate::prompt::{Conversation, PromptStrategy};
use crate::report;
use crate::results::Results;
use crate::samples::{read_samples, write_samples, SampleRecord, SampleWriter, Status};
use crate::source::{Answer, AnswerRequest, AnswerSource, SourceError};
use crate::EvalError;

/// File names inside the output folder.
pub const RESULTS_FILE: &str = "results.json";
pub const SAMPLES_FILE: &str = "samples.jsonl";

/// Settings of a run that are not the benchmark or the source.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The output folder (created if needed).
    pub out: PathBuf,
    pub prompt: PromptStrategy,
    /// Recorded in results (the source applies them).
    pub decoding: DecodingSettings,
    pub progress: ProgressMode,
    /// Longest time between two rewrites of results and reports.
    pub checkpoint_every: Duration,
    /// Write into an output folder safeaware did not make (`--overwrite`).
    pub overwrite: bool,
}

impl RunConfig {
    /// Paper prompt, default decoding, automatic progress, checkpoints every 2 s.
    pub fn new(out: impl Into<PathBuf>) -> RunConfig {
        RunConfig {
            out: out.into(),
            prompt: PromptStrategy::Paper,
            decoding: DecodingSettings::default(),
            progress: ProgressMode::Auto,
            checkpoint_every: Duration::from_secs(2),
            overwrite: false,
        }
    }
}

/// Evaluates `source` on `benchmark`, writing into `config.out`; returns the final results.
/// Per-item problems are recorded, never returned; only unusable settings or outputs fail.
/// The output folder is claimed for the run ([`OutputDir`]): locked against a second process,
/// and refused when it is another program's (not empty, no marker) unless `config.overwrite`.
pub fn run(
    benchmark: &Benchmark,
    source: &dyn AnswerSource,
    config: &RunConfig,
) -> Result<Results, EvalError> {
    let out = &config.out;
    let _claim = OutputDir::claim(out, "eval", config.overwrite)?;
    let samples_path = out.join(SAMPLES_FILE);
    let build = |records: &BTreeMap<String, SampleRecord>| {
        Results::build(
            benchmark,
            source.info(),
            config.prompt.info(),
            config.decoding.clone(),
            records,
        )
    };

    let mut records: BTreeMap<String, SampleRecord> = BTreeMap::new();
    let mut resumed_note = None;
    check_settings(out, &build(&records))?;
    if source.generates() {
        let known: HashSet<&str> = benchmark.items.iter().map(|i| i.id.as_str()).collect();
        let (old, bad) = read_samples(&samples_path)?;
        let before = old.len();
        for r in old {
            if known.contains(r.id.as_str()) && r.status != Status::Error {
                records.insert(r.id.clone(), r);
            } else {
                records.remove(&r.id);
            }
        }
        if before + bad > 0 {
            resumed_note = Some(format!(
                "eval: resuming in {}: {} item(s) done; failed items are asked again{}",
                out.display(),
                records.len(),
                if bad > 0 {
                    format!("; {bad} unreadable line(s) dropped")
                } else {
                    String::new()
                }
            ));
        }
    }
    let kept: Vec<&SampleRecord> = benchmark
        .items
        .iter()
        .filter_map(|i| records.get(&i.id))
        .collect();
    write_samples(&samples_path, &kept)?;
    write_outputs(out, &build(&records))?;

    let pending: Vec<&BenchmarkItem> = benchmark
        .items
        .iter()
        .filter(|i| !records.contains_key(&i.id))
        .collect();
    let (total, done) = (benchmark.items.len(), benchmark.items.len() - pending.len());
    let mut progress = Progress::with_mode("eval", total as u64, done as u64, config.progress);
    if let Some(note) = resumed_note {
        progress.println(&note);
    }
    let mut writer = SampleWriter::append(&samples_path)?;
    let workers = source.parallelism().clamp(1, pending.len().max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| -> Result<(), EvalError> {
        let (tx, rx) = mpsc::channel::<SampleRecord>();
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop, pending) = (&next, &stop, &pending);
            let batch = source.batch_size().max(1);
            scope.spawn(move || loop {
                let i = next.fetch_add(batch, Ordering::SeqCst);
                if i >= pending.len() || stop.load(Ordering::SeqCst) {
                    break;
                }
                let chunk = &pending[i..(i + batch).min(pending.len())];
                let records = ask_batch_guarded(source, chunk, &config.prompt);
                if records.into_iter().any(|r| tx.send(r).is_err()) {
                    break;
                }
            });
        }
        drop(tx);
        let mut last_checkpoint = Instant::now();
        for record in rx {
            let step = writer.write(&record).and_then(|()| {
                records.insert(record.id.clone(), record);
                progress.inc();
                if last_checkpoint.elapsed() >= config.checkpoint_every {
                    last_checkpoint = Instant::now();
                    writer.sync()?;
                    write_outputs(out, &build(&records))?;
                }
                Ok(())
            });
            if let Err(e) = step {
                stop.store(true, Ordering::SeqCst);
                return Err(e);
            }
        }
        Ok(())
    });
    progress.finish("");
    outcome?;
    writer.sync()?;
    let results = build(&records);
    write_outputs(out, &results)?;
    Ok(results)
}

/// Refuses to resume into a folder whose results.json records other settings.
fn check_settings(out: &Path, now: &Results) -> Result<(), EvalError> {
    let path = out.join(RESULTS_FILE);
    if !path.is_file() {
        return Ok(());
    }
    let before = Results::read(&path)?;
    let pairs = [
        (
            "benchmark",
            before.benchmark.spec.clone(),
            now.benchmark.spec.clone(),
        ),
        ("source", source_key(&before), source_key(now)),
        ("prompt", json(&before.prompt), json(&now.prompt)),
        ("decoding", json(&before.decoding), json(&now.decoding)),
    ];
    for (what, before, now) in pairs {
        if before != now {
            return Err(EvalError::SettingsMismatch {
                out: out.to_path_buf(),
                what: what.to_string(),
                before,
                now,
            });
        }
    }
    Ok(())
}

fn source_key(r: &Results) -> String {
    format!("{} {}", r.source.kind, r.source.name)
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Writes results.json, report.md and report.html.
pub fn write_outputs(out: &Path, results: &Results) -> Result<(), EvalError> {
    results.write(&out.join(RESULTS_FILE))?;
    report::write_reports(out, results)
}

/// [`ask_batch`], with a panicking source turned into item errors.
fn ask_batch_guarded(
    source: &dyn AnswerSource,
    items: &[&BenchmarkItem],
    prompt: &PromptStrategy,
) -> Vec<SampleRecord> {
    catch_unwind(AssertUnwindSafe(|| ask_batch(source, items, prompt))).unwrap_or_else(|_| {
        let error = SourceError::Other("the answer source panicked".into());
        items
            .iter()
            .map(|item| SampleRecord::failed(item, prompt.question(item), None, &error))
            .collect()
    })
}

/// [`ask`] for several items at once through [`AnswerSource::answer_batch`]: each turn of the
/// strategy is one batch call. Records come back in `items` order.
pub fn ask_batch(
    source: &dyn AnswerSource,
    items: &[&BenchmarkItem],
    prompt: &PromptStrategy,
) -> Vec<SampleRecord> {
    let mut done: Vec<Option<SampleRecord>> = items
        .iter()
        .map(|item| {
            (source.generates() && item.image.is_none())
                .then(|| SampleRecord::skipped(item, prompt.question(item)))
        })
        .collect();
    let mut descriptions: Vec<Option<String>> = vec![None; items.len()];
    let turn = |done: &mut Vec<Option<SampleRecord>>,
                conversations: Vec<(usize, Conversation)>,
                descriptions: &[Option<String>]|
     -> Vec<(usize, String)> {
        let requests: Vec<AnswerRequest<'_>> = conversations
            .iter()
            .map(|(i, c)| AnswerRequest {
                item: items[*i],
                conversation: c,
            })
            .collect();
        let answers = source.answer_batch(&requests);
        let mut texts = Vec::new();
        for ((i, _), answer) in conversations.iter().zip(answers) {
            let item = items[*i];
            match answer {
                Ok(Answer::Text(text)) => texts.push((*i, text)),
                Ok(Answer::NoResponse) => {
                    done[*i] = Some(SampleRecord::missing(item, prompt.question(item)))
                }
                Err(e) => {
                    let description = descriptions[*i].clone();
                    done[*i] = Some(SampleRecord::failed(
                        item,
                        prompt.question(item),
                        description,
                        &e,
                    ));
                }
            }
        }
        texts
    };
    if source.generates() {
        let firsts: Vec<(usize, Conversation)> = (0..items.len())
            .filter(|&i| done[i].is_none())
            .filter_map(|i| prompt.first_turn().map(|c| (i, c)))
            .collect();
        if !firsts.is_empty() {
            for (i, text) in turn(&mut done, firsts, &descriptions) {
                descriptions[i] = Some(text);
            }
        }
    }
    let finals: Vec<(usize, Conversation)> = (0..items.len())
        .filter(|&i| done[i].is_none())
        .map(|i| (i, prompt.conversation(items[i], descriptions[i].as_deref())))
        .collect();
    for (i, text) in turn(&mut done, finals, &descriptions) {
        let item = items[i];
        done[i] = Some(SampleRecord::scored(
            item,
            prompt.question(item),
            descriptions[i].clone(),
            text,
        ));
    }
    done.into_iter()
        .zip(items)
        .map(|(r, item)| {
            r.unwrap_or_else(|| {
                SampleRecord::failed(
                    item,
                    prompt.question(item),
                    None,
                    &SourceError::Other("not answered".into()),
                )
            })
        })
        .collect()
}

/// Asks about one item (two turns for a two-turn strategy) and scores the answer.
pub fn ask(
    source: &dyn AnswerSource,
    item: &BenchmarkItem,
    prompt: &PromptStrategy,
) -> SampleRecord {
    ask_batch(source, &[item], prompt).pop().unwrap_or_else(|| {
        let error = SourceError::Other("not answered".into());
        SampleRecord::failed(item, prompt.question(item), None, &error)
    })
}
