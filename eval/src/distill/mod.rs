//! Distillation: vision-centric reasoning traces made by a teacher model for labelled pairs,
//! kept only when their verdict agrees with the gold label (`safeaware data distill`).
//!
//! Each pair is asked as a benchmark item is ([`PromptStrategy`], default `trace`: describe →
//! reason → verdict in the training tags) through the evaluator's endpoint client
//! ([`Endpoint`]: retries, timeouts, concurrency). Up to [`DistillConfig::samples`] answers are
//! drawn per pair — sample `k` sends seed `seed + k` — and the first whose tags parse and whose
//! verdict is the gold label becomes a trace ([`parse`]); a pair with none is written to the
//! rejected file with each sample's reason. A teacher that keeps failing (after the client's
//! retries) leaves the pair undone: it is counted and asked again on the next run. Both files
//! are append-only and resumable ([`output`]). One trace renders in every target style (`vcr`,
//! `cot`, `direct`).
//!
//! With [`DistillConfig::preferences`] (`data distill --preferences`) the output is preference
//! pairs for DPO ([`safeaware_data::preferences`]): samples are drawn until one well-formed
//! answer has the gold verdict (`chosen`) and one has the other verdict (`rejected`); a pair
//! without both is rejected (`no_wrong_verdict` when every readable sample agreed).

pub mod output;
pub mod parse;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use safeaware_common::output_dir::same_path;
use safeaware_data::benchmark::{BenchmarkItem, Verdict};
use safeaware_data::fileio::{base_dir, relative_path};
use safeaware_data::pairs::{LabelledPair, PairsFile};
use safeaware_data::preferences::{PreferenceAnswer, PreferencePair};
use safeaware_data::traces::Trace;

use crate::outcome::{count_causes, Tally};
use crate::progress::{Progress, ProgressMode};
use crate::prompt::PromptStrategy;
use crate::source::data_url::image_data_url;
use crate::source::endpoint::Endpoint;
use crate::source::{AnswerSource, SourceError};
use crate::EvalError;
use output::{KeptLine, Outputs, PreferredLine, RejectedLine, RejectedSample};
use parse::{parse_answer, RejectReason, TraceParts};

/// How many teacher errors are printed one by one (all are counted).
const ERROR_LINES: usize = 10;

/// Settings of a distillation that are not the pairs or the teacher.
#[derive(Debug, Clone)]
pub struct DistillConfig {
    /// The traces file (appended to).
    pub out: PathBuf,
    /// The rejected-pairs file (appended to).
    pub rejected: PathBuf,
    /// How each pair is asked.
    pub prompt: PromptStrategy,
    /// Answers drawn per pair at most (the first kept one ends the pair).
    pub samples: usize,
    /// Seed of sample 0 when sampling; sample `k` uses `seed + k`. `None` for greedy.
    pub seed: Option<u64>,
    /// The teacher's name, written into each trace.
    pub teacher: String,
    /// Ask the pairs of the rejected file again (it is emptied first).
    pub retry_rejected: bool,
    /// Empty an existing output file that is not distill's instead of refusing it.
    pub overwrite: bool,
    /// Write preference pairs (a gold-verdict sample chosen, a wrong-verdict one rejected)
    /// instead of traces.
    pub preferences: bool,
    pub progress: ProgressMode,
}

impl DistillConfig {
    /// Checks the settings: at least one sample, several only when sampling with a seed, and a
    /// single-turn prompt.
    pub fn validate(&self) -> Result<(), EvalError> {
        let bad = |m: &str| Err(EvalError::Config(m.to_string()));
        if self.samples == 0 {
            return bad("--samples must be at least 1");
        }
        if self.preferences && self.samples < 2 {
            return bad(
                "--preferences needs --samples of at least 2 (a chosen and a rejected answer)",
            );
        }
        if self.samples > 1 && self.seed.is_none() {
            return bad("--samples above 1 needs sampling (--temperature above 0): greedy answers are all the same");
        }
        if self.prompt.first_turn().is_some() {
            return bad("--prompt describe-first asks two turns; distillation needs the whole trace in one answer");
        }
        if same_path(&self.out, &self.rejected) {
            return bad("--rejected must be another file than --out");
        }
        Ok(())
    }
}

/// What a distillation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistillSummary {
    /// Pairs in the input.
    pub pairs: usize,
    /// Pairs already done before this run (kept or rejected).
    pub already_done: usize,
    /// Traces kept in this run.
    pub kept: usize,
    /// Pairs rejected in this run, by the reason of their last sample.
    pub rejected: BTreeMap<RejectReason, usize>,
    /// Pairs the teacher failed on (asked again next run).
    pub teacher_errors: usize,
    /// Those failures counted by cause, most frequent first.
    pub error_causes: Vec<(String, usize)>,
    /// Teacher answers drawn in this run.
    pub samples: usize,
}

