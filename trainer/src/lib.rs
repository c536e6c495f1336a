//! safeaware-trainer: the training library behind the `safeaware` binary — recipes,
//! learning-rate schedule, gradient clipping and parameter groups, run folders and
//! checkpoints, TensorBoard and JSONL metrics, progress reporting. It is backend-agnostic: the
//! binary (the root package) compiles the backends in and runs the training job on the device.

#![forbid(unsafe_code)]

pub mod batching;
pub mod benchmark_guard;
pub mod checkpoint;
pub mod data_order;
pub mod data_parallel;
pub mod dpo;
pub mod evaluation;
pub mod fail_points;
pub mod fingerprint;
pub mod fsutil;
pub mod grad_clip;
pub mod grad_coverage;
pub mod log_window;
pub mod manifest;
pub mod metrics_log;
pub mod model_output;
pub mod nccl_step;
pub mod objective;
pub mod param_groups;
pub mod plan;
pub mod preset;
pub mod recipe;
pub mod recipe_model;
pub mod schedule;
pub mod setup;
pub mod step;
pub mod tensorboard;
pub mod train_data;
pub mod trainer_state;
pub mod training;

/// Progress reporting (shared with the evaluator).
pub use safeaware_common::progress;
