//! Rotary position embeddings in Llama's rotate-half layout. Angles are computed on the host in
//! f32 exactly as HF does (`inv_freq = 1 / theta^(2i/d)`, `cos/sin(pos · inv_freq)`), so every
//! backend sees identical tables and position ids may differ per row (left padding). M-RoPE
//! (Qwen2-VL) takes each frequency's position from one of three axes ([`Rope::with_sections`]).

use burn::tensor::backend::Backend;
use burn::tensor::{s, Tensor, TensorData};

use crate::fused;

/// The inverse frequencies of one head, and which position axis each follows.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
    /// Per frequency: the axis of a 3-D position (temporal, height, width) it rotates by
    /// (M-RoPE); all 0 for plain RoPE.
    axis: Vec<usize>,
}

impl Rope {
    /// Frequencies for heads of width `head_dim` (even) and base `theta`.
    pub fn new(head_dim: usize, theta: f64) -> Self {
        let base = theta as f32;
        let inv_freq: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0f32 / base.powf(i as f32 / head_dim as f32))
            .collect();
        let axis = vec![0; inv_freq.len()];
        Self { inv_freq, axis }
    }

    /// The 2-D axial rotary embedding of Qwen2-VL's vision blocks for heads of width
    /// `head_dim` (a multiple of 4): the frequencies of a `head_dim / 2` rotary, once for the
    /// height (axis 0) and once for the width (axis 1).
    pub fn axial(head_dim: usize, theta: f64) -> Self {
        let quarter = Self::new(head_dim / 2, theta).inv_freq;
        let axis = [vec![0; quarter.len()], vec![1; quarter.len()]].concat();
        let inv_freq = [quarter.clone(), quarter].concat();
        Self { inv_freq, axis }
    }

    /// M-RoPE (HF `mrope_section`): the first `sections[0]` frequencies follow the temporal
    /// axis, the next `sections[1]` the height axis, then the width axis (section `j` takes axis
    /// `j % 3`); frequencies past the sections, and all of them for `None`, follow axis 0.
    pub fn with_sections(mut self, sections: Option<&[usize]>) -> Self {
        let mut axis: Vec<usize> = sections
            .unwrap_or_default()
            .iter()
            .enumerate()
            .flat_map(|(j, &n)| std::iter::repeat_n(j % 3, n))
            .collect();
        axis.resize(self.inv_freq.len(), 0);
        axis.truncate(self.inv_freq.len());
        self.axis = axis;
        self
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
        self.tables_3d([positions; 3], batch, seq, device)
    }

    /// [`Rope::tables`] for 3-D positions (M-RoPE): `axes[a]` holds every token's position on
    /// axis `a`, row-major `[B, T]`; frequency `i` rotates by the position on its axis.
    pub fn tables_3d<B: Backend>(
        &self,
        axes: [&[i64]; 3],
        batch: usize,
        seq: usize,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let half = self.inv_freq.len();
        let same_rows = |p: &[i64]| seq > 0 && p.chunks(seq).all(|row| row == &p[..seq]);
        let shared = axes.iter().all(|p| same_rows(p));
        let (batch, tokens) = if shared {
            (1, seq)
        } else {
            (batch, batch * seq)
        };
        let mut cos = Vec::with_capacity(tokens * half * 2);
        let mut sin = Vec::with_capacity(tokens * half * 2);
        let rows = axes[0].iter().zip(axes[1]).zip(axes[2]).take(tokens);
        for ((&t, &h), &w) in rows {
            let position = [t, h, w];
            let start = cos.len();
            for (&f, &a) in self.inv_freq.iter().zip(&self.axis) {
                let angle = position[a] as f32 * f;
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

    /// M-RoPE: equal axes give plain RoPE's tables; each frequency follows its section's axis.
    #[test]
    fn mrope_sections_pick_each_frequencys_axis() {
        let device = Default::default();
        let plain = Rope::new(8, 10_000.0);
        let mrope = Rope::new(8, 10_000.0).with_sections(Some(&[1, 1, 2]));
        let p: Vec<i64> = vec![0, 3, 7];
        let table = |r: &Rope, axes: [&[i64]; 3]| {
            let (cos, _) = r.tables_3d::<NdArray>(axes, 1, 3, &device);
            cos.into_data().to_vec::<f32>().unwrap()
        };
        assert_eq!(table(&mrope, [&p, &p, &p]), table(&plain, [&p, &p, &p]));
        let (h, w): (Vec<i64>, Vec<i64>) = (vec![1, 1, 1], vec![2, 2, 2]);
        let mixed = table(&mrope, [&p, &h, &w]);
        let inv = |i: i32| 1.0f32 / 10_000f32.powf(2.0 * i as f32 / 8.0);
        // Token 1 (temporal 3, height 1, width 2): frequency 0 by t, 1 by h, 2 and 3 by w.
        let row = &mixed[8..16];
        let expected = [3.0 * inv(0), inv(1), 2.0 * inv(2), 2.0 * inv(3)].map(f32::cos);
        assert_eq!(&row[..4], &expected);
        assert_eq!(&row[4..], &expected);
    }
}
