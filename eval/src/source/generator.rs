//! Generation with a model held in memory: the one code path behind every local answer source
//! (`eval --model`, `eval --checkpoint`, evaluation inside a training run) and `safeaware
//! serve`, so a model answers the same through each. Prompts are encoded by the model folder's
//! processor, left-padded into one batch and decoded with the KV cache — greedy, sampled, or with
//! visual contrastive decoding (a clean and a noised-image branch run side by side, both cached).

use std::marker::PhantomData;
use std::sync::Mutex;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safeaware_common::fnv::fnv1a64;
use safeaware_data::processor::{Message as PMessage, Processor};
use safeaware_model::{
    left_pad, GenerationConfig, Sampler, TokenSampling, VisionLanguageModel, VlmInput,
};

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
}

/// Encoded prompts of one batch: token rows, their tiles' pixels, and which prompt each row is.
#[derive(Default)]
struct Batch {
    rows: Vec<Vec<u32>>,
    pixels: Vec<f32>,
    tiles: usize,
    tile_shape: [usize; 3],
    row_pixels: Vec<usize>,
    slots: Vec<usize>,
}

impl<'a, B: Backend, M: VisionLanguageModel<B>> LocalGenerator<'a, B, M> {
    /// A generator over `model` with the processor of its folder.
    pub fn new(model: &'a M, processor: &'a Processor) -> Self {
        LocalGenerator {
            model: Mutex::new(model),
            _backend: PhantomData,
            processor,
        }
    }

    /// Generates for `prompts` together, as one batch, with `settings` (its batch size is the
    /// caller's business); one result per prompt, in order. A prompt that cannot be encoded
    /// fails alone; a failed batch fails every prompt in it.
    pub fn generate(
        &self,
        prompts: &[Prompt],
        settings: &LocalSettings,
    ) -> Vec<Result<Generated, SourceError>> {
        let mut results: Vec<Option<Result<Generated, SourceError>>> = vec![None; prompts.len()];
        let mut batch = Batch::default();
        for (i, prompt) in prompts.iter().enumerate() {
            match self.processor.encode_prompt(&prompt.messages) {
                Ok(encoded) => {
                    let [n, c, h, w] = encoded.pixel_shape;
                    if n > 0 {
                        batch.tile_shape = [c, h, w];
                    }
                    batch.tiles += n;
                    batch.row_pixels.push(encoded.pixel_values.len());
                    batch.pixels.extend_from_slice(&encoded.pixel_values);
                    batch.rows.push(encoded.input_ids);
                    batch.slots.push(i);
                }
                Err(e) => {
                    // The processor's image errors name the file already; keep only why.
                    let message = match e {
                        safeaware_data::processor::ProcessorError::Image { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    results[i] = Some(Err(SourceError::Image {
                        path: prompt.image_name.clone(),
                        message,
                    }))
                }
            }
        }
        if !batch.rows.is_empty() {
            let ids: Vec<&str> = batch
                .slots
                .iter()
                .map(|&i| prompts[i].id.as_str())
                .collect();
            match self.run_batch(&batch, &ids, settings) {
                Ok(tokens) => {
                    for ((slot, row), tokens) in batch.slots.iter().zip(&batch.rows).zip(tokens) {
                        results[*slot] = Some(self.decode(row.len(), &tokens, settings));
                    }
                }
                Err(message) => {
                    for slot in &batch.slots {
                        results[*slot] = Some(Err(SourceError::Other(message.clone())));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(SourceError::Other("not generated".into()))))
            .collect()
    }

    /// The answer of one row from its new tokens.
    fn decode(
        &self,
        prompt_tokens: usize,
        tokens: &[u32],
        settings: &LocalSettings,
    ) -> Result<Generated, SourceError> {
        let text = self
            .processor
            .decode(tokens, true)
            .map_err(|e| SourceError::Other(e.to_string()))?;
        Ok(Generated {
            text,
            prompt_tokens,
            new_tokens: tokens.len(),
            hit_limit: tokens.len() >= settings.max_new_tokens,
        })
    }

    /// Runs one left-padded batch; the new tokens of each row.
    fn run_batch(
        &self,
        batch: &Batch,
        ids: &[&str],
        settings: &LocalSettings,
    ) -> Result<Vec<Vec<u32>>, String> {
        let model = self
            .model
            .lock()
            .map_err(|_| "the model lock is poisoned".to_string())?;
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
            for (len, id) in batch.row_pixels.iter().zip(ids) {
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
            return vcd_generate(
                *model,
                &input,
                &noised_input,
                sampling,
                d,
                settings.max_new_tokens,
                &eos,
            );
        }
        let config = GenerationConfig {
            max_new_tokens: settings.max_new_tokens,
            eos_token_ids: eos,
            sampling,
        };
        Ok(model
            .generate(&input, &config, |_, _| false)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|g| g.tokens)
            .collect())
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
