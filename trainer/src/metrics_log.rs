//! `<run>/metrics.jsonl`: one JSON object per logged step, appended and flushed as it happens,
//! so a run can be plotted or inspected while it trains (and after it crashed).
//!
//! After a crash the file may end with a torn line and with steps newer than the checkpoint
//! being resumed; [`MetricsLog::resume`] drops both so the log stays one line per step.

use crate::fsutil::atomic_write;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the metrics log inside the run folder.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// One line of the log. Training fields are absent on eval-only lines and vice versa.
/// Non-finite numbers are written as `null` (JSON has no NaN) and read back as `None`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// Optimiser steps completed.
    pub step: u64,
    /// Training wall time so far, in seconds.
    pub elapsed_s: f64,
    /// Mean training loss since the previous line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Learning rate of the text model (the headline rate; the others follow the same schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Global gradient L2 norm before clipping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    /// Training tokens per second since the previous line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// Training images per second since the previous line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_per_s: Option<f64>,
    /// Estimated seconds to the end of training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<f64>,
    /// DPO runs: rewards and log-probabilities since the previous line, under TRL's names.
    #[serde(flatten)]
    pub preference: PreferenceRecord,
    /// Evaluation metrics by name (e.g. `val_loss`, `accuracy`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub eval: BTreeMap<String, f64>,
}

/// TRL's DPO metrics, means over the pairs of the steps a line covers (absent in SFT runs):
/// `rewards/chosen` and `rewards/rejected` (`β·(π − ρ)` of each answer), `rewards/accuracies`
/// (the share of pairs whose chosen reward is the larger), `rewards/margins` (chosen − rejected),
/// `logps/chosen` and `logps/rejected` (the policy's log-probabilities; averaged per token for
/// `ipo`, as TRL does).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PreferenceRecord {
    #[serde(
        rename = "rewards/chosen",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rewards_chosen: Option<f64>,
    #[serde(
        rename = "rewards/rejected",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rewards_rejected: Option<f64>,
    #[serde(
        rename = "rewards/accuracies",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rewards_accuracies: Option<f64>,
    #[serde(
        rename = "rewards/margins",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rewards_margins: Option<f64>,
    #[serde(
        rename = "logps/chosen",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub logps_chosen: Option<f64>,
    #[serde(
        rename = "logps/rejected",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub logps_rejected: Option<f64>,
}

impl PreferenceRecord {
    /// The metrics by their TRL names.
    pub fn named(&self) -> [(&'static str, Option<f64>); 6] {
        [
            ("rewards/chosen", self.rewards_chosen),
            ("rewards/rejected", self.rewards_rejected),
            ("rewards/accuracies", self.rewards_accuracies),
            ("rewards/margins", self.rewards_margins),
            ("logps/chosen", self.logps_chosen),
            ("logps/rejected", self.logps_rejected),
        ]
    }
}

impl MetricsRecord {
    /// The record's numbers as TensorBoard tags: `train/<field>` (DPO's `train/rewards/…`) and
    /// `eval/<name>`.
    pub fn scalars(&self) -> Vec<(String, f64)> {
        let train = [
            ("loss", self.loss),
            ("lr", self.lr),
            ("grad_norm", self.grad_norm),
            ("tokens_per_s", self.tokens_per_s),
            ("images_per_s", self.images_per_s),
        ];
        train
            .into_iter()
            .chain(self.preference.named())
            .filter_map(|(name, v)| v.map(|v| (format!("train/{name}"), v)))
            .chain(self.eval.iter().map(|(k, v)| (format!("eval/{k}"), *v)))
            .collect()
    }
}

impl MetricsRecord {
    /// The record as one progress line: `step N loss=… lr=… grad_norm=… tok/s=… img/s=… elapsed=… eta=…`.
    pub fn line(&self) -> String {
        let mut line = format!("step {}", self.step);
        for (name, value) in [
            ("loss", self.loss),
            ("lr", self.lr),
            ("grad_norm", self.grad_norm),
        ] {
            if let Some(v) = value {
                line.push_str(&format!(" {name}={v:.4e}"));
            }
        }
        if let Some(v) = self.preference.rewards_accuracies {
            line.push_str(&format!(" rewards/accuracies={v:.3}"));
        }
        if let Some(v) = self.preference.rewards_margins {
            line.push_str(&format!(" rewards/margins={v:.4e}"));
        }
        if let Some(v) = self.tokens_per_s {
            line.push_str(&format!(" tok/s={v:.0}"));
        }
        if let Some(v) = self.images_per_s {
            line.push_str(&format!(" img/s={v:.1}"));
        }
        line.push_str(&format!(
            " elapsed={}",
            crate::progress::hms(self.elapsed_s)
        ));
        if let Some(v) = self.eta_s {
            line.push_str(&format!(" eta={}", crate::progress::hms(v)));
        }
        line
    }
}

/// Appender for `<run>/metrics.jsonl`.
pub struct MetricsLog {
    file: File,
    path: PathBuf,
}

impl MetricsLog {
    /// Opens the log of a fresh run (appending if it exists).
    pub fn open(run: &Path) -> Result<Self> {
        fs::create_dir_all(run).with_context(|| format!("creating {}", run.display()))?;
        let path = run.join(METRICS_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { file, path })
    }

