//! `trainer_state/` inside a checkpoint: everything besides the model needed to resume a run
//! exactly — the step (which also places the learning-rate schedule), and the epoch and
//! position in the data order (whose permutations derive from the run's seed) — in
//! `state.json`, plus the training step's own state (the optimiser's) written by a callback.
//!
//! The state also records what the run *is* (recipe fingerprint, seed, data fingerprint) so
//! that resuming with a different recipe or different data is refused instead of silently
//! producing a run that matches neither.

use crate::fsutil::atomic_write;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// Sub-folder of a checkpoint holding the trainer state.
pub const TRAINER_STATE_DIR: &str = "trainer_state";
/// The JSON state file inside [`TRAINER_STATE_DIR`].
pub const STATE_FILE: &str = "state.json";
/// Conventional optimiser-state file name inside [`TRAINER_STATE_DIR`] (Burn's named
/// MessagePack recorder keeps this extension).
pub const OPTIMIZER_FILE: &str = "optimizer.mpk";
/// Version of the `state.json` layout. Format 1 also held `rng` and `schedule_step`, which
/// nothing read; it still loads (the two fields are ignored).
pub const STATE_FORMAT: u32 = 2;
/// The oldest layout [`read_trainer_state`] accepts.
const OLDEST_STATE_FORMAT: u32 = 1;

/// The identity of a run; resuming requires all three to match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// [`crate::recipe::Recipe::fingerprint`] of the resolved recipe.
    pub recipe_fingerprint: String,
    /// `train.seed`.
    pub seed: u64,
    /// Fingerprint of the training data (see [`crate::fingerprint::fingerprint_files`]).
    pub data_fingerprint: String,
}

impl RunIdentity {
    /// Errors, naming every difference, unless `current` is the same run as `self` (the one
    /// saved in the checkpoint).
    pub fn check_resume(&self, current: &RunIdentity) -> Result<()> {
        let mut diffs = Vec::new();
        if self.recipe_fingerprint != current.recipe_fingerprint {
            diffs.push(format!(
                "recipe fingerprint {} != {} (a training-relevant key changed; compare with recipe.resolved.toml)",
                current.recipe_fingerprint, self.recipe_fingerprint
            ));
        }
        if self.seed != current.seed {
            diffs.push(format!("train.seed {} != {}", current.seed, self.seed));
        }
        if self.data_fingerprint != current.data_fingerprint {
            diffs.push(format!(
                "data fingerprint {} != {}",
                current.data_fingerprint, self.data_fingerprint
            ));
        }
        if !diffs.is_empty() {
            bail!(
                "refusing to resume: this is not the run the checkpoint belongs to:\n  {}\nUse a new run folder (train.output_dir) or restore the original recipe and data.",
                diffs.join("\n  ")
            );
        }
        Ok(())
    }
}

/// Contents of `trainer_state/state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Layout version ([`STATE_FORMAT`]).
    pub format: u32,
    /// Optimiser steps completed.
    pub step: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Examples of the current epoch's order already consumed.
    pub data_position: u64,
    /// Training tokens processed so far.
    pub tokens_seen: u64,
    /// Training images processed so far.
    pub images_seen: u64,
    /// Training wall time so far, in seconds.
    pub elapsed_s: f64,
    /// Which run this is.
    pub run: RunIdentity,
}

impl TrainerState {
    /// State of a run that has not taken a step yet.
    pub fn new(run: RunIdentity) -> Self {
        Self {
            format: STATE_FORMAT,
            step: 0,
            epoch: 0,
            data_position: 0,
            tokens_seen: 0,
            images_seen: 0,
            elapsed_s: 0.0,
            run,
        }
    }
}

/// `<checkpoint>/trainer_state`.
pub fn trainer_state_dir(checkpoint: &Path) -> PathBuf {
    checkpoint.join(TRAINER_STATE_DIR)
}

