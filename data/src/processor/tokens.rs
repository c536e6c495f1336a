//! The special tokens of each family: their strings, their ids in a given tokenizer (looked up
//! by string, with an error naming the missing token), and helpers that add them to a tokenizer
//! lacking them (for the tiny tokenizers of tests and the trainer's presets).

use tokenizers::{AddedToken, Tokenizer};

use super::config::TokenizerConfig;
use super::error::{ProcessorError, Result};
use super::qwen2_vl_config::{IM_END, QWEN2_VL_IMAGE_TOKEN, VISION_END, VISION_START};

/// The per-tile image placeholder (repeated `image_seq_len` times).
pub const IMAGE_TOKEN: &str = "<image>";
/// Brackets every tile and the global view.
pub const FAKE_IMAGE_TOKEN: &str = "<fake_token_around_image>";
/// Introduces the global (whole-image) view.
pub const GLOBAL_IMAGE_TOKEN: &str = "<global-img>";
/// Ends every turn; SmolVLM's eos.
pub const END_OF_UTTERANCE: &str = "<end_of_utterance>";
/// Largest grid side SmolVLM tokenizers have `<row_r_col_c>` tokens for.
pub const MAX_GRID_SIDE: usize = 6;

/// The tile-position token for 1-based `row` and `col`.
pub fn row_col_token(row: usize, col: usize) -> String {
    format!("<row_{row}_col_{col}>")
}

/// LLaVA's end of sequence (Llama's), which also ends an assistant turn.
pub const LLAVA_EOS: &str = "</s>";

/// Ids of the tokens the processor and the models need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialTokens {
    /// The image placeholder the model replaces with image features.
    pub image: u32,
    /// SmolVLM's `<fake_token_around_image>` (`None` for LLaVA).
    pub fake_image: Option<u32>,
    /// SmolVLM's `<global-img>` (`None` for LLaVA).
    pub global_image: Option<u32>,
    /// The token that ends an assistant turn: `<end_of_utterance>` for SmolVLM, eos for LLaVA,
    /// `<|im_end|>` for Qwen2-VL.
    pub end_of_utterance: u32,
    pub eos: u32,
    pub pad: u32,
    pub bos: Option<u32>,
    /// `<row_r_col_c>` ids, row-major, for grids up to the size checked at load.
    row_col: Vec<Vec<u32>>,
}

impl SpecialTokens {
    /// Looks every token up in `tokenizer`; `names` gives eos/pad/bos (eos defaults to
    /// `<end_of_utterance>`, pad to eos). Row/column tokens are required up to `grid_side`.
    pub fn lookup(
        tokenizer: &Tokenizer,
        names: &TokenizerConfig,
        grid_side: usize,
        origin: &str,
    ) -> Result<Self> {
        let id = |token: &str, purpose: &str| token_id(tokenizer, token, purpose, origin);
        let eos_name = names.eos_token.as_deref().unwrap_or(END_OF_UTTERANCE);
        let eos = id(eos_name, "eos_token")?;
        let pad = match names.pad_token.as_deref() {
            Some(name) => id(name, "pad_token")?,
            None => eos,
        };
        let bos = names
            .bos_token
            .as_deref()
            .map(|name| id(name, "bos_token"))
            .transpose()?;
        let mut row_col = Vec::with_capacity(grid_side);
        for r in 1..=grid_side {
            let row = (1..=grid_side)
                .map(|c| id(&row_col_token(r, c), "image tile positions"))
                .collect::<Result<Vec<_>>>()?;
            row_col.push(row);
        }
        Ok(SpecialTokens {
            image: id(IMAGE_TOKEN, "image placeholders")?,
            fake_image: Some(id(FAKE_IMAGE_TOKEN, "image boundaries")?),
            global_image: Some(id(GLOBAL_IMAGE_TOKEN, "the global image view")?),
            end_of_utterance: id(END_OF_UTTERANCE, "ends of turns")?,
            eos,
            pad,
            bos,
            row_col,
        })
    }

    /// LLaVA's tokens: `image_token` (the placeholder), eos (`</s>` when unnamed, also the end
    /// of a turn), pad (eos when unnamed) and bos from `names`.
    pub fn lookup_llava(
        tokenizer: &Tokenizer,
        names: &TokenizerConfig,
        image_token: &str,
        origin: &str,
    ) -> Result<Self> {
        Self::lookup_repeated(tokenizer, names, image_token, None, origin)
    }

