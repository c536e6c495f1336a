//! Data for safeaware: the SmolVLM processor (tokenizer, chat template, image tiles), training
//! traces, safety benchmarks (MMSafeAware and generic JSONL) and the synthetic safety world.

#![forbid(unsafe_code)]

pub mod benchmark;
pub mod complete_image;
pub mod fileio;
pub mod fnv;
pub mod import;
pub mod overlap;
pub mod pairs;
pub mod processor;
pub mod sharegpt;
pub mod synth;
pub mod tools;
pub mod traces;
