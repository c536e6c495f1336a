//! The half every vision-language family here shares after its embeddings: the token
//! embeddings with image features spliced in run through the Llama [`TextModel`] and an LM head
//! (its own weight or tied to the embeddings). [`TextDecoder`] is what a family provides (its
//! embedding step, its text model and head); the forward pass, the loss and the KV-cached
//! generation in [`crate::generation`] are written once against it.

use burn::nn::Embedding;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{ModelError, Result};
use crate::kv_cache::KvCache;
use crate::language_model::{RopePositions, TextModel};
use crate::linear::Linear;
use crate::loss::{loss_on_rows, LossOutput};
use crate::precision;
use crate::vision_language_model::{int_values, VlmInput};

/// A model whose language half is a [`TextModel`] run from embeddings, then an LM head.
pub trait TextDecoder<B: Backend> {
    /// The language model.
    fn text_model(&self) -> &TextModel<B>;

    /// The LM head; `None` when tied to the token embeddings.
    fn lm_head(&self) -> Option<&Linear<B>>;

    /// Token embeddings `[B, T, D]` with image features spliced in, plus per-row token
    /// validity (`[B][T]`, false = padding).
    fn embed(&self, input: &VlmInput<B>) -> Result<(Tensor<B, 3>, Vec<Vec<bool>>)>;

    /// Explicit 3-D rotary positions of `input` (M-RoPE families); `None` (the default) lets
    /// the text model count positions over the real tokens.
    fn rope_positions(
        &self,
        _input: &VlmInput<B>,
        _valid: &[Vec<bool>],
    ) -> Result<Option<RopePositions>> {
        Ok(None)
    }

    /// Vocabulary size.
    fn vocab_size(&self) -> usize {
        self.text_model().embed_tokens.weight.dims()[0]
    }

    /// The context: the most positions one sequence may hold (`max_position_embeddings`).
    fn context_length(&self) -> usize {
        self.text_model().context_length()
    }
}

/// Errors unless `new` more positions after the `past` ones a row already holds fit in the
/// model's context. Checked before anything whose size grows with the length is built (the
/// embeddings, the attention mask, the rotary tables, the cache), so an over-long input is an
/// error instead of an allocation that aborts the process.
pub fn check_context<B: Backend, M: TextDecoder<B>>(
    model: &M,
    past: usize,
    new: usize,
) -> Result<()> {
    let context = model.context_length();
    match past.checked_add(new) {
        Some(total) if total <= context => Ok(()),
        _ => Err(ModelError::input(
            "input_ids",
            format!(
                "{new} new position(s) after {past} exceed the model's context of {context} tokens (max_position_embeddings)"
            ),
        )),
    }
}

/// LM-head logits for hidden states `[..., hidden]`: `head`, or the transposed `embeddings`.
pub fn head_logits<B: Backend, const D: usize>(
    head: Option<&Linear<B>>,
    embeddings: &Embedding<B>,
    hidden: Tensor<B, D>,
) -> Tensor<B, D> {
    match head {
        Some(head) => head.forward(hidden),
        None => precision::linear(hidden, embeddings.weight.val().transpose(), None),
    }
}

/// LM-head logits of `model` for hidden states `[..., hidden]`.
pub fn logits<B: Backend, M: TextDecoder<B>, const D: usize>(
    model: &M,
    hidden: Tensor<B, D>,
) -> Tensor<B, D> {
    head_logits(model.lm_head(), &model.text_model().embed_tokens, hidden)
}

/// Final hidden states `[B, T, hidden]`, continuing and extending `cache` when given.
pub fn forward_hidden<B: Backend, M: TextDecoder<B>>(
    model: &M,
    input: &VlmInput<B>,
    cache: Option<&mut KvCache<B>>,
) -> Result<Tensor<B, 3>> {
    let past = cache.as_ref().map_or(0, |c| c.max_position());
    check_context(model, past, input.input_ids.dims()[1])?;
    let (embeds, valid) = model.embed(input)?;
    if let Some(cache) = &cache {
        if cache.batch_size() != valid.len() {
            return Err(ModelError::input(
                "input_ids",
                format!(
                    "batch of {} rows does not match the cache's {}",
                    valid.len(),
                    cache.batch_size()
                ),
            ));
        }
    }
    let positions = model.rope_positions(input, &valid)?;
    let deltas = positions.as_ref().map(|p| p.deltas.clone());
    let mut cache = cache;
    let hidden =
        model
            .text_model()
            .forward_at(embeds, &valid, cache.as_deref_mut(), positions.as_ref());
    if let (Some(cache), Some(deltas)) = (cache, deltas) {
        cache.set_position_deltas(deltas);
    }
    Ok(hidden)
}

