//! Dropout (LoRA's) whose mask comes from a per-thread generator the trainer seeds, so that
//! data-parallel workers on one CPU device, which share the backend's single generator and
//! draw from it in whatever order the threads run, still draw the same masks every run. The
//! trainer seeds the main thread per step ([`seed`]); a worker thread is seeded from a value
//! the main thread draws for it ([`next_seed`]), so a run's masks depend only on its seed, step
//! and worker.

use std::cell::RefCell;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::precision::{cast, float_dtype};

thread_local! {
    static GENERATOR: RefCell<StdRng> = RefCell::new(StdRng::seed_from_u64(0));
}

/// Seeds this thread's dropout generator.
pub fn seed(seed: u64) {
    GENERATOR.with(|g| *g.borrow_mut() = StdRng::seed_from_u64(seed));
}

/// A seed for another thread's generator, drawn from this thread's.
pub fn next_seed() -> u64 {
    GENERATOR.with(|g| g.borrow_mut().random())
}

/// Zeroes each element of `x` with probability `prob` and scales the rest by `1 / (1 − prob)`,
/// while training (autodiff enabled), as Burn's `Dropout` does; `x` itself otherwise.
pub fn dropout<B: Backend, const D: usize>(x: Tensor<B, D>, prob: f64) -> Tensor<B, D> {
    let device = x.device();
    if prob <= 0.0 || !B::ad_enabled(&device) {
        return x;
    }
    let keep = (1.0 / (1.0 - prob)) as f32;
    let shape = x.shape();
    let mask: Vec<f32> = GENERATOR.with(|g| {
        let mut g = g.borrow_mut();
        (0..shape.num_elements())
            .map(|_| if g.random::<f64>() < prob { 0.0 } else { keep })
            .collect()
    });
    let mask = Tensor::<B, D>::from_data(TensorData::new(mask, shape), &device);
    let dtype = float_dtype(&x);
    x * cast(mask, dtype)
}