impl DistillSummary {
    /// A few lines for the terminal.
    pub fn to_text(&self) -> String {
        let rejected: usize = self.rejected.values().sum();
        let mut text = format!(
            "{} pairs: {} already done, {} kept, {} rejected, {} teacher error(s) ({} answers drawn)\n",
            self.pairs, self.already_done, self.kept, rejected, self.teacher_errors, self.samples
        );
        for (reason, n) in &self.rejected {
            text.push_str(&format!("  rejected {reason}: {n}\n"));
        }
        if self.teacher_errors > 0 {
            text.push_str("  run the same command again to ask the failed pairs again\n");
        }
        text
    }

    /// How the pairs asked in this run ended, for [`crate::outcome::ErrorBudget::judge`]: a
    /// pair succeeded when the teacher answered (kept or rejected), failed when it did not.
    pub fn tally(&self) -> Tally<'static> {
        let answered = self.kept + self.rejected.values().sum::<usize>();
        Tally {
            asked: answered + self.teacher_errors,
            succeeded: answered,
            failed: self.teacher_errors,
            causes: self.error_causes.clone(),
            noun: "pair",
            verb: "answered by the teacher",
        }
    }
}

/// How one pair ended.
enum Outcome {
    Kept {
        trace: Trace,
        sample: usize,
    },
    Preferred {
        pair: PreferencePair,
        samples: [usize; 2],
    },
    Rejected(RejectedLine),
    Failed {
        id: String,
        error: SourceError,
    },
}

/// The answers drawn for one pair and how it ended.
struct Asked {
    outcome: Outcome,
    samples: usize,
}

/// Distils the pairs of `pairs` with `teacher`, appending to the files of `config`.
pub fn run(
    pairs: &PairsFile,
    teacher: &Endpoint,
    config: &DistillConfig,
) -> Result<DistillSummary, EvalError> {
    config.validate()?;
    let mut outputs = Outputs::open(
        &config.out,
        &config.rejected,
        config.retry_rejected,
        config.overwrite,
    )?;
    let pending: Vec<&LabelledPair> = pairs
        .pairs
        .iter()
        .map(|(_, p)| p)
        .filter(|p| !outputs.done(&p.id))
        .collect();
    let mut summary = DistillSummary {
        pairs: pairs.pairs.len(),
        already_done: pairs.pairs.len() - pending.len(),
        ..DistillSummary::default()
    };
    let mut progress = Progress::with_mode("distill", pending.len() as u64, 0, config.progress);
    for (path, line) in &outputs.cut {
        let shown: String = line.chars().take(80).collect();
        progress.println(&format!(
            "distill: {}: dropped a half-written last line ({shown}…)",
            path.display()
        ));
    }
    if summary.already_done > 0 {
        progress.println(&format!(
            "distill: resuming: {} of {} pairs done",
            summary.already_done, summary.pairs
        ));
    }
    let out_dir = base_dir(&config.out);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut errors: Vec<String> = Vec::new();
    let workers = teacher.parallelism().clamp(1, pending.len().max(1));
    let outcome = std::thread::scope(|scope| -> Result<(), EvalError> {
        let (tx, rx) = mpsc::channel::<Asked>();
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop, pending, out_dir) = (&next, &stop, &pending, &out_dir);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= pending.len() || stop.load(Ordering::SeqCst) {
                    break;
                }
                let asked = ask_pair(pending[i], &pairs.dir, out_dir, teacher, config);
                if tx.send(asked).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for asked in rx {
            if let Outcome::Failed { error, .. } = &asked.outcome {
                errors.push(error.to_string());
            }
            let written = record(asked, &mut outputs, &mut summary, &mut progress, config);
            if let Err(e) = written {
                stop.store(true, Ordering::SeqCst);
                return Err(e);
            }
            progress.inc();
        }
        Ok(())
    });
    progress.finish("");
    outcome?;
    summary.error_causes = count_causes(errors.iter().map(String::as_str));
    Ok(summary)
}

/// Writes one pair's outcome and counts it.
fn record(
    asked: Asked,
    outputs: &mut Outputs,
    summary: &mut DistillSummary,
    progress: &mut Progress,
    config: &DistillConfig,
) -> Result<(), EvalError> {
    summary.samples += asked.samples;
    match asked.outcome {
        Outcome::Kept { trace, sample } => {
            outputs.keep(&KeptLine {
                trace: &trace,
                teacher: &config.teacher,
                sample,
            })?;
            summary.kept += 1;
        }
        Outcome::Preferred { pair, samples } => {
            outputs.keep_preference(&PreferredLine {
                pair: &pair,
                teacher: &config.teacher,
                chosen_sample: samples[0],
                rejected_sample: samples[1],
            })?;
            summary.kept += 1;
        }
        Outcome::Rejected(line) => {
            outputs.reject(&line)?;
            *summary.rejected.entry(line.reason).or_default() += 1;
        }
        Outcome::Failed { id, error } => {
            summary.teacher_errors += 1;
            if summary.teacher_errors <= ERROR_LINES {
                progress.println(&format!("distill: id {id}: {error}"));
            }
        }
    }
    Ok(())
}

