//! Causal language-model cross-entropy with HF's conventions: labels are aligned with the input
//! ids and shifted inside (logits at `t` predict `labels[t + 1]`), -100 marks positions without
//! a target. The sum and the target count are returned as well as the mean, so a trainer can
//! normalise over a whole gradient-accumulation window.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Int, Tensor, TensorData};

use crate::chunked_ce;
use crate::error::{ModelError, Result};
use crate::fused;
use crate::precision;

pub use safeaware_common::labels::IGNORE_INDEX;

/// Summed loss and how many target tokens it covers.
#[derive(Debug, Clone)]
pub struct LossOutput<B: Backend> {
    /// Sum of per-token negative log-likelihoods, `[1]`.
    pub sum: Tensor<B, 1>,
    /// Number of target tokens.
    pub count: usize,
    /// `sum / count` (0 when there are no targets), `[1]`.
    pub mean: Tensor<B, 1>,
}

impl<B: Backend> LossOutput<B> {
    /// Wraps a summed loss over `count` (> 0) targets.
    pub fn new(sum: Tensor<B, 1>, count: usize) -> Self {
        let mean = sum.clone() / count as f64;
        Self { sum, count, mean }
    }

    /// The loss of a batch without targets: zero.
    pub fn empty(device: &B::Device) -> Self {
        let zero = Tensor::zeros([1], device);
        Self {
            sum: zero.clone(),
            count: 0,
            mean: zero,
        }
    }
}

/// For labels `[B, T]` (row-major), the flat logit rows `b·T + t` that have a target and those
/// targets (`labels[b, t + 1]`). Fails on a label outside `[0, vocab)` other than -100.
pub fn causal_lm_targets(
    labels: &[i64],
    batch: usize,
    seq: usize,
    vocab: usize,
) -> Result<(Vec<i64>, Vec<i64>)> {
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for b in 0..batch {
        for t in 0..seq.saturating_sub(1) {
            let label = labels[b * seq + t + 1];
            if label == IGNORE_INDEX {
                continue;
            }
            if label < 0 || label >= vocab as i64 {
                return Err(ModelError::input(
                    "labels",
                    format!("label {label} is neither -100 nor a token id below {vocab}"),
                ));
            }
            rows.push((b * seq + t) as i64);
            targets.push(label);
        }
    }
    Ok((rows, targets))
}

/// `-Σ log softmax(logits)[target]` for logits `[N, V]` and `N` targets, computed in f32
/// whatever the logits' type (as torchtune's and TRL's losses do under bf16); on the CPU
/// backend by the fused kernel ([`crate::fused::cross_entropy_sum`]).
pub fn cross_entropy_sum<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &[i64],
    device: &B::Device,
) -> Tensor<B, 1> {
    let logits = precision::cast(logits, FloatDType::F32);
    if let Some(sum) = fused::applied(fused::cross_entropy_sum(&logits, targets)) {
        return sum;
    }
    let n = targets.len();
    let targets = Tensor::<B, 2, Int>::from_data(TensorData::new(targets.to_vec(), [n, 1]), device);
    log_softmax(logits, 1).gather(1, targets).sum().neg()
}

/// The loss over `rows [B·T, X]` (hidden states or logits, flattened row-major): only rows with
/// a target are kept, mapped to logits `[N, V]` by `head`, and scored against `labels [B·T]`.
/// When the head is a plain product with `weight [V, X]` (no bias, no adapter), the loss is
/// [`chunked_ce::loss_sum`]'s where that applies, which never holds the `[N, V]` logits whole.
pub fn loss_on_rows<B: Backend>(
    rows: Tensor<B, 2>,
    labels: &[i64],
    [batch, seq, vocab]: [usize; 3],
    head: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 2>,
    weight: Option<Tensor<B, 2>>,
) -> Result<LossOutput<B>> {
    if labels.len() != batch * seq || rows.dims()[0] != batch * seq {
        return Err(ModelError::input(
            "labels",
            format!(
                "{} labels and {} rows for a [{batch}, {seq}] batch",
                labels.len(),
                rows.dims()[0]
            ),
        ));
    }
    let device = rows.device();
    let (kept, targets) = causal_lm_targets(labels, batch, seq, vocab)?;
    if kept.is_empty() {
        return Ok(LossOutput::empty(&device));
    }
    let count = kept.len();
    let kept = Tensor::<B, 1, Int>::from_data(TensorData::new(kept, [count]), &device);
    let kept = rows.select(0, kept);
    if let Some(sum) = weight.and_then(|w| chunked_ce::loss_sum(kept.clone(), w, &targets)) {
        return Ok(LossOutput::new(sum, count));
    }
    let logits = head(kept);
    Ok(LossOutput::new(
        cross_entropy_sum(logits, &targets, &device),
        count,
    ))
}

/// The loss from full logits `[B, T, V]` (e.g. from [`crate::Idefics3::forward`]).
pub fn causal_lm_loss<B: Backend>(logits: Tensor<B, 3>, labels: &[i64]) -> Result<LossOutput<B>> {
    let [batch, seq, vocab] = logits.dims();
    loss_on_rows(
        logits.reshape([batch * seq, vocab]),
        labels,
        [batch, seq, vocab],
        |l| l,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn shifts_labels_and_skips_ignored() {
        let labels = [-100, 5, -100, 7, /* row 2 */ 1, 2, 3, -100];
        let (rows, targets) = causal_lm_targets(&labels, 2, 4, 10).unwrap();
        assert_eq!(rows, vec![0, 2, 4, 5]);
        assert_eq!(targets, vec![5, 7, 2, 3]);
        assert!(causal_lm_targets(&[0, 10], 1, 2, 10).is_err());
    }

    #[test]
    fn matches_hand_computed_cross_entropy() {
        let device = Default::default();
        // One row, two positions; position 0 predicts label[1] = 2.
        let logits = Tensor::<NdArray, 3>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0], [1, 2, 3]),
            &device,
        );
        let out = causal_lm_loss(logits, &[-100, 2]).unwrap();
        let expected = -(3.0f32 - (1f32.exp() + 2f32.exp() + 3f32.exp()).ln());
        assert_eq!(out.count, 1);
        let got = out.sum.into_scalar();
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    }
}
