//! Autoregressive generation with the KV cache, written once for every [`TextDecoder`] (the
//! families' methods of the same names call these). Two layers:
//!
//! * a step API — [`prefill`] (prompt → last-position logits + cache) and
//!   [`decode_step`] (given next tokens → logits) — on which callers build their own
//!   loops, e.g. visual contrastive decoding running a clean and a noised-image branch side by
//!   side and combining their logits each step;
//! * [`generate`]: greedy or seeded sampling over a left-padded batch, stopping per
//!   row on an EOS id, on a caller-supplied check (stop strings: the caller decodes), or at the
//!   token budget.

use burn::tensor::backend::Backend;
use burn::tensor::{s, Int, Tensor, TensorData};

use crate::error::{ModelError, Result};
use crate::kv_cache::KvCache;
use crate::precision;
use crate::sampling::{Sampler, TokenSampling};
use crate::text_decoder::{forward_hidden, logits, TextDecoder};
use crate::vision_language_model::{Idefics3, VlmInput};

/// Generation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Most tokens generated per row.
    pub max_new_tokens: usize,
    /// Tokens that end a row (not included in its output).
    pub eos_token_ids: Vec<u32>,
    /// Greedy or sampling.
    pub sampling: TokenSampling,
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// It produced an EOS token.
    Eos,
    /// The caller's stop check fired.
    Stop,
    /// It reached `max_new_tokens`.
    Length,
}

/// One row's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSequence {
    /// New tokens (without the EOS token).
    pub tokens: Vec<u32>,
    /// Why generation stopped.
    pub finish: FinishReason,
}

impl<B: Backend> Idefics3<B> {
    /// Runs the prompt batch (left-padded when rows differ in length) and returns the logits of
    /// its last position `[B, vocab]` and the cache to continue from.
    pub fn prefill(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 2>, KvCache<B>)> {
        prefill(self, input)
    }

    /// Feeds one token per row (text only) and returns the next logits `[B, vocab]`.
    pub fn decode_step(&self, tokens: &[u32], cache: &mut KvCache<B>) -> Result<Tensor<B, 2>> {
        decode_step(self, tokens, cache)
    }

    /// Generates up to `config.max_new_tokens` per row. `stop(row, tokens_so_far)` is asked
    /// after every new token of a row; returning true ends that row (for stop strings).
    pub fn generate(
        &self,
        input: &VlmInput<B>,
        config: &GenerationConfig,
        stop: impl FnMut(usize, &[u32]) -> bool,
    ) -> Result<Vec<GeneratedSequence>> {
        generate(self, input, config, stop)
    }
}

/// Runs `model` over the prompt batch (left-padded when rows differ in length) and returns the
/// logits of its last position `[B, vocab]` and the cache to continue from.
pub fn prefill<B: Backend, M: TextDecoder<B>>(
    model: &M,
    input: &VlmInput<B>,
) -> Result<(Tensor<B, 2>, KvCache<B>)> {
    let [batch, seq] = input.input_ids.dims();
    if seq == 0 {
        return Err(ModelError::input("input_ids", "the prompt is empty"));
    }
    let mut cache = KvCache::new(model.text_model().num_layers(), batch);
    let hidden = forward_hidden(model, input, Some(&mut cache))?;
    let width = hidden.dims()[2];
    let last = hidden
        .slice(s![.., seq - 1..seq, ..])
        .reshape([batch, width]);
    Ok((logits(model, last), cache))
}

/// Feeds one token per row (text only) to `model` and returns the next logits `[B, vocab]`.
pub fn decode_step<B: Backend, M: TextDecoder<B>>(
    model: &M,
    tokens: &[u32],
    cache: &mut KvCache<B>,
) -> Result<Tensor<B, 2>> {
    let batch = cache.batch_size();
    if tokens.len() != batch {
        return Err(ModelError::input(
            "tokens",
            format!("{} tokens for a batch of {batch}", tokens.len()),
        ));
    }
    let vocab = model.vocab_size();
    if let Some(bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
        return Err(ModelError::input(
            "tokens",
            format!("token id {bad} is outside the vocabulary of {vocab}"),
        ));
    }
    let text = model.text_model();
    let device = text.embed_tokens.weight.device();
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, 1]), &device);
    let embeds = precision::embed(&text.embed_tokens, ids);
    let hidden = text.forward(embeds, &vec![vec![true]; batch], Some(cache));
    let width = hidden.dims()[2];
    Ok(logits(model, hidden.reshape([batch, width])))
}

/// Generates up to `config.max_new_tokens` per row with `model`. `stop(row, tokens_so_far)` is
/// asked after every new token of a row; returning true ends that row (for stop strings).
pub fn generate<B: Backend, M: TextDecoder<B>>(
    model: &M,
    input: &VlmInput<B>,
    config: &GenerationConfig,
    mut stop: impl FnMut(usize, &[u32]) -> bool,
) -> Result<Vec<GeneratedSequence>> {
    let mut sampler = Sampler::new(config.sampling)?;
    let batch = input.input_ids.dims()[0];
    let mut tokens = vec![Vec::new(); batch];
    let mut finish: Vec<Option<FinishReason>> = vec![None; batch];
    if config.max_new_tokens > 0 {
        let (mut logits, mut cache) = prefill(model, input)?;
        for step in 0..config.max_new_tokens {
            let next = sampler.pick_rows(logits);
            for (row, &token) in next.iter().enumerate() {
                if finish[row].is_some() {
                    continue;
                }
                if config.eos_token_ids.contains(&token) {
                    finish[row] = Some(FinishReason::Eos);
                    continue;
                }
                tokens[row].push(token);
                if stop(row, &tokens[row]) {
                    finish[row] = Some(FinishReason::Stop);
                }
            }
            if finish.iter().all(Option::is_some) || step + 1 == config.max_new_tokens {
                break;
            }
            logits = decode_step(model, &next, &mut cache)?;
        }
    }
    Ok(tokens
        .into_iter()
        .zip(finish)
        .map(|(tokens, finish)| GeneratedSequence {
            tokens,
            finish: finish.unwrap_or(FinishReason::Length),
        })
        .collect())
}

/// Left-pads token rows of different lengths into `input_ids` and `attention_mask` `[B, T]`.
pub fn left_pad<B: Backend>(
    rows: &[Vec<u32>],
    pad_token_id: u32,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let seq = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(rows.len() * seq);
    let mut mask = Vec::with_capacity(rows.len() * seq);
    for row in rows {
        let pad = seq - row.len();
        ids.extend(
            std::iter::repeat_n(pad_token_id as i64, pad).chain(row.iter().map(|&t| t as i64)),
        );
        mask.extend(std::iter::repeat_n(0i64, pad).chain(std::iter::repeat_n(1, row.len())));
    }
    let shape = [rows.len(), seq];
    (
        Tensor::from_data(TensorData::new(ids, shape), device),
        Tensor::from_data(TensorData::new(mask, shape), device),
    )
}
