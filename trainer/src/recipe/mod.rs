//! Training recipes: one TOML file describes a whole run (model, data, optimiser, schedule,
//! training loop, evaluation), in the spirit of torchtune's recipe configs.
//!
//! Every key has a default, so a recipe only states what differs; `safeaware recipe show`
//! prints the fully resolved form. Unknown keys and wrong types are rejected while parsing
//! (`deny_unknown_fields`), semantic rules are checked by [`Recipe::validate`], and
//! `--set dotted.key=value` overrides are applied by [`load`](load::load_recipe). The sections
//! are defined here, `[data.synthetic]` in `synthetic.rs`, `train.objective` and `[dpo]` in
//! `dpo.rs`, the resolved form of a run (its TOML,
//! fingerprint and run folder) in `resolved.rs`.

mod dpo;
mod load;
mod lora;
mod precision;
mod resolved;
mod synthetic;
mod validate;

pub use dpo::{DpoLoss, DpoSection, Objective};
pub use load::{apply_override, load_recipe, parse_recipe, LoadedRecipe};
pub use lora::LoraSection;
pub use precision::{Precision, SaveDtype};
pub use resolved::{default_run_dir, RESOLVED_RECIPE_FILE};
pub use synthetic::SyntheticSection;
pub use validate::ValidationError;

pub use safeaware_data::synth::SynthConfig;
pub use safeaware_data::traces::TargetStyle;
use safeaware_runtime::device::{parse_workers, DeviceError, DeviceSpec};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A complete training recipe.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recipe {
    /// What to train.
    pub model: ModelSection,
    /// What to train on.
    pub data: DataSection,
    /// AdamW settings.
    pub optim: OptimSection,
    /// Learning-rate schedule.
    pub schedule: ScheduleSection,
    /// The training loop.
    pub train: TrainSection,
    /// Evaluation during and after training.
    pub eval: EvalSection,
    /// LoRA adapters instead of full fine-tuning (absent: every unfrozen weight trains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraSection>,
    /// Direct Preference Optimization settings; only with `train.objective = "dpo"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpo: Option<DpoSection>,
}

impl Recipe {
    /// Whether `part` has trained parameters: with `[lora]`, a part with adapters or trained in
    /// full next to them; else a part not in `train.freeze`.
    pub fn trains(&self, part: ModelPart) -> bool {
        match &self.lora {
            Some(l) => l.parts.contains(&part) || l.train_parts.contains(&part),
            None => self.train.trains(part),
        }
    }

    /// The DPO settings of a DPO run (`[dpo]`, or its defaults); `None` for an SFT run.
    pub fn dpo_settings(&self) -> Option<DpoSection> {
        (self.train.objective == Objective::Dpo).then(|| self.dpo.clone().unwrap_or_default())
    }
}

/// `[model]`: either an HF folder or a named preset initialised from scratch.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// Hugging Face model folder (config.json, safetensors, tokenizer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Named small configuration initialised from scratch, with its own tokenizer (e.g. "tiny").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Seed for from-scratch initialisation (and any newly added weights).
    pub init_seed: u64,
}

/// `[data]`: trace files or synthetic data, formatting style and length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// Training trace file (a preference file when `train.objective = "dpo"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<PathBuf>,
    /// Validation trace file (a preference file when `train.objective = "dpo"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val: Option<PathBuf>,
    /// How a trace is rendered into the training target: "vcr", "cot" or "direct".
    #[serde(with = "style_serde")]
    pub style: TargetStyle,
    /// Maximum tokens per example (image tokens included); longer ones are truncated.
    pub max_length: usize,
    /// Synthetic data, used instead of trace files when `enabled`.
    pub synthetic: SyntheticSection,
    /// Train even when the training file shares images or prompts with the evaluation
    /// benchmark (checked at setup, as `safeaware data overlap` does). Written only when true,
    /// and outside the fingerprint: it changes what is allowed, not what is trained.
    #[serde(skip_serializing_if = "is_false")]
    pub allow_overlap: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            train: None,
            val: None,
            style: TargetStyle::Vcr,
            max_length: 1024,
            synthetic: SyntheticSection::default(),
            allow_overlap: false,
        }
    }
}