/// Writes `<checkpoint>/trainer_state/`: `write_optimizer` is called with the path of
/// [`OPTIMIZER_FILE`] to save the optimiser state, then `state.json` is written. Meant to run
/// inside a [`crate::checkpoint::write_checkpoint`] callback, which makes the whole folder
/// appear atomically.
pub fn write_trainer_state(
    checkpoint: &Path,
    state: &TrainerState,
    write_optimizer: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let dir = trainer_state_dir(checkpoint);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_optimizer(&dir.join(OPTIMIZER_FILE)).context("saving the optimiser state")?;
    let json = serde_json::to_vec_pretty(state).context("serialising the trainer state")?;
    atomic_write(&dir.join(STATE_FILE), &json)
}

/// Reads `<checkpoint>/trainer_state/state.json`.
pub fn read_trainer_state(checkpoint: &Path) -> Result<TrainerState> {
    let path = trainer_state_dir(checkpoint).join(STATE_FILE);
    let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let state: TrainerState =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    if !(OLDEST_STATE_FORMAT..=STATE_FORMAT).contains(&state.format) {
        bail!(
            "{}: unsupported trainer state format {} (expected {OLDEST_STATE_FORMAT} to {STATE_FORMAT})",
            path.display(),
            state.format
        );
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> RunIdentity {
        RunIdentity {
            recipe_fingerprint: "aa".into(),
            seed: 7,
            data_fingerprint: "dd".into(),
        }
    }

    #[test]
    fn state_round_trips_with_optimizer_callback() {
        let ckpt = tempfile::tempdir().unwrap();
        let mut state = TrainerState::new(identity());
        state.step = 120;
        state.epoch = 2;
        state.data_position = 33;
        state.elapsed_s = 12.5;
        write_trainer_state(ckpt.path(), &state, |p| {
            assert_eq!(p.file_name().unwrap(), OPTIMIZER_FILE);
            Ok(fs::write(p, b"optim")?)
        })
        .unwrap();
        assert_eq!(read_trainer_state(ckpt.path()).unwrap(), state);
        assert_eq!(
            fs::read(ckpt.path().join("trainer_state/optimizer.mpk")).unwrap(),
            b"optim"
        );
    }

    #[test]
    fn failing_optimizer_writer_is_an_error_and_no_state_is_written() {
        let ckpt = tempfile::tempdir().unwrap();
        let state = TrainerState::new(identity());
        assert!(write_trainer_state(ckpt.path(), &state, |_| anyhow::bail!("no space")).is_err());
        assert!(read_trainer_state(ckpt.path()).is_err());
    }

    #[test]
    fn bad_state_files_are_errors() {
        let ckpt = tempfile::tempdir().unwrap();
        let dir = trainer_state_dir(ckpt.path());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(STATE_FILE), b"{not json").unwrap();
        assert!(read_trainer_state(ckpt.path()).is_err());
        let mut v = serde_json::to_value(TrainerState::new(identity())).unwrap();
        v["format"] = 99.into();
        fs::write(dir.join(STATE_FILE), v.to_string()).unwrap();
        let err = read_trainer_state(ckpt.path()).unwrap_err().to_string();
        assert!(err.contains("unsupported trainer state format 99"), "{err}");
    }

    /// A format-1 state (with its unused `rng` and `schedule_step`) still resumes.
    #[test]
    fn format_1_states_still_load() {
        let ckpt = tempfile::tempdir().unwrap();
        let dir = trainer_state_dir(ckpt.path());
        fs::create_dir_all(&dir).unwrap();
        let mut v = serde_json::to_value(TrainerState::new(identity())).unwrap();
        v["format"] = 1.into();
        v["rng"] = serde_json::json!({"seed": 7, "counters": {}});
        v["schedule_step"] = 0.into();
        fs::write(dir.join(STATE_FILE), v.to_string()).unwrap();
        assert_eq!(read_trainer_state(ckpt.path()).unwrap().format, 1);
    }

    #[test]
    fn resume_check_names_every_mismatch() {
        let saved = identity();
        saved.check_resume(&identity()).unwrap();
        let other = RunIdentity {
            recipe_fingerprint: "bb".into(),
            seed: 8,
            data_fingerprint: "dd".into(),
        };
        let err = saved.check_resume(&other).unwrap_err().to_string();
        assert!(err.contains("recipe fingerprint bb != aa"), "{err}");
        assert!(err.contains("train.seed 8 != 7"), "{err}");
        assert!(!err.contains("data fingerprint"), "{err}");
    }
}