    /// Opens the log of a run resumed after `step`: lines with a newer step and a torn last
    /// line are removed first (atomically), then appending continues.
    pub fn resume(run: &Path, step: u64) -> Result<Self> {
        let path = run.join(METRICS_FILE);
        if path.exists() {
            let kept: Vec<MetricsRecord> = read_metrics(&path)?
                .into_iter()
                .filter(|r| r.step <= step)
                .collect();
            let mut text = String::new();
            for r in &kept {
                text.push_str(&serde_json::to_string(r).context("serialising metrics")?);
                text.push('\n');
            }
            atomic_write(&path, text.as_bytes())?;
        }
        Self::open(run)
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line and flushes it to the OS.
    pub fn append(&mut self, record: &MetricsRecord) -> Result<()> {
        let mut line = serde_json::to_string(record).context("serialising metrics")?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Reads a metrics log; a torn (unparseable) final line is skipped, any other bad line is an
/// error naming its line number.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRecord>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(r) => records.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("{}:{}: bad metrics line", path.display(), i + 1))
            }
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(step: u64, loss: f64) -> MetricsRecord {
        MetricsRecord {
            step,
            elapsed_s: step as f64,
            loss: Some(loss),
            lr: Some(1e-3),
            ..Default::default()
        }
    }

    #[test]
    fn appends_lines_readable_while_open() {
        let run = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::open(run.path()).unwrap();
        log.append(&rec(10, 2.5)).unwrap();
        let mut eval = MetricsRecord {
            step: 10,
            elapsed_s: 11.0,
            ..Default::default()
        };
        eval.eval.insert("val_loss".into(), 2.0);
        log.append(&eval).unwrap();
        // Readable without closing: every append reaches the file.
        let back = read_metrics(log.path()).unwrap();
        assert_eq!(back, vec![rec(10, 2.5), eval.clone()]);
        let text = fs::read_to_string(log.path()).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"step":10,"elapsed_s":10.0,"loss":2.5,"lr":0.001}"#
        );
        assert_eq!(
            text.lines().nth(1).unwrap(),
            r#"{"step":10,"elapsed_s":11.0,"eval":{"val_loss":2.0}}"#
        );
    }

    #[test]
    fn nan_is_written_as_null() {
        let run = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::open(run.path()).unwrap();
        log.append(&rec(1, f64::NAN)).unwrap();
        assert_eq!(read_metrics(log.path()).unwrap()[0].loss, None);
    }

    #[test]
    fn resume_drops_newer_steps_and_torn_tail() {
        let run = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::open(run.path()).unwrap();
        for s in [10, 20, 30] {
            log.append(&rec(s, 1.0)).unwrap();
        }
        drop(log);
        let path = run.path().join(METRICS_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"step":40,"elap"#).unwrap();
        drop(f);
        assert_eq!(read_metrics(&path).unwrap().len(), 3, "torn tail skipped");
        let mut log = MetricsLog::resume(run.path(), 20).unwrap();
        log.append(&rec(30, 0.5)).unwrap();
        let steps: Vec<(u64, Option<f64>)> = read_metrics(&path)
            .unwrap()
            .iter()
            .map(|r| (r.step, r.loss))
            .collect();
        assert_eq!(steps, [(10, Some(1.0)), (20, Some(1.0)), (30, Some(0.5))]);
    }

    #[test]
    fn corrupt_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS_FILE);
        fs::write(
            &path,
            "{\"step\":1,\"elapsed_s\":1}\nnot json\n{\"step\":2,\"elapsed_s\":2}\n",
        )
        .unwrap();
        let err = format!("{:#}", read_metrics(&path).unwrap_err());
        assert!(err.contains(":2: bad metrics line"), "{err}");
    }

    #[test]
    fn preference_metrics_use_trl_names_and_read_back() {
        let run = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::open(run.path()).unwrap();
        let mut r = rec(3, 0.69);
        r.preference.rewards_accuracies = Some(0.5);
        r.preference.logps_chosen = Some(-12.0);
        log.append(&r).unwrap();
        let text = fs::read_to_string(log.path()).unwrap();
        assert!(
            text.contains(r#""rewards/accuracies":0.5,"logps/chosen":-12.0"#),
            "{text}"
        );
        assert_eq!(read_metrics(log.path()).unwrap(), vec![r.clone()]);
        let tags: Vec<String> = r.scalars().into_iter().map(|(t, _)| t).collect();
        assert!(
            tags.contains(&"train/rewards/accuracies".to_string()),
            "{tags:?}"
        );
    }

    #[test]
    fn scalars_use_train_and_eval_prefixes() {
        let mut r = rec(5, 1.5);
        r.eval.insert("accuracy".into(), 0.75);
        assert_eq!(
            r.scalars(),
            [
                ("train/loss".to_string(), 1.5),
                ("train/lr".to_string(), 1e-3),
                ("eval/accuracy".to_string(), 0.75)
            ]
        );
    }
}
