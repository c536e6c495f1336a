//! The synthetic batch both sides of the comparison time, built on the host from a seeded RNG.

use anyhow::{ensure, Result};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safeaware_model::{ModelConfig, VlmInput, IGNORE_INDEX};

/// The synthetic batch of `tools/torch_reference.py`, host side: ids and labels `[B·T]` row-major,
/// pixels `[B·3·S·S]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostInputs {
    pub ids: Vec<i64>,
    pub labels: Vec<i64>,
    pub pixels: Vec<f32>,
    pub image_size: usize,
}

/// Builds the inputs for `config` (one tile per row).
pub fn host_inputs(
    config: &ModelConfig,
    batch: usize,
    seq: usize,
    seed: u64,
) -> Result<HostInputs> {
    let span = config.tokens_per_image();
    ensure!(
        seq >= span + 2,
        "--seq {seq} is too short: the image span alone is {span} tokens (need seq >= {})",
        span + 2
    );
    let vocab = config.text().vocab_size as i64;
    let image = config.image_token_id() as i64;
    ensure!(vocab > 4, "vocabulary of {vocab} is too small");
    let bos = config.text().bos_token_id.map_or(1, i64::from);
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(1));
    let mut ids = Vec::with_capacity(batch * seq);
    let mut labels = Vec::with_capacity(batch * seq);
    for _ in 0..batch {
        for t in 0..seq {
            let id = if t == 0 {
                bos
            } else if t <= span {
                image
            } else {
                let id = rng.random_range(3..vocab);
                if id == image {
                    3
                } else {
                    id
                }
            };
            ids.push(id);
            labels.push(if (1..=span).contains(&t) {
                IGNORE_INDEX
            } else {
                id
            });
        }
    }
    let size = config.image_size();
    let channels = config.num_channels();
    let n = batch * channels * size * size;
    let mut pixels = Vec::with_capacity(n + 1);
    while pixels.len() < n {
        // Box–Muller: N(0, 1).
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        pixels.push((r * a.cos()) as f32);
        pixels.push((r * a.sin()) as f32);
    }
    pixels.truncate(n);
    Ok(HostInputs {
        ids,
        labels,
        pixels,
        image_size: size,
    })
}

impl HostInputs {
    pub(super) fn to_device<B: Backend>(
        &self,
        batch: usize,
        seq: usize,
        channels: usize,
        device: &B::Device,
    ) -> (VlmInput<B>, Tensor<B, 2, Int>) {
        let ids =
            Tensor::<B, 2, Int>::from_data(TensorData::new(self.ids.clone(), [batch, seq]), device);
        let labels = Tensor::<B, 2, Int>::from_data(
            TensorData::new(self.labels.clone(), [batch, seq]),
            device,
        );
        let s = self.image_size;
        let pixels = Tensor::<B, 4>::from_data(
            TensorData::new(self.pixels.clone(), [batch, channels, s, s]),
            device,
        );
        (VlmInput::new(ids, Some(pixels)), labels)
    }
}
