//! Work that is generic over the (autodiff) backend. Training, evaluation, `serve`, `bench` and
//! `doctor` write their work as a task; the binary's `backend::run_on` / `run_on_devices`
//! instantiate it for the backend of the device named (the libraries compile no backend in).

use anyhow::Result;
use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;

/// Work on one device. `Send`, as CPU work runs on a thread of the backend's pool.
pub trait BackendTask: Send {
    type Output: Send;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Self::Output>;

    /// Whether the autodiff backend should recompute cheap activations in the backward pass
    /// instead of keeping them (Burn's `BalancedCheckpointing`); see [`MultiDeviceTask`].
    fn activation_checkpointing(&self) -> bool {
        false
    }
}

/// Work that runs on every device of a list (data-parallel training), all of one backend.
/// `Send`, as CPU work runs on a thread of the backend's pool.
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

/// How a backend sums gradients over devices inside `backward()` (the binary implements it
/// for CUDA with Burn's `DistributedBackend`; the trainer's `NcclStep` drives it).
pub trait GradientSync<B: AutodiffBackend>: Send + Sync + 'static {
    /// Starts the communication between `devices`, before any backward pass.
    fn start(&self, devices: &[B::Device]) -> Result<()>;

    /// `model` with every trained parameter marked so that backward sums its gradient over
    /// the devices.
    fn mark<M: Module<B>>(&self, model: M) -> M;

    /// Ends the communication started on `devices`.
    fn close(&self, devices: &[B::Device]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::flex::FlexDevice;
    use burn::backend::{Autodiff, Flex};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Counts the devices it was given.
    struct CountDevices;

    impl MultiDeviceTask for CountDevices {
        type Output = usize;

        fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<usize> {
            Ok(devices.len())
        }
    }

    /// A sync that records being dropped and fails if it is ever started.
    struct Unused(Arc<AtomicBool>);

    impl Drop for Unused {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl<B: AutodiffBackend> GradientSync<B> for Unused {
        fn start(&self, _devices: &[B::Device]) -> Result<()> {
            anyhow::bail!("started")
        }
        fn mark<M: Module<B>>(&self, model: M) -> M {
            model
        }
        fn close(&self, _devices: &[B::Device]) {}
    }

    #[test]
    fn work_without_use_for_a_sync_runs_as_run_and_drops_it() {
        type Ad = Autodiff<Flex>;
        let dropped = Arc::new(AtomicBool::new(false));
        let task = CountDevices;
        assert!(!task.activation_checkpointing());
        let devices = vec![FlexDevice; 2];
        let n = task
            .run_synced::<Ad, _>(devices, Unused(dropped.clone()))
            .unwrap();
        assert_eq!(n, 2);
        assert!(dropped.load(Ordering::SeqCst));
    }
}
