//! Generation with a model held in memory: the one code path behind every local answer source
//! (`eval --model`, `eval --checkpoint`, evaluation inside a training run) and `safeaware
//! serve`, so a model answers the same through each. Prompts are encoded by the model folder's
//! processor, left-padded into one batch and decoded with the KV cache — greedy, sampled, or with
//! visual contrastive decoding (a clean and a noised-image branch run side by side, both cached).
//! Every prompt is checked against the model's context first ([`PromptEncoder`]). A
//! [`Session`] is a batch taken a few steps at a time, so `serve` can interleave batches.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safeaware_common::fnv::fnv1a64;
use safeaware_data::processor::{Message as PMessage, Processor};
use safeaware_model::generation::Generation;
use safeaware_model::{
    left_pad, GenerationConfig, Sampler, TokenSampling, VisionLanguageModel, VlmInput,
};

use super::context::{EncodedPrompt, PromptEncoder};
use super::SourceError;
use crate::decoding::{DecodingMode, DecodingSettings};
use crate::vcd::{contrastive_logits, NoiseSchedule};

/// How a local model generates.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSettings {
    /// Most new tokens per answer.
    pub max_new_tokens: usize,
    /// Prompts generated together.
    pub batch_size: usize,
    /// Greedy, sampling or VCD, with their parameters.
    pub decoding: DecodingSettings,
}

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings {
            max_new_tokens: 256,
            batch_size: 8,
            decoding: DecodingSettings::default(),
        }
    }
}

/// One prompt: the processor's messages (images inside), an id that seeds its VCD noise (so it
/// does not depend on batching), and a name for its image in errors.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub id: String,
    pub messages: Vec<PMessage>,
    pub image_name: String,
}

/// What one prompt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The answer, special tokens removed.
    pub text: String,
    /// Tokens of the encoded prompt (image tokens included).
    pub prompt_tokens: usize,
    /// New tokens (the end-of-turn token not counted).
    pub new_tokens: usize,
    /// Whether it stopped at the token budget rather than at an end-of-turn token.
    pub hit_limit: bool,
}

/// A model and its processor, ready to generate.
pub struct LocalGenerator<'a, B: Backend, M: VisionLanguageModel<B>> {
    model: Mutex<&'a M>,
    _backend: PhantomData<fn() -> B>,
    processor: &'a Processor,
    encoder: PromptEncoder<'a>,
}

/// Encoded prompts of one batch: token rows, their tiles' pixels, and which prompt each row is.
#[derive(Default)]
struct Batch {
    ids: Vec<String>,
    rows: Vec<Vec<u32>>,
    pixels: Vec<f32>,
    tiles: usize,
    tile_shape: [usize; 3],
    /// Qwen2-VL's `image_grid_thw` rows of every image, in batch order.
    grids: Vec<[usize; 3]>,
    row_pixels: Vec<usize>,
    slots: Vec<usize>,
}

impl Batch {
    fn push(&mut self, slot: usize, prompt: &EncodedPrompt) {
        let encoded = &prompt.encoded;
        let [n, c, h, w] = encoded.pixel_shape;
        if n > 0 {
            self.tile_shape = [c, h, w];
        }
        self.tiles += n;
        self.grids.extend_from_slice(&encoded.image_grid_thw);
        self.row_pixels.push(encoded.pixel_values.len());
        self.pixels.extend_from_slice(&encoded.pixel_values);
        self.rows.push(encoded.input_ids.clone());
        self.ids.push(prompt.id.clone());
        self.slots.push(slot);
    }
}

/// Prompts being generated together, a few steps at a time ([`LocalGenerator::start`],
/// [`LocalGenerator::advance`]); `C` is the model's cache.
pub struct Session<B: Backend, C> {
    results: Vec<Option<Result<Generated, SourceError>>>,
    groups: Vec<Group<B, C>>,
}

/// Rows of a session that run as one batch with one token budget.
struct Group<B: Backend, C> {
    slots: Vec<usize>,
    prompt_tokens: Vec<usize>,
    max_new_tokens: usize,
    run: Run<B, C>,
}

enum Run<B: Backend, C> {
    /// Boxed: a generation (cache, logits, sampler) is far larger than finished rows.
    Stepping(Box<Generation<B, C>>),
    /// Visual contrastive decoding runs to its end when it starts.
    Finished(Vec<Vec<u32>>),
}

impl<B: Backend, C> Session<B, C> {
    /// Whether every prompt has its result.
    pub fn is_done(&self) -> bool {
        self.groups.is_empty()
    }

    /// One result per prompt, in order (a prompt still running has an error).
    pub fn into_results(self) -> Vec<Result<Generated, SourceError>> {
        self.results
            .into_iter()
            .map(|r| r.unwrap_or(Err(SourceError::Other("not generated".into()))))
            .collect()
    }

    fn fail(&mut self, slots: &[usize], message: &str) {
        for &slot in slots {
            self.results[slot] = Some(Err(SourceError::Other(message.to_string())));
        }
    }
}

