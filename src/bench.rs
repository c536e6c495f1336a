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
//! * `generate`: `Idefics3::generate`, greedy, KV cache, K new tokens with EOS disabled (torch:
//!   `min_new_tokens = max_new_tokens = K`), plus the prefill alone timed as K = 1 calls.
//!
//! Each step/call is bracketed by `Backend::sync`, warm-up steps are not timed.

use std::path::Path;
use std::time::Instant;

use crate::backend::probe::cpu_name;
use crate::backend::{require, run_on, BackendTask, DeviceSpec};
use anyhow::{bail, ensure, Context, Result};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safeaware_model::{
    GenerationConfig, Idefics3, Idefics3Config, ParamCounts, TokenSampling, VlmInput, IGNORE_INDEX,
};
use safeaware_trainer::grad_clip::clip_grad_norm;
use safeaware_trainer::guard::guarded;
use safeaware_trainer::preset;
use serde_json::{json, Value};

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
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
        }
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
}

impl BenchSpec {
    /// Checks the numbers (the model is checked when it is built).
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.batch >= 1 && self.seq >= 1 && self.steps >= 1 && self.new_tokens >= 1,
            "--batch, --seq, --steps and --new-tokens must be >= 1"
        );
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

/// Where the model comes from.
pub enum ModelSource {
    /// HF folder with weights.
    Weights(std::path::PathBuf),
    /// Random init (seeded) of a config: a config-only folder or a preset.
    Random(Box<Idefics3Config>, String),
}

impl ModelSource {
    /// Resolves `--model`: a folder with config.json (weights if it has any), else a preset name.
    pub fn resolve(model: &str, seed: u64) -> Result<Self> {
        let path = Path::new(model);
        if path.join("config.json").is_file() {
            if has_weights(path) {
                return Ok(Self::Weights(path.to_path_buf()));
            }
            let config = Idefics3Config::from_file(&path.join("config.json"))
                .with_context(|| format!("reading {}/config.json", path.display()))?;
            return Ok(Self::Random(
                Box::new(config),
                format!("random(seed={seed})"),
            ));
        }
        if preset::PRESETS.contains(&model) {
            let built = preset::build(model, PRESET_IMAGE_SIZE)?;
            return Ok(Self::Random(
                Box::new(built.config),
                format!("preset {model}, random(seed={seed})"),
            ));
        }
        if path.exists() {
            bail!("--model {model}: {} has no config.json", path.display());
        }
        bail!(
            "--model {model}: neither a model folder (with config.json) nor a preset ({})",
            preset::PRESETS.join(", ")
        )
    }

    fn build<B: Backend>(&self, seed: u64, device: &B::Device) -> Result<Idefics3<B>> {
        match self {
            Self::Weights(dir) => {
                Idefics3::load(dir, device).with_context(|| format!("loading {}", dir.display()))
            }
            Self::Random(config, _) => Ok(Idefics3::init_random(config, seed, device)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Weights(_) => "safetensors".into(),
            Self::Random(_, what) => what.clone(),
        }
    }
}

fn has_weights(dir: &Path) -> bool {
    dir.join("model.safetensors.index.json").is_file()
        || std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
            })
            .unwrap_or(false)
}

/// The synthetic batch of `tools/torch_reference.py`, host side: ids and labels `[B·T]` row-major,
/// pixels `[B·3·S·S]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostInputs {
    pub ids: Vec<i64>,
    pub labels: Vec<i64>,
    pub pixels: Vec<f32>,
    pub image_size: usize,
}

