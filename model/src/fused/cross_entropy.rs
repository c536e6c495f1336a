//! Fused cross-entropy: `Σ_r lse(logits_r) − logits_r[target_r]` over the target rows in one
//! pass per row, keeping only each row's log-sum-exp for the backward (`softmax − one-hot`,
//! scaled by the loss's gradient) instead of Burn's log-softmax, gather and their
//! intermediates. Rows are summed in a fixed order, so the loss does not depend on threads.

use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::chunks::{contiguous, dims};
use super::error::{ensure, FusedError};
use super::math;
use super::op::{self, Kernel};

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 8;

/// `−Σ log softmax(logits)[target]` for f32 logits `[N, V]` and `N` targets (each below `V`,
/// as [`crate::loss::causal_lm_targets`] checks), as `[1]`; `Ok(None)` where the fused kernel
/// does not apply (see [`super`]), an error for targets that do not fit the logits.
pub fn cross_entropy_sum<B: Backend>(
    logits: &Tensor<B, 2>,
    targets: &[i64],
) -> Result<Option<Tensor<B, 1>>, FusedError> {
    let [rows, vocab] = logits.dims();
    check_targets(targets, [rows, vocab])?;
    if rows == 0 {
        return Ok(None);
    }
    let kernel = CrossEntropy {
        targets: Arc::new(targets.iter().map(|&t| t as usize).collect()),
    };
    op::run(kernel, [op::primitive(logits)])
}

/// The kernel's name in errors.
const KERNEL: &str = "cross_entropy";

/// One target per row of `[rows, vocab]` logits, each a token of the vocabulary.
fn check_targets<T: Copy + TryInto<usize>>(
    targets: &[T],
    [rows, vocab]: [usize; 2],
) -> Result<(), FusedError> {
    ensure(targets.len() == rows, KERNEL, || {
        format!("{} targets for {rows} rows of logits", targets.len())
    })?;
    let outside = targets
        .iter()
        .position(|&t| t.try_into().map_or(true, |t| t >= vocab));
    ensure(outside.is_none(), KERNEL, || {
        let row = outside.unwrap_or_default();
        format!("the target of row {row} is not a token of a {vocab}-token vocabulary")
    })
}

/// The kernel: one target per row.
#[derive(Debug, Clone)]
struct CrossEntropy {
    targets: Arc<Vec<usize>>,
}

/// `logits` as contiguous `[rows, vocab]` rows, once checked against the targets.
fn rows(logits: &FlexTensor, targets: &[usize]) -> Result<(FlexTensor, usize), FusedError> {
    let logits = contiguous(logits, [KERNEL, "logits"])?;
    let shape = dims(&logits);
    let [rows, vocab] = shape[..] else {
        return Err(FusedError::shape(
            KERNEL,
            format!("logits {shape:?}, expected rank 2"),
        ));
    };
    ensure(vocab > 0, KERNEL, || {
        format!("logits {shape:?} over no tokens")
    })?;
    check_targets(targets, [rows, vocab])?;
    Ok((logits, vocab))
}

impl Kernel<1> for CrossEntropy {
    /// Each row's log-sum-exp.
    type Saved = Arc<Vec<f32>>;

    fn forward(&self, [logits]: &[FlexTensor; 1]) -> Result<(FlexTensor, Self::Saved), FusedError> {
        let (logits, vocab) = rows(logits, &self.targets)?;
        let values = logits.as_slice::<f32>().expect("contiguous f32 logits");
        let per_row: Vec<(f32, f32)> = values
            .par_chunks(vocab * ROWS_PER_TASK)
            .enumerate()
            .flat_map_iter(|(task, chunk)| {
                let mut scratch = vec![0.0f32; vocab];
                let rows: Vec<(f32, f32)> = chunk
                    .chunks(vocab)
                    .enumerate()
                    .map(|(i, row)| {
                        let lse = log_sum_exp(row, &mut scratch);
                        (lse, lse - row[self.targets[task * ROWS_PER_TASK + i]])
                    })
                    .collect();
                rows
            })
            .collect();
        let loss: f32 = per_row.iter().map(|(_, loss)| loss).sum();
        let lse = per_row.into_iter().map(|(lse, _)| lse).collect();
        let loss = FlexTensor::from_data(TensorData::new(vec![loss], [1]));
        Ok((loss, Arc::new(lse)))
    }

    fn backward(
        &self,
        [logits]: &[FlexTensor; 1],
        lse: &Self::Saved,
        grad: FlexTensor,
        _: [bool; 1],
    ) -> Result<[Option<FlexTensor>; 1], FusedError> {
        let (logits, vocab) = rows(logits, &self.targets)?;
        let values = logits.as_slice::<f32>().expect("contiguous f32 logits");
        let grad = contiguous(&grad, [KERNEL, "loss gradient"])?;
        let rows = values.len() / vocab;
        ensure(dims(&grad) == [1] && lse.len() == rows, KERNEL, || {
            let g = dims(&grad);
            format!(
                "loss gradient {g:?} and {} row statistics for {rows} rows",
                lse.len()
            )
        })?;
        let scale = grad.as_slice::<f32>().expect("f32 gradient")[0];
        let mut out = vec![0.0f32; values.len()];
        out.par_chunks_mut(vocab * ROWS_PER_TASK)
            .zip(values.par_chunks(vocab * ROWS_PER_TASK))
            .enumerate()
            .for_each(|(task, (out, chunk))| {
                for (i, (out, row)) in out.chunks_mut(vocab).zip(chunk.chunks(vocab)).enumerate() {
                    let r = task * ROWS_PER_TASK + i;
                    out.copy_from_slice(row);
                    math::exp_shifted(out, lse[r]);
                    out[self.targets[r]] -= 1.0;
                    out.iter_mut().for_each(|x| *x *= scale);
                }
            });
        let shape = logits.layout().shape().clone();
        Ok([Some(FlexTensor::from_data(TensorData::new(out, shape)))])
    }
}

/// `ln Σ exp(row)`, stably (`scratch` holds the exponentials).
fn log_sum_exp(row: &[f32], scratch: &mut [f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    scratch.copy_from_slice(row);
    math::exp_shifted(scratch, max);
    max + math::sum(scratch).ln()
}
