//! Fused LayerNorm with weight and bias, `(x − mean) / √(var + eps) · gamma + beta` over the
//! last dimension with the biased variance, as Burn's `nn::LayerNorm` computes it: one pass per
//! row that keeps only the row's mean and `1/σ` for the backward, which gives `dx` row by row and
//! `dgamma`/`dbeta` as per-chunk partial sums reduced in a fixed order.

use std::sync::Arc;

use burn::nn::LayerNorm;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;

use super::chunks::{by_rows, contiguous, dims, sum_in_order, tensor, values};
use super::error::{ensure, fallback_or_error, FusedError};
use super::math::{dot, sum};
use super::op::{self, Kernel};

/// `norm` (which must have a bias) applied to `x [.., D]`, with its epsilon `eps` (Burn keeps
/// a LayerNorm's epsilon private, so the caller passes the one it was built with); `Ok(None)`
/// where the fused kernel does not apply (see [`super`]), an error for parameters that cannot
/// scale `x`'s rows.
pub fn layer_norm<B: Backend, const D: usize>(
    norm: &LayerNorm<B>,
    x: &Tensor<B, D>,
    eps: f64,
) -> Result<Option<Tensor<B, D>>, FusedError> {
    let width = x.dims()[D - 1];
    let Some(beta) = norm.beta.as_ref() else {
        return Ok(None);
    };
    let (gamma, beta) = (norm.gamma.val(), beta.val());
    for (name, param) in [("gamma", &gamma), ("beta", &beta)] {
        if param.dims() != [width] {
            return fallback_or_error(KERNEL, [("x rows", &[width]), (name, &param.dims())]);
        }
    }
    if width == 0 || x.shape().num_elements() == 0 {
        return Ok(None);
    }
    let inputs = [
        op::primitive(x),
        op::primitive(&gamma),
        op::primitive(&beta),
    ];
    op::run(LayerNormKernel { eps: eps as f32 }, inputs)
}

/// The kernel's name in errors.
const KERNEL: &str = "layer_norm";

/// `x`, `gamma` and `beta` contiguous, once checked: `gamma` and `beta` are `[D]` for the last
/// dimension `D > 0` of `x`.
fn operands([x, gamma, beta]: &[FlexTensor; 3]) -> Result<[FlexTensor; 3], FusedError> {
    let x = contiguous(x, [KERNEL, "x"])?;
    let gamma = contiguous(gamma, [KERNEL, "gamma"])?;
    let beta = contiguous(beta, [KERNEL, "beta"])?;
    let width = dims(&x).last().copied().unwrap_or(0);
    ensure(
        width > 0 && dims(&gamma) == [width] && dims(&beta) == [width],
        KERNEL,
        || {
            format!(
                "gamma {:?} and beta {:?} for x {:?}",
                dims(&gamma),
                dims(&beta),
                dims(&x)
            )
        },
    )?;
    Ok([x, gamma, beta])
}

/// The LayerNorm kernel: its epsilon (added in f32, as Burn adds the scalar).
#[derive(Debug, Clone)]
struct LayerNormKernel {
    eps: f32,
}

/// What the backward keeps: each row's mean and `1/σ`.
#[derive(Debug, Clone)]
struct Saved {
    mean: Arc<Vec<f32>>,
    inv_std: Arc<Vec<f32>>,
}

impl Kernel<3> for LayerNormKernel {
    type Saved = Saved;

