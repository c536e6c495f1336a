//! Data for safeaware: the SmolVLM processor (tokenizer, chat template, image tiles), training
//! traces, safety benchmarks (MMSafeAware and generic JSONL) and the synthetic safety world.

pub mod benchmark;
