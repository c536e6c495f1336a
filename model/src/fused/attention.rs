//! Fused scaled-dot-product attention, flash-style: each (batch row, key/value head) task
//! computes its query heads' scores, mask, softmax and weighted sum in one pass with
//! per-head scratch, keeping only the output and each query's log-sum-exp for the backward,
//! which recomputes the probabilities; the `[B, H, T, S]` scores are never stored. Queries,
//! keys and values are read in place through their strides (the head-split views the model
//! makes), grouped-query heads read their shared key/value head directly, and the output is
//! laid out `[B, T, H, D]` so merging heads back is free.

use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::error::{ensure, FusedError};
use super::math;
use super::op::{self, Kernel};
use super::strided::{matmul, Dst, Mat, Out, OutPtr, View};
use crate::attention::AttentionMask;

/// `softmax(q kᵀ / √D + mask) v` for `q [B, H, T, D]` and `k`/`v [B, KVH, S, D]` (`H` a
/// multiple of `KVH`; query head `h` reads key/value head `h / (H / KVH)`), fully masked rows
/// giving zeros, as [`crate::attention::grouped_query_attention`]; `Ok(None)` where the fused
/// kernel does not apply (see [`super`]), an error for operands that are not attention's.
pub fn attention<B: Backend>(
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
    mask: &AttentionMask<B>,
) -> Result<Option<Tensor<B, 4>>, FusedError> {
    let d = Dims::check(q.dims(), k.dims(), v.dims())?;
    if d.seq_q == 0 || d.seq_k == 0 {
        return Ok(None);
    }
    let full = [d.batch, d.heads, d.seq_q, d.seq_k];
    let mask = match mask {
        AttentionMask::Bidirectional => Mask::None,
        AttentionMask::Causal if d.seq_q <= d.seq_k => Mask::Causal,
        AttentionMask::Causal => return Ok(None),
        AttentionMask::Bias(bias) if bias.dims() == full => {
            let Some(bias) = op::inner(op::primitive(bias)) else {
                return Ok(None);
            };
            Mask::Bias(View::new(&bias, [KERNEL, "bias mask"])?)
        }
        AttentionMask::Masked(masked) if masked.dims() == full => {
            let Some(masked) = op::cast(masked.clone().into_primitive()) else {
                return Ok(None);
            };
            Mask::Bool(View::new(&masked, [KERNEL, "bool mask"])?)
        }
        _ => return Ok(None),
    };
    let kernel = Attention {
        mask,
        scale: 1.0 / (d.head_dim as f32).sqrt(),
    };
    op::run(kernel, [q, k, v].map(op::primitive))
}

/// The kernel's name in errors.
const KERNEL: &str = "attention";

/// How queries may look at keys, read in place.
#[derive(Debug, Clone)]
enum Mask {
    None,
    /// Query `i` sees keys `0..=i + (S - T)`.
    Causal,
    /// Additive `[B, H, T, S]`, −∞ where a query may not look.
    Bias(View),
    /// `[B, H, T, S]`, true where a query may not look.
    Bool(View),
}

impl Mask {
    /// Applies the mask to the scores of query `i` of head `h` in batch row `b`.
    fn apply(&self, [b, h, i]: [usize; 3], row: &mut [f32], seq_q: usize) {
        match self {
            Mask::None => {}
            Mask::Causal => {
                let last = i + row.len() - seq_q;
                row[last + 1..].fill(f32::NEG_INFINITY);
            }
            Mask::Bias(bias) => {
                let start = bias.at(b, h, i);
                let values = &bias.data()[start..start + row.len()];
                row.iter_mut().zip(values).for_each(|(s, m)| *s += m);
            }
            Mask::Bool(masked) => {
                let start = masked.at(b, h, i);
                let values = &masked.bools()[start..start + row.len()];
                for (s, &m) in row.iter_mut().zip(values) {
                    if m != 0 {
                        *s = f32::NEG_INFINITY;
                    }
                }
            }
        }
    }
}

/// The attention kernel: its mask and `1/√D`.
#[derive(Debug, Clone)]
struct Attention {
    mask: Mask,
    scale: f32,
}

/// What the backward keeps: the output and each query row's log-sum-exp (`[B, H, T]`).
#[derive(Debug, Clone)]
struct Saved {
    output: FlexTensor,
    log_sum_exp: Arc<Vec<f32>>,
}

/// Sizes of one call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    heads: usize,
    kv_heads: usize,
    seq_q: usize,
    seq_k: usize,
    head_dim: usize,
}