    /// Qwen2-VL's tokens: `image_token` (the placeholder), `<|vision_start|>` and
    /// `<|vision_end|>` (checked: the template writes them around each image), `<|im_end|>` (the
    /// end of a turn; also eos when unnamed), pad (eos when unnamed) and bos from `names`.
    pub fn lookup_qwen2_vl(
        tokenizer: &Tokenizer,
        names: &TokenizerConfig,
        image_token: &str,
        origin: &str,
    ) -> Result<Self> {
        for token in [VISION_START, VISION_END] {
            token_id(tokenizer, token, "image boundaries", origin)?;
        }
        Self::lookup_repeated(tokenizer, names, image_token, Some(IM_END), origin)
    }

    /// Tokens of a family whose image is its placeholder repeated: eos (`end_of_turn`, else
    /// `</s>`, when unnamed), pad (eos when unnamed), bos; the turn ends with `end_of_turn` or eos.
    fn lookup_repeated(
        tokenizer: &Tokenizer,
        names: &TokenizerConfig,
        image_token: &str,
        end_of_turn: Option<&str>,
        origin: &str,
    ) -> Result<Self> {
        let id = |token: &str, purpose: &str| token_id(tokenizer, token, purpose, origin);
        let eos_name = names.eos_token.as_deref();
        let eos = id(eos_name.or(end_of_turn).unwrap_or(LLAVA_EOS), "eos_token")?;
        let pad = match names.pad_token.as_deref() {
            Some(name) => id(name, "pad_token")?,
            None => eos,
        };
        let bos = names
            .bos_token
            .as_deref()
            .map(|name| id(name, "bos_token"))
            .transpose()?;
        let end_of_utterance = match end_of_turn {
            Some(token) => id(token, "ends of turns")?,
            None => eos,
        };
        Ok(SpecialTokens {
            image: id(image_token, "image placeholders")?,
            fake_image: None,
            global_image: None,
            end_of_utterance,
            eos,
            pad,
            bos,
            row_col: Vec::new(),
        })
    }

    /// The id of `<row_{row}_col_{col}>` (1-based), if it was checked at load.
    pub fn row_col(&self, row: usize, col: usize) -> Option<u32> {
        self.row_col
            .get(row.checked_sub(1)?)?
            .get(col.checked_sub(1)?)
            .copied()
    }

    /// Largest grid side whose position tokens are known.
    pub fn grid_side(&self) -> usize {
        self.row_col.len()
    }
}

/// The id of `token`, or an error naming it and what it is needed for.
fn token_id(tokenizer: &Tokenizer, token: &str, purpose: &str, origin: &str) -> Result<u32> {
    tokenizer
        .token_to_id(token)
        .ok_or_else(|| ProcessorError::MissingToken {
            origin: origin.to_string(),
            token: token.to_string(),
            purpose: purpose.to_string(),
        })
}

/// Adds LLaVA's special tokens (`<s>`, `</s>`, `<pad>`, `<image>`) that `tokenizer` lacks.
/// Returns how many were added.
pub fn add_llava_tokens(tokenizer: &mut Tokenizer) -> usize {
    add_missing(
        tokenizer,
        ["<s>", LLAVA_EOS, "<pad>", IMAGE_TOKEN]
            .map(String::from)
            .to_vec(),
    )
}

/// Adds Qwen2-VL's special tokens (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, the vision
/// boundaries and `<|image_pad|>`) that `tokenizer` lacks. Returns how many were added.
pub fn add_qwen2_vl_tokens(tokenizer: &mut Tokenizer) -> usize {
    let names = [
        "<|endoftext|>",
        "<|im_start|>",
        IM_END,
        VISION_START,
        VISION_END,
        QWEN2_VL_IMAGE_TOKEN,
    ];
    add_missing(tokenizer, names.map(String::from).to_vec())
}