impl<'a, B: Backend, M: VisionLanguageModel<B>> LocalGenerator<'a, B, M> {
    /// A generator over `model` with the processor of its folder.
    pub fn new(model: &'a M, processor: &'a Processor) -> Self {
        LocalGenerator {
            model: Mutex::new(model),
            _backend: PhantomData,
            processor,
            encoder: PromptEncoder::new(processor, model.context_length()),
        }
    }

    /// The encoder that checks prompts against the model's context.
    pub fn encoder(&self) -> PromptEncoder<'a> {
        self.encoder
    }

    /// Generates for `prompts` together with `settings` (its batch size is the caller's
    /// business); one result per prompt, in order. A prompt that cannot be encoded, or that
    /// the context cannot hold, fails alone; a failed batch fails every prompt in it.
    pub fn generate(
        &self,
        prompts: &[Prompt],
        settings: &LocalSettings,
    ) -> Vec<Result<Generated, SourceError>> {
        let encoded = prompts
            .iter()
            .map(|p| self.encoder.encode(p).map(Arc::new))
            .collect();
        let mut session = self.start(encoded, settings);
        while !session.is_done() {
            self.advance(&mut session, usize::MAX);
        }
        session.into_results()
    }

    /// Starts generating for encoded prompts (an `Err` is that prompt's result). Prompts whose
    /// answer fits the context with `settings.max_new_tokens` run as one batch; a prompt so
    /// long that the context ends first runs alone, its answer cut where the context ends
    /// (`hit_limit`), so no prompt's answer depends on which others share its batch.
    pub fn start(
        &self,
        prompts: Vec<Result<Arc<EncodedPrompt>, SourceError>>,
        settings: &LocalSettings,
    ) -> Session<B, M::Cache> {
        let mut session = Session {
            results: vec![None; prompts.len()],
            groups: Vec::new(),
        };
        let wanted = settings.max_new_tokens;
        let mut full = Batch::default();
        let mut cut = Vec::new();
        for (slot, prompt) in prompts.into_iter().enumerate() {
            match prompt {
                Err(e) => session.results[slot] = Some(Err(e)),
                Ok(p) if self.encoder.budget(p.len(), wanted) == wanted => full.push(slot, &p),
                Ok(p) => cut.push((slot, p)),
            }
        }
        let mut batches = vec![(full, wanted)];
        for (slot, prompt) in cut {
            let budget = self.encoder.budget(prompt.len(), wanted);
            let mut alone = Batch::default();
            alone.push(slot, &prompt);
            batches.push((alone, budget));
        }
        for (batch, budget) in batches.into_iter().filter(|(b, _)| !b.rows.is_empty()) {
            let prompt_tokens = batch.rows.iter().map(Vec::len).collect();
            let run = self.start_batch(&batch, settings, budget);
            match run {
                Ok(run) => session.groups.push(Group {
                    slots: batch.slots,
                    prompt_tokens,
                    max_new_tokens: budget,
                    run,
                }),
                Err(message) => session.fail(&batch.slots, &message),
            }
        }
        self.collect_finished(&mut session);
        session
    }

    /// Generates up to `steps` more tokens for every prompt of `session` still running.
    pub fn advance(&self, session: &mut Session<B, M::Cache>, steps: usize) {
        let mut failed = Vec::new();
        let guard = self.lock();
        let model: &M = *guard;
        for (index, group) in session.groups.iter_mut().enumerate() {
            if let Run::Stepping(generation) = &mut group.run {
                if let Err(e) = generation.advance(model, steps, &mut |_, _| false) {
                    failed.push((index, e.to_string()));
                }
            }
        }
        for (index, message) in failed.into_iter().rev() {
            let group = session.groups.remove(index);
            session.fail(&group.slots, &message);
        }
        self.collect_finished(session);
    }

    /// The model, one caller at a time. The model is never changed, so a panic that poisoned
    /// the lock left nothing half-done and the next caller goes on.
    fn lock(&self) -> MutexGuard<'_, &'a M> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the answers of finished groups into the session's results.
    fn collect_finished(&self, session: &mut Session<B, M::Cache>) {
        let groups = std::mem::take(&mut session.groups);
        for group in groups {
            let done = match &group.run {
                Run::Stepping(generation) => generation.is_done(),
                Run::Finished(_) => true,
            };
            if !done {
                session.groups.push(group);
                continue;
            }
            let rows = match group.run {
                Run::Stepping(generation) => generation
                    .into_sequences()
                    .into_iter()
                    .map(|g| g.tokens)
                    .collect(),
                Run::Finished(rows) => rows,
            };
            for ((slot, prompt_tokens), tokens) in
                group.slots.iter().zip(&group.prompt_tokens).zip(rows)
            {
                let result = self.decode(*prompt_tokens, &tokens, group.max_new_tokens);
                session.results[*slot] = Some(result);
            }
        }
    }

    /// The answer of one row from its new tokens.
    fn decode(
        &self,
        prompt_tokens: usize,
        tokens: &[u32],
        max_new_tokens: usize,
    ) -> Result<Generated, SourceError> {
        let text = self
            .processor
            .decode(tokens, true)
            .map_err(|e| SourceError::Other(e.to_string()))?;
        Ok(Generated {
            text,
            prompt_tokens,
            new_tokens: tokens.len(),
            hit_limit: tokens.len() >= max_new_tokens,
        })
    }

    /// Prefills one left-padded batch with up to `max_new_tokens` new tokens per row (VCD
    /// runs to the end here).
    fn start_batch(
        &self,
        batch: &Batch,
        settings: &LocalSettings,
        max_new_tokens: usize,
    ) -> Result<Run<B, M::Cache>, String> {
        let guard = self.lock();
        let model: &M = *guard;
        let device = model.device();
        let special = self.processor.special_tokens();
        let (input_ids, mask) = left_pad::<B>(&batch.rows, special.pad, &device);
        let [c, h, w] = batch.tile_shape;
        let tiles = batch.tiles;
        let to_tensor = |values: Vec<f32>| {
            Tensor::<B, 4>::from_data(TensorData::new(values, [tiles, c, h, w]), &device)
        };
        let clean = (tiles > 0).then(|| to_tensor(batch.pixels.clone()));
        let input = VlmInput {
            input_ids,
            attention_mask: Some(mask),
            pixel_values: clean,
            image_grid_thw: (!batch.grids.is_empty()).then(|| batch.grids.clone()),
        };
        let mut eos = model.eos_token_ids();
        eos.push(special.end_of_utterance);
        let d = &settings.decoding;
        let seed = d.seed.unwrap_or(0);
        // VCD picks from the contrasted logits greedily; `sample` draws with its settings.
        let sampling = match d.mode {
            DecodingMode::Sample => TokenSampling::Sample {
                temperature: d.temperature,
                top_p: d.top_p,
                seed,
            },
            DecodingMode::Greedy | DecodingMode::Vcd => TokenSampling::Greedy,
        };
        if d.mode == DecodingMode::Vcd {
            let schedule = NoiseSchedule::new();
            let mut noised = Vec::with_capacity(batch.pixels.len());
            let mut start = 0;
            for (len, id) in batch.row_pixels.iter().zip(&batch.ids) {
                let row = &batch.pixels[start..start + len];
                noised.extend(
                    schedule
                        .add_noise(row, d.vcd.noise_step, seed ^ id_hash(id))
                        .map_err(|e| e.to_string())?,
                );
                start += len;
            }
            let noised_input = VlmInput {
                pixel_values: (tiles > 0).then(|| to_tensor(noised)),
                ..input.clone()
            };
            let rows = vcd_generate(
                model,
                &input,
                &noised_input,
                sampling,
                d,
                max_new_tokens,
                &eos,
            )?;
            return Ok(Run::Finished(rows));
        }
        let config = GenerationConfig {
            max_new_tokens,
            eos_token_ids: eos,
            sampling,
        };
        let generation = Generation::start(model, &input, &config).map_err(|e| e.to_string())?;
        Ok(Run::Stepping(Box::new(generation)))
    }
}

