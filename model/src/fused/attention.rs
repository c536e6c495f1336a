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

use super::math;
use super::op::{self, Kernel};
use super::strided::{matmul, Dst, Mat, Out, OutPtr, View};
use crate::attention::AttentionMask;

/// `softmax(q kᵀ / √D + mask) v` for `q [B, H, T, D]` and `k`/`v [B, KVH, S, D]` (`H` a
/// multiple of `KVH`; query head `h` reads key/value head `h / (H / KVH)`), fully masked rows
/// giving zeros, as [`crate::attention::grouped_query_attention`]; `None` where the fused
/// kernel does not apply (see [`super`]).
pub fn attention<B: Backend>(
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
    mask: &AttentionMask<B>,
) -> Option<Tensor<B, 4>> {
    let [batch, heads, seq_q, head_dim] = q.dims();
    let [_, kv_heads, seq_k, _] = k.dims();
    if kv_heads == 0 || heads % kv_heads != 0 || seq_q == 0 || seq_k == 0 {
        return None;
    }
    let full = [batch, heads, seq_q, seq_k];
    let mask = match mask {
        AttentionMask::Bidirectional => Mask::None,
        AttentionMask::Causal if seq_q <= seq_k => Mask::Causal,
        AttentionMask::Causal => return None,
        AttentionMask::Bias(bias) if bias.dims() == full => {
            Mask::Bias(View::new(&op::inner(op::primitive(bias))?))
        }
        AttentionMask::Masked(masked) if masked.dims() == full => {
            Mask::Bool(View::new(&op::cast(masked.clone().into_primitive())?))
        }
        _ => return None,
    };
    let kernel = Attention {
        mask,
        scale: 1.0 / (head_dim as f32).sqrt(),
    };
    op::run(kernel, [q, k, v].map(op::primitive))
}

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
    fn of(q: &View, k: &View) -> Self {
        let [batch, heads, seq_q, head_dim] = q.shape;
        Self {
            batch,
            heads,
            kv_heads: k.shape[1],
            seq_q,
            seq_k: k.shape[2],
            head_dim,
        }
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
fn rows(view: &View, b: usize, h: usize) -> Mat {
    Mat {
        ptr: view.data()[view.at(b, h, 0)..].as_ptr(),
        row: view.strides[2],
        col: 1,
    }
}

/// The transpose of [`rows`].
fn columns(view: &View, b: usize, h: usize) -> Mat {
    let m = rows(view, b, h);
    Mat {
        ptr: m.ptr,
        row: 1,
        col: m.row,
    }
}

/// A row-major `[rows, cols]` scratch matrix, or its transpose.
fn scratch(values: &[f32], cols: usize, transposed: bool) -> Mat {
    let (row, col) = if transposed { (1, cols) } else { (cols, 1) };
    Mat {
        ptr: values.as_ptr(),
        row,
        col,
    }
}

impl Attention {
    /// `scale · q kᵀ + mask` for head `h` (key/value head `g`) of row `b` into `scores [T, S]`.
    fn scores(&self, d: Dims, [q, k]: [&View; 2], [b, h, g]: [usize; 3], scores: &mut [f32]) {
        let shape = [d.seq_q, d.seq_k, d.head_dim];
        // SAFETY: the operands are views of live buffers with their own strides; `scores` is
        // a separate `[T, S]` buffer.
        unsafe {
            let [qm, km] = [rows(q, b, h), columns(k, b, g)];
            let dst = scores.as_mut_ptr();
            matmul(shape, Dst::set(dst, d.seq_k), qm, km, self.scale)
        };
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
                // SAFETY: each (b, h, i) is written by this task only.
                unsafe { *log_sum_exp.at((b * d.heads + h) * d.seq_q + i) = lse };
            }
            let dst = output.at(d.token_major([b, 0, h], d.seq_q, d.heads));
            let shape = [d.seq_q, d.head_dim, d.seq_k];
            // SAFETY: this task alone writes head `h` of row `b`, rows `heads · D` apart.
            unsafe {
                let p = scratch(&scores, d.seq_k, false);
                let dst = Dst::set(dst, d.heads * d.head_dim);
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
        let kv_row = d.kv_heads * d.head_dim;
        let dk = Dst::add(dk.at(d.token_major([b, 0, g], s, d.kv_heads)), kv_row);
        let dv = Dst::add(dv.at(d.token_major([b, 0, g], s, d.kv_heads)), kv_row);
        for h in d.group(g) {
            let lse = &log_sum_exp[(b * d.heads + h) * t..][..t];
            let dq = Dst::set(
                dq.at(d.token_major([b, 0, h], t, d.heads)),
                d.heads * d.head_dim,
            );
            let views = [q, k, v, grad, output];
            self.backward_head(d, views, lse, [b, h, g], [dq, dk, dv], &mut scratch);
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
        [dq, dk, dv]: [Dst; 3],
        [p, ds]: &mut [Vec<f32>; 2],
    ) {
        let (t, s, hd) = (d.seq_q, d.seq_k, d.head_dim);
        self.scores(d, [q, k], [b, h, g], p);
        for (row, &lse) in p.chunks_mut(s).zip(lse) {
            probabilities(row, lse);
        }
        let dot = row_dots(d, [grad, output], [b, h]);
        // SAFETY: the operands are live views and scratch buffers; `dq` rows of head `h` are
        // written by this task only, and `dk`/`dv` of key/value head `g` likewise (every head
        // of the group runs in this task, one after another).
        unsafe {
            let dp = Dst::set(ds.as_mut_ptr(), s);
            matmul([t, s, hd], dp, rows(grad, b, h), columns(v, b, g), 1.0);
            for ((ds_row, p_row), dot) in ds.chunks_mut(s).zip(p.chunks(s)).zip(&dot) {
                for (x, p) in ds_row.iter_mut().zip(p_row) {
                    *x = p * (*x - dot);
                }
            }
            let (dsm, dst) = (scratch(ds, s, false), scratch(ds, s, true));
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

    fn forward(&self, [q, k, v]: &[FlexTensor; 3]) -> (FlexTensor, Saved) {
        let (q, k, v) = (View::new(q), View::new(k), View::new(v));
        let d = Dims::of(&q, &k);
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
        (output, saved)
    }

    fn backward(
        &self,
        [q, k, v]: &[FlexTensor; 3],
        saved: &Saved,
        grad: FlexTensor,
        _wanted: [bool; 3],
    ) -> [Option<FlexTensor>; 3] {
        let (q, k, v) = (View::new(q), View::new(k), View::new(v));
        let (grad, output) = (View::new(&grad), View::new(&saved.output));
        let d = Dims::of(&q, &k);
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
        [
            Some(dq.into_tensor(q_shape).transpose(1, 2)),
            Some(dk.into_tensor(kv_shape).transpose(1, 2)),
            Some(dv.into_tensor(kv_shape).transpose(1, 2)),
        ]
    }
}
