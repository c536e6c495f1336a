//! `safeaware bench`: times a training step or greedy generation on synthetic inputs, with the
//! same model, shapes, optimiser and JSON schema as `tools/torch_reference.py` (the PyTorch side
//! of the comparison; see tools/README.md, "Benchmarks").
//!
//! Inputs, identical for every step: B rows of T tokens, `[bos] [<image> × image_seq_len]
//! [random text ids in [3, V) without <image>]`, one N(0, 1) tile per row, labels = input ids
//! with the image span set to -100. The values come from a seeded Rust RNG, not torch's, which
//! changes nothing about the work done.
//!
//! * `train`: forward + loss (mean over targets) + backward + global-norm clip to 1.0 +
//!   AdamW(lr 1e-4, betas 0.9/0.999, eps 1e-8, weight decay 0.01), the torch script's settings.
//! * `generate`: `VisionLanguageModel::generate`, greedy, KV cache, K new tokens with EOS disabled (torch:
//!   `min_new_tokens = max_new_tokens = K`), plus the prefill alone timed as K = 1 calls.
//!
//! Each step/call is bracketed by `Backend::sync`, warm-up steps are not timed.

mod inputs;
mod measure;
mod pools;
mod report;
mod source;

use std::path::Path;

use anyhow::{bail, ensure, Result};
use safeaware_runtime::guard::guarded;
use safeaware_trainer::recipe::Precision;
use serde_json::Value;

use crate::backend::{require, run_on};
use measure::Task;
use report::report;
pub use report::summary;
use safeaware_runtime::device::DeviceSpec;
use safeaware_runtime::task::BackendTask;
use source::ModelSource;

/// The torch script's optimiser and clipping settings.
pub const LR: f64 = 1e-4;
pub const WEIGHT_DECAY: f32 = 0.01;
pub const BETAS: (f32, f32) = (0.9, 0.999);
pub const ADAM_EPS: f32 = 1e-8;
pub const MAX_GRAD_NORM: f64 = 1.0;
/// Image size of a preset model (the quickstart's synthetic images).
pub const PRESET_IMAGE_SIZE: u32 = 64;
/// Dense peak FLOP/s for MFU, H100 SXM (the torch script's defaults).
pub const PEAK_BF16: f64 = 989e12;
pub const PEAK_F32: f64 = 67e12;

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Generate,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Train => "train",
            Mode::Generate => "generate",
        }
    }
}

/// Float type of parameters and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dtype {
    F32,
    Bf16,
    /// f32 parameters with the matrix products in bf16 (`train.precision = "bf16-mixed"`).
    Bf16Mixed,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        self.precision().name()
    }

    /// The training precision of the same name, which says how a training step holds and
    /// casts its tensors (autocast, frozen parameters in bf16 under bf16-mixed).
    pub fn precision(self) -> Precision {
        match self {
            Dtype::F32 => Precision::F32,
            Dtype::Bf16 => Precision::Bf16,
            Dtype::Bf16Mixed => Precision::Bf16Mixed,
        }
    }

    /// The type the forward's matrix products are cast to (bf16-mixed's autocast).
    pub fn autocast(self) -> Option<burn::tensor::FloatDType> {
        self.precision().autocast()
    }
}

/// One benchmark run.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    pub mode: Mode,
    /// An HF folder (config.json, weights optional) or a preset name.
    pub model: String,
    pub batch: usize,
    pub seq: usize,
    pub steps: usize,
    pub warmup: usize,
    pub new_tokens: usize,
    pub device: DeviceSpec,
    pub dtype: Dtype,
    /// Threads of the CPU backend's pool (already applied by the caller), for the report.
    pub threads: usize,
    pub seed: u64,
    /// Peak dense FLOP/s for MFU (GPU training only); `None` = H100 SXM for the dtype.
    pub peak_flops: Option<f64>,
    /// Skip the separate prefill timing of `generate`.
    pub no_prefill: bool,
    /// Parts not trained (their parameters need no gradient).
    pub freeze: Vec<safeaware_model::ModelPart>,
    /// Rank of LoRA adapters on every linear layer of the text model (the base then frozen).
    pub lora: Option<usize>,
    /// Train under `Autodiff<_, BalancedCheckpointing>` (train only), as
    /// `train.activation_checkpointing` does.
    pub activation_checkpointing: bool,
}

