//! Named small models initialised from scratch (`model.preset` in a recipe).
//!
//! A preset is a registered family's architecture, shrunk, plus its own processor: a
//! word-level tokenizer over the synthetic world's closed vocabulary (with the family's special
//! tokens) and the family's image processor for the synthetic image size. `tiny` and `small`
//! are Idefics3/SmolVLM; `tiny-llava` is LLaVA-1.5 (CLIP tower, MLP projector, Llama);
//! `tiny-qwen2vl` is Qwen2-VL (patch tower with 2-D rotary, patch merger, Qwen2 with M-RoPE,
//! its image processor pinned to the synthetic image size). This is
//! the offline default: no weights or tokenizer need to be downloaded, and a checkpoint of it
//! is an ordinary HF folder.

use anyhow::{bail, Context, Result};
use safeaware_data::processor::{
    add_llava_tokens, add_qwen2_vl_tokens, add_smolvlm_tokens, image_seq_len,
    ClipImageProcessorConfig, ImageProcessorConfig, LlavaParts, LlavaProcessorConfig, Processor,
    ProcessorConfig, ProcessorParts, Qwen2VlImageProcessorConfig, Qwen2VlParts, Tokenizer,
    TokenizerConfig, END_OF_UTTERANCE, IM_END, LLAVA_EOS, QWEN2_VL_IMAGE_TOKEN, VISION_END,
    VISION_START,
};
use safeaware_data::synth;
use safeaware_data::traces::TAGS;
use safeaware_model::{Family, ModelConfig, ScratchSpec};
use serde_json::{json, Value};

/// Names accepted by `model.preset`.
pub const PRESETS: [&str; 4] = ["tiny", "small", "tiny-llava", "tiny-qwen2vl"];

/// Unknown-word token of the preset tokenizer.
const UNK: &str = "<unk>";

/// Words SmolVLM's chat template writes around the turns.
const TEMPLATE_WORDS: &str = "User : Assistant : System : \" .";

/// Words LLaVA's chat template writes besides those (`USER: <image>\n… ASSISTANT:`).
const LLAVA_TEMPLATE_WORDS: &str = "USER ASSISTANT";

/// Words Qwen2-VL's chat template writes (`<|im_start|>system\nYou are a helpful assistant.`, the
/// role names).
const QWEN2_VL_TEMPLATE_WORDS: &str = "system user assistant You are a helpful assistant .";

/// A preset's architecture and processor.
pub struct Preset {
    pub config: ModelConfig,
    pub processor: Processor,
}

/// A preset's family and dimensions.
struct Shape {
    family: Family,
    vision_width: usize,
    vision_layers: usize,
    text_width: usize,
    text_layers: usize,
    patch_size: usize,
    /// Idefics3's pixel shuffle (1 for LLaVA, which has none).
    scale_factor: usize,
}

/// The shape of preset `name`. Each gives 16 image tokens for the quickstart's 64-pixel images:
/// Idefics3 pixel-shuffles 2×2 patches of 8×8 pixels; LLaVA takes 16-pixel patches (its class
/// token dropped), with a third CLIP layer because LLaVA-1.5 reads the penultimate one;
/// Qwen2-VL merges 2×2 patches of 8×8 pixels (`scale_factor` is its merge size here). With
/// objects that differ in colour as well as shape, 16 tokens name them as well as 64 did, and
/// the shorter sequences allow 40% more steps in the quickstart's ten minutes.
fn shape(name: &str) -> Result<Shape> {
    let (family, vision_width, vision_layers, text_width, text_layers, patch_size, scale_factor) =
        match name {
            "tiny" => (Family::Idefics3, 64, 2, 128, 4, 8, 2),
            "small" => (Family::Idefics3, 128, 4, 256, 6, 8, 2),
            "tiny-llava" => (Family::Llava, 64, 3, 128, 4, 16, 1),
            "tiny-qwen2vl" => (Family::Qwen2Vl, 64, 2, 128, 4, 8, 2),
            other => bail!(
                "unknown model preset `{other}`: expected one of {}",
                PRESETS.join(", ")
            ),
        };
    Ok(Shape {
        family,
        vision_width,
        vision_layers,
        text_width,
        text_layers,
        patch_size,
        scale_factor,
    })
}