/// (De)serialises a [`TargetStyle`] by its name, through its `FromStr`/`Display`.
mod style_serde {
    use safeaware_data::traces::TargetStyle;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(style: &TargetStyle, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(style.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TargetStyle, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `[optim]`: AdamW with one learning rate per model part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimSection {
    /// Peak learning rate of the vision encoder.
    pub lr_vision: f64,
    /// Peak learning rate of the vision-to-text connector.
    pub lr_connector: f64,
    /// Peak learning rate of the language model (embeddings and head included).
    pub lr_text: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Adam `(beta1, beta2)`.
    pub betas: [f64; 2],
    /// Adam epsilon.
    pub eps: f64,
    /// Maximum global L2 norm of the gradients (0 = no clipping).
    pub grad_clip: f64,
}

impl Default for OptimSection {
    fn default() -> Self {
        Self {
            lr_vision: 1e-5,
            lr_connector: 1e-4,
            lr_text: 2e-5,
            weight_decay: 0.01,
            betas: [0.9, 0.999],
            eps: 1e-8,
            grad_clip: 1.0,
        }
    }
}

impl OptimSection {
    /// Peak learning rate of `part`.
    pub fn lr(&self, part: ModelPart) -> f64 {
        match part {
            ModelPart::Vision => self.lr_vision,
            ModelPart::Connector => self.lr_connector,
            ModelPart::Text => self.lr_text,
        }
    }
}

/// `[schedule]`: linear warmup then cosine decay (see [`crate::schedule::LrSchedule`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSection {
    /// Optimiser steps of linear warmup.
    pub warmup_steps: u64,
    /// Final learning rate as a fraction of the peak, in `[0, 1]`.
    pub min_lr_ratio: f64,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self {
            warmup_steps: 0,
            min_lr_ratio: 0.1,
        }
    }
}

/// `[train]`: the loop, checkpointing and logging cadence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// What the run minimises: "sft" (cross-entropy on traces) or "dpo" (preference pairs, see
    /// `[dpo]`). Written only when "dpo", so SFT recipes keep their fingerprint.
    #[serde(skip_serializing_if = "Objective::is_sft")]
    pub objective: Objective,
    /// Total optimiser steps; when set it overrides `epochs` (the data is cycled as needed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    /// Passes over the training data (used when `max_steps` is not set).
    pub epochs: u64,
    /// Seed for data order, dropout and everything else random in training.
    pub seed: u64,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches accumulated per optimiser step.
    pub grad_accum: usize,
    /// Where to train: "cpu", "cuda", "cuda:N" or "wgpu".
    pub device: DeviceSpec,
    /// Data-parallel workers, one per device, e.g. `["cuda:0", "cuda:1"]` or `["cpu:0",
    /// "cpu:1"]`; when set it replaces `device`. Each global batch is split across them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Save a checkpoint every N optimiser steps (0 = only the final model).
    pub checkpoint_every: u64,
    /// Keep the newest N step checkpoints (0 = keep all).
    pub keep_last: usize,
    /// Evaluate every N optimiser steps (0 = never during training).
    pub eval_every: u64,
    /// Log metrics every N optimiser steps.
    pub log_every: u64,
    /// Parts whose weights are not trained.
    pub freeze: Vec<ModelPart>,
    /// "f32", "bf16-mixed" (f32 weights and optimiser state, matmuls in bf16) or "bf16".
    pub precision: Precision,
    /// On-disk type of the final model: "f32", "bf16" or "f16" (unset: the type of the HF
    /// folder trained from; f32 for a preset). Step checkpoints keep the weights' own type so
    /// that a resume is exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_dtype: Option<SaveDtype>,
    /// Recompute cheap activations in the backward pass instead of keeping them (Burn's
    /// `BalancedCheckpointing`): less memory for more compute, the same numbers. Written only
    /// when true, and outside the fingerprint, so a run resumes with it switched either way.
    #[serde(skip_serializing_if = "is_false")]
    pub activation_checkpointing: bool,

    /// Run folder; defaults to `checkpoints/<recipe file stem>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<PathBuf>,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            objective: Objective::Sft,
            max_steps: None,
            epochs: 1,
            seed: 42,
            batch_size: 8,
            grad_accum: 1,
            device: DeviceSpec::Cpu,
            devices: Vec::new(),
            checkpoint_every: 500,
            keep_last: 2,
            eval_every: 0,
            log_every: 10,
            freeze: Vec::new(),
            precision: Precision::F32,
            save_dtype: None,
            activation_checkpointing: false,
            output_dir: None,
        }
    }
}

impl TrainSection {
    /// The workers: `devices` when set, else the one `device`.
    pub fn workers(&self) -> Result<Vec<DeviceSpec>, DeviceError> {
        if self.devices.is_empty() {
            return Ok(vec![self.device]);
        }
        parse_workers(&self.devices)
    }

    /// How the workers are named (`devices`, or `device`), for messages.
    pub fn worker_names(&self) -> Vec<String> {
        if self.devices.is_empty() {
            vec![self.device.to_string()]
        } else {
            self.devices.clone()
        }
    }

    /// Total optimiser steps for a training set of `train_examples` examples:
    /// `max_steps` if set, else `epochs * ceil(examples / (batch_size * grad_accum))`.
    pub fn total_steps(&self, train_examples: usize) -> u64 {
        if let Some(steps) = self.max_steps {
            return steps;
        }
        let per_step = (self.batch_size.max(1) * self.grad_accum.max(1)) as u64;
        self.epochs * (train_examples as u64).div_ceil(per_step)
    }

    /// Whether `part` is trained.
    pub fn trains(&self, part: ModelPart) -> bool {
        !self.freeze.contains(&part)
    }
}

/// `[eval]`: generation-based evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// Benchmark spec understood by `safeaware eval` (unset = validation loss only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<String>,
    /// Generation budget per answer.
    pub max_new_tokens: usize,
    /// Examples per generation batch.
    pub batch_size: usize,
    /// Evaluate on the first N benchmark items only (unset = all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            benchmark: None,
            max_new_tokens: 256,
            batch_size: 8,
            limit: None,
        }
    }
}

/// The model parts recipes name (`vision`, `connector`, `text`), decided by the model.
pub use safeaware_model::ModelPart;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_steps_from_epochs_or_max_steps() {
        let mut t = TrainSection {
            batch_size: 4,
            grad_accum: 2,
            epochs: 3,
            ..Default::default()
        };
        assert_eq!(t.total_steps(17), 3 * 3); // ceil(17 / 8) = 3 per epoch
        t.max_steps = Some(5);
        assert_eq!(t.total_steps(17), 5);
    }
}
