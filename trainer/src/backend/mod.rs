//! Run-time device selection (`--device cpu | cuda:N | wgpu`) over compile-time backends.
//!
//! Burn code is generic over the backend type; the binary picks the concrete backend from the
//! `--device` string. Each backend exists only when its cargo feature (`cpu`, `cuda`, `wgpu`) was
//! enabled, and asking for a missing one is a clear error rather than a silent fallback. A GPU
//! device is probed first ([`probe`]), so a missing driver or adapter is an error, not a panic.

pub mod guard;
pub mod probe;

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use burn::tensor::backend::AutodiffBackend;

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

/// Work that is generic over the (autodiff) backend; [`run_on`] instantiates it for the device.
pub trait BackendTask {
    type Output;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Self::Output>;
}

/// Runs `task` on the backend that serves `spec`, or fails if this binary lacks that backend
/// or the device does not answer its probe (a [`probe::DeviceUnavailable`] error).
///
/// On a GPU, a panic while the task runs (a device lost in the middle) is a
/// [`guard::DeviceFailure`]; on the CPU a panic is a bug and stays one.
pub fn run_on<T: BackendTask>(spec: DeviceSpec, task: T) -> Result<T::Output> {
    require(spec)?;
    match spec {
        DeviceSpec::Cpu => run_cpu(task),
        DeviceSpec::Cuda(index) => {
            guard::guarded(|| format!("work on {spec}"), || run_cuda(task, index))?
        }
        DeviceSpec::Wgpu => guard::guarded(|| format!("work on {spec}"), || run_wgpu(task))?,
    }
}

/// Whether `err` is the device's fault (unavailable, or failed while working): the binary
/// exits with status 2 for these.
pub fn is_device_error(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| cause.is::<probe::DeviceUnavailable>() || cause.is::<guard::DeviceFailure>())
}

/// Probes a GPU device (the CPU needs no probe); the error is a [`probe::DeviceUnavailable`].
pub fn require(spec: DeviceSpec) -> Result<()> {
    if spec != DeviceSpec::Cpu {
        probe::probe(spec)?;
    }
    Ok(())
}

#[cfg(feature = "cpu")]
fn run_cpu<T: BackendTask>(task: T) -> Result<T::Output> {
    use burn::backend::{flex::FlexDevice, Autodiff, Flex};
    task.run::<Autodiff<Flex>>(FlexDevice)
}

#[cfg(not(feature = "cpu"))]
fn run_cpu<T: BackendTask>(_task: T) -> Result<T::Output> {
    not_built(DeviceSpec::Cpu, "cpu")
}

#[cfg(feature = "cuda")]
fn run_cuda<T: BackendTask>(task: T, index: usize) -> Result<T::Output> {
    use burn::backend::{cuda::CudaDevice, Autodiff, Cuda};
    task.run::<Autodiff<Cuda>>(CudaDevice::new(index))
}

#[cfg(not(feature = "cuda"))]
fn run_cuda<T: BackendTask>(_task: T, index: usize) -> Result<T::Output> {
    not_built(DeviceSpec::Cuda(index), "cuda")
}

#[cfg(feature = "wgpu")]
fn run_wgpu<T: BackendTask>(task: T) -> Result<T::Output> {
    use burn::backend::{wgpu::WgpuDevice, Autodiff, Wgpu};
    task.run::<Autodiff<Wgpu>>(WgpuDevice::default())
}

#[cfg(not(feature = "wgpu"))]
fn run_wgpu<T: BackendTask>(_task: T) -> Result<T::Output> {
    not_built(DeviceSpec::Wgpu, "wgpu")
}

#[allow(dead_code)]
fn not_built<O>(spec: DeviceSpec, feature: &str) -> Result<O> {
    Err(probe::not_built(spec, feature).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("wgpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Wgpu);
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_backend_is_a_clear_error() {
        struct Noop;
        impl BackendTask for Noop {
            type Output = ();
            fn run<B: AutodiffBackend>(self, _device: B::Device) -> Result<()> {
                Ok(())
            }
        }
        let err = run_on(DeviceSpec::Cuda(0), Noop).unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
