//! Qwen2-VL's processor configuration, typed: the image processor (`Qwen2VLImageProcessor`,
//! preprocessor_config.json or a transformers 5 processor_config.json's `image_processor`; also
//! Qwen2.5-VL's) and the processor's own keys. The pixel bounds come, as in HF's `__init__`,
//! from `min_pixels` / `max_pixels` when present, else from `size.shortest_edge` /
//! `size.longest_edge`. Unknown keys are kept in `extra` and written back. Defaults are HF's.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::{channels, channels_out, Size};
use super::error::{ProcessorError, Result};
use super::llava_config::{OPENAI_CLIP_MEAN, OPENAI_CLIP_STD};
use super::resample::Resample;

/// Qwen2-VL's image placeholder, one per merged patch.
pub const QWEN2_VL_IMAGE_TOKEN: &str = "<|image_pad|>";
/// The token the template writes before an image's placeholders.
pub const VISION_START: &str = "<|vision_start|>";
/// The token the template writes after an image's placeholders.
pub const VISION_END: &str = "<|vision_end|>";
/// The end of a Qwen chat turn (ChatML).
pub const IM_END: &str = "<|im_end|>";

/// preprocessor_config.json of a Qwen2-VL image processor: resize to a multiple of
/// `patch_size·merge_size` within the pixel bounds, rescale, normalise, cut into patches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Qwen2VlImageProcessorConfig {
    pub do_convert_rgb: bool,
    pub do_resize: bool,
    /// `{"shortest_edge": min_pixels, "longest_edge": max_pixels}` (pixel counts, not edges).
    pub size: Size,
    /// Overrides `size.shortest_edge` when present (the hub's older key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_pixels: Option<u64>,
    /// Overrides `size.longest_edge` when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pixels: Option<u64>,
    pub resample: Resample,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    #[serde(deserialize_with = "channels", serialize_with = "channels_out")]
    pub image_mean: [f64; 3],
    #[serde(deserialize_with = "channels", serialize_with = "channels_out")]
    pub image_std: [f64; 3],
    /// The vision tower's spatial patch side (14).
    pub patch_size: u32,
    /// Frames per temporal patch (2): a still image is repeated this many times.
    pub temporal_patch_size: u32,
    /// Patches merged per side into one language-model token (2).
    pub merge_size: u32,
    /// Keys we do not interpret (`image_processor_type`, `processor_class`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for Qwen2VlImageProcessorConfig {
    /// HF's `Qwen2VLImageProcessor` defaults.
    fn default() -> Self {
        Qwen2VlImageProcessorConfig {
            do_convert_rgb: true,
            do_resize: true,
            size: Size {
                shortest_edge: Some(56 * 56),
                longest_edge: Some(28 * 28 * 1280),
                ..Size::default()
            },
            min_pixels: None,
            max_pixels: None,
            resample: Resample::Bicubic,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: OPENAI_CLIP_MEAN,
            image_std: OPENAI_CLIP_STD,
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            extra: Map::new(),
        }
    }
}

impl Qwen2VlImageProcessorConfig {
    /// HF's defaults with the pixel bounds `min_pixels..=max_pixels`, as a
    /// `Qwen2VLImageProcessor` (the trainer's synthetic presets use small bounds).
    pub fn with_bounds(min_pixels: u32, max_pixels: u32) -> Self {
        let mut c = Qwen2VlImageProcessorConfig {
            size: Size {
                shortest_edge: Some(min_pixels),
                longest_edge: Some(max_pixels),
                ..Size::default()
            },
            ..Default::default()
        };
        c.extra.insert(
            "image_processor_type".into(),
            "Qwen2VLImageProcessor".into(),
        );
        c
    }

    /// `(min_pixels, max_pixels)`: the explicit keys, else `size`'s edges.
    pub fn pixel_bounds(&self) -> (u64, u64) {
        let min = self.min_pixels.or(self.size.shortest_edge.map(u64::from));
        let max = self.max_pixels.or(self.size.longest_edge.map(u64::from));
        (min.unwrap_or(0), max.unwrap_or(0))
    }

    /// The side every resized image is a multiple of: `patch_size·merge_size`.
    pub fn factor(&self) -> u32 {
        self.patch_size * self.merge_size
    }

    /// Checks the values the pipeline relies on; `origin` names the file in errors.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |reason: &str| Err(ProcessorError::config(origin, reason));
        if self.patch_size == 0 || self.temporal_patch_size == 0 || self.merge_size == 0 {
            return bad("patch_size, temporal_patch_size and merge_size must be positive");
        }
        let (min, max) = self.pixel_bounds();
        if self.do_resize && (min == 0 || max < min) {
            return bad("the pixel bounds need 0 < min_pixels <= max_pixels (size.shortest_edge / size.longest_edge)");
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

/// processor_config.json of `Qwen2VLProcessor`: the image token (`<|image_pad|>` when absent)
/// and keys kept as they are.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Qwen2VlProcessorConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_token: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Qwen2VlProcessorConfig {
    /// The placeholder token.
    pub fn image_token(&self) -> &str {
        self.image_token.as_deref().unwrap_or(QWEN2_VL_IMAGE_TOKEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_pixel_keys_win_over_size() {
        let hub = r#"{"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14,
            "temporal_patch_size": 2, "merge_size": 2, "image_processor_type": "Qwen2VLImageProcessor"}"#;
        let c: Qwen2VlImageProcessorConfig = serde_json::from_str(hub).unwrap();
        assert_eq!(c.pixel_bounds(), (3136, 12845056));
        assert_eq!(c.factor(), 28);
        c.validate("pp").unwrap();
        let v5 = r#"{"size": {"shortest_edge": 100, "longest_edge": 5000}, "max_pixels": 4000}"#;
        let c: Qwen2VlImageProcessorConfig = serde_json::from_str(v5).unwrap();
        assert_eq!(c.pixel_bounds(), (100, 4000));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["max_pixels"], 4000);
        assert!(back.get("min_pixels").is_none());
    }

    #[test]
    fn bad_bounds_and_sizes_are_rejected() {
        let mut c = Qwen2VlImageProcessorConfig::with_bounds(500, 100);
        let e = c.validate("dir/pp.json").unwrap_err().to_string();
        assert!(e.contains("dir/pp.json") && e.contains("min_pixels"), "{e}");
        c = Qwen2VlImageProcessorConfig::with_bounds(100, 500);
        c.merge_size = 0;
        let e = c.validate("x").unwrap_err().to_string();
        assert!(e.contains("merge_size"), "{e}");
    }
}