/// Causal LM logits `[B, T, vocab]`.
pub fn forward<B: Backend, M: TextDecoder<B>>(
    model: &M,
    input: &VlmInput<B>,
) -> Result<Tensor<B, 3>> {
    Ok(logits(model, forward_hidden(model, input, None)?))
}

/// Next-token cross-entropy against `labels [B, T]` (aligned with `input_ids`, as in HF:
/// position `t` predicts `labels[t + 1]`; -100 is ignored). Only positions with a target go
/// through the LM head.
pub fn forward_loss<B: Backend, M: TextDecoder<B>>(
    model: &M,
    input: &VlmInput<B>,
    labels: &Tensor<B, 2, Int>,
) -> Result<LossOutput<B>> {
    let hidden = labelled_hidden(model, input, labels)?;
    let [batch, seq, width] = hidden.dims();
    loss_on_rows(
        hidden.reshape([batch * seq, width]),
        &int_values(labels),
        [batch, seq, model.vocab_size()],
        |h| logits(model, h),
        plain_head_weight(model),
    )
}

/// [`forward_loss`] row by row: one forward pass over the batch, then each row's summed
/// cross-entropy over its own targets with their count (a row without targets: zero over none).
/// Sequence-level objectives (DPO's log-probabilities) need each row's sum.
pub fn forward_row_losses<B: Backend, M: TextDecoder<B>>(
    model: &M,
    input: &VlmInput<B>,
    labels: &Tensor<B, 2, Int>,
) -> Result<Vec<LossOutput<B>>> {
    let hidden = labelled_hidden(model, input, labels)?;
    let [batch, seq, width] = hidden.dims();
    let labels = int_values(labels);
    (0..batch)
        .map(|b| {
            let rows = hidden.clone().narrow(0, b, 1).reshape([seq, width]);
            loss_on_rows(
                rows,
                &labels[b * seq..(b + 1) * seq],
                [1, seq, model.vocab_size()],
                |h| logits(model, h),
                plain_head_weight(model),
            )
        })
        .collect()
}

/// Final hidden states `[B, T, hidden]` of `input`, after checking that `labels` has its shape.
fn labelled_hidden<B: Backend, M: TextDecoder<B>>(
    model: &M,
    input: &VlmInput<B>,
    labels: &Tensor<B, 2, Int>,
) -> Result<Tensor<B, 3>> {
    let hidden = forward_hidden(model, input, None)?;
    let [batch, seq, _] = hidden.dims();
    if labels.dims() != [batch, seq] {
        return Err(ModelError::input(
            "labels",
            format!(
                "shape {:?} differs from input_ids [{batch}, {seq}]",
                labels.dims()
            ),
        ));
    }
    Ok(hidden)
}

/// The LM head's weight as `[vocab, hidden]` when the head is that product alone (tied to the
/// embeddings, or its own weight without bias or adapter); `None` otherwise.
pub fn plain_head_weight<B: Backend, M: TextDecoder<B>>(model: &M) -> Option<Tensor<B, 2>> {
    match model.lm_head() {
        None => Some(model.text_model().embed_tokens.weight.val()),
        Some(head) if head.bias.is_none() && head.lora.is_none() => {
            Some(head.weight.val().transpose())
        }
        Some(_) => None,
    }
}

/// Fails unless every id lies in `[0, vocab)`.
pub fn check_token_ids(ids: &[i64], vocab: usize) -> Result<()> {
    match ids.iter().find(|&&id| id < 0 || id >= vocab as i64) {
        None => Ok(()),
        Some(bad) => Err(ModelError::input(
            "input_ids",
            format!("token id {bad} is outside the vocabulary of {vocab}"),
        )),
    }
}

/// `embeds [B, T, D]` with the rows of `ids` equal to `image_token` replaced, in order, by the
/// rows of `features [N, D]` (HF's `masked_scatter`); the caller has checked that there are as
/// many image tokens as feature rows.
pub fn splice_image_features<B: Backend>(
    embeds: Tensor<B, 3>,
    ids: &[i64],
    image_token: i64,
    features: Tensor<B, 2>,
) -> Tensor<B, 3> {
    let [batch, seq, width] = embeds.dims();
    // Row p of the result is row p of the text embeddings, or the next image feature row.
    let rows = batch * seq;
    let mut next_feature = rows as i64;
    let source: Vec<i64> = ids
        .iter()
        .enumerate()
        .map(|(p, &id)| {
            if id == image_token {
                next_feature += 1;
                next_feature - 1
            } else {
                p as i64
            }
        })
        .collect();
    let device = embeds.device();
    let source = Tensor::<B, 1, Int>::from_data(TensorData::new(source, [rows]), &device);
    Tensor::cat(vec![embeds.reshape([rows, width]), features], 0)
        .select(0, source)
        .reshape([batch, seq, width])
}
