//! safeaware-common: the few pieces every safeaware crate needs and none of them owns. It is a
//! leaf crate, so the model and data crates can both use it and stay independent of each other.
//!
//! - [`fnv`]: the stable FNV-1a 64 hash of fingerprints, cache keys and parameter ids.
//! - [`fsio`]: crash-safe writes of files and folders (temporary sibling, fsync, rename).
//! - [`labels`]: [`labels::IGNORE_INDEX`], the label of positions without a target.
//! - [`output_dir`]: output folders one process owns (lock with the holder's pid, marker file),
//!   and the refusal of an output that is an input.
//! - [`output_file`]: output files: no silent replacement, a lock for a file appended to.
//! - [`progress`]: progress of long jobs, a bar on a terminal and plain lines otherwise.

#![forbid(unsafe_code)]

pub mod fnv;
pub mod fsio;
pub mod labels;
pub mod output_dir;
pub mod output_file;
pub mod progress;
