//! Run-time device selection over compile-time backends: Burn code is generic over the backend
//! type, and the binary picks the concrete backend from the `--device` string. Each backend
//! exists only when its cargo feature (`cpu`, `cuda`, `wgpu`) was enabled, and asking for a
//! missing one is a clear error rather than a silent fallback. A GPU device is probed first
//! ([`probe`]), so a missing driver or adapter is an error, not a panic.

pub mod probe;

use anyhow::Result;
pub use safeaware_trainer::device::{BackendTask, DeviceSpec};
use safeaware_trainer::guard;

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
    use burn::tensor::backend::AutodiffBackend;

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
