//! Qwen2-VL (`model_type: "qwen2_vl"`, HF `Qwen2VLForConditionalGeneration`): a vision tower
//! taking images at their own resolution (flattened patches and their grids), a patch merger
//! and a Qwen2 language model with multimodal rotary positions (M-RoPE), with HF parity.
//!
//! One concept per file: [`config`] (HF config.json), [`architecture`] (what the registry asks
//! of a config: scratch sizes, description, layer shapes, parameter counts), [`vision`] (the
//! tower and its merger), [`rope_index`] (M-RoPE positions, HF's `get_rope_index`), [`model`]
//! (the whole model), [`weights`] (both checkpoint layouts, load/save), [`adapters`] (LoRA /
//! PEFT) and [`vlm`] (the [`crate::VisionLanguageModel`] implementation and parameter parts).
//! The language model, attention, KV cache (which carries M-RoPE's per-row delta), loss,
//! generation, LoRA and safetensors code are the crate's shared modules.

pub mod adapters;
pub mod architecture;
pub mod config;
pub mod model;
pub mod rope_index;
pub mod vision;
pub mod vlm;
pub mod weights;

pub use config::{Qwen2VisionConfig, Qwen2VlConfig};
pub use model::Qwen2Vl;
