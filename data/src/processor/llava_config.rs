//! LLaVA's processor configuration, typed: the CLIP image processor (`CLIPImageProcessor` or
//! `LlavaImageProcessor`, preprocessor_config.json or the `image_processor` entry of a
//! transformers 5 processor_config.json) and `LlavaProcessor`'s own keys (patch size, feature
//! selection strategy, extra tokens, image token). Unknown keys are kept in `extra` and written
//! back, as for SmolVLM (see [`super::config`]). Defaults are HF's.

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::{channels, channels_out, Size};
use super::error::{ProcessorError, Result};
use super::resample::Resample;

/// OpenAI CLIP's normalisation mean (HF's `OPENAI_CLIP_MEAN`).
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's normalisation std (HF's `OPENAI_CLIP_STD`).
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// preprocessor_config.json of a CLIP image processor as LLaVA uses it: (pad to a square,)
/// resize the shortest edge, centre-crop, rescale, normalise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipImageProcessorConfig {
    pub do_convert_rgb: bool,
    pub do_resize: bool,
    /// `{"shortest_edge": n}` (aspect kept) or `{"height", "width"}`; a bare number is a
    /// shortest edge, as HF reads old configs.
    #[serde(deserialize_with = "shortest_edge_or_size")]
    pub size: Size,
    pub resample: Resample,
    pub do_center_crop: bool,
    /// `{"height", "width"}`; a bare number is a square.
    #[serde(deserialize_with = "square_or_size")]
    pub crop_size: Size,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    #[serde(deserialize_with = "channels", serialize_with = "channels_out")]
    pub image_mean: [f64; 3],
    #[serde(deserialize_with = "channels", serialize_with = "channels_out")]
    pub image_std: [f64; 3],
    /// `LlavaImageProcessor`'s pad to a square of the mean colour before resizing (original
    /// LLaVA's `expand2square`). `CLIPImageProcessor` has no such step, so it is ignored there.
    /// Written only when set (HF's default is off).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub do_pad: bool,
    /// Keys we do not interpret (`image_processor_type`, `processor_class`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for ClipImageProcessorConfig {
    /// HF's `CLIPImageProcessor` defaults (224 pixels).
    fn default() -> Self {
        ClipImageProcessorConfig {
            do_convert_rgb: true,
            do_resize: true,
            size: Size::shortest_edge(224),
            resample: Resample::Bicubic,
            do_center_crop: true,
            crop_size: Size::exact(224, 224),
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: OPENAI_CLIP_MEAN,
            image_std: OPENAI_CLIP_STD,
            do_pad: false,
            extra: Map::new(),
        }
    }
}

impl ClipImageProcessorConfig {
    /// CLIP's settings for square inputs of `side` pixels (LLaVA-1.5: 336), as a
    /// `CLIPImageProcessor`.
    pub fn clip(side: u32) -> Self {
        let mut c = ClipImageProcessorConfig {
            size: Size::shortest_edge(side),
            crop_size: Size::exact(side, side),
            ..Default::default()
        };
        c.extra
            .insert("image_processor_type".into(), "CLIPImageProcessor".into());
        c
    }

    /// As [`ClipImageProcessorConfig::clip`], as a `LlavaImageProcessor` padding every image to a
    /// square of the mean colour first (original LLaVA-1.5's `image_aspect_ratio: pad`).
    pub fn llava_padded(side: u32) -> Self {
        let mut c = Self::clip(side);
        c.do_pad = true;
        c.extra
            .insert("image_processor_type".into(), "LlavaImageProcessor".into());
        c
    }

    /// The `image_processor_type` key, if any.
    pub fn class_name(&self) -> Option<&str> {
        self.extra
            .get("image_processor_type")
            .and_then(Value::as_str)
    }

    /// Whether images are padded to a square: `do_pad` on a `LlavaImageProcessor` (or a config
    /// that names no class).
    pub fn pads_to_square(&self) -> bool {
        self.do_pad
            && self
                .class_name()
                .is_none_or(|c| c.starts_with("LlavaImageProcessor"))
    }

    /// The padding colour, as HF computes it: `int(mean * 255)` per channel (truncated).
    pub fn pad_colour(&self) -> [u8; 3] {
        self.image_mean.map(|m| (m * 255.0).clamp(0.0, 255.0) as u8)
    }

    /// Checks the values the pipeline relies on; `origin` names the file in errors.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |reason: &str| Err(ProcessorError::config(origin, reason));
        let positive = |v: Option<u32>| matches!(v, Some(n) if n > 0);
        let s = self.size;
        if self.do_resize
            && !((positive(s.shortest_edge) && s.longest_edge.is_none())
                || (positive(s.height) && positive(s.width)))
        {
            return bad("size must have a positive shortest_edge or height and width");
        }
        let c = self.crop_size;
        if self.do_center_crop && !(positive(c.height) && positive(c.width)) {
            return bad("crop_size must have a positive height and width");
        }
        if !self.rescale_factor.is_finite() {
            return bad("rescale_factor is not finite");
        }
        if self.image_std.iter().any(|s| *s == 0.0 || !s.is_finite())
            || self.image_mean.iter().any(|m| !m.is_finite())
        {
            return bad("image_mean/image_std must be finite and image_std non-zero");
        }
        Ok(())
    }
}

