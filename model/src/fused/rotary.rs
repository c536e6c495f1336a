//! Fused rotary embedding: `x · cos + rotate_half(x) · sin` read in place from the head-split
//! view the model makes (no copy of `q`/`k` to a contiguous layout first), written
//! `[B, T, H, D]` so the attention kernel reads it back in place; the backward rotates the
//! gradient the other way. The tables carry no gradient.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::op::{self, Kernel};
use super::strided::{Out, View};

/// A per-row map: `(input, cos, sin, output)`.
type RowFn = fn(&[f32], &[f32], &[f32], &mut [f32]);

/// Rows of `D` values per parallel task.
const ROWS_PER_TASK: usize = 256;

/// [`crate::rope::apply_rotary`] for `x [B, H, T, D]` and tables `[1 or B, 1, T, D]`; `None`
/// where the fused kernel does not apply (see [`super`]).
pub fn rotary<B: Backend>(
    x: &Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Option<Tensor<B, 4>> {
    let [batch, _, seq, dim] = x.dims();
    let [rows, one, table_seq, table_dim] = cos.dims();
    let fits = (rows == 1 || rows == batch) && one == 1 && table_seq == seq && table_dim == dim;
    if !fits || dim % 2 != 0 || sin.dims() != cos.dims() {
        return None;
    }
    let table = |t: &Tensor<B, 4>| op::inner(op::primitive(t)).map(|t| View::new(&t));
    let kernel = Rotary {
        cos: table(cos)?,
        sin: table(sin)?,
    };
    op::run(kernel, [op::primitive(x)])
}

/// The kernel: the tables, read in place.
#[derive(Debug, Clone)]
struct Rotary {
    cos: View,
    sin: View,
}

impl Rotary {
    /// The cos and sin rows for position `t` of batch row `b`.
    fn tables(&self, b: usize, t: usize) -> (&[f32], &[f32]) {
        (table_row(&self.cos, b, t), table_row(&self.sin, b, t))
    }

    /// Applies `f(input row, cos, sin, output row)` to every `(b, h, t)` row of `input`
    /// (`[B, H, T, D]`), writing a `[B, T, H, D]` buffer, and returns it as a `[B, H, T, D]`
    /// view.
    fn map_rows(&self, input: &FlexTensor, f: RowFn) -> FlexTensor {
        let x = View::new(input);
        let [batch, heads, seq, dim] = x.shape;
        let mut out = Out::zeros(batch * heads * seq * dim);
        let ptr = out.ptr();
        let rows = batch * heads * seq;
        (0..rows.div_ceil(ROWS_PER_TASK))
            .into_par_iter()
            .for_each(|task| {
                for row in task * ROWS_PER_TASK..rows.min((task + 1) * ROWS_PER_TASK) {
                    let (b, h, t) = (row / (heads * seq), row / seq % heads, row % seq);
                    let input = &x.data()[x.at(b, h, t)..][..dim];
                    let (cos, sin) = self.tables(b, t);
                    // SAFETY: row (b, h, t) owns `dim` elements of the output; rows are disjoint.
                    let output = unsafe {
                        std::slice::from_raw_parts_mut(
                            ptr.at(((b * seq + t) * heads + h) * dim),
                            dim,
                        )
                    };
                    f(input, cos, sin, output);
                }
            });
        out.into_tensor([batch, seq, heads, dim]).transpose(1, 2)
    }
}

/// Row `t` of batch row `b` (or of the one shared row) of a `[1 or B, 1, T, D]` table.
fn table_row(view: &View, b: usize, t: usize) -> &[f32] {
    let b = if view.shape[0] == 1 { 0 } else { b };
    let start = view.at(b, 0, t);
    &view.data()[start..start + view.shape[3]]
}

/// `out = x · cos + [−x₂, x₁] · sin` for one row.
fn rotate(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]) {
    let half = x.len() / 2;
    for j in 0..half {
        out[j] = x[j] * cos[j] - x[j + half] * sin[j];
        out[j + half] = x[j + half] * cos[j + half] + x[j] * sin[j + half];
    }
}

/// The transpose of [`rotate`]: `dx = g · cos + [g₂ · sin₂, −g₁ · sin₁]`.
fn rotate_back(g: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]) {
    let half = g.len() / 2;
    for j in 0..half {
        out[j] = g[j] * cos[j] + g[j + half] * sin[j + half];
        out[j + half] = g[j + half] * cos[j + half] - g[j] * sin[j];
    }
}

impl Kernel<1> for Rotary {
    type Saved = ();

    fn forward(&self, [x]: &[FlexTensor; 1]) -> (FlexTensor, ()) {
        (self.map_rows(x, rotate), ())
    }

    fn backward(
        &self,
        _: &[FlexTensor; 1],
        _: &(),
        grad: FlexTensor,
        _: [bool; 1],
    ) -> [Option<FlexTensor>; 1] {
        [Some(self.map_rows(&grad, rotate_back))]
    }
}