impl Dims {
    /// The sizes of `q [B, H, T, D]`, `k [B, KVH, S, D]` and `v [B, KVH, S, D]`, or what
    /// does not fit: every kernel access is within these sizes.
    fn check(q: [usize; 4], k: [usize; 4], v: [usize; 4]) -> Result<Self, FusedError> {
        let [batch, heads, seq_q, head_dim] = q;
        let [_, kv_heads, seq_k, _] = k;
        ensure(k == v, KERNEL, || format!("k {k:?} and v {v:?} differ"))?;
        ensure(k[0] == batch && k[3] == head_dim, KERNEL, || {
            format!("q {q:?} and k {k:?} differ in batch or head size")
        })?;
        ensure(kv_heads > 0 && heads % kv_heads == 0, KERNEL, || {
            format!("{heads} query heads cannot share {kv_heads} key/value heads")
        })?;
        Ok(Self {
            batch,
            heads,
            kv_heads,
            seq_q,
            seq_k,
            head_dim,
        })
    }

    /// [`Self::check`] on the views a kernel call reads, and the mask against `[B, H, T, S]`.
    fn of([q, k, v]: [&View; 3], mask: &Mask) -> Result<Self, FusedError> {
        let d = Self::check(q.shape, k.shape, v.shape)?;
        let full = [d.batch, d.heads, d.seq_q, d.seq_k];
        match mask {
            Mask::None => Ok(d),
            Mask::Causal => ensure(d.seq_q <= d.seq_k, KERNEL, || {
                format!(
                    "a causal mask over {} queries and {} keys",
                    d.seq_q, d.seq_k
                )
            })
            .map(|()| d),
            Mask::Bias(m) | Mask::Bool(m) => ensure(m.shape == full, KERNEL, || {
                format!("a mask of {:?} for scores {full:?}", m.shape)
            })
            .map(|()| d),
        }
    }

    /// `[B, H, T, D]`: the shape of `q`, the output and its gradient.
    fn q_shape(&self) -> [usize; 4] {
        [self.batch, self.heads, self.seq_q, self.head_dim]
    }

    /// The query heads reading key/value head `g`.
    fn group(&self, g: usize) -> std::ops::Range<usize> {
        let n_rep = self.heads / self.kv_heads;
        g * n_rep..(g + 1) * n_rep
    }

    /// Offset of `[b, t, h, 0]` in a `[B, T, heads, D]` buffer.
    fn token_major(&self, [b, t, h]: [usize; 3], seq: usize, heads: usize) -> usize {
        ((b * seq + t) * heads + h) * self.head_dim
    }
}

/// A strided operand at `[b, h, 0, 0]` of `view`, rows along its third dimension.
fn rows(view: &View, b: usize, h: usize) -> Mat<'_> {
    Mat::new(view.data(), view.at(b, h, 0), view.strides[2], 1)
}

/// The transpose of [`rows`].
fn columns(view: &View, b: usize, h: usize) -> Mat<'_> {
    rows(view, b, h).t()
}

/// A row-major `[rows, cols]` scratch matrix, or its transpose.
fn scratch(values: &[f32], cols: usize, transposed: bool) -> Mat<'_> {
    let m = Mat::new(values, 0, cols, 1);
    if transposed {
        m.t()
    } else {
        m
    }
}

impl Attention {
    /// `scale · q kᵀ + mask` for head `h` (key/value head `g`) of row `b` into `scores [T, S]`.
    fn scores(&self, d: Dims, [q, k]: [&View; 2], [b, h, g]: [usize; 3], scores: &mut [f32]) {
        let shape = [d.seq_q, d.seq_k, d.head_dim];
        let dst = Dst::scratch(scores, d.seq_k);
        // SAFETY: `scores` is this task's own `[T, S]` scratch, apart from `q` and `k`.
        unsafe { matmul(shape, dst, rows(q, b, h), columns(k, b, g), self.scale) };
        for (i, row) in scores.chunks_mut(d.seq_k).enumerate() {
            self.mask.apply([b, h, i], row, d.seq_q);
        }
    }

