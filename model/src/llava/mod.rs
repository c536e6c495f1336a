//! LLaVA-1.5 (`model_type: "llava"`, HF `LlavaForConditionalGeneration`): a CLIP vision tower,
//! a two-layer projector and a Llama language model, with HF parity.
//!
//! One concept per file: [`config`] (HF config.json), [`architecture`] (what the registry
//! asks of a config: scratch sizes, description, layer shapes), [`clip`] (the CLIP tower),
//! [`projector`] (`multi_modal_projector`), [`model`] (the whole model: embedding with image
//! features, forward, loss, generation), [`weights`] (both checkpoint layouts, load/save),
//! [`params`] (parameter counts from the config), [`adapters`] (LoRA / PEFT) and [`vlm`] (the
//! [`crate::VisionLanguageModel`] implementation and parameter parts). The language model,
//! attention, KV cache, loss, generation, LoRA and safetensors code are the crate's shared
//! modules, not copies.

pub mod adapters;
pub mod architecture;
pub mod clip;
pub mod config;
pub mod model;
pub mod params;
pub mod projector;
pub mod vlm;
pub mod weights;

pub use config::{ClipVisionConfig, FeatureLayers, FeatureSelect, LlavaConfig};
pub use model::Llava;