/// Builds the inputs for `config` (one tile per row).
pub fn host_inputs(
    config: &Idefics3Config,
    batch: usize,
    seq: usize,
    seed: u64,
) -> Result<HostInputs> {
    let span = config.tokens_per_tile();
    ensure!(
        seq >= span + 2,
        "--seq {seq} is too short: the image span alone is {span} tokens (need seq >= {})",
        span + 2
    );
    let vocab = config.text.vocab_size as i64;
    let image = config.image_token_id as i64;
    ensure!(vocab > 4, "vocabulary of {vocab} is too small");
    let bos = config.text.bos_token_id.map_or(1, i64::from);
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(1));
    let mut ids = Vec::with_capacity(batch * seq);
    let mut labels = Vec::with_capacity(batch * seq);
    for _ in 0..batch {
        for t in 0..seq {
            let id = if t == 0 {
                bos
            } else if t <= span {
                image
            } else {
                let id = rng.random_range(3..vocab);
                if id == image {
                    3
                } else {
                    id
                }
            };
            ids.push(id);
            labels.push(if (1..=span).contains(&t) {
                IGNORE_INDEX
            } else {
                id
            });
        }
    }
    let size = config.vision.image_size;
    let channels = config.vision.num_channels;
    let n = batch * channels * size * size;
    let mut pixels = Vec::with_capacity(n + 1);
    while pixels.len() < n {
        // Box–Muller: N(0, 1).
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        pixels.push((r * a.cos()) as f32);
        pixels.push((r * a.sin()) as f32);
    }
    pixels.truncate(n);
    Ok(HostInputs {
        ids,
        labels,
        pixels,
        image_size: size,
    })
}

impl HostInputs {
    fn to_device<B: Backend>(
        &self,
        batch: usize,
        seq: usize,
        channels: usize,
        device: &B::Device,
    ) -> (VlmInput<B>, Tensor<B, 2, Int>) {
        let ids =
            Tensor::<B, 2, Int>::from_data(TensorData::new(self.ids.clone(), [batch, seq]), device);
        let labels = Tensor::<B, 2, Int>::from_data(
            TensorData::new(self.labels.clone(), [batch, seq]),
            device,
        );
        let s = self.image_size;
        let pixels = Tensor::<B, 4>::from_data(
            TensorData::new(self.pixels.clone(), [batch, channels, s, s]),
            device,
        );
        (VlmInput::new(ids, Some(pixels)), labels)
    }
}

/// Linear interpolation between closest ranks (numpy's default), as the torch script.
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.len() == 1 {
        return s[0];
    }
    let pos = q * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(s.len() - 1);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Peak resident set size of this process (VmHWM) in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// GPU memory this process holds as the driver sees it (nvidia-smi), in MiB; `None` without it.
fn gpu_process_mem_mib() -> Option<f64> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-compute-apps=pid,used_memory",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .ok()?;
    let pid = std::process::id().to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            let mut fields = line.split(',').map(str::trim);
            (fields.next()? == pid)
                .then(|| fields.next()?.parse().ok())
                .flatten()
        })
}

/// Threads of this process right now (rayon workers included).
pub fn os_threads() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// Timed steps and the extras a mode adds to the report.
struct Timings {
    times: Vec<f64>,
    extra: serde_json::Map<String, Value>,
    params: usize,
    source: String,
    image_seq_len: usize,
}

fn sync<B: Backend>(device: &B::Device) -> Result<()> {
    B::sync(device).map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))
}

fn timed<B: Backend>(
    device: &B::Device,
    steps: usize,
    warmup: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Vec<f64>> {
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        sync::<B>(device)?;
        let start = Instant::now();
        f()?;
        sync::<B>(device)?;
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(times)
}

struct Task<'a> {
    spec: &'a BenchSpec,
    source: &'a ModelSource,
}

impl BackendTask for Task<'_> {
    type Output = Timings;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Timings> {
        match self.spec.mode {
            Mode::Train => run_train::<B>(self.spec, self.source, &device),
            Mode::Generate => run_generate::<B::InnerBackend>(self.spec, self.source, &device),
        }
    }
}

