//! safeaware-runtime: where work runs. Training, evaluation, `serve`, `bench` and `doctor` all
//! run work on a device the user names, and all need the same three things, kept here so that
//! none of them reaches into another's crate for them:
//!
//! - [`device`]: [`device::DeviceSpec`], a device as recipes and `--device` name it
//!   (`cpu | cuda:N | wgpu`), and the worker lists of data-parallel runs.
//! - [`task`]: work that is generic over the (autodiff) backend — [`task::BackendTask`] on one
//!   device, [`task::MultiDeviceTask`] on several, [`task::GradientSync`] for backends that sum
//!   gradients inside `backward()`. The binary compiles the backends in (cargo features) and
//!   instantiates a task for the device named (`src/backend/`).
//! - [`guard`]: a backend panic (a GPU lost mid-work) as a [`guard::DeviceFailure`] error.
//!
//! It depends on Burn's traits only; no backend is compiled in.

#![forbid(unsafe_code)]

pub mod device;
pub mod guard;
pub mod task;
