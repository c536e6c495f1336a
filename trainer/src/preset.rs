//! Named small models initialised from scratch (`model.preset` in a recipe).
//!
//! A preset is a registered family's architecture, shrunk, plus its own processor: a
//! word-level tokenizer over the synthetic world's closed vocabulary (with SmolVLM's special
//! tokens) and an image processor whose single tile is the synthetic image size. This is the
//! offline default: no weights or tokenizer need to be downloaded, and a checkpoint of it is an
//! ordinary HF folder.

use anyhow::{bail, Context, Result};
use safeaware_data::processor::{
    add_smolvlm_tokens, image_seq_len, ImageProcessorConfig, Processor, ProcessorConfig,
    ProcessorParts, Tokenizer, TokenizerConfig, END_OF_UTTERANCE,
};
use safeaware_data::synth;
use safeaware_data::traces::TAGS;
use safeaware_model::{Family, ModelConfig, ScratchSpec};
use serde_json::{json, Value};

/// Names accepted by `model.preset`.
pub const PRESETS: [&str; 2] = ["tiny", "small"];

/// Unknown-word token of the preset tokenizer.
const UNK: &str = "<unk>";

/// Words the chat template itself writes around the turns.
const TEMPLATE_WORDS: &str = "User : Assistant : System : \" .";

/// A preset's architecture and processor.
pub struct Preset {
    pub config: ModelConfig,
    pub processor: Processor,
}

/// Builds preset `name` for square images of `image_size` pixels.
pub fn build(name: &str, image_size: u32) -> Result<Preset> {
    // The tiny preset pixel-shuffles 2×2 patches of 8×8 pixels (scale factor 2, 16 image tokens
    // for a 64-pixel image). With objects that differ in colour as well as shape, 16 tokens name
    // them as well as 64 did, and the shorter sequences allow 40% more steps in the quickstart's
    // ten minutes.
    let (vision_width, vision_layers, text_width, text_layers, scale_factor) = match name {
        "tiny" => (64, 2, 128, 4, 2),
        "small" => (128, 4, 256, 6, 2),
        other => bail!(
            "unknown model preset `{other}`: expected one of {}",
            PRESETS.join(", ")
        ),
    };
    let patch_size = 8;
    if image_size == 0 || !image_size.is_multiple_of((patch_size * scale_factor) as u32) {
        bail!(
            "preset image size {image_size} must be a positive multiple of {}",
            patch_size * scale_factor
        );
    }
    let tokenizer = word_tokenizer()?;
    let vocab_size = tokenizer.get_vocab_size(true);
    let id = |token: &str| {
        tokenizer
            .token_to_id(token)
            .with_context(|| format!("preset tokenizer lacks {token}"))
    };
    let image_token_id = id("<image>")?;
    let eos = id(END_OF_UTTERANCE)?;
    let pad = id("<|im_end|>")?;
    let bos = id("<|im_start|>")?;
    let config = Family::Idefics3
        .scratch_config(&ScratchSpec {
            vision_width,
            vision_layers,
            text_width,
            text_layers,
            image_size: image_size as usize,
            patch_size,
            scale_factor,
            vocab_size,
            image_token_id,
            bos_token_id: bos,
            eos_token_id: eos,
            pad_token_id: pad,
        })
        .context("preset config")?;
    let mut image_config = ImageProcessorConfig::smolvlm(image_size, image_size);
    image_config.do_image_splitting = false;
    let seq_len = image_seq_len(image_size as usize, patch_size, scale_factor);
    let processor = Processor::from_parts(ProcessorParts {
        tokenizer,
        tokenizer_config: TokenizerConfig::smolvlm(),
        image_config,
        processor_config: ProcessorConfig::with_image_seq_len(seq_len),
        chat_template: None,
    })
    .context("building the preset processor")?;
    Ok(Preset { config, processor })
}

/// A word-level tokenizer covering every word the synthetic world and the chat template emit.
///
/// Pre-tokenization matches [`synth::words`]: white space separates, runs of `[A-Za-z0-9_]`
/// are one word, any other character is a word by itself; the answer tags are added tokens.
fn word_tokenizer() -> Result<Tokenizer> {
    let mut words: Vec<String> = vec![UNK.to_string()];
    let mut seen: std::collections::BTreeSet<String> = words.iter().cloned().collect();
    let template_words = synth::words(TEMPLATE_WORDS).into_iter().map(str::to_string);
    for word in synth::vocabulary().into_iter().chain(template_words) {
        if !TAGS.contains(&word.as_str()) && seen.insert(word.clone()) {
            words.push(word);
        }
    }
    let vocab: serde_json::Map<String, Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), json!(i)))
        .collect();
    let added: Vec<Value> = TAGS
        .iter()
        .enumerate()
        .map(|(i, tag)| {
            json!({"id": words.len() + i, "content": tag, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": false})
        })
        .collect();
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Split", "pattern": {"Regex": "[A-Za-z0-9_]+|[^A-Za-z0-9_]"},
             "behavior": "Isolated", "invert": false}
        ]},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK}
    });
    let mut tokenizer: Tokenizer = spec
        .to_string()
        .parse()
        .map_err(|e| anyhow::anyhow!("building the preset tokenizer: {e}"))?;
    add_smolvlm_tokens(&mut tokenizer);
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use safeaware_data::benchmark::Verdict;
    use safeaware_data::traces::{parse_verdict, render_answer, verdict_text, TargetStyle};

    #[test]
    fn tokenizer_covers_the_synthetic_world_without_unknowns() {
        let tokenizer = word_tokenizer().unwrap();
        let unk = tokenizer.token_to_id(UNK).unwrap();
        for word in synth::vocabulary() {
            let ids = tokenizer
                .encode(word.as_str(), false)
                .unwrap()
                .get_ids()
                .to_vec();
            assert_eq!(ids.len(), 1, "`{word}` is not one token: {ids:?}");
            assert_ne!(ids[0], unk, "`{word}` is unknown");
        }
        // A rendered verdict decodes (spaced out, word by word) to text that reads back.
        for verdict in [Verdict::Safe, Verdict::Unsafe] {
            let answer = render_answer(TargetStyle::Direct, "", "", verdict);
            let ids = tokenizer.encode(answer.as_str(), false).unwrap();
            let ids = ids.get_ids().to_vec();
            assert_eq!(ids.len(), 2 + synth::words(verdict_text(verdict)).len());
            let decoded = tokenizer.decode(&ids, false).unwrap();
            assert_eq!(decoded.replace(' ', ""), answer.replace(' ', ""));
            assert_eq!(parse_verdict(&decoded), Some(verdict), "{decoded}");
        }
    }

    #[test]
    fn tiny_preset_is_consistent() {
        let preset = build("tiny", 64).unwrap();
        assert_eq!(
            preset.config.tokens_per_image(),
            preset.processor.image_seq_len()
        );
        assert_eq!(
            preset.config.image_token_id(),
            preset.processor.special_tokens().image
        );
        assert!(build("huge", 64).is_err());
        assert!(build("tiny", 60).is_err());
    }
}