fn run_train<B: AutodiffBackend>(
    spec: &BenchSpec,
    source: &ModelSource,
    device: &B::Device,
) -> Result<Timings> {
    let model = source.build::<B>(spec.seed, device)?;
    let config = model.config().clone();
    let host = host_inputs(&config, spec.batch, spec.seq, spec.seed)?;
    let (input, labels) =
        host.to_device::<B>(spec.batch, spec.seq, config.vision.num_channels, device);
    let mut optim = AdamWConfig::new()
        .with_beta_1(BETAS.0)
        .with_beta_2(BETAS.1)
        .with_epsilon(ADAM_EPS)
        .with_weight_decay(WEIGHT_DECAY)
        .init::<B, Idefics3<B>>();
    let params = ParamCounts::of_model(&model).total();
    let mut losses: Vec<Tensor<B::InnerBackend, 1>> = Vec::new();
    let mut norms = Vec::new();
    // The model moves through the optimiser (no clone: shared parameters could not be updated in place).
    let mut slot = Some(model);
    let times = timed::<B>(device, spec.steps, spec.warmup, || {
        let model = slot.take().expect("the model is put back after every step");
        let loss = model.forward_loss(&input, &labels).context("forward")?;
        losses.push(loss.mean.clone().inner());
        let mut grads = GradientsParams::from_grads(loss.mean.backward(), &model);
        norms.push(clip_grad_norm(&model, &mut grads, MAX_GRAD_NORM)?.total_norm);
        slot = Some(optim.step(LR, model, grads));
        Ok(())
    })?;
    let losses: Vec<f64> = losses
        .iter()
        .map(|t| t.clone().into_scalar().elem())
        .collect();
    let (first, last) = (losses[0], *losses.last().expect("one step at least"));
    ensure!(last.is_finite(), "training loss is not finite ({last})");
    let mut extra = serde_json::Map::new();
    extra.insert("loss_first".into(), json!(first));
    extra.insert("loss_last".into(), json!(last));
    extra.insert("losses".into(), json!(losses));
    extra.insert("grad_norm_last".into(), json!(norms.last()));
    Ok(Timings {
        times,
        extra,
        params,
        source: source.describe(),
        image_seq_len: config.tokens_per_tile(),
    })
}

fn run_generate<B: Backend>(
    spec: &BenchSpec,
    source: &ModelSource,
    device: &B::Device,
) -> Result<Timings> {
    let model = source.build::<B>(spec.seed, device)?;
    let config = model.config().clone();
    let host = host_inputs(&config, spec.batch, spec.seq, spec.seed)?;
    let (input, _) = host.to_device::<B>(spec.batch, spec.seq, config.vision.num_channels, device);
    let params = ParamCounts::of_model(&model).total();
    let call = |k: usize| {
        let gen = GenerationConfig {
            max_new_tokens: k,
            eos_token_ids: Vec::new(),
            sampling: TokenSampling::Greedy,
        };
        let model = &model;
        let input = &input;
        move || -> Result<()> {
            let out = model
                .generate(input, &gen, |_, _| false)
                .context("generate")?;
            let short = out
                .iter()
                .map(|row| row.tokens.len())
                .filter(|&n| n != k)
                .collect::<Vec<_>>();
            ensure!(
                out.len() == spec.batch && short.is_empty(),
                "generate returned {} rows with lengths {short:?}, expected {} × {k}",
                out.len(),
                spec.batch
            );
            Ok(())
        }
    };
    let times = timed::<B>(device, spec.steps, spec.warmup, call(spec.new_tokens))?;
    let mut extra = serde_json::Map::new();
    if !spec.no_prefill {
        let pre = timed::<B>(device, spec.steps, spec.warmup.max(1), call(1))?;
        let prefill = quantile(&pre, 0.5);
        let decode = quantile(&times, 0.5) - prefill;
        let k = spec.new_tokens;
        extra.insert("prefill_median_s".into(), json!(prefill));
        extra.insert(
            "decode_tokens_per_s".into(),
            if k > 1 && decode > 0.0 {
                json!((spec.batch * (k - 1)) as f64 / decode)
            } else {
                Value::Null
            },
        );
    }
    Ok(Timings {
        times,
        extra,
        params,
        source: source.describe(),
        image_seq_len: config.tokens_per_tile(),
    })
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
        (Dtype::F32, device) => run_on(device, task)?,
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
    use burn::backend::{cuda::CudaDevice, Autodiff, Cuda};
    task.run::<Autodiff<Cuda<burn::tensor::bf16>>>(CudaDevice::new(index))
}

