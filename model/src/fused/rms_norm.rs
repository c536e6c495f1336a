//! Fused RMSNorm, `x / √(mean(x²) + eps) · weight` over the last dimension, as
//! [`crate::language_model::LlamaRmsNorm`] computes it unfused: one pass per row that keeps
//! only the row's `1/rms` for the backward, which gives `dx` row by row and `dweight` as
//! per-chunk partial sums reduced in a fixed order.

use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;

use super::chunks::{by_rows, contiguous, dims, sum_in_order, tensor, values};
use super::error::{ensure, fallback_or_error, FusedError};
use super::math::dot;
use super::op::{self, Kernel};

/// RMSNorm of `x [.., D]` scaled by `weight [D]`; `Ok(None)` where the fused kernel does not
/// apply (see [`super`]), an error for a weight that cannot scale `x`'s rows.
pub fn rms_norm<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    weight: &Tensor<B, 1>,
    eps: f64,
) -> Result<Option<Tensor<B, D>>, FusedError> {
    let width = x.dims()[D - 1];
    if weight.dims() != [width] {
        return fallback_or_error(KERNEL, [("x rows", &[width]), ("weight", &weight.dims())]);
    }
    if width == 0 || x.shape().num_elements() == 0 {
        return Ok(None);
    }
    let kernel = RmsNorm { eps: eps as f32 };
    op::run(kernel, [op::primitive(x), op::primitive(weight)])
}

/// The kernel's name in errors.
const KERNEL: &str = "rms_norm";

/// `x` and `weight` contiguous, once checked: `weight` is `[D]` for the last dimension `D > 0`
/// of `x`.
fn operands(x: &FlexTensor, weight: &FlexTensor) -> Result<[FlexTensor; 2], FusedError> {
    let (x, weight) = (
        contiguous(x, [KERNEL, "x"])?,
        contiguous(weight, [KERNEL, "weight"])?,
    );
    let (x_dims, w_dims) = (dims(&x), dims(&weight));
    let width = x_dims.last().copied().unwrap_or(0);
    ensure(width > 0 && w_dims == [width], KERNEL, || {
        format!("weight {w_dims:?} for x {x_dims:?}")
    })?;
    Ok([x, weight])
}

/// The RMSNorm kernel: its epsilon (added in f32, as Burn adds the scalar).
#[derive(Debug, Clone)]
struct RmsNorm {
    eps: f32,
}

impl Kernel<2> for RmsNorm {
    /// Each row's `1/rms`.
    type Saved = Arc<Vec<f32>>;

    fn forward(
        &self,
        [x, weight]: &[FlexTensor; 2],
    ) -> Result<(FlexTensor, Self::Saved), FusedError> {
        let [x, weight] = operands(x, weight)?;
        let (xs, w) = (values(&x), values(&weight));
        let width = w.len();
        let ([out, inv_rms], _) =
            by_rows(xs.len() / width, width, [width, 1], |rows, [out, inv]| {
                let xs = &xs[rows.start * width..rows.end * width];
                let rows = xs.chunks_exact(width).zip(out.chunks_exact_mut(width));
                for ((x, out), inv) in rows.zip(inv.iter_mut()) {
                    *inv = 1.0 / (dot(x, x) / width as f32 + self.eps).sqrt();
                    for ((o, x), w) in out.iter_mut().zip(x).zip(w) {
                        *o = x * *inv * w;
                    }
                }
            });
        Ok((tensor(out, x.layout().shape().clone()), Arc::new(inv_rms)))
    }

    /// `dx = r·(g⊙w) − x·r³·⟨g⊙w, x⟩/D` and `dweight = Σ_rows g⊙x·r`, with `r = 1/rms`.
    fn backward(
        &self,
        [x, weight]: &[FlexTensor; 2],
        inv_rms: &Self::Saved,
        grad: FlexTensor,
        [want_x, want_weight]: [bool; 2],
    ) -> Result<[Option<FlexTensor>; 2], FusedError> {
        let [x, weight] = operands(x, weight)?;
        let grad = contiguous(&grad, [KERNEL, "output gradient"])?;
        let (xs, w, gs) = (values(&x), values(&weight), values(&grad));
        let width = w.len();
        let rows = xs.len() / width;
        ensure(
            dims(&grad) == dims(&x) && inv_rms.len() == rows,
            KERNEL,
            || {
                let (g, x) = (dims(&grad), dims(&x));
                format!(
                    "output gradient {g:?} and {} row statistics for x {x:?}",
                    inv_rms.len()
                )
            },
        )?;
        let ([dx], partials) = by_rows(rows, width, [width], |range, [dx]| {
            let span = range.start * width..range.end * width;
            let mut dw = vec![0.0f32; if want_weight { width } else { 0 }];
            let mut gw = vec![0.0f32; width];
            let x_rows = xs[span.clone()].chunks_exact(width);
            let rows = x_rows
                .zip(gs[span].chunks_exact(width))
                .zip(&inv_rms[range]);
            for (((x, g), &r), dx) in rows.zip(dx.chunks_exact_mut(width)) {
                gw.iter_mut()
                    .zip(g)
                    .zip(w)
                    .for_each(|((gw, g), w)| *gw = g * w);
                let coef = r * r * r * dot(&gw, x) / width as f32;
                for ((dx, gw), x) in dx.iter_mut().zip(&gw).zip(x) {
                    *dx = r * gw - coef * x;
                }
                dw.iter_mut()
                    .zip(g)
                    .zip(x)
                    .for_each(|((dw, g), x)| *dw += g * (x * r));
            }
            dw
        });
        let dweight = sum_in_order(&partials, width);
        Ok([
            want_x.then(|| tensor(dx, x.layout().shape().clone())),
            want_weight.then(|| tensor(dweight, weight.layout().shape().clone())),
        ])
    }
}
