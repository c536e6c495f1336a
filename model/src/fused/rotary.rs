//! Fused rotary embedding: `x · cos + rotate_half(x) · sin` read in place from the head-split
//! view the model makes (no copy of `q`/`k` to a contiguous layout first), written
//! `[B, T, H, D]` so the attention kernel reads it back in place; the backward rotates the
//! gradient the other way. The tables carry no gradient.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::error::{ensure, fallback_or_error, FusedError};
use super::op::{self, Kernel};
use super::strided::{Out, View};

/// A per-row map: `(input, cos, sin, output)`.
type RowFn = fn(&[f32], &[f32], &[f32], &mut [f32]);

/// Rows of `D` values per parallel task.
const ROWS_PER_TASK: usize = 256;

/// [`crate::rope::apply_rotary`] for `x [B, H, T, D]` and tables `[1 or B, 1, T, D]`;
/// `Ok(None)` where the fused kernel does not apply (see [`super`]: tables that only
/// broadcast, an odd `D`), an error for tables that do not broadcast to `x`.
pub fn rotary<B: Backend>(
    x: &Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Result<Option<Tensor<B, 4>>, FusedError> {
    let (x_dims, cos_dims, sin_dims) = (x.dims(), cos.dims(), sin.dims());
    for (name, table) in [("cos", &cos_dims), ("sin", &sin_dims)] {
        if !table_fits(x_dims, *table) {
            return fallback_or_error(KERNEL, [("x", &x_dims), (name, table)]);
        }
    }
    if x_dims[3] % 2 != 0 || sin_dims != cos_dims {
        return Ok(None);
    }
    let table = |t: &Tensor<B, 4>, name| {
        op::inner(op::primitive(t))
            .map(|t| View::new(&t, [KERNEL, name]))
            .transpose()
    };
    let (Some(cos), Some(sin)) = (table(cos, "cos")?, table(sin, "sin")?) else {
        return Ok(None);
    };
    op::run(Rotary { cos, sin }, [op::primitive(x)])
}

/// The kernel's name in errors.
const KERNEL: &str = "rotary";

/// Whether a `[1 or B, 1, T, D]` table serves `x [B, H, T, D]` as the kernel reads it.
fn table_fits([batch, _, seq, dim]: [usize; 4], [rows, one, t, d]: [usize; 4]) -> bool {
    (rows == 1 || rows == batch) && one == 1 && t == seq && d == dim
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
    /// view; an error, with nothing written, when the tables do not fit `input` or its
    /// layout leaves its buffer.
    fn map_rows(
        &self,
        input: &FlexTensor,
        name: &'static str,
        f: RowFn,
    ) -> Result<FlexTensor, FusedError> {
        let x = View::new(input, [KERNEL, name])?;
        for (table, which) in [(&self.cos, "cos"), (&self.sin, "sin")] {
            ensure(
                table_fits(x.shape, table.shape) && x.shape[3] % 2 == 0,
                KERNEL,
                || format!("{which} {:?} for {name} {:?}", table.shape, x.shape),
            )?;
        }
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
                    let at = ((b * seq + t) * heads + h) * dim;
                    // SAFETY: row (b, h, t) owns these `dim` elements of the output (rows are
                    // disjoint, each written by one task), and `out` outlives this loop.
                    let output = unsafe { ptr.slice_mut(at, dim) };
                    f(input, cos, sin, output);
                }
            });
        Ok(out.into_tensor([batch, seq, heads, dim]).transpose(1, 2))
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

    fn forward(&self, [x]: &[FlexTensor; 1]) -> Result<(FlexTensor, ()), FusedError> {
        Ok((self.map_rows(x, "x", rotate)?, ()))
    }

    fn backward(
        &self,
        _: &[FlexTensor; 1],
        _: &(),
        grad: FlexTensor,
        _: [bool; 1],
    ) -> Result<[Option<FlexTensor>; 1], FusedError> {
        Ok([Some(self.map_rows(
            &grad,
            "output gradient",
            rotate_back,
        )?)])
    }
}
