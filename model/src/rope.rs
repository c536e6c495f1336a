//! Rotary position embeddings in Llama's rotate-half layout. Angles are computed on the host in
//! f32 exactly as HF does (`inv_freq = 1 / theta^(2i/d)`, `cos/sin(pos · inv_freq)`), so every
//! backend sees identical tables and position ids may differ per row (left padding).

use burn::tensor::backend::Backend;
use burn::tensor::{s, Tensor, TensorData};

use crate::fused;

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

    /// `(cos, sin)` tables `[B, 1, T, head_dim]` for row-major positions `[B, T]`, or
    /// `[1, 1, T, head_dim]` when every row has the same positions (no left padding: training,
    /// and generation of equal-length prompts), which [`apply_rotary`] broadcasts cheaply.
    pub fn tables<B: Backend>(
        &self,
        positions: &[i64],
        batch: usize,
        seq: usize,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let half = self.inv_freq.len();
        let shared = seq > 0 && positions.chunks(seq).all(|row| row == &positions[..seq]);
        let (batch, positions) = if shared {
            (1, &positions[..seq])
        } else {
            (batch, positions)
        };
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
/// `rotate_half([x1, x2]) = [-x2, x1]` splits the last dimension in halves. On the CPU backend
/// this is the fused kernel ([`crate::fused::rotary`]).
pub fn apply_rotary<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Tensor<B, 4> {
    if let Some(rotated) = fused::applied(fused::rotary(&x, cos, sin)) {
        return rotated;
    }
    let [batch, heads, seq, d] = x.dims();
    if cos.dims()[0] == 1 {
        return apply_rotary_shared(x, cos, sin, [batch, heads, seq, d]);
    }
    let x1 = x.clone().slice(s![.., .., .., 0..d / 2]);
    let x2 = x.clone().slice(s![.., .., .., d / 2..]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}

/// [`apply_rotary`] when all rows share one `[1, 1, T, D]` table: the same values (bit for bit),
/// laid out so that CPU backends take their fast paths. `x` becomes `[B·H, T·D]` rows (one copy
/// when it is a head-split view), the tables one `[1, T·D]` row that broadcasts over them, and
/// `rotate_half`'s sign moves into the sine row (`[-x2, x1]·[s, s] = [x2, x1]·[-s, s]`), so no
/// broadcast ever runs over a strided view (burn-flex walks those element by element).
fn apply_rotary_shared<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
    [batch, heads, seq, d]: [usize; 4],
) -> Tensor<B, 4> {
    let (rows, half) = (batch * heads, d / 2);
    let x = x.reshape([rows, seq * d]);
    let cos = cos.clone().reshape([1, seq * d]);
    let sin = sin.clone().reshape([seq, 2, half]);
    let sin = Tensor::cat(
        vec![
            sin.clone().slice(s![.., 0..1, ..]).neg(),
            sin.slice(s![.., 1..2, ..]),
        ],
        1,
    )
    .reshape([1, seq * d]);
    let halves = x.clone().reshape([rows * seq, 2, half]);
    let swapped = Tensor::cat(
        vec![
            halves.clone().slice(s![.., 1..2, ..]),
            halves.slice(s![.., 0..1, ..]),
        ],
        1,
    )
    .reshape([rows, seq * d]);
    (x * cos + swapped * sin).reshape([batch, heads, seq, d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::Distribution;

    /// The shared-table path gives exactly the per-row path's values, on a head-split view.
    #[test]
    fn shared_tables_match_per_row_tables_exactly() {
        let device = Default::default();
        let rope = Rope::new(8, 10_000.0);
        let (batch, seq, heads) = (3, 5, 2);
        let positions: Vec<i64> = (0..batch).flat_map(|_| 4..4 + seq as i64).collect();
        let (cos, sin) = rope.tables::<NdArray>(&positions, batch, seq, &device);
        assert_eq!(cos.dims(), [1, 1, seq, 8]);
        let (cos_rows, sin_rows) = (
            cos.clone().repeat_dim(0, batch),
            sin.clone().repeat_dim(0, batch),
        );
        let x = Tensor::<NdArray, 4>::random(
            [batch, seq, heads, 8],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
        .swap_dims(1, 2);
        let shared = apply_rotary(x.clone(), &cos, &sin)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let per_row = apply_rotary(x, &cos_rows, &sin_rows)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(shared, per_row);
        // Rows with different positions keep per-row tables.
        let mut positions = positions;
        positions[0] = 9;
        assert_eq!(
            rope.tables::<NdArray>(&positions, batch, seq, &device)
                .0
                .dims(),
            [batch, 1, seq, 8]
        );
    }
}