    /// Forward for the heads of key/value head `g` in row `b`.
    fn forward_group(&self, d: Dims, [q, k, v]: [&View; 3], [b, g]: [usize; 2], out: [OutPtr; 2]) {
        let [output, log_sum_exp] = out;
        let mut scores = vec![0.0f32; d.seq_q * d.seq_k];
        for h in d.group(g) {
            self.scores(d, [q, k], [b, h, g], &mut scores);
            for (i, row) in scores.chunks_mut(d.seq_k).enumerate() {
                let lse = softmax_in_place(row);
                // SAFETY: the task of (b, g) alone writes the statistics of its heads' rows.
                unsafe { log_sum_exp.write((b * d.heads + h) * d.seq_q + i, lse) };
            }
            let at = d.token_major([b, 0, h], d.seq_q, d.heads);
            let shape = [d.seq_q, d.head_dim, d.seq_k];
            let p = scratch(&scores, d.seq_k, false);
            // SAFETY: this task alone writes head `h` of row `b` (rows `heads · D` apart), and
            // the output buffer outlives the parallel loop running this task.
            unsafe {
                let dst = output.dst(at, d.heads * d.head_dim, false);
                matmul(shape, dst, p, rows(v, b, g), 1.0)
            };
        }
    }

    /// Backward for the heads of key/value head `g` in row `b`: their query gradients, and
    /// the group's key and value gradients (summed over its heads).
    fn backward_group(
        &self,
        d: Dims,
        [q, k, v, grad, output]: [&View; 5],
        log_sum_exp: &[f32],
        [b, g]: [usize; 2],
        [dq, dk, dv]: [OutPtr; 3],
    ) {
        let (t, s) = (d.seq_q, d.seq_k);
        let mut scratch = [vec![0.0f32; t * s], vec![0.0f32; t * s]];
        let (kv_row, q_row) = (d.kv_heads * d.head_dim, d.heads * d.head_dim);
        let kv_at = d.token_major([b, 0, g], s, d.kv_heads);
        for h in d.group(g) {
            let lse = &log_sum_exp[(b * d.heads + h) * t..][..t];
            let q_at = d.token_major([b, 0, h], t, d.heads);
            // SAFETY: the task of (b, g) alone writes the query gradients of its heads and
            // the key and value gradients of key/value head `g` of row `b`, one head after
            // another; the gradient buffers outlive the parallel loop running this task.
            let dsts = unsafe {
                [
                    dq.dst(q_at, q_row, false),
                    dk.dst(kv_at, kv_row, true),
                    dv.dst(kv_at, kv_row, true),
                ]
            };
            let views = [q, k, v, grad, output];
            self.backward_head(d, views, lse, [b, h, g], dsts, &mut scratch);
        }
    }

    /// Backward of head `h` (key/value head `g`) in row `b`: writes its query gradient and adds
    /// to the group's key and value gradients. `scratch` holds two `[T, S]` buffers.
    fn backward_head(
        &self,
        d: Dims,
        [q, k, v, grad, output]: [&View; 5],
        lse: &[f32],
        [b, h, g]: [usize; 3],
        [dq, dk, dv]: [Dst<'_>; 3],
        [p, ds]: &mut [Vec<f32>; 2],
    ) {
        let (t, s, hd) = (d.seq_q, d.seq_k, d.head_dim);
        self.scores(d, [q, k], [b, h, g], p);
        for (row, &lse) in p.chunks_mut(s).zip(lse) {
            probabilities(row, lse);
        }
        let dot = row_dots(d, [grad, output], [b, h]);
        let dp = Dst::scratch(ds, s);
        // SAFETY: `ds` is this task's own scratch, apart from `grad` and `v`.
        unsafe { matmul([t, s, hd], dp, rows(grad, b, h), columns(v, b, g), 1.0) };
        for ((ds_row, p_row), dot) in ds.chunks_mut(s).zip(p.chunks(s)).zip(&dot) {
            for (x, p) in ds_row.iter_mut().zip(p_row) {
                *x = p * (*x - dot);
            }
        }
        let (dsm, dst) = (scratch(ds, s, false), scratch(ds, s, true));
        // SAFETY: the destinations are this task's alone (see `backward_group`) and lie in
        // the gradient buffers, apart from every operand read here.
        unsafe {
            matmul([t, hd, s], dq, dsm, rows(k, b, g), self.scale);
            matmul([s, hd, t], dk, dst, rows(q, b, h), self.scale);
            matmul([s, hd, t], dv, scratch(p, s, true), rows(grad, b, h), 1.0);
        }
    }
}

/// A row of scores to `exp(score − lse)`: 0 for a masked score or a fully masked row.
fn probabilities(row: &mut [f32], lse: f32) {
    if lse == f32::NEG_INFINITY {
        row.fill(0.0);
    } else {
        math::exp_shifted(row, lse);
    }
}

/// `Σ_d dO[t, d] · O[t, d]` for every query `t` of head `h` in row `b`.
fn row_dots(d: Dims, [grad, output]: [&View; 2], [b, h]: [usize; 2]) -> Vec<f32> {
    (0..d.seq_q)
        .map(|t| {
            let g = &grad.data()[grad.at(b, h, t)..][..d.head_dim];
            let o = &output.data()[output.at(b, h, t)..][..d.head_dim];
            math::dot(g, o)
        })
        .collect()
}

/// Softmax of one score row in place; returns its log-sum-exp (−∞ and zeros when every key is
/// masked).
fn softmax_in_place(row: &mut [f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return f32::NEG_INFINITY;
    }
    math::exp_shifted(row, max);
    let sum = math::sum(row);
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
    max + sum.ln()
}

impl Kernel<3> for Attention {
    type Saved = Saved;