impl BenchSpec {
    /// Checks the numbers (the model is checked when it is built).
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.batch >= 1 && self.seq >= 1 && self.steps >= 1 && self.new_tokens >= 1,
            "--batch, --seq, --steps and --new-tokens must be >= 1"
        );
        if self.mode == Mode::Generate {
            ensure!(
                !self.activation_checkpointing,
                "--activation-checkpointing applies to `bench train` only: generation keeps no activations"
            );
            ensure!(
                self.dtype != Dtype::Bf16Mixed,
                "--dtype bf16-mixed applies to `bench train` only (a training precision)"
            );
        }
        if self.dtype == Dtype::Bf16 && !matches!(self.device, DeviceSpec::Cuda(_)) {
            bail!(
                "--dtype bf16 needs --device cuda:N: the CPU backend (flex) computes in f32 only, so a CPU \
                 bf16 run would not be bf16 at all; use --dtype f32 on {}",
                self.device
            );
        }
        Ok(())
    }
}

/// Runs `spec` and returns the report in the shared JSON schema (plus extras).
pub fn run(spec: &BenchSpec) -> Result<Value> {
    spec.validate()?;
    let source = ModelSource::resolve(&spec.model, spec.seed)?;
    let task = Task {
        spec,
        source: &source,
    };
    let timings = match (spec.dtype, spec.device) {
        (Dtype::F32 | Dtype::Bf16Mixed, device) => run_on(device, task)?,
        (Dtype::Bf16, device @ DeviceSpec::Cuda(index)) => {
            require(device)?;
            guarded(
                || format!("work on {device}"),
                || run_cuda_bf16(task, index),
            )??
        }
        (Dtype::Bf16, _) => unreachable!("validate() rejects bf16 off CUDA"),
    };
    Ok(report(spec, &timings))
}

#[cfg(feature = "cuda")]
fn run_cuda_bf16<T: BackendTask>(task: T, index: usize) -> Result<T::Output> {
    use burn::backend::{cuda::CudaDevice, Cuda};
    crate::backend::run_autodiff_on::<Cuda<burn::tensor::bf16>, _>(task, CudaDevice::new(index))
}

#[cfg(not(feature = "cuda"))]
fn run_cuda_bf16<T: BackendTask>(_task: T, _index: usize) -> Result<T::Output> {
    unreachable!("require() refuses cuda in a binary built without it")
}

