//! The report of a run in the JSON schema shared with `tools/torch_reference.py`, and its
//! human summary.

use serde_json::{json, Value};

use super::measure::{
    gpu_process_mem_mib, os_threads, peak_rss_mib, quantile, wgpu_reserved_mib, Timings,
};
use super::{BenchSpec, Dtype, Mode, PEAK_BF16, PEAK_F32};
use crate::backend::probe::cpu_name;
use safeaware_runtime::device::DeviceSpec;

pub(super) fn report(spec: &BenchSpec, t: &Timings) -> Value {
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
            Dtype::Bf16 | Dtype::Bf16Mixed => PEAK_BF16,
            Dtype::F32 => PEAK_F32,
        })
    });
    let mfu = peak.map(|p| 6.0 * t.params as f64 * tokens_per_s / p);
    let (peak_mem, mem_source) = match spec.device {
        DeviceSpec::Cpu => (peak_rss_mib(), "VmHWM (peak RSS of the process, model building included)"),
        DeviceSpec::Cuda(_) => (gpu_process_mem_mib(), "nvidia-smi used_memory of this process after the run (driver view: CUDA context + allocator pools)"),
        DeviceSpec::Wgpu => (wgpu_reserved_mib(), "CubeCL bytes_reserved on the wgpu device, largest at the end of a step (its pools keep their pages: about the peak reserved)"),
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
        "activation_checkpointing": spec.activation_checkpointing,
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
