//! Devices as recipes and the command line name them (`cpu | cuda:N | wgpu`), and work that is
//! generic over the backend. The library is backend-agnostic: the `safeaware` binary compiles
//! the backends in (cargo features) and instantiates a [`BackendTask`] for the device named.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use burn::tensor::backend::AutodiffBackend;

use crate::nccl_step::GradientSync;

/// A device named on the command line or in a recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The pure-Rust CPU backend (feature `cpu`).
    #[default]
    Cpu,
    /// An NVIDIA GPU by index (feature `cuda`).
    Cuda(usize),
    /// The default wgpu adapter (feature `wgpu`).
    Wgpu,
}

impl FromStr for DeviceSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "cpu" => Ok(Self::Cpu),
            "wgpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(index)) => Ok(Self::Cuda(index)),
                _ => bail!("unknown device `{other}`: expected `cpu`, `cuda:N` or `wgpu`"),
            },
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse().map_err(|e: anyhow::Error| e.to_string())
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
            Self::Wgpu => write!(f, "wgpu"),
        }
    }
}

/// Work that is generic over the (autodiff) backend; the binary's `backend::run_on` instantiates
/// it for the device. `Send`, as CPU work runs on a thread of the backend's pool.
pub trait BackendTask: Send {
    type Output: Send;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Self::Output>;

    /// Whether the autodiff backend should recompute cheap activations in the backward pass
    /// instead of keeping them (Burn's `BalancedCheckpointing`); see [`MultiDeviceTask`].
    fn activation_checkpointing(&self) -> bool {
        false
    }
}

/// Work that runs on every device of a list (data-parallel training); the binary's
/// `backend::run_on_devices` instantiates it for the backend they share. `Send`, as CPU work
/// runs on a thread of the backend's pool.
pub trait MultiDeviceTask: Send {
    type Output: Send;
    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<Self::Output>;

    /// Whether `run` gets `Autodiff<_, BalancedCheckpointing>` rather than plain `Autodiff<_>`:
    /// the same numbers, less memory kept for the backward pass, some forward work redone.
    fn activation_checkpointing(&self) -> bool {
        false
    }

    /// Runs on devices whose backend sums gradients over them inside `backward()` (`sync`:
    /// Burn's NCCL path on CUDA). Work with no use for that (anything on one device) runs as
    /// [`MultiDeviceTask::run`].
    fn run_synced<B: AutodiffBackend, S: GradientSync<B>>(
        self,
        devices: Vec<B::Device>,
        sync: S,
    ) -> Result<Self::Output>
    where
        Self: Sized,
    {
        drop(sync);
        self.run::<B>(devices)
    }
}

/// The workers of a data-parallel run, from names such as `cpu:0`, `cpu:1`, `cuda:0`, `wgpu:1`:
/// one [`DeviceSpec`] per worker, all of one backend, each name once. `cpu:N` and `wgpu:N` name
/// worker N on the CPU or the wgpu adapter (those backends have one device each).
pub fn parse_workers(names: &[String]) -> Result<Vec<DeviceSpec>> {
    if names.is_empty() {
        bail!("the device list is empty");
    }
    let mut seen = std::collections::HashSet::new();
    let mut workers = Vec::new();
    for name in names {
        let name = name.trim();
        if !seen.insert(name.to_string()) {
            bail!("device `{name}` is listed twice");
        }
        let spec = match name.split_once(':') {
            Some(("cpu", n)) if n.parse::<usize>().is_ok() => DeviceSpec::Cpu,
            Some(("wgpu", n)) if n.parse::<usize>().is_ok() => DeviceSpec::Wgpu,
            _ => name.parse()?,
        };
        if let Some(first) = workers.first() {
            if std::mem::discriminant(first) != std::mem::discriminant(&spec) {
                bail!(
                    "devices `{}` and `{name}` are of different backends: one run uses one backend",
                    names[0]
                );
            }
        }
        workers.push(spec);
    }
    Ok(workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_worker_lists() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_workers(&names(&["cpu:0", "cpu:1"])).unwrap(),
            [DeviceSpec::Cpu; 2]
        );
        assert_eq!(
            parse_workers(&names(&["cuda:0", "cuda:1"])).unwrap(),
            [DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]
        );
        assert!(parse_workers(&names(&["cpu:0", "cpu:0"]))
            .unwrap_err()
            .to_string()
            .contains("twice"));
        assert!(parse_workers(&names(&["cpu:0", "cuda:0"]))
            .unwrap_err()
            .to_string()
            .contains("different backends"));
        assert!(parse_workers(&[]).is_err());
        assert!(parse_workers(&names(&["tpu:0"])).is_err());
    }

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("wgpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Wgpu);
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }
}