/// `size`: a number is `{"shortest_edge": n}`.
fn shortest_edge_or_size<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Size, D::Error> {
    size_or_number(d, Size::shortest_edge)
}

/// `crop_size`: a number is `{"height": n, "width": n}`.
fn square_or_size<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Size, D::Error> {
    size_or_number(d, |n| Size::exact(n, n))
}

fn size_or_number<'de, D: Deserializer<'de>>(
    d: D,
    from_number: fn(u32) -> Size,
) -> std::result::Result<Size, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(from_number)
            .ok_or_else(|| D::Error::custom(format!("expected a pixel count, got {n}"))),
        other => serde_json::from_value(other).map_err(D::Error::custom),
    }
}

/// `LlavaProcessor`'s keys in processor_config.json: how many `<image>` tokens stand for one
/// image (see [`LlavaProcessorConfig::image_seq_len`]) and which token that is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LlavaProcessorConfig {
    /// The vision tower's patch side (14 for CLIP-L/14).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_size: Option<u32>,
    /// `"default"` drops the CLS feature (one token fewer), `"full"` keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vision_feature_select_strategy: Option<String>,
    /// Tokens the tower adds to the patches (1 for CLIP's CLS).
    pub num_additional_image_tokens: usize,
    /// The placeholder token; `<image>` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_token: Option<String>,
    /// Keys we do not interpret (`processor_class`, a transformers 5 `image_processor`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl LlavaProcessorConfig {
    /// LLaVA-1.5's settings: CLIP patches of `patch_size`, CLS counted then dropped.
    pub fn llava_1_5(patch_size: u32) -> Self {
        LlavaProcessorConfig {
            patch_size: Some(patch_size),
            vision_feature_select_strategy: Some("default".into()),
            num_additional_image_tokens: 1,
            image_token: None,
            extra: Map::new(),
        }
    }

    /// HF's count for an image of `height`×`width` pixels after processing:
    /// `(h / patch)·(w / patch) + num_additional_image_tokens`, one fewer for the `"default"`
    /// strategy. `None` without `patch_size` or a strategy (HF cannot expand then either).
    pub fn image_seq_len(&self, height: usize, width: usize) -> Option<usize> {
        let patch = self.patch_size.filter(|p| *p > 0)? as usize;
        let strategy = self.vision_feature_select_strategy.as_deref()?;
        let count = (height / patch) * (width / patch) + self.num_additional_image_tokens;
        Some(count.saturating_sub(usize::from(strategy == "default")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_clip_config_parses_old_and_new_size_forms() {
        let json = r#"{"crop_size": 336, "size": 336, "do_center_crop": true, "resample": 3,
            "image_processor_type": "CLIPImageProcessor", "feature_extractor_type": "x"}"#;
        let c: ClipImageProcessorConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.size, Size::shortest_edge(336));
        assert_eq!(c.crop_size, Size::exact(336, 336));
        assert_eq!(c.image_mean, OPENAI_CLIP_MEAN);
        c.validate("t").unwrap();
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["size"], serde_json::json!({"shortest_edge": 336}));
        assert_eq!(back["feature_extractor_type"], "x");
        let c: ClipImageProcessorConfig =
            serde_json::from_str(r#"{"crop_size": {"height": 8, "width": 6}}"#).unwrap();
        assert_eq!(c.crop_size, Size::exact(8, 6));
    }

    #[test]
    fn padding_needs_a_llava_image_processor() {
        let mut c = ClipImageProcessorConfig::clip(336);
        c.do_pad = true;
        assert!(!c.pads_to_square());
        let c = ClipImageProcessorConfig::llava_padded(336);
        assert!(c.pads_to_square());
        assert_eq!(c.pad_colour(), [122, 116, 104]); // original LLaVA's expand2square colour
    }

    #[test]
    fn bad_sizes_are_rejected() {
        let c: ClipImageProcessorConfig =
            serde_json::from_str(r#"{"size": {"longest_edge": 3}}"#).unwrap();
        let e = c.validate("pp.json").unwrap_err().to_string();
        assert!(e.contains("pp.json") && e.contains("size"), "{e}");
        let e = serde_json::from_str::<ClipImageProcessorConfig>(r#"{"crop_size": -3}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pixel count"), "{e}");
    }

    #[test]
    fn image_seq_len_follows_processing_llava() {
        let c = LlavaProcessorConfig::llava_1_5(14);
        assert_eq!(c.image_seq_len(336, 336), Some(576));
        let full = LlavaProcessorConfig {
            vision_feature_select_strategy: Some("full".into()),
            ..c.clone()
        };
        assert_eq!(full.image_seq_len(28, 28), Some(5));
        assert_eq!(
            LlavaProcessorConfig::default().image_seq_len(336, 336),
            None
        );
    }
}
