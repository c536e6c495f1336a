//! Timing: warm-up then timed steps bracketed by device syncs, the training and generation
//! loops, and what the process used (threads, peak memory).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use safeaware_model::precision::autocast;
use safeaware_model::{
    GenerationConfig, LoraSpec, ModelPart, ParamCounts, TokenSampling, VisionLanguageModel, Vlm,
};
use safeaware_trainer::grad_clip::clip_grad_norm;
use safeaware_trainer::param_groups::freeze;
use serde_json::{json, Value};

use super::inputs::host_inputs;
use super::{BenchSpec, Mode, ModelSource, ADAM_EPS, BETAS, LR, MAX_GRAD_NORM, WEIGHT_DECAY};
use safeaware_runtime::task::BackendTask;

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
pub(super) fn gpu_process_mem_mib() -> Option<f64> {
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

/// The most device memory CubeCL's pools held on the wgpu device at the end of a step so far,
/// in bytes (its pools keep their pages between steps, so this is about the peak reserved).
static WGPU_RESERVED: AtomicU64 = AtomicU64::new(0);

/// Records what CubeCL has reserved on `device` when it is a wgpu device.
fn note_device_memory<D: 'static>(device: &D) {
    #[cfg(feature = "wgpu")]
    if let Some(device) = (device as &dyn std::any::Any).downcast_ref::<burn_wgpu::WgpuDevice>() {
        use burn_cubecl::cubecl::Runtime;
        if let Ok(usage) = burn_wgpu::WgpuRuntime::client(device).memory_usage() {
            WGPU_RESERVED.fetch_max(usage.bytes_reserved, Ordering::Relaxed);
        }
    }
    let _ = device;
}

/// [`WGPU_RESERVED`] in MiB; `None` before any step on wgpu.
pub(super) fn wgpu_reserved_mib() -> Option<f64> {
    let bytes = WGPU_RESERVED.load(Ordering::Relaxed);
    (bytes > 0).then(|| bytes as f64 / (1024.0 * 1024.0))
}

/// Threads of this process right now (rayon workers included).
pub fn os_threads() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// Timed steps and the extras a mode adds to the report.
pub(super) struct Timings {
    pub(super) times: Vec<f64>,
    pub(super) extra: serde_json::Map<String, Value>,
    pub(super) params: usize,
    pub(super) source: String,
    pub(super) image_seq_len: usize,
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
        note_device_memory(device);
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(times)
}

pub(super) struct Task<'a> {
    pub(super) spec: &'a BenchSpec,
    pub(super) source: &'a ModelSource,
}

impl BackendTask for Task<'_> {
    type Output = Timings;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Timings> {
        match self.spec.mode {
            Mode::Train => run_train::<B>(self.spec, self.source, &device),
            Mode::Generate => run_generate::<B::InnerBackend>(self.spec, self.source, &device),
        }
    }

    fn activation_checkpointing(&self) -> bool {
        self.spec.activation_checkpointing
    }
}

fn run_train<B: AutodiffBackend>(
    spec: &BenchSpec,
    source: &ModelSource,
    device: &B::Device,
) -> Result<Timings> {
    let model = tuned(source.build::<B>(spec.seed, device)?, spec)?;
    let config = model.config();
    let host = host_inputs(&config, spec.batch, spec.seq, spec.seed)?;
    let (input, labels) = host.to_device::<B>(spec.batch, spec.seq, config.num_channels(), device);
    let mut optim = AdamWConfig::new()
        .with_beta_1(BETAS.0)
        .with_beta_2(BETAS.1)
        .with_epsilon(ADAM_EPS)
        .with_weight_decay(WEIGHT_DECAY)
        .init::<B, Vlm<B>>();
    let params = ParamCounts::of_model(&model).total();
    let mut losses: Vec<Tensor<B::InnerBackend, 1>> = Vec::new();
    let mut norms = Vec::new();
    // The model moves through the optimiser (no clone: shared parameters could not be updated in place).
    let mut slot = Some(model);
    let times = timed::<B>(device, spec.steps, spec.warmup, || {
        let model = slot.take().expect("the model is put back after every step");
        let loss = autocast(spec.dtype.autocast(), || {
            model.forward_loss(&input, &labels)
        })
        .context("forward")?;
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
        image_seq_len: config.tokens_per_image(),
    })
}

fn run_generate<B: Backend>(
    spec: &BenchSpec,
    source: &ModelSource,
    device: &B::Device,
) -> Result<Timings> {
    let model = source.build::<B>(spec.seed, device)?;
    let config = model.config();
    let host = host_inputs(&config, spec.batch, spec.seq, spec.seed)?;
    let (input, _) = host.to_device::<B>(spec.batch, spec.seq, config.num_channels(), device);
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
        image_seq_len: config.tokens_per_image(),
    })
}

/// The model with `--lora` adapters and `--freeze` applied: frozen parameters need no gradient
/// and are held as training holds them (bf16 under bf16-mixed).
fn tuned<B: AutodiffBackend>(model: Vlm<B>, spec: &BenchSpec) -> Result<Vlm<B>> {
    let model = match spec.lora {
        None => model,
        Some(rank) => {
            let text = model.family().lora_targets().iter();
            let targets = text
                .filter(|(part, _)| *part == ModelPart::Text)
                .flat_map(|(_, names)| names.iter().map(|t| t.to_string()));
            let lora = LoraSpec {
                rank,
                alpha: 2.0 * rank as f64,
                dropout: 0.0,
                targets: targets.collect(),
                parts: vec![ModelPart::Text],
            };
            model.with_lora(&lora, spec.seed)?
        }
    };
    let frozen: HashSet<_> = model
        .param_parts()
        .into_iter()
        .filter(|p| spec.freeze.contains(&p.part) || (spec.lora.is_some() && !p.adapter))
        .map(|p| p.id)
        .collect();
    Ok(freeze(
        model,
        &frozen,
        spec.dtype.precision().frozen_dtype(),
    ))
}
