//! safeaware-trainer: the training infrastructure behind the `safeaware` binary — recipes,
//! learning-rate schedule, gradient clipping and parameter groups, run folders and
//! checkpoints, TensorBoard and JSONL metrics, progress reporting.
//!
//! It is a library so that integration tests (and other crates) can use these pieces; the
//! binary's subcommands live in `src/commands/`.

pub mod backend;
pub mod batching;
pub mod checkpoint;
pub mod evaluation;
pub mod fingerprint;
pub mod fsutil;
pub mod grad_clip;
pub mod metrics_log;
pub mod param_groups;
pub mod preset;
pub mod progress;
pub mod recipe;
pub mod schedule;
pub mod tensorboard;
pub mod train_data;
pub mod trainer_state;
pub mod training;
