//! DPO over the micro-batches of one global batch. Each micro-batch of pairs runs as one batch
//! of `2·n` rows (the chosen answers, then the rejected ones, as TRL's concatenated forward),
//! scored per row; the reference's log-probabilities of every pair of the global batch are
//! computed first, without gradient ([`DpoWindow::new`]). Each micro-batch's loss is its pairs'
//! summed loss divided by the global batch's pairs, plus `sft_weight` times its chosen answers'
//! summed NLL divided by the global batch's chosen target tokens, so micro-batches and workers
//! add up to the loss of one big batch: the pairs' mean plus TRL's `rpo_alpha · nll`.

use std::collections::HashMap;

use anyhow::{anyhow, Context, Result};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use safeaware_model::precision::autocast;
use safeaware_model::{LossOutput, VisionLanguageModel};

use crate::batching::{collate, Batch};
use crate::dpo::loss::{answer_logp, pair_losses_sum, scalar, values, PreferenceSums};
use crate::recipe::DpoSection;
use crate::step::ForwardSettings;
use crate::train_data::Example;

/// A global batch of pairs as DPO normalises it, with the reference's log-probabilities.
#[derive(Debug, Clone)]
pub struct DpoWindow {
    pub dpo: DpoSection,
    /// Pairs in the global batch.
    pub pairs: usize,
    /// Target tokens of the global batch's chosen answers.
    pub chosen_targets: usize,
    /// The reference's `(chosen, rejected)` log-probabilities by pair id.
    pub reference: HashMap<String, (f64, f64)>,
}

impl DpoWindow {
    /// The window of `window`'s pairs, scored by `reference` (a model without autodiff).
    pub fn new<B: Backend, R: VisionLanguageModel<B>>(
        dpo: &DpoSection,
        reference: &R,
        window: &[Vec<&Example>],
        forward: ForwardSettings,
        device: &B::Device,
    ) -> Result<Self> {
        let mut scored = HashMap::new();
        for batch in window.iter().filter(|b| !b.is_empty()) {
            let logps = answer_logps(reference, batch, dpo, forward, device)
                .context("reference forward")?;
            for (example, (c, r)) in batch.iter().zip(logps) {
                scored.insert(example.id.clone(), (scalar(c), scalar(r)));
            }
        }
        Ok(DpoWindow {
            dpo: dpo.clone(),
            pairs: window.iter().map(Vec::len).sum(),
            chosen_targets: window.iter().flatten().map(|e| e.target_tokens()).sum(),
            reference: scored,
        })
    }
}

/// One micro-batch's DPO loss (scaled as the module says) and what it covered.
pub struct DpoMicroLoss<B: Backend> {
    pub scaled: Tensor<B, 1>,
    pub tokens: usize,
    pub images: usize,
    pub sums: PreferenceSums,
}

/// The loss of `batch` (not empty) under `window`'s normalisation.
pub fn micro_batch_loss<B: Backend, M: VisionLanguageModel<B>>(
    model: &M,
    batch: &[&Example],
    window: &DpoWindow,
    forward: ForwardSettings,
    device: &B::Device,
) -> Result<DpoMicroLoss<B>> {
    let PairRows {
        rows,
        tokens,
        images,
    } = pair_rows(model, batch, forward, device)?;
    let n = batch.len();
    let dpo = &window.dpo;
    let logps: Vec<Tensor<B, 1>> = rows.iter().map(|r| answer_logp(r, dpo.loss)).collect();
    let chosen = Tensor::cat(logps[..n].to_vec(), 0);
    let rejected = Tensor::cat(logps[n..].to_vec(), 0);
    let reference = batch
        .iter()
        .map(|e| {
            window
                .reference
                .get(&e.id)
                .copied()
                .ok_or_else(|| anyhow!("pair `{}` has no reference log-probabilities", e.id))
        })
        .collect::<Result<Vec<_>>>()?;
    let policy: Vec<(f64, f64)> = values(chosen.clone())
        .into_iter()
        .zip(values(rejected.clone()))
        .collect();
    let mut scaled =
        pair_losses_sum(chosen, rejected, &reference, dpo) / window.pairs.max(1) as f64;
    if dpo.sft_weight > 0.0 {
        let nll = Tensor::cat(rows[..n].iter().map(|r| r.sum.clone()).collect(), 0).sum();
        scaled = scaled + nll * (dpo.sft_weight / window.chosen_targets.max(1) as f64);
    }
    Ok(DpoMicroLoss {
        scaled,
        tokens,
        images,
        sums: PreferenceSums::of_pairs(&policy, &reference, dpo.beta),
    })
}

/// The `(chosen, rejected)` log-probabilities of each pair of `batch` under `model`.
fn answer_logps<B: Backend, M: VisionLanguageModel<B>>(
    model: &M,
    batch: &[&Example],
    dpo: &DpoSection,
    forward: ForwardSettings,
    device: &B::Device,
) -> Result<Vec<(Tensor<B, 1>, Tensor<B, 1>)>> {
    let rows = pair_rows(model, batch, forward, device)?.rows;
    let (chosen, rejected) = rows.split_at(batch.len());
    Ok(chosen
        .iter()
        .zip(rejected)
        .map(|(c, r)| (answer_logp(c, dpo.loss), answer_logp(r, dpo.loss)))
        .collect())
}

/// A micro-batch of pairs run as `2·n` rows.
struct PairRows<B: Backend> {
    /// Each row's summed cross-entropy: the chosen answers, then the rejected ones.
    rows: Vec<LossOutput<B>>,
    /// Tokens of the rows (padding excluded).
    tokens: usize,
    /// Images of the pairs (each pair's once).
    images: usize,
}

/// Runs the pairs of `batch` through `model` as `2·n` rows.
fn pair_rows<B: Backend, M: VisionLanguageModel<B>>(
    model: &M,
    batch: &[&Example],
    forward: ForwardSettings,
    device: &B::Device,
) -> Result<PairRows<B>> {
    let rejected = batch
        .iter()
        .map(|e| {
            e.rejected_example()
                .ok_or_else(|| anyhow!("example `{}` is not a preference pair", e.id))
        })
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<&Example> = batch.iter().copied().chain(rejected.iter()).collect();
    let Batch {
        input,
        labels,
        tokens,
        ..
    } = collate::<B>(&rows, forward.pad_id, device);
    let losses = autocast(forward.autocast, || {
        model.forward_row_losses(&input, &labels)
    })
    .context("forward")?;
    Ok(PairRows {
        rows: losses,
        tokens,
        images: batch.iter().filter(|e| e.tiles > 0).count(),
    })
}
