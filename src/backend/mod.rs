//! Run-time device selection over compile-time backends: Burn code is generic over the backend
//! type, and the binary picks the concrete backend from the `--device` string. Each backend
//! exists only when its cargo feature (`cpu`, `cuda`, `wgpu`) was enabled, and asking for a
//! missing one is a clear error rather than a silent fallback. A GPU device is probed first
//! ([`probe`]), so a missing driver or adapter is an error, not a panic. Every backend runs
//! under autodiff the same way ([`run_autodiff`]): with Burn's `BalancedCheckpointing` when the
//! task asks for activation checkpointing.

pub mod nccl;
pub mod probe;

use anyhow::{bail, Result};
use burn::tensor::backend::AutodiffBackend;
use safeaware_runtime::device::DeviceSpec;
use safeaware_runtime::guard;
use safeaware_runtime::task::{BackendTask, MultiDeviceTask};

/// Runs `task` on the backend that serves `spec`, or fails if this binary lacks that backend
/// or the device does not answer its probe (a [`probe::DeviceUnavailable`] error).
///
/// On a GPU, a panic while the task runs (a device lost in the middle) is a
/// [`guard::DeviceFailure`]; on the CPU a panic is a bug and stays one.
pub fn run_on<T: BackendTask>(spec: DeviceSpec, task: T) -> Result<T::Output> {
    run_on_devices(&[spec], OneDevice(task))
}

/// Runs `task` on every device of `specs` (all of one backend), each probed first; as
/// [`run_on`] for failures.
pub fn run_on_devices<T: MultiDeviceTask>(specs: &[DeviceSpec], task: T) -> Result<T::Output> {
    let Some(&first) = specs.first() else {
        bail!("no device given");
    };
    for &spec in specs {
        require(spec)?;
    }
    let (path, line) = nccl::choose(
        specs,
        std::env::var(nccl::DATA_PARALLEL_ENV).ok().as_deref(),
        nccl::nccl_missing,
    )?;
    if let Some(line) = line {
        eprintln!("{line}");
    }
    let during = || format!("work on {}", names(specs));
    match first {
        DeviceSpec::Cpu => run_cpu(task, specs.len()),
        DeviceSpec::Cuda(_) => guard::guarded(during, || run_cuda(task, specs, path))?,
        DeviceSpec::Wgpu => guard::guarded(during, || run_wgpu(task, specs.len()))?,
    }
}

