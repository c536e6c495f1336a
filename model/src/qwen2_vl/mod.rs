//! Qwen2-VL (`model_type: "qwen2_vl"`, HF `Qwen2VLForConditionalGeneration`) and Qwen2.5-VL
//! (`model_type: "qwen2_5_vl"`, HF `Qwen2_5_VLForConditionalGeneration`): a vision tower taking
//! images at their own resolution (flattened patches and their grids), a patch merger and a
//! Qwen2 language model with multimodal rotary positions (M-RoPE), with HF parity. The two
//! differ only in the tower (Qwen2.5-VL: RMSNorms, a SwiGLU MLP, window attention), so one
//! implementation serves both, the config's [`TowerVariant`] saying which.
//!
//! One concept per file: [`config`] (HF config.json), [`vision_config`] (its `vision_config`),
//! [`architecture`] (what the registry asks of a config: scratch sizes, description, layer
//! shapes, parameter counts), [`vision`] (the tower and its merger), [`vision_block`] (a block of
//! the tower), [`windows`] (Qwen2.5-VL's window order), [`rope_index`] (M-RoPE positions, HF's
//! `get_rope_index`), [`model`] (the whole model), [`weights`] (both checkpoint layouts,
//! load/save), [`adapters`] (LoRA / PEFT) and [`vlm`] (the [`crate::VisionLanguageModel`]
//! implementation and parameter parts). The language model, attention, KV cache (which carries
//! M-RoPE's per-row delta), loss, generation, LoRA and safetensors code are the crate's shared
//! modules.

pub mod adapters;
pub mod architecture;
pub mod config;
pub mod model;
pub mod rope_index;
pub mod vision;
pub mod vision_block;
pub mod vision_config;
pub mod vlm;
pub mod weights;
pub mod windows;

pub use config::{Qwen2VisionConfig, Qwen2VlConfig};
pub use model::Qwen2Vl;
pub use vision_config::{TowerVariant, WindowedTower};