/// Adds SmolVLM's added tokens (image, boundary, global, end-of-utterance, `<|im_start|>`,
/// `<|im_end|>` and the 6×6 row/col tokens) that `tokenizer` lacks, as special tokens.
/// Returns how many were added.
pub fn add_smolvlm_tokens(tokenizer: &mut Tokenizer) -> usize {
    let mut names: Vec<String> = [
        "<|im_start|>",
        "<|im_end|>",
        FAKE_IMAGE_TOKEN,
        IMAGE_TOKEN,
        END_OF_UTTERANCE,
        GLOBAL_IMAGE_TOKEN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for r in 1..=MAX_GRID_SIDE {
        for c in 1..=MAX_GRID_SIDE {
            names.push(row_col_token(r, c));
        }
    }
    add_missing(tokenizer, names)
}

/// Adds the `names` that `tokenizer` lacks as special tokens; returns how many.
fn add_missing(tokenizer: &mut Tokenizer, names: Vec<String>) -> usize {
    let missing: Vec<AddedToken> = names
        .into_iter()
        .filter(|t| tokenizer.token_to_id(t).is_none())
        .map(|t| AddedToken::from(t, true).normalized(false))
        .collect();
    tokenizer.add_special_tokens(&missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::models::wordlevel::WordLevel;

    fn bare_tokenizer() -> Tokenizer {
        let vocab = [("a".to_string(), 0), ("<unk>".to_string(), 1)]
            .into_iter()
            .collect();
        Tokenizer::new(
            WordLevel::builder()
                .vocab(vocab)
                .unk_token("<unk>".into())
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn missing_tokens_are_named() {
        let tok = bare_tokenizer();
        let e = SpecialTokens::lookup(&tok, &TokenizerConfig::default(), 1, "tiny/tokenizer.json")
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("<end_of_utterance>") && msg.contains("tiny/tokenizer.json"),
            "{msg}"
        );
    }

    #[test]
    fn llava_tokens_default_to_llama_names() {
        let mut tok = bare_tokenizer();
        assert_eq!(add_llava_tokens(&mut tok), 4);
        let ids = SpecialTokens::lookup_llava(&tok, &TokenizerConfig::default(), IMAGE_TOKEN, "t")
            .unwrap();
        assert_eq!(ids.eos, tok.token_to_id(LLAVA_EOS).unwrap());
        assert_eq!((ids.end_of_utterance, ids.pad), (ids.eos, ids.eos));
        assert_eq!((ids.fake_image, ids.grid_side()), (None, 0));
        let e = SpecialTokens::lookup_llava(&tok, &TokenizerConfig::default(), "<img>", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("<img>"), "{e}");
    }

    #[test]
    fn added_tokens_make_lookup_succeed() {
        let mut tok = bare_tokenizer();
        assert_eq!(add_smolvlm_tokens(&mut tok), 6 + 36);
        assert_eq!(add_smolvlm_tokens(&mut tok), 0);
        let ids = SpecialTokens::lookup(&tok, &TokenizerConfig::smolvlm(), 4, "tiny").unwrap();
        assert_eq!(ids.eos, ids.end_of_utterance);
        assert_eq!(ids.pad, tok.token_to_id("<|im_end|>").unwrap());
        assert_eq!(ids.row_col(4, 4), tok.token_to_id("<row_4_col_4>"));
        assert_eq!(ids.row_col(5, 1), None);
        let enc = tok.encode("a<image><row_2_col_3>", false).unwrap();
        assert_eq!(enc.get_ids(), &[0, ids.image, ids.row_col(2, 3).unwrap()]);
    }

    #[test]
    fn qwen2_vl_turns_end_with_im_end_and_need_the_vision_boundaries() {
        let mut tok = bare_tokenizer();
        let names = TokenizerConfig::default();
        let e = SpecialTokens::lookup_qwen2_vl(&tok, &names, QWEN2_VL_IMAGE_TOKEN, "q")
            .unwrap_err()
            .to_string();
        assert!(e.contains(VISION_START) && e.contains("q"), "{e}");
        assert_eq!(add_qwen2_vl_tokens(&mut tok), 6);
        let ids = SpecialTokens::lookup_qwen2_vl(&tok, &names, QWEN2_VL_IMAGE_TOKEN, "q").unwrap();
        assert_eq!(ids.end_of_utterance, tok.token_to_id(IM_END).unwrap());
        assert_eq!(
            (ids.eos, ids.pad),
            (ids.end_of_utterance, ids.end_of_utterance)
        );
        assert_eq!(ids.image, tok.token_to_id(QWEN2_VL_IMAGE_TOKEN).unwrap());
    }
}