/// Builds preset `name` for square images of `image_size` pixels.
pub fn build(name: &str, image_size: u32) -> Result<Preset> {
    let shape = shape(name)?;
    let step = shape.patch_size * shape.scale_factor;
    if image_size == 0 || !image_size.is_multiple_of(step as u32) {
        bail!("preset image size {image_size} must be a positive multiple of {step}");
    }
    let tokenizer = word_tokenizer(shape.family)?;
    let id = |token: &str| {
        tokenizer
            .token_to_id(token)
            .with_context(|| format!("preset tokenizer lacks {token}"))
    };
    let (bos, eos, pad, image) = match shape.family {
        Family::Idefics3 => ("<|im_start|>", END_OF_UTTERANCE, "<|im_end|>", "<image>"),
        Family::Llava => ("<s>", LLAVA_EOS, "<pad>", "<image>"),
        Family::Qwen2Vl | Family::Qwen2_5Vl => (
            "<|im_start|>",
            IM_END,
            "<|endoftext|>",
            QWEN2_VL_IMAGE_TOKEN,
        ),
    };
    let mut config = shape
        .family
        .scratch_config(&ScratchSpec {
            vision_width: shape.vision_width,
            vision_layers: shape.vision_layers,
            text_width: shape.text_width,
            text_layers: shape.text_layers,
            image_size: image_size as usize,
            patch_size: shape.patch_size,
            scale_factor: shape.scale_factor,
            vocab_size: tokenizer.get_vocab_size(true),
            image_token_id: id(image)?,
            bos_token_id: id(bos)?,
            eos_token_id: id(eos)?,
            pad_token_id: id(pad)?,
        })
        .context("preset config")?;
    if let ModelConfig::Qwen2Vl(c) = &mut config {
        // M-RoPE finds images by their start token: it must be the tokenizer's.
        c.vision_start_token_id = id(VISION_START)?;
        c.vision_end_token_id = id(VISION_END)?;
    }
    let processor =
        processor(&shape, tokenizer, image_size).context("building the preset processor")?;
    Ok(Preset { config, processor })
}

/// The family's processor around the preset tokenizer, for one `image_size` image (one tile).
fn processor(shape: &Shape, tokenizer: Tokenizer, image_size: u32) -> Result<Processor> {
    Ok(match shape.family {
        Family::Idefics3 => {
            let mut image_config = ImageProcessorConfig::smolvlm(image_size, image_size);
            image_config.do_image_splitting = false;
            let seq_len = image_seq_len(image_size as usize, shape.patch_size, shape.scale_factor);
            Processor::from_parts(ProcessorParts {
                tokenizer,
                tokenizer_config: TokenizerConfig::smolvlm(),
                image_config,
                processor_config: ProcessorConfig::with_image_seq_len(seq_len),
                chat_template: None,
            })?
        }
        Family::Llava => Processor::from_llava_parts(LlavaParts {
            tokenizer,
            tokenizer_config: TokenizerConfig::llava(),
            image_config: ClipImageProcessorConfig::clip(image_size),
            processor_config: LlavaProcessorConfig::llava_1_5(shape.patch_size as u32),
            image_seq_length: None,
            chat_template: None,
        })?,
        Family::Qwen2Vl | Family::Qwen2_5Vl => {
            let pixels = image_size * image_size;
            let mut image_config = Qwen2VlImageProcessorConfig::with_bounds(pixels, pixels);
            image_config.patch_size = shape.patch_size as u32;
            image_config.merge_size = shape.scale_factor as u32;
            Processor::from_qwen2_vl_parts(Qwen2VlParts {
                tokenizer,
                tokenizer_config: TokenizerConfig {
                    eos_token: Some(IM_END.into()),
                    pad_token: Some("<|endoftext|>".into()),
                    ..TokenizerConfig::default()
                },
                image_config,
                processor_config: Default::default(),
                chat_template: None,
            })?
        }
    })
}