    fn forward(&self, inputs: &[FlexTensor; 3]) -> Result<(FlexTensor, Saved), FusedError> {
        let [x, gamma, beta] = operands(inputs)?;
        let (xs, gamma, beta) = (values(&x), values(&gamma), values(&beta));
        let width = gamma.len();
        let rows = xs.len() / width;
        let ([out, mean, inv_std], _) = by_rows(
            rows,
            width,
            [width, 1, 1],
            |range, [out, means, inv_stds]| {
                let x_rows = xs[range.start * width..range.end * width].chunks_exact(width);
                let stats = means.iter_mut().zip(inv_stds.iter_mut());
                for ((x, out), (mean, inv_std)) in
                    x_rows.zip(out.chunks_exact_mut(width)).zip(stats)
                {
                    *mean = sum(x) / width as f32;
                    out.iter_mut().zip(x).for_each(|(o, x)| *o = x - *mean);
                    *inv_std = 1.0 / (dot(out, out) / width as f32 + self.eps).sqrt();
                    for ((o, g), b) in out.iter_mut().zip(gamma).zip(beta) {
                        *o = *o * *inv_std * g + b;
                    }
                }
            },
        );
        let saved = Saved {
            mean: Arc::new(mean),
            inv_std: Arc::new(inv_std),
        };
        Ok((tensor(out, x.layout().shape().clone()), saved))
    }

    /// With `x̂ = (x − mean)/σ` and `h = g⊙gamma`: `dx = (h − mean(h) − x̂·mean(h⊙x̂))/σ`,
    /// `dgamma = Σ_rows g⊙x̂`, `dbeta = Σ_rows g`.
    fn backward(
        &self,
        inputs: &[FlexTensor; 3],
        saved: &Saved,
        grad: FlexTensor,
        [want_x, want_gamma, want_beta]: [bool; 3],
    ) -> Result<[Option<FlexTensor>; 3], FusedError> {
        let [x, gamma_t, _beta] = operands(inputs)?;
        let grad = contiguous(&grad, [KERNEL, "output gradient"])?;
        let (xs, gamma, gs) = (values(&x), values(&gamma_t), values(&grad));
        let width = gamma.len();
        let rows = xs.len() / width;
        let stats = [saved.mean.len(), saved.inv_std.len()];
        ensure(
            dims(&grad) == dims(&x) && stats == [rows; 2],
            KERNEL,
            || {
                let (g, x) = (dims(&grad), dims(&x));
                format!("output gradient {g:?} and {stats:?} row statistics for x {x:?}")
            },
        )?;
        let want_params = want_gamma || want_beta;
        let ([dx], partials) = by_rows(rows, width, [width], |range, [dx]| {
            let span = range.start * width..range.end * width;
            // `dgamma` then `dbeta` of this chunk's rows.
            let mut sums = vec![0.0f32; if want_params { 2 * width } else { 0 }];
            let (mut x_hat, mut h) = (vec![0.0f32; width], vec![0.0f32; width]);
            let stats = saved.mean[range.clone()].iter().zip(&saved.inv_std[range]);
            let x_rows = xs[span.clone()].chunks_exact(width);
            let rows = x_rows.zip(gs[span].chunks_exact(width)).zip(stats);
            for (((x, g), (&mean, &inv_std)), dx) in rows.zip(dx.chunks_exact_mut(width)) {
                x_hat
                    .iter_mut()
                    .zip(x)
                    .for_each(|(xh, x)| *xh = (x - mean) * inv_std);
                h.iter_mut()
                    .zip(g)
                    .zip(gamma)
                    .for_each(|((h, g), w)| *h = g * w);
                let mean_h = sum(&h) / width as f32;
                let mean_hx = dot(&h, &x_hat) / width as f32;
                for ((dx, h), xh) in dx.iter_mut().zip(&h).zip(&x_hat) {
                    *dx = (h - mean_h - xh * mean_hx) * inv_std;
                }
                if want_params {
                    let (dgamma, dbeta) = sums.split_at_mut(width);
                    dgamma
                        .iter_mut()
                        .zip(g)
                        .zip(&x_hat)
                        .for_each(|((d, g), xh)| *d += g * xh);
                    dbeta.iter_mut().zip(g).for_each(|(d, g)| *d += g);
                }
            }
            sums
        });
        let sums = sum_in_order(&partials, 2 * width);
        let param = |part: &[f32]| tensor(part.to_vec(), gamma_t.layout().shape().clone());
        Ok([
            want_x.then(|| tensor(dx, x.layout().shape().clone())),
            want_gamma.then(|| param(&sums[..width])),
            want_beta.then(|| param(&sums[width..])),
        ])
    }
}