/// Writes the model `--model` resolves to as an HF folder (config.json + model.safetensors),
/// so that the torch side can load exactly the same weights.
#[cfg(feature = "cpu")]
pub fn export(model: &str, seed: u64, out: &Path) -> Result<()> {
    use anyhow::Context;
    use burn::backend::{flex::FlexDevice, Flex};
    use safeaware_model::VisionLanguageModel;
    let source = ModelSource::resolve(model, seed)?;
    let built = source.build::<Flex>(seed, &FlexDevice)?;
    built
        .save(out, safeaware_model::FloatDtype::F32)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// `bench export` builds the model on the CPU backend, which this binary lacks (an `nccl`
/// build).
#[cfg(not(feature = "cpu"))]
pub fn export(_model: &str, _seed: u64, _out: &Path) -> Result<()> {
    Err(crate::backend::probe::not_built(DeviceSpec::Cpu, "cpu").into())
}

#[cfg(test)]
mod tests {
    use super::inputs::host_inputs;
    use super::measure::quantile;
    use super::*;
    use safeaware_model::IGNORE_INDEX;
    use safeaware_trainer::preset;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let xs = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&xs, 0.5), 2.5);
        assert!((quantile(&xs, 0.1) - 1.3).abs() < 1e-12);
        assert!((quantile(&xs, 0.9) - 3.7).abs() < 1e-12);
        assert_eq!(quantile(&[7.0], 0.9), 7.0);
    }

    #[test]
    fn inputs_have_the_torch_layout() {
        let config = preset::build("tiny", PRESET_IMAGE_SIZE).unwrap().config;
        let span = config.tokens_per_image();
        let (b, t) = (3, span + 24);
        let h = host_inputs(&config, b, t, 0).unwrap();
        assert_eq!(h.ids.len(), b * t);
        assert_eq!(h.pixels.len(), b * 3 * 64 * 64);
        let image = config.image_token_id() as i64;
        assert_eq!(h.ids.iter().filter(|&&id| id == image).count(), b * span);
        for row in 0..b {
            let ids = &h.ids[row * t..(row + 1) * t];
            let labels = &h.labels[row * t..(row + 1) * t];
            assert_eq!(ids[0], config.text().bos_token_id.unwrap() as i64);
            assert!(ids[1..=span].iter().all(|&id| id == image));
            assert!(ids[span + 1..]
                .iter()
                .all(|&id| id >= 3 && id != image && id < config.text().vocab_size as i64));
            assert!(labels[1..=span].iter().all(|&l| l == IGNORE_INDEX));
            assert_eq!(labels[0], ids[0]);
            assert_eq!(&labels[span + 1..], &ids[span + 1..]);
        }
        let mean = h.pixels.iter().map(|&p| p as f64).sum::<f64>() / h.pixels.len() as f64;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!(host_inputs(&config, 1, span + 1, 0).is_err());
        assert_eq!(h, host_inputs(&config, b, t, 0).unwrap());
    }

    /// One short f32 training run of the tiny preset on the CPU.
    fn tiny(mode: Mode) -> BenchSpec {
        BenchSpec {
            mode,
            model: "tiny".into(),
            batch: 1,
            seq: 32,
            steps: 1,
            warmup: 0,
            new_tokens: 1,
            device: DeviceSpec::Cpu,
            dtype: Dtype::F32,
            threads: 1,
            seed: 0,
            peak_flops: None,
            no_prefill: false,
            freeze: Vec::new(),
            lora: None,
            activation_checkpointing: false,
        }
    }

    #[test]
    fn bf16_off_gpu_is_refused() {
        let spec = BenchSpec {
            dtype: Dtype::Bf16,
            ..tiny(Mode::Train)
        };
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("--device cuda"), "{err}");
    }

    #[test]
    fn training_only_options_are_refused_for_generate() {
        let train = BenchSpec {
            dtype: Dtype::Bf16Mixed,
            activation_checkpointing: true,
            ..tiny(Mode::Train)
        };
        train.validate().unwrap();
        let checkpointing = BenchSpec {
            dtype: Dtype::F32,
            ..train.clone()
        };
        let mixed = BenchSpec {
            activation_checkpointing: false,
            ..train.clone()
        };
        for (spec, flag) in [
            (checkpointing, "--activation-checkpointing"),
            (mixed, "--dtype bf16-mixed"),
        ] {
            let spec = BenchSpec {
                mode: Mode::Generate,
                ..spec
            };
            let err = spec.validate().unwrap_err().to_string();
            assert!(err.starts_with(flag), "{err}");
        }
    }

    #[test]
    fn tiny_train_and_generate_report_the_schema() {
        let mut spec = BenchSpec {
            batch: 2,
            seq: 88,
            steps: 2,
            warmup: 1,
            new_tokens: 3,
            ..tiny(Mode::Train)
        };
        let r = run(&spec).unwrap();
        for key in [
            "impl",
            "mode",
            "model",
            "params",
            "batch",
            "seq",
            "new_tokens",
            "steps",
            "warmup",
            "threads",
            "device",
            "dtype",
            "median_s",
            "p10_s",
            "p90_s",
            "tokens_per_s",
            "images_per_s",
            "peak_mem_mib",
            "mfu",
            "versions",
        ] {
            assert!(r.get(key).is_some(), "missing {key}");
        }
        assert_eq!(r["impl"], "safeaware");
        assert_eq!(r["new_tokens"], Value::Null);
        assert_eq!(r["mfu"], Value::Null);
        assert_eq!(r["times_s"].as_array().unwrap().len(), 2);
        assert!(r["loss_last"].as_f64().unwrap().is_finite());
        assert!(r["loss_last"].as_f64().unwrap() < r["loss_first"].as_f64().unwrap() + 1e-3);
        spec.mode = Mode::Generate;
        let r = run(&spec).unwrap();
        assert_eq!(r["new_tokens"], 3);
        assert!(r["prefill_median_s"].as_f64().unwrap() > 0.0);
        assert!(r["tokens_per_s"].as_f64().unwrap() > 0.0);
    }

    /// Activation checkpointing changes the memory kept, not the numbers; bf16-mixed changes
    /// the numbers a little (its products really run in bf16).
    #[test]
    fn checkpointing_keeps_the_losses_and_bf16_mixed_moves_them_slightly() {
        let spec = BenchSpec {
            steps: 3,
            seq: 48,
            ..tiny(Mode::Train)
        };
        let losses = |spec: &BenchSpec| -> Vec<f64> {
            let r = run(spec).unwrap();
            assert_eq!(r["activation_checkpointing"], spec.activation_checkpointing);
            assert_eq!(r["dtype"], spec.dtype.name());
            serde_json::from_value(r["losses"].clone()).unwrap()
        };
        let plain = losses(&spec);
        let checkpointed = BenchSpec {
            activation_checkpointing: true,
            ..spec.clone()
        };
        assert_eq!(losses(&checkpointed), plain);
        let mixed = losses(&BenchSpec {
            dtype: Dtype::Bf16Mixed,
            ..spec
        });
        assert_ne!(mixed, plain, "bf16-mixed computed exactly the f32 losses");
        for (m, p) in mixed.iter().zip(&plain) {
            assert!((m - p).abs() < 0.02 * p, "bf16-mixed {m} vs f32 {p}");
        }
    }
}