/// Visual contrastive decoding over a batch: both branches prefilled and decoded with their
/// own caches; each step's token comes from the contrasted logits.
fn vcd_generate<B: Backend, M: VisionLanguageModel<B>>(
    model: &M,
    clean: &VlmInput<B>,
    noised: &VlmInput<B>,
    sampling: TokenSampling,
    d: &DecodingSettings,
    max_new_tokens: usize,
    eos: &[u32],
) -> Result<Vec<Vec<u32>>, String> {
    let batch = clean.input_ids.dims()[0];
    let mut sampler = Sampler::new(sampling).map_err(|e| e.to_string())?;
    let mut out = vec![Vec::new(); batch];
    let mut done = vec![false; batch];
    if max_new_tokens == 0 {
        return Ok(out);
    }
    let (mut logits_c, mut cache_c) = model.prefill(clean).map_err(|e| e.to_string())?;
    let (mut logits_n, mut cache_n) = model.prefill(noised).map_err(|e| e.to_string())?;
    for step in 0..max_new_tokens {
        let vocab = logits_c.dims()[1];
        let c = logits_c
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        let n = logits_n
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        let mut next = Vec::with_capacity(batch);
        for row in 0..batch {
            let range = row * vocab..(row + 1) * vocab;
            let mixed = contrastive_logits(&c[range.clone()], &n[range], d.vcd.alpha, d.vcd.beta)
                .map_err(|e| e.to_string())?;
            let token = sampler.pick(&mixed);
            if !done[row] {
                if eos.contains(&token) {
                    done[row] = true;
                } else {
                    out[row].push(token);
                }
            }
            next.push(token);
        }
        if done.iter().all(|&x| x) || step + 1 == max_new_tokens {
            break;
        }
        logits_c = model
            .decode_step(&next, &mut cache_c)
            .map_err(|e| e.to_string())?;
        logits_n = model
            .decode_step(&next, &mut cache_n)
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// A stable hash of an item id (FNV-1a), so each item's VCD noise does not depend on batching.
fn id_hash(id: &str) -> u64 {
    fnv1a64(id.as_bytes())
}
