//! Local generation with the model crate (`--model`, `--checkpoint`, and evaluation inside a
//! training run): prompts are encoded by the model folder's processor, left-padded into
//! batches and decoded with the KV cache — greedy, sampled, or with visual contrastive
//! decoding (a clean and a noised-image branch run side by side, both cached).

use std::marker::PhantomData;
use std::sync::Mutex;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safeaware_data::processor::{ImageSource, Message as PMessage, Part, Processor};
use safeaware_model::{
    left_pad, GenerationConfig, Sampler, TokenSampling, VisionLanguageModel, VlmInput,
};

use super::{Answer, AnswerRequest, AnswerSource, SourceError, SourceInfo};
use crate::decoding::{DecodingMode, DecodingSettings};
use crate::prompt::{Conversation, Role};
use crate::vcd::{contrastive_logits, NoiseSchedule};

/// How a local model generates.
#[derive(Debug, Clone)]
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

/// Answers with a model held in memory.
pub struct LocalModelSource<'a, B: Backend, M: VisionLanguageModel<B>> {
    model: Mutex<&'a M>,
    _backend: PhantomData<fn() -> B>,
    processor: &'a Processor,
    name: String,
    settings: LocalSettings,
}

impl<'a, B: Backend, M: VisionLanguageModel<B>> LocalModelSource<'a, B, M> {
    /// A source answering with `model`; `name` is what results record (a folder, a run).
    pub fn new(
        model: &'a M,
        processor: &'a Processor,
        name: impl Into<String>,
        settings: LocalSettings,
    ) -> Self {
        LocalModelSource {
            model: Mutex::new(model),
            _backend: PhantomData,
            processor,
            name: name.into(),
            settings,
        }
    }

    /// The processor's messages for a conversation about `image`.
    fn messages(conversation: &Conversation, image: &ImageSource) -> Vec<PMessage> {
        let mut out = Vec::new();
        if let Some(system) = &conversation.system {
            out.push(PMessage::system(system.clone()));
        }
        for m in &conversation.messages {
            match m.role {
                Role::User => {
                    let mut parts = Vec::new();
                    if m.image {
                        parts.push(Part::Image(image.clone()));
                    }
                    parts.push(Part::text(m.text.clone()));
                    out.push(PMessage::user(parts));
                }
                Role::Assistant => out.push(PMessage::assistant(m.text.clone())),
            }
        }
        out
    }

    /// Generates for the encodable requests; one result per request, in order.
    fn generate(&self, requests: &[&AnswerRequest<'_>]) -> Vec<Result<Answer, SourceError>> {
        let mut results: Vec<Option<Result<Answer, SourceError>>> = vec![None; requests.len()];
        let mut rows = Vec::new();
        let mut pixels = Vec::new();
        let mut tiles = 0;
        let mut tile_shape = [0usize; 3];
        let mut slots = Vec::new();
        let mut row_pixels = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            let Some(path) = &request.item.image else {
                results[i] = Some(Err(SourceError::MissingImage));
                continue;
            };
            let image = ImageSource::Path(path.clone());
            match self
                .processor
                .encode_prompt(&Self::messages(request.conversation, &image))
            {
                Ok(encoded) => {
                    let [n, c, h, w] = encoded.pixel_shape;
                    if n > 0 {
                        tile_shape = [c, h, w];
                    }
                    tiles += n;
                    row_pixels.push(encoded.pixel_values.len());
                    pixels.extend_from_slice(&encoded.pixel_values);
                    rows.push(encoded.input_ids);
                    slots.push(i);
                }
                Err(e) => {
                    // The processor's image errors name the file already; keep only why.
                    let message = match e {
                        safeaware_data::processor::ProcessorError::Image { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    results[i] = Some(Err(SourceError::Image {
                        path: path.display().to_string(),
                        message,
                    }))
                }
            }
        }
        if !rows.is_empty() {
            let ids: Vec<&str> = slots
                .iter()
                .map(|&i| requests[i].item.id.as_str())
                .collect();
            match self.run_batch(&rows, pixels, tiles, tile_shape, &row_pixels, &ids) {
                Ok(texts) => {
                    for (slot, text) in slots.iter().zip(texts) {
                        results[*slot] = Some(Ok(Answer::Text(text)));
                    }
                }
                Err(message) => {
                    for slot in &slots {
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

    /// Runs one left-padded batch and decodes the answers.
    fn run_batch(
        &self,
        rows: &[Vec<u32>],
        pixels: Vec<f32>,
        tiles: usize,
        tile_shape: [usize; 3],
        row_pixels: &[usize],
        ids: &[&str],
    ) -> Result<Vec<String>, String> {
        let model = self
            .model
            .lock()
            .map_err(|_| "the model lock is poisoned".to_string())?;
        let device = model.device();
        let special = self.processor.special_tokens();
        let (input_ids, mask) = left_pad::<B>(rows, special.pad, &device);
        let [c, h, w] = tile_shape;
        let to_tensor = |values: Vec<f32>| {
            Tensor::<B, 4>::from_data(TensorData::new(values, [tiles, c, h, w]), &device)
        };
        let clean = (tiles > 0).then(|| to_tensor(pixels.clone()));
        let input = VlmInput {
            input_ids,
            attention_mask: Some(mask),
            pixel_values: clean,
        };
        let mut eos = model.eos_token_ids();
        eos.push(special.end_of_utterance);
        let d = &self.settings.decoding;
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
        let tokens = if d.mode == DecodingMode::Vcd {
            let schedule = NoiseSchedule::new();
            let mut noised = Vec::with_capacity(pixels.len());
            let mut start = 0;
            for (len, id) in row_pixels.iter().zip(ids) {
                let row = &pixels[start..start + len];
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
            vcd_generate(
                *model,
                &input,
                &noised_input,
                sampling,
                d,
                self.settings.max_new_tokens,
                &eos,
            )?
        } else {
            let config = GenerationConfig {
                max_new_tokens: self.settings.max_new_tokens,
                eos_token_ids: eos,
                sampling,
            };
            model
                .generate(&input, &config, |_, _| false)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|g| g.tokens)
                .collect()
        };
        tokens
            .iter()
            .map(|t| self.processor.decode(t, true).map_err(|e| e.to_string()))
            .collect()
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
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl<B: Backend, M: VisionLanguageModel<B>> AnswerSource for LocalModelSource<'_, B, M> {
    fn info(&self) -> SourceInfo {
        let mut details = std::collections::BTreeMap::new();
        details.insert("max_new_tokens".into(), self.settings.max_new_tokens.into());
        details.insert("batch_size".into(), self.settings.batch_size.into());
        SourceInfo {
            kind: "model".into(),
            name: self.name.clone(),
            details,
            counts: Default::default(),
        }
    }

    fn batch_size(&self) -> usize {
        self.settings.batch_size.max(1)
    }

    fn answer(&self, request: &AnswerRequest<'_>) -> Result<Answer, SourceError> {
        self.generate(&[request])
            .pop()
            .unwrap_or(Err(SourceError::Other("no answer".into())))
    }

    fn answer_batch(&self, requests: &[AnswerRequest<'_>]) -> Vec<Result<Answer, SourceError>> {
        let refs: Vec<&AnswerRequest<'_>> = requests.iter().collect();
        self.generate(&refs)
    }
}