#[cfg(not(feature = "cuda"))]
fn run_cuda_bf16<T: BackendTask>(_task: T, _index: usize) -> Result<T::Output> {
    unreachable!("require() refuses cuda in a binary built without it")
}

fn report(spec: &BenchSpec, t: &Timings) -> Value {
    let median = quantile(&t.times, 0.5);
    let (b, n, k) = (spec.batch, spec.seq, spec.new_tokens);
    let tokens = match spec.mode {
        Mode::Train => b * n,
        Mode::Generate => b * k,
    };
    let tokens_per_s = tokens as f64 / median;
    let gpu = matches!(spec.device, DeviceSpec::Cuda(_));
    let peak = (gpu && spec.mode == Mode::Train).then(|| {
        spec.peak_flops.unwrap_or(match spec.dtype {
            Dtype::Bf16 => PEAK_BF16,
            Dtype::F32 => PEAK_F32,
        })
    });
    let mfu = peak.map(|p| 6.0 * t.params as f64 * tokens_per_s / p);
    let (peak_mem, mem_source) = match spec.device {
        DeviceSpec::Cpu => (peak_rss_mib(), "VmHWM (peak RSS of the process, model building included)"),
        DeviceSpec::Cuda(_) => (gpu_process_mem_mib(), "nvidia-smi used_memory of this process after the run (driver view: CUDA context + allocator pools)"),
        DeviceSpec::Wgpu => (None, "not measured on wgpu"),
    };
    let (backend, device_type) = match spec.device {
        DeviceSpec::Cpu => ("flex", "cpu"),
        DeviceSpec::Cuda(_) => ("cuda", "cuda"),
        DeviceSpec::Wgpu => ("wgpu", "wgpu"),
    };
    let mut out = json!({
        "impl": "safeaware",
        "mode": spec.mode.name(),
        "model": spec.model,
        "params": t.params,
        "batch": b,
        "seq": n,
        "new_tokens": (spec.mode == Mode::Generate).then_some(k),
        "steps": spec.steps,
        "warmup": spec.warmup,
        "threads": spec.threads,
        "device": device_type,
        "dtype": spec.dtype.name(),
        "median_s": median,
        "p10_s": quantile(&t.times, 0.1),
        "p90_s": quantile(&t.times, 0.9),
        "tokens_per_s": tokens_per_s,
        "images_per_s": b as f64 / median,
        "peak_mem_mib": peak_mem,
        "mfu": mfu,
        "versions": {
            "safeaware": env!("CARGO_PKG_VERSION"),
            "burn": "0.21.0",
            "backend": backend,
            "cpu": cpu_name(),
        },
        "mfu_peak_flops": peak,
        "peak_mem_source": mem_source,
        "device_spec": spec.device.to_string(),
        "weights": t.source,
        "image_seq_len": t.image_seq_len,
        "os_threads": os_threads(),
        "times_s": t.times,
    });
    let obj = out.as_object_mut().expect("an object");
    obj.extend(t.extra.clone());
    out
}