/// Asks the teacher about one pair until a sample is kept (with `preferences`, until one
/// agrees with the gold label and one does not) or the samples run out.
fn ask_pair(
    pair: &LabelledPair,
    pairs_dir: &Path,
    out_dir: &Path,
    teacher: &Endpoint,
    config: &DistillConfig,
) -> Asked {
    let item = pair.to_item(pairs_dir);
    let image = item.image.clone().unwrap_or_default();
    let failed = |error, samples| Asked {
        outcome: Outcome::Failed {
            id: pair.id.clone(),
            error,
        },
        samples,
    };
    let url = match image_data_url(&image) {
        Ok(url) => url,
        Err(e) => return failed(e, 0),
    };
    let conversation = config.prompt.conversation(&item, None);
    let mut drawn = Drawn::default();
    for k in 0..config.samples {
        let seed = config.seed.map(|s| s.wrapping_add(k as u64));
        let answer = match teacher.ask(&conversation, &url, seed) {
            Ok(a) => a,
            Err(e) => return failed(e, k),
        };
        drawn.add(k, answer, pair.verdict);
        if let Some(outcome) = drawn.finished(pair, &image, out_dir, config.preferences) {
            return Asked {
                outcome,
                samples: k + 1,
            };
        }
    }
    let reason = match (&drawn.gold, &drawn.wrong) {
        (Some(_), None) => Some(RejectReason::NoWrongVerdict),
        _ => None,
    };
    Asked {
        outcome: Outcome::Rejected(rejected_line(&item, &image, out_dir, drawn.failed, reason)),
        samples: config.samples,
    }
}

/// The samples of one pair so far: the first with the gold verdict, the first with the other
/// verdict (with their indices), and the ones not kept, with why.
#[derive(Default)]
struct Drawn {
    gold: Option<(usize, TraceParts)>,
    wrong: Option<(usize, TraceParts)>,
    failed: Vec<RejectedSample>,
}

impl Drawn {
    /// Sorts sample `k`'s `answer` by whether it reads and agrees with `gold`.
    fn add(&mut self, k: usize, answer: String, gold: Verdict) {
        match parse_answer(&answer) {
            Ok(parts) if parts.verdict == gold => {
                self.gold.get_or_insert((k, parts));
            }
            Ok(parts) => {
                self.wrong.get_or_insert((k, parts));
                self.failed.push(RejectedSample {
                    reason: RejectReason::WrongVerdict,
                    response: answer,
                });
            }
            Err(reason) => self.failed.push(RejectedSample {
                reason,
                response: answer,
            }),
        }
    }

    /// The pair's outcome once the samples drawn suffice: a trace from the gold sample, or with
    /// `preferences` a pair of the gold and the wrong sample.
    fn finished(
        &self,
        pair: &LabelledPair,
        image: &Path,
        out_dir: &Path,
        preferences: bool,
    ) -> Option<Outcome> {
        let (chosen_k, chosen) = self.gold.as_ref()?;
        let image: PathBuf = relative_path(image, out_dir).into();
        if !preferences {
            let trace = Trace {
                id: pair.id.clone(),
                image,
                prompt: pair.prompt.clone(),
                description: chosen.description.clone(),
                reasoning: chosen.reasoning.clone(),
                verdict: chosen.verdict,
                subset: pair.subset,
                scenario: pair.scenario.clone(),
            };
            return Some(Outcome::Kept {
                trace,
                sample: *chosen_k,
            });
        }
        let (rejected_k, rejected) = self.wrong.as_ref()?;
        let preference = PreferencePair {
            id: pair.id.clone(),
            image,
            prompt: pair.prompt.clone(),
            chosen: trace_answer(chosen),
            rejected: trace_answer(rejected),
            subset: pair.subset,
            scenario: pair.scenario.clone(),
            instruction: false,
        };
        Some(Outcome::Preferred {
            pair: preference,
            samples: [*chosen_k, *rejected_k],
        })
    }
}

/// A teacher's trace as one side of a preference pair.
fn trace_answer(parts: &TraceParts) -> PreferenceAnswer {
    PreferenceAnswer::Trace {
        description: Some(parts.description.clone()),
        reasoning: parts.reasoning.clone(),
        verdict: parts.verdict,
    }
}

/// The rejected line of a pair: `reason`, or else the last sample's.
fn rejected_line(
    item: &BenchmarkItem,
    image: &Path,
    out_dir: &Path,
    samples: Vec<RejectedSample>,
    reason: Option<RejectReason>,
) -> RejectedLine {
    RejectedLine {
        id: item.id.clone(),
        image: relative_path(image, out_dir),
        prompt: item.prompt.clone(),
        verdict: item.gold,
        reason: reason
            .unwrap_or_else(|| samples.last().map_or(RejectReason::NoVerdict, |s| s.reason)),
        samples,
    }
}