fn names(specs: &[DeviceSpec]) -> String {
    specs
        .iter()
        .map(DeviceSpec::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A one-device task run as a task over a list of one device.
struct OneDevice<T>(T);

impl<T: BackendTask> MultiDeviceTask for OneDevice<T> {
    type Output = T::Output;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<T::Output> {
        let device = devices
            .into_iter()
            .next()
            .expect("run_on passes one device");
        self.0.run::<B>(device)
    }

    fn activation_checkpointing(&self) -> bool {
        self.0.activation_checkpointing()
    }
}

/// A backend autodiff can wrap: any, except that with the `nccl` feature (Burn's
/// `distributed`, under which autodiff needs it) it must implement `DistributedBackend`.
#[cfg(not(feature = "nccl"))]
pub trait InnerBackend: burn::tensor::backend::Backend {}
#[cfg(not(feature = "nccl"))]
impl<X: burn::tensor::backend::Backend> InnerBackend for X {}
/// A backend autodiff can wrap: with the `nccl` feature, one with `DistributedBackend`.
#[cfg(feature = "nccl")]
pub trait InnerBackend:
    burn::tensor::backend::Backend + burn::tensor::backend::distributed::DistributedBackend
{
}
#[cfg(feature = "nccl")]
impl<X> InnerBackend for X where
    X: burn::tensor::backend::Backend + burn::tensor::backend::distributed::DistributedBackend
{
}

/// Runs `task` on `devices` of the inner backend `X` under autodiff: Burn's
/// `BalancedCheckpointing` when the task asks for activation checkpointing, else none.
#[cfg(any(feature = "cpu", feature = "cuda", feature = "wgpu"))]
fn run_autodiff<X, T>(task: T, devices: Vec<X::Device>) -> Result<T::Output>
where
    X: InnerBackend,
    T: MultiDeviceTask,
{
    use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
    use burn::backend::Autodiff;
    if task.activation_checkpointing() {
        task.run::<Autodiff<X, BalancedCheckpointing>>(devices)
    } else {
        task.run::<Autodiff<X>>(devices)
    }
}

/// [`run_autodiff`] of a one-device task on `device` of the inner backend `X` (a backend that
/// [`run_on`] does not pick, such as the bench's bf16 CUDA).
#[cfg(feature = "cuda")]
pub fn run_autodiff_on<X, T>(task: T, device: X::Device) -> Result<T::Output>
where
    X: InnerBackend,
    T: BackendTask,
{
    run_autodiff::<X, _>(OneDevice(task), vec![device])
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
fn run_cpu<T: MultiDeviceTask>(task: T, workers: usize) -> Result<T::Output> {
    use burn::backend::{flex::FlexDevice, Flex};
    let run = || run_autodiff::<Flex, _>(task, vec![FlexDevice; workers]);
    if rayon::current_thread_index().is_some() {
        // A task started from inside a task: already on the pool, under the outer one's turn.
        return run();
    }
    // One CPU task at a time in this process. Burn's autodiff holds a process-wide lock for a
    // whole backward pass, whose ops fork on the pool; a pool thread waiting on such a fork
    // takes any queued job, so a second task's job could start inside the first's backward and
    // then wait forever for the lock its own thread holds (seen: concurrent tests hung).
    let _turn = CPU_TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // On a thread of the CPU backend's pool (rayon's global one): every parallel op then
    // starts where it is, instead of being handed from this thread to the pool and back.
    rayon::scope(|_| run())
}

/// Held while a CPU task runs (see [`run_cpu`]).
#[cfg(feature = "cpu")]
static CPU_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(not(feature = "cpu"))]
fn run_cpu<T: MultiDeviceTask>(_task: T, _workers: usize) -> Result<T::Output> {
    not_built(DeviceSpec::Cpu, "cpu")
}

/// Runs `task` on the CUDA devices `specs`, on the data-parallel `path` when there are several.
#[cfg(feature = "cuda")]
fn run_cuda<T: MultiDeviceTask>(
    task: T,
    specs: &[DeviceSpec],
    path: nccl::Path,
) -> Result<T::Output> {
    use burn::backend::{cuda::CudaDevice, Cuda};
    let devices = specs
        .iter()
        .map(|spec| match spec {
            DeviceSpec::Cuda(index) => Ok(CudaDevice::new(*index)),
            other => Err(anyhow::anyhow!("`{other}` is not a CUDA device")),
        })
        .collect::<Result<Vec<_>>>()?;
    #[cfg(feature = "nccl")]
    if path == nccl::Path::Nccl {
        use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
        use burn::backend::Autodiff;
        return if task.activation_checkpointing() {
            task.run_synced::<Autodiff<Cuda, BalancedCheckpointing>, _>(devices, nccl::NcclSync)
        } else {
            task.run_synced::<Autodiff<Cuda>, _>(devices, nccl::NcclSync)
        };
    }
    let _ = path;
    run_autodiff::<Cuda, _>(task, devices)
}

#[cfg(not(feature = "cuda"))]
fn run_cuda<T: MultiDeviceTask>(
    _task: T,
    specs: &[DeviceSpec],
    _path: nccl::Path,
) -> Result<T::Output> {
    not_built(specs[0], "cuda")
}

#[cfg(feature = "wgpu")]
fn run_wgpu<T: MultiDeviceTask>(task: T, workers: usize) -> Result<T::Output> {
    use burn::backend::{wgpu::WgpuDevice, Wgpu};
    run_autodiff::<Wgpu, _>(task, vec![WgpuDevice::default(); workers])
}

#[cfg(not(feature = "wgpu"))]
fn run_wgpu<T: MultiDeviceTask>(_task: T, _workers: usize) -> Result<T::Output> {
    not_built(DeviceSpec::Wgpu, "wgpu")
}

#[allow(dead_code)]
fn not_built<O>(spec: DeviceSpec, feature: &str) -> Result<O> {
    Err(probe::not_built(spec, feature).into())
}

#[cfg(all(test, not(feature = "cuda")))]
mod tests {
    use super::*;

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

#[cfg(all(test, feature = "cpu"))]
mod dispatch_tests {
    use super::*;
    use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
    use burn::backend::{Autodiff, Flex};
    use std::any::TypeId;

    /// Reports the backend it was given.
    struct WhichBackend {
        checkpointing: bool,
    }

    impl BackendTask for WhichBackend {
        type Output = TypeId;
        fn run<B: AutodiffBackend>(self, _device: B::Device) -> Result<TypeId> {
            Ok(TypeId::of::<B>())
        }
        fn activation_checkpointing(&self) -> bool {
            self.checkpointing
        }
    }

    /// Forward and backward passes of a product large enough for its kernels to fork.
    struct Backward;

    impl BackendTask for Backward {
        type Output = f32;
        fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<f32> {
            use burn::tensor::{ElementConversion, Tensor};
            let x = Tensor::<B, 2>::ones([192, 192], &device).require_grad();
            let mut total = 0.0;
            for _ in 0..10 {
                let grads = x.clone().matmul(x.clone()).sum().backward();
                let grad = x.grad(&grads).expect("x is tracked");
                total += grad.sum().into_scalar().elem::<f32>();
            }
            Ok(total)
        }
    }

    /// Tasks started at once from several threads (as tests are) all finish: before CPU tasks
    /// took turns, one task's job could start inside another's backward and wait forever.
    #[test]
    fn concurrent_cpu_tasks_finish() {
        let (sender, results) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for _ in 0..8 {
                    let _ = sender.send(run_on(DeviceSpec::Cpu, Backward).unwrap());
                }
            });
        }
        drop(sender);
        let expected = 10.0 * (2.0 * 192.0 * 192.0 * 192.0);
        for _ in 0..32 {
            let total = results
                .recv_timeout(std::time::Duration::from_secs(120))
                .expect("concurrent CPU tasks stopped making progress (deadlock)");
            assert_eq!(total, expected);
        }
    }

    #[test]
    fn activation_checkpointing_selects_the_balanced_strategy() {
        let run = |checkpointing| run_on(DeviceSpec::Cpu, WhichBackend { checkpointing }).unwrap();
        assert_eq!(
            run(true),
            TypeId::of::<Autodiff<Flex, BalancedCheckpointing>>()
        );
        assert_eq!(run(false), TypeId::of::<Autodiff<Flex>>());
    }
}
