//! Training recipes: one TOML file describes a whole run (model, data, optimiser, schedule,
//! training loop, evaluation), in the spirit of torchtune's recipe configs.
//!
//! Every key has a default, so a recipe only states what differs; `safeaware recipe show`
//! prints the fully resolved form. Unknown keys and wrong types are rejected while parsing
//! (`deny_unknown_fields`), semantic rules are checked by [`Recipe::validate`], and
//! `--set dotted.key=value` overrides are applied by [`load`](load::load_recipe).

mod load;
mod validate;

pub use load::{apply_override, load_recipe, parse_recipe, LoadedRecipe, RecipeArgs};
pub use validate::ValidationError;

use crate::fingerprint::fnv1a64_hex;
pub use safeaware_data::synth::SynthConfig;
pub use safeaware_data::traces::TargetStyle;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// File name of the resolved recipe inside a run folder.
pub const RESOLVED_RECIPE_FILE: &str = "recipe.resolved.toml";

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
    /// Training trace file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<PathBuf>,
    /// Validation trace file.
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

/// `[data.synthetic]`: the synthetic safety world of `safeaware_data::synth` (field names
/// and defaults as its `SynthConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticSection {
    /// Use synthetic data instead of `data.train`/`data.val`.
    pub enabled: bool,
    /// Generator seed.
    pub seed: u64,
    /// Training examples.
    pub train: usize,
    /// Validation examples (0 = none).
    pub val: usize,
    /// Held-out test examples (the benchmark of the synthetic world).
    pub test: usize,
    /// Side of the square images, in pixels.
    pub image_size: u32,
    /// Probability that an image gets a distractor object.
    pub distractor_prob: f32,
    /// Probability that a prompt is wrapped in an instruction attack.
    pub wrap_prob: f32,
    /// Extra description-only training items (trained in the `vcr` style only).
    pub describe_only: usize,
}

impl Default for SyntheticSection {
    fn default() -> Self {
        let c = SynthConfig::default();
        Self {
            enabled: false,
            seed: c.seed,
            train: c.train,
            val: c.val,
            test: c.test,
            image_size: c.image_size,
            distractor_prob: c.distractor_prob,
            wrap_prob: c.wrap_prob,
            describe_only: c.describe_only,
        }
    }
}