/// A word-level tokenizer covering every word the synthetic world and the chat template emit.
///
/// Pre-tokenization matches [`synth::words`]: white space separates, runs of `[A-Za-z0-9_]`
/// are one word, any other character is a word by itself; the answer tags are added tokens.
fn word_tokenizer(family: Family) -> Result<Tokenizer> {
    let mut words: Vec<String> = vec![UNK.to_string()];
    let mut seen: std::collections::BTreeSet<String> = words.iter().cloned().collect();
    let extra = match family {
        Family::Idefics3 => "",
        Family::Llava => LLAVA_TEMPLATE_WORDS,
        Family::Qwen2Vl | Family::Qwen2_5Vl => QWEN2_VL_TEMPLATE_WORDS,
    };
    let template_words = synth::words(TEMPLATE_WORDS)
        .into_iter()
        .chain(synth::words(extra))
        .map(str::to_string);
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
    match family {
        Family::Idefics3 => add_smolvlm_tokens(&mut tokenizer),
        Family::Llava => add_llava_tokens(&mut tokenizer),
        Family::Qwen2Vl | Family::Qwen2_5Vl => add_qwen2_vl_tokens(&mut tokenizer),
    };
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use safeaware_data::benchmark::Verdict;
    use safeaware_data::traces::{parse_verdict, render_answer, verdict_text, TargetStyle};

    #[test]
    fn tokenizer_covers_the_synthetic_world_without_unknowns() {
        let tokenizer = word_tokenizer(Family::Idefics3).unwrap();
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
        let llava = build("tiny-llava", 64).unwrap();
        assert_eq!(llava.config.family(), Family::Llava);
        assert_eq!(llava.config.tokens_per_image(), 16);
        assert_eq!(llava.processor.image_seq_len(), 16);
        assert_eq!(
            llava.config.image_token_id(),
            llava.processor.special_tokens().image
        );
        assert!(build("tiny-llava", 72).is_err());
        assert!(build("tiny", 60).is_err());
    }

    #[test]
    fn tiny_qwen2vl_encodes_the_synthetic_world_with_16_image_tokens() {
        use safeaware_data::processor::{Message, Part};
        let preset = build("tiny-qwen2vl", 64).unwrap();
        assert_eq!(preset.config.family(), Family::Qwen2Vl);
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("x.png");
        let cfg = synth::SynthConfig::default();
        let item = synth::make_item(&cfg, &synth::world::held_out(0), synth::Split::Train, 0);
        item.image.save(&image).unwrap();
        let answer = item.trace.answer(TargetStyle::Vcr);
        let messages = vec![
            Message::user(vec![Part::image(image), Part::text(item.trace.question())]),
            Message::assistant(answer.as_str()),
        ];
        let enc = preset.processor.encode_training(&messages).unwrap();
        assert_eq!(enc.image_grid_thw, vec![[1, 8, 8]]);
        let special = preset.processor.special_tokens();
        let images = enc
            .input_ids
            .iter()
            .filter(|t| **t == special.image)
            .count();
        assert_eq!(images, 16);
        assert_eq!(preset.config.image_token_id(), special.image);
        let unk = preset.processor.tokenizer().token_to_id(UNK).unwrap();
        assert!(!enc.input_ids.contains(&unk), "{:?}", enc.input_ids);
        let ModelConfig::Qwen2Vl(c) = &preset.config else {
            panic!("a Qwen2-VL config");
        };
        let start = preset.processor.tokenizer().token_to_id(VISION_START);
        assert_eq!(Some(c.vision_start_token_id), start);
        assert!(build("tiny-qwen2vl", 72).is_err());
    }
}
