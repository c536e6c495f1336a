//! Data for safeaware: the SmolVLM, LLaVA and Qwen2-VL processors (tokenizer, chat template,
//! images), training traces and preference pairs, safety benchmarks (MMSafeAware and generic
//! JSONL) and the synthetic safety world.

#![forbid(unsafe_code)]

pub mod benchmark;
pub mod complete_image;
pub mod fileio;
pub mod import;
pub mod overlap;
pub mod pairs;
pub mod preferences;
pub mod processor;
pub mod sharegpt;
pub mod synth;
pub mod tools;
pub mod traces;