impl SyntheticSection {
    /// The generator settings.
    pub fn synth_config(&self) -> SynthConfig {
        SynthConfig {
            seed: self.seed,
            train: self.train,
            val: self.val,
            test: self.test,
            image_size: self.image_size,
            distractor_prob: self.distractor_prob,
            wrap_prob: self.wrap_prob,
            describe_only: self.describe_only,
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
    pub fn lr(&self, part: Part) -> f64 {
        match part {
            Part::Vision => self.lr_vision,
            Part::Connector => self.lr_connector,
            Part::Text => self.lr_text,
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
    pub device: Device,
    /// Save a checkpoint every N optimiser steps (0 = only the final model).
    pub checkpoint_every: u64,
    /// Keep the newest N step checkpoints (0 = keep all).
    pub keep_last: usize,
    /// Evaluate every N optimiser steps (0 = never during training).
    pub eval_every: u64,
    /// Log metrics every N optimiser steps.
    pub log_every: u64,
    /// Parts whose weights are not trained.
    pub freeze: Vec<Part>,
    /// Run folder; defaults to `checkpoints/<recipe file stem>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<PathBuf>,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            max_steps: None,
            epochs: 1,
            seed: 42,
            batch_size: 8,
            grad_accum: 1,
            device: Device::Cpu,
            checkpoint_every: 500,
            keep_last: 2,
            eval_every: 0,
            log_every: 10,
            freeze: Vec::new(),
            output_dir: None,
        }
    }
}

impl TrainSection {
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
    pub fn trains(&self, part: Part) -> bool {
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

/// The three separately configurable parts of an Idefics3-style model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// The vision encoder.
    Vision,
    /// The connector (pixel shuffle + projection) from vision to text.
    Connector,
    /// The language model, embeddings and head included.
    Text,
}

impl Part {
    /// All parts, in model order.
    pub const ALL: [Part; 3] = [Part::Vision, Part::Connector, Part::Text];

    /// Lower-case name as written in recipes.
    pub fn name(self) -> &'static str {
        match self {
            Part::Vision => "vision",
            Part::Connector => "connector",
            Part::Text => "text",
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Compute device named in a recipe: the same strings as the binary's `--device`.
pub use crate::device::DeviceSpec as Device;

impl Recipe {
    /// The recipe as TOML, every key present (unset optional keys are omitted).
    pub fn to_toml(&self) -> String {
        // Serialising plain structs of numbers, strings and arrays cannot fail.
        toml::to_string(self).unwrap_or_else(|e| format!("# unserialisable recipe: {e}\n"))
    }

    /// Hash of everything that determines the training trajectory. Logging, checkpointing,
    /// evaluation cadence, device and output folder are excluded, so a run may be resumed
    /// with those changed; anything else changed makes resuming refuse.
    pub fn fingerprint(&self) -> String {
        let mut core = self.clone();
        let defaults = TrainSection::default();
        core.train.device = defaults.device;
        core.train.checkpoint_every = defaults.checkpoint_every;
        core.train.keep_last = defaults.keep_last;
        core.train.eval_every = defaults.eval_every;
        core.train.log_every = defaults.log_every;
        // The length of a run may be extended on resume.
        core.train.max_steps = None;
        core.train.epochs = defaults.epochs;
        core.train.output_dir = None;
        core.eval = EvalSection::default();
        core.data.allow_overlap = false;
        fnv1a64_hex(core.to_toml().as_bytes())
    }

    /// The run folder: `train.output_dir`, else `checkpoints/<recipe file stem>`.
    pub fn run_dir(&self, recipe_path: &Path) -> PathBuf {
        self.train
            .output_dir
            .clone()
            .unwrap_or_else(|| default_run_dir(recipe_path))
    }

    /// Writes the resolved recipe to `<run>/recipe.resolved.toml` atomically, with a header
    /// comment naming its source and overrides. Returns the file's path.
    pub fn save_resolved(
        &self,
        run_dir: &Path,
        source: &Path,
        overrides: &[String],
    ) -> anyhow::Result<PathBuf> {
        let path = run_dir.join(RESOLVED_RECIPE_FILE);
        let mut text = format!("# Resolved from {}", source.display());
        for o in overrides {
            text.push_str(&format!(" --set {o}"));
        }
        text.push_str(&format!("\n# Fingerprint {}\n\n", self.fingerprint()));
        text.push_str(&self.to_toml());
        crate::fsutil::atomic_write(&path, text.as_bytes())?;
        Ok(path)
    }
}

/// `checkpoints/<stem of recipe_path>`.
pub fn default_run_dir(recipe_path: &Path) -> PathBuf {
    let stem = recipe_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    PathBuf::from("checkpoints").join(stem.unwrap_or_else(|| "run".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_strings_round_trip() {
        for s in ["cpu", "cuda:0", "cuda:3", "wgpu"] {
            let d = Device::try_from(s.to_string()).unwrap();
            assert_eq!(d.to_string(), s);
        }
        assert_eq!(Device::try_from("cuda".to_string()), Ok(Device::Cuda(0)));
        for bad in ["tpu", "cuda:x", "cuda:", "cpu:1", "wgpu:1"] {
            assert!(Device::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

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

    #[test]
    fn fingerprint_ignores_cadence_but_not_training() {
        let base = Recipe::default();
        let mut cadence = base.clone();
        cadence.train.log_every = 1;
        cadence.train.device = Device::Cuda(0);
        cadence.eval.max_new_tokens = 3;
        cadence.data.allow_overlap = true;
        assert_eq!(base.fingerprint(), cadence.fingerprint());
        let mut lr = base.clone();
        lr.optim.lr_text = 3e-4;
        assert_ne!(base.fingerprint(), lr.fingerprint());
        let mut seed = base.clone();
        seed.train.seed = 1;
        assert_ne!(base.fingerprint(), seed.fingerprint());
    }

    #[test]
    fn resolved_recipe_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recipe::default();
        r.model.preset = Some("tiny".into());
        r.train.freeze = vec![Part::Vision];
        r.data.style = TargetStyle::Cot;
        let path = r
            .save_resolved(
                dir.path(),
                Path::new("recipes/x.toml"),
                &["train.seed=3".into()],
            )
            .unwrap();
        assert_eq!(path, dir.path().join(RESOLVED_RECIPE_FILE));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# Resolved from recipes/x.toml --set train.seed=3\n# Fingerprint "),
            "{text}"
        );
        assert_eq!(toml::from_str::<Recipe>(&text).unwrap(), r);
    }

    #[test]
    fn run_dir_defaults_to_recipe_stem() {
        let r = Recipe::default();
        assert_eq!(
            r.run_dir(Path::new("recipes/quickstart.toml")),
            Path::new("checkpoints/quickstart")
        );
        let mut o = r.clone();
        o.train.output_dir = Some("runs/x".into());
        assert_eq!(
            o.run_dir(Path::new("recipes/quickstart.toml")),
            Path::new("runs/x")
        );
    }
}