/// The human summary (without `--json`).
pub fn summary(r: &Value) -> String {
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let train = r["mode"] == "train";
    let unit = if train { "tokens/s" } else { "new tokens/s" };
    let mut lines = vec![
        format!(
            "safeaware {}: {} ({:.1}M params, weights {})",
            r["mode"].as_str().unwrap_or("?"),
            r["model"].as_str().unwrap_or("?"),
            f("params") / 1e6,
            r["weights"].as_str().unwrap_or("?")
        ),
        format!(
            "  batch {}, seq {}{}, {} timed after {} warm-up, {} threads, {} {}",
            r["batch"],
            r["seq"],
            if train {
                String::new()
            } else {
                format!(", new tokens {}", r["new_tokens"])
            },
            r["steps"],
            r["warmup"],
            r["threads"],
            r["device_spec"].as_str().unwrap_or("?"),
            r["dtype"].as_str().unwrap_or("?")
        ),
        format!(
            "  median {:.4} s (p10 {:.4}, p90 {:.4})",
            f("median_s"),
            f("p10_s"),
            f("p90_s")
        ),
        format!(
            "  {:.1} {unit}, {:.3} images/s, peak mem {}",
            f("tokens_per_s"),
            f("images_per_s"),
            r["peak_mem_mib"]
                .as_f64()
                .map_or("n/a".to_string(), |m| format!("{m:.0} MiB"))
        ),
    ];
    if train {
        lines.push(format!(
            "  loss {:.4} -> {:.4}",
            f("loss_first"),
            f("loss_last")
        ));
    }
    if let Some(p) = r["prefill_median_s"].as_f64() {
        let d = r["decode_tokens_per_s"]
            .as_f64()
            .map_or(String::new(), |d| format!(", decode ~{d:.1} tokens/s"));
        lines.push(format!("  prefill (1 new token) median {p:.4} s{d}"));
    }
    if let Some(m) = r["mfu"].as_f64() {
        lines.push(format!(
            "  MFU {:.1}% (6*params*tokens/s over peak {:.1} TFLOP/s)",
            100.0 * m,
            f("mfu_peak_flops") / 1e12
        ));
    }
    lines.join("\n")
}

/// Writes the model `--model` resolves to as an HF folder (config.json + model.safetensors),
/// so that the torch side can load exactly the same weights.
pub fn export(model: &str, seed: u64, out: &Path) -> Result<()> {
    use burn::backend::{flex::FlexDevice, Flex};
    let source = ModelSource::resolve(model, seed)?;
    let built = source.build::<Flex>(seed, &FlexDevice)?;
    built
        .save(out, safeaware_model::FloatDtype::F32)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let span = config.tokens_per_tile();
        let (b, t) = (3, span + 24);
        let h = host_inputs(&config, b, t, 0).unwrap();
        assert_eq!(h.ids.len(), b * t);
        assert_eq!(h.pixels.len(), b * 3 * 64 * 64);
        let image = config.image_token_id as i64;
        assert_eq!(h.ids.iter().filter(|&&id| id == image).count(), b * span);
        for row in 0..b {
            let ids = &h.ids[row * t..(row + 1) * t];
            let labels = &h.labels[row * t..(row + 1) * t];
            assert_eq!(ids[0], config.text.bos_token_id.unwrap() as i64);
            assert!(ids[1..=span].iter().all(|&id| id == image));
            assert!(ids[span + 1..]
                .iter()
                .all(|&id| id >= 3 && id != image && id < config.text.vocab_size as i64));
            assert!(labels[1..=span].iter().all(|&l| l == IGNORE_INDEX));
            assert_eq!(labels[0], ids[0]);
            assert_eq!(&labels[span + 1..], &ids[span + 1..]);
        }
        let mean = h.pixels.iter().map(|&p| p as f64).sum::<f64>() / h.pixels.len() as f64;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!(host_inputs(&config, 1, span + 1, 0).is_err());
        assert_eq!(h, host_inputs(&config, b, t, 0).unwrap());
    }

    #[test]
    fn bf16_off_gpu_is_refused() {
        let spec = BenchSpec {
            mode: Mode::Train,
            model: "tiny".into(),
            batch: 1,
            seq: 32,
            steps: 1,
            warmup: 0,
            new_tokens: 1,
            device: DeviceSpec::Cpu,
            dtype: Dtype::Bf16,
            threads: 1,
            seed: 0,
            peak_flops: None,
            no_prefill: false,
        };
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("--device cuda"), "{err}");
    }

    #[test]
    fn tiny_train_and_generate_report_the_schema() {
        let mut spec = BenchSpec {
            mode: Mode::Train,
            model: "tiny".into(),
            batch: 2,
            seq: 88,
            steps: 2,
            warmup: 1,
            new_tokens: 3,
            device: DeviceSpec::Cpu,
            dtype: Dtype::F32,
            threads: 1,
            seed: 0,
            peak_flops: None,
            no_prefill: false,
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
}