    fn forward(&self, [q, k, v]: &[FlexTensor; 3]) -> Result<(FlexTensor, Saved), FusedError> {
        let q = View::new(q, [KERNEL, "q"])?;
        let k = View::new(k, [KERNEL, "k"])?;
        let v = View::new(v, [KERNEL, "v"])?;
        let d = Dims::of([&q, &k, &v], &self.mask)?;
        let mut output = Out::zeros(d.batch * d.seq_q * d.heads * d.head_dim);
        let mut log_sum_exp = Out::zeros(d.batch * d.heads * d.seq_q);
        let ptrs = [output.ptr(), log_sum_exp.ptr()];
        (0..d.batch * d.kv_heads).into_par_iter().for_each(|task| {
            let (b, g) = (task / d.kv_heads, task % d.kv_heads);
            self.forward_group(d, [&q, &k, &v], [b, g], ptrs);
        });
        let shape = [d.batch, d.seq_q, d.heads, d.head_dim];
        let output = output.into_tensor(shape).transpose(1, 2);
        let saved = Saved {
            output: output.clone(),
            log_sum_exp: Arc::new(log_sum_exp.into_vec()),
        };
        Ok((output, saved))
    }

    fn backward(
        &self,
        [q, k, v]: &[FlexTensor; 3],
        saved: &Saved,
        grad: FlexTensor,
        _wanted: [bool; 3],
    ) -> Result<[Option<FlexTensor>; 3], FusedError> {
        let q = View::new(q, [KERNEL, "q"])?;
        let k = View::new(k, [KERNEL, "k"])?;
        let v = View::new(v, [KERNEL, "v"])?;
        let grad = View::new(&grad, [KERNEL, "output gradient"])?;
        let output = View::new(&saved.output, [KERNEL, "saved output"])?;
        let d = Dims::of([&q, &k, &v], &self.mask)?;
        let lse_len = d.batch * d.heads * d.seq_q;
        ensure(
            grad.shape == d.q_shape()
                && output.shape == d.q_shape()
                && saved.log_sum_exp.len() == lse_len,
            KERNEL,
            || {
                format!(
                    "output gradient {:?}, saved output {:?} and {} statistics for q {:?}",
                    grad.shape,
                    output.shape,
                    saved.log_sum_exp.len(),
                    d.q_shape()
                )
            },
        )?;
        let mut dq = Out::zeros(d.batch * d.seq_q * d.heads * d.head_dim);
        let kv_len = d.batch * d.seq_k * d.kv_heads * d.head_dim;
        let (mut dk, mut dv) = (Out::zeros(kv_len), Out::zeros(kv_len));
        let ptrs = [dq.ptr(), dk.ptr(), dv.ptr()];
        let views = [&q, &k, &v, &grad, &output];
        (0..d.batch * d.kv_heads).into_par_iter().for_each(|task| {
            let (b, g) = (task / d.kv_heads, task % d.kv_heads);
            self.backward_group(d, views, &saved.log_sum_exp, [b, g], ptrs);
        });
        let q_shape = [d.batch, d.seq_q, d.heads, d.head_dim];
        let kv_shape = [d.batch, d.seq_k, d.kv_heads, d.head_dim];
        Ok([
            Some(dq.into_tensor(q_shape).transpose(1, 2)),
            Some(dk.into_tensor(kv_shape).transpose(1, 2)),
            Some(dv.into_tensor(kv_shape).transpose(1, 2)),
        ])
    }
}
