//! Data for safeaware: the SmolVLM and LLaVA processors (tokenizer, chat template, images), training
//! traces, safety benchmarks (MMSafeAware and generic JSONL) and the synthetic safety world.

#![forbid(unsafe_code)]

pub mod benchmark;
pub mod complete_image;
pub mod fileio;
pub mod import;
pub mod overlap;
pub mod pairs;
pub mod processor;
pub mod sharegpt;
pub mod synth;
pub mod tools;
pub mod traces;
