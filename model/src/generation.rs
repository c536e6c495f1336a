//! Autoregressive generation with the KV cache, written once for every [`TextDecoder`] (the
//! families' methods of the same names call these). Two layers:
//!
//! * a step API — [`prefill`] (prompt → last-position logits + cache) and
//!   [`decode_step`] (given next tokens → logits) — on which callers build their own
//!   loops, e.g. visual contrastive decoding running a clean and a noised-image branch side by
//!   side and combining their logits each step;
//! * [`generate`]: greedy or seeded sampling over a left-padded batch, stopping per
//!   row on an EOS id, on a caller-supplied check (stop strings: the caller decodes), or at the
//!   token budget; [`Generation`] is the same loop taken a few steps at a time, so a server
//!   can interleave several batches.

use burn::tensor::backend::Backend;
use burn::tensor::{s, Int, Tensor, TensorData};

use crate::error::{ModelError, Result};
use crate::kv_cache::KvCache;
use crate::precision;
use crate::sampling::{Sampler, TokenSampling};
use crate::text_decoder::{check_context, forward_hidden, logits, TextDecoder};
use crate::vision_language_model::{Idefics3, VlmInput};
use crate::vlm::VisionLanguageModel;

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
    check_context(model, cache.max_position(), 1)?;
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
pub fn generate<B: Backend, M: VisionLanguageModel<B>>(
    model: &M,
    input: &VlmInput<B>,
    config: &GenerationConfig,
    mut stop: impl FnMut(usize, &[u32]) -> bool,
) -> Result<Vec<GeneratedSequence>> {
    let mut generation = Generation::start(model, input, config)?;
    generation.advance(model, usize::MAX, &mut stop)?;
    Ok(generation.into_sequences())
}

/// A batch being generated, one step at a time: what [`generate`] runs to the end in one call,
/// and what a server interleaves with other batches (each holds its own cache and sampler, so
/// the answers are the same however the steps of several batches alternate).
pub struct Generation<B: Backend, C> {
    cache: Option<C>,
    /// The logits the next token is picked from; `None` once finished.
    logits: Option<Tensor<B, 2>>,
    sampler: Sampler,
    eos_token_ids: Vec<u32>,
    max_new_tokens: usize,
    step: usize,
    tokens: Vec<Vec<u32>>,
    finish: Vec<Option<FinishReason>>,
}

impl<B: Backend, C> Generation<B, C> {
    /// Prefills the prompt batch (nothing runs when `config.max_new_tokens` is 0).
    pub fn start<M: VisionLanguageModel<B, Cache = C>>(
        model: &M,
        input: &VlmInput<B>,
        config: &GenerationConfig,
    ) -> Result<Self> {
        let sampler = Sampler::new(config.sampling)?;
        let batch = input.input_ids.dims()[0];
        let (logits, cache) = match config.max_new_tokens {
            0 => (None, None),
            _ => {
                let (logits, cache) = model.prefill(input)?;
                (Some(logits), Some(cache))
            }
        };
        Ok(Self {
            cache,
            logits,
            sampler,
            eos_token_ids: config.eos_token_ids.clone(),
            max_new_tokens: config.max_new_tokens,
            step: 0,
            tokens: vec![Vec::new(); batch],
            finish: vec![None; batch],
        })
    }

    /// Whether every row has finished (or the token budget is spent).
    pub fn is_done(&self) -> bool {
        self.logits.is_none()
    }

    /// Generates up to `steps` more tokens per row. `stop(row, tokens_so_far)` is asked after
    /// every new token of a row; returning true ends that row.
    pub fn advance<M: VisionLanguageModel<B, Cache = C>>(
        &mut self,
        model: &M,
        steps: usize,
        stop: &mut impl FnMut(usize, &[u32]) -> bool,
    ) -> Result<()> {
        for _ in 0..steps {
            let Some(logits) = self.logits.take() else {
                break;
            };
            let next = self.sampler.pick_rows(logits);
            for (row, &token) in next.iter().enumerate() {
                if self.finish[row].is_some() {
                    continue;
                }
                if self.eos_token_ids.contains(&token) {
                    self.finish[row] = Some(FinishReason::Eos);
                    continue;
                }
                self.tokens[row].push(token);
                if stop(row, &self.tokens[row]) {
                    self.finish[row] = Some(FinishReason::Stop);
                }
            }
            self.step += 1;
            if self.finish.iter().all(Option::is_some) || self.step == self.max_new_tokens {
                break;
            }
            let cache = self
                .cache
                .as_mut()
                .expect("a started generation has a cache");
            self.logits = Some(model.decode_step(&next, cache)?);
        }
        Ok(())
    }

    /// The rows' tokens and why each stopped (a row still running counts as `Length`).
    pub fn into_sequences(self) -> Vec<GeneratedSequence> {
        self.tokens
            .into_iter()
            .zip(self.finish)
            .map(|(tokens, finish)| GeneratedSequence {
                tokens,
                finish: finish.unwrap_or(FinishReason::Length),
            })
            .collect()
    }
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
