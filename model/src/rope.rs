//! Rotary position embeddings in Llama's rotate-half layout. Angles are computed on the host in
//! f32 exactly as HF does (`inv_freq = 1 / theta^(2i/d)`, `cos/sin(pos · inv_freq)`), so every
//! backend sees identical tables and position ids may differ per row (left padding).

use burn::tensor::backend::Backend;
use burn::tensor::{s, Tensor, TensorData};

/// The inverse frequencies of one head.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    /// Frequencies for heads of width `head_dim` (even) and base `theta`.
    pub fn new(head_dim: usize, theta: f64) -> Self {
        let base = theta as f32;
        let inv_freq = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0f32 / base.powf(i as f32 / head_dim as f32))
            .collect();
        Self { inv_freq }
    }

    /// `(cos, sin)` tables `[B, 1, T, head_dim]` for row-major positions `[B, T]`.
    pub fn tables<B: Backend>(
        &self,
        positions: &[i64],
        batch: usize,
        seq: usize,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(positions.len() * half * 2);
        let mut sin = Vec::with_capacity(positions.len() * half * 2);
        for &pos in positions {
            let angles = self.inv_freq.iter().map(|&f| pos as f32 * f);
            let start = cos.len();
            for angle in angles {
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
            // HF concatenates the frequencies with themselves: emb = cat(freqs, freqs).
            cos.extend_from_within(start..start + half);
            sin.extend_from_within(start..start + half);
        }
        let shape = [batch, 1, seq, half * 2];
        (
            Tensor::from_data(TensorData::new(cos, shape), device),
            Tensor::from_data(TensorData::new(sin, shape), device),
        )
    }
}

/// `x · cos + rotate_half(x) · sin` for `x [B, H, T, D]`, where
/// `rotate_half([x1, x2]) = [-x2, x1]` splits the last dimension in halves.
pub fn apply_rotary<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Tensor<B, 4> {
    let d = x.dims()[3];
    let x1 = x.clone().slice(s![.., .., .., 0..d / 2]);
    let x2 = x.clone().slice(s![.., .., .., d / 2..]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}
