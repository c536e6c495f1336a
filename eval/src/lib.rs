//! Safety-awareness evaluation for safeaware: where answers come from ([`source`]), how a
//! prompt is put to a model ([`prompt`], [`decoding`]), how an answer is read ([`verdict`]),
//! the metrics ([`metrics`]) and where the two parsers disagree ([`disagreement`]), the files a
//! run writes ([`results`], [`samples`], [`report`]), the run loop itself ([`runner`]), when a
//! run counts as failed ([`outcome`]: `--max-error-rate`), run comparison ([`compare`]), an
//! experiment's comparison of arms ([`comparison`]), image reliance ([`ablation`]), the pure
//! parts of visual contrastive decoding ([`vcd`]), and distillation of training traces from a
//! teacher endpoint ([`distill`]).

#![forbid(unsafe_code)]

pub mod ablation;
pub mod compare;
pub mod comparison;
pub mod decoding;
pub mod disagreement;
pub mod distill;
pub mod error;
pub mod metrics;
pub mod outcome;
pub mod prompt;
pub mod report;
pub mod results;
pub mod runner;
pub mod samples;
pub mod source;
pub mod vcd;
pub mod verdict;

pub use error::EvalError;
/// Progress reporting (shared with the trainer): [`runner::RunConfig::progress`] takes its mode.
pub use safeaware_common::progress;

/// The safeaware version recorded in every results file.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
