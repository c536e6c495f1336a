//! Fused CPU kernels: whole sub-graphs of the model (attention, rotary, norms, gated
//! activations) computed in one multi-threaded pass over burn-flex's buffers, each with its own
//! backward registered through Burn's custom-backward mechanism, so autodiff keeps one node per
//! kernel instead of every intermediate of the decomposed formulation.
//!
//! They run only where the model's backend is the CPU backend (`Flex`, or `Autodiff<Flex>` with
//! or without checkpointing) and the tensors are f32; everywhere else (GPU backends, bf16,
//! autocast) each entry point returns `None` and the caller keeps Burn's ops. Setting
//! `SAFEAWARE_FUSED=0` turns them off (for comparisons and benchmarks).
//!
//! Each entry point returns `Ok(None)` where Burn's ops should run, and a [`FusedError`] for
//! operands that are not what the operation takes (shapes no op could combine, a layout past
//! its buffer): every kernel checks its operands' shapes, strides and buffer lengths before
//! any pointer access, and never computes on operands it refused. The model calls them through
//! [`applied`].

mod attention;
mod chunks;
mod cross_entropy;
mod error;
mod gelu_tanh;
mod layer_norm;
mod math;
mod op;
mod rms_norm;
mod rotary;
mod sigmoid;
mod strided;
mod swiglu;

pub use attention::attention;
pub use cross_entropy::cross_entropy_sum;
pub use error::FusedError;
pub use gelu_tanh::{gelu_tanh, CUBIC as GELU_CUBIC, TWO_SQRT_2_OVER_PI as GELU_SCALE};
pub use layer_norm::layer_norm;
pub use rms_norm::rms_norm;
pub use rotary::rotary;
pub use swiglu::swiglu;

use std::sync::OnceLock;

/// Whether the fused kernels may run: on unless `SAFEAWARE_FUSED=0` (read once per process).
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("SAFEAWARE_FUSED").map_or(true, |v| v != "0"))
}

/// The kernel's output where it ran, `None` where Burn's ops should. Operands a kernel refused
/// panic with its error: the model's forward has no error path, and Burn's own ops panic on
/// operands they cannot combine in the same way.
pub fn applied<T>(result: Result<Option<T>, FusedError>) -> Option<T> {
    result.unwrap_or_else(|err| panic!("{err}"))
}
