//! The Idefics3 / SmolVLM vision-language model in Burn, generic over the backend: HF folder
//! loading and saving with logit parity against HF transformers, seeded random initialisation,
//! causal-LM loss, KV-cached generation with a step API, and parameter counting.
//!
//! [`vlm`] is what the trainer and evaluator use: the [`VisionLanguageModel`] trait, which
//! [`Idefics3`] implements ([`idefics3`]).
//!
//! Layout (one concept per file): [`config`] (HF config.json), [`vision_transformer`] (SigLIP),
//! [`connector`] (pixel shuffle + projection), [`language_model`] (Llama, with [`rope`] and
//! [`attention`]), [`vision_language_model`] (the whole model), [`loss`], [`kv_cache`],
//! [`sampling`], [`generation`], [`weights`] (the HF name mapping, load/save), [`init`],
//! [`params`], [`parity`] (HF parity fixtures), [`summary`] (what `safeaware inspect` prints),
//! [`precision`] (autocast for mixed precision), [`custom_op`] (ops with their own backward on
//! any backend), [`linear`] (the linear layer, with its optional
//! [`lora`] adapter), [`peft`] (PEFT adapter folders) and [`idefics3_adapters`] (LoRA on
//! Idefics3).

// Unsafe code lives only in `fused/` (raw-pointer GEMMs and disjoint parallel writes): every
// unsafe operation sits in its own block with a `// SAFETY:` comment.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod activation;
pub mod adapters;
pub mod attention;
pub mod chunked_ce;
pub mod config;
pub mod connector;
pub mod custom_op;
pub mod dropout;
pub mod error;
pub mod fused;
pub mod generation;
pub mod idefics3;
pub mod idefics3_adapters;
pub mod init;
pub mod kv_cache;
pub mod language_model;
pub mod linear;
pub mod llava;
pub mod lora;
pub mod loss;
pub mod memory_efficient_attention;
pub mod params;
pub mod parity;
pub mod peft;
pub mod precision;
pub mod qwen2_vl;
pub mod registry;
pub mod rope;
pub mod safetensors_io;
pub mod sampling;
pub mod summary;
pub mod text_decoder;
pub mod vision_language_model;
pub mod vision_transformer;
pub mod vlm;
pub mod weights;

pub use config::{Idefics3Config, ModelFamily, TextConfig, VisionConfig};
pub use error::{ModelError, Result};
pub use generation::{left_pad, FinishReason, GeneratedSequence, GenerationConfig};
pub use kv_cache::KvCache;
pub use llava::{Llava, LlavaConfig};
pub use lora::LoraSpec;
pub use loss::{causal_lm_loss, LossOutput, IGNORE_INDEX};
pub use params::ParamCounts;
pub use peft::{is_adapter_folder, AdapterConfig, AdapterSpec};
pub use qwen2_vl::{Qwen2Vl, Qwen2VlConfig};
pub use registry::{Family, ModelConfig, ScratchSpec, VisionShape, Vlm};
pub use safetensors_io::FloatDtype;
pub use sampling::{Sampler, TokenSampling};
pub use summary::{inspect, ModelSummary};
pub use vision_language_model::{Idefics3, VlmInput};
pub use vlm::{ModelPart, ParamPart, TrainableModel, VisionLanguageModel};
