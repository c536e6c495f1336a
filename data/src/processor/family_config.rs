//! The family-specific half of a processor: how many tokens stand for an image and what text
//! replaces each placeholder. SmolVLM's processor_config.json gives `image_seq_len` tokens per
//! tile (tile grid markup around them); LLaVA's gives the vision tower's patch size and feature
//! strategy (or config.json's `image_seq_length`), and the placeholder is simply repeated;
//! Qwen2-VL repeats `<|image_pad|>` once per merged patch of the image's `image_grid_thw`.

use super::config::ProcessorConfig;
use super::error::{ProcessorError, Result};
use super::expand::{image_prompt, llava_image_prompt};
use super::family::Family;
use super::image_processor::ProcessedImage;
use super::llava_config::LlavaProcessorConfig;
use super::qwen2_vl_config::Qwen2VlProcessorConfig;
use super::tokens::IMAGE_TOKEN;

/// processor_config.json of either family, with what a LLaVA folder's config.json adds.
#[derive(Debug, Clone, PartialEq)]
pub enum FamilyConfig {
    /// SmolVLM/Idefics3.
    Idefics3(ProcessorConfig),
    /// LLaVA: the processor's keys, and config.json's `image_seq_length` used when they cannot
    /// give the count (no `patch_size` or strategy).
    Llava {
        config: LlavaProcessorConfig,
        image_seq_length: Option<usize>,
    },
    /// Qwen2-VL / Qwen2.5-VL: the processor's keys and the image processor's `merge_size`.
    Qwen2Vl {
        config: Qwen2VlProcessorConfig,
        merge_size: usize,
    },
}

impl FamilyConfig {
    /// The family.
    pub fn family(&self) -> Family {
        match self {
            FamilyConfig::Idefics3(_) => Family::Idefics3,
            FamilyConfig::Llava { .. } => Family::Llava,
            FamilyConfig::Qwen2Vl { .. } => Family::Qwen2Vl,
        }
    }

    /// SmolVLM's processor_config.json, if this is SmolVLM's.
    pub fn as_idefics3(&self) -> Option<&ProcessorConfig> {
        match self {
            FamilyConfig::Idefics3(c) => Some(c),
            _ => None,
        }
    }

    /// LLaVA's processor keys, if this is LLaVA's.
    pub fn as_llava(&self) -> Option<&LlavaProcessorConfig> {
        match self {
            FamilyConfig::Llava { config, .. } => Some(config),
            _ => None,
        }
    }

    /// The placeholder the chat template writes for an image.
    pub fn placeholder(&self) -> &str {
        match self {
            FamilyConfig::Idefics3(_) => IMAGE_TOKEN,
            FamilyConfig::Llava { config, .. } => {
                config.image_token.as_deref().unwrap_or(IMAGE_TOKEN)
            }
            FamilyConfig::Qwen2Vl { config, .. } => config.image_token(),
        }
    }

    /// Image tokens per tile (SmolVLM) or per image of `height`×`width` processed pixels (LLaVA);
    /// `None` when the configuration cannot tell, and for Qwen2-VL, whose count follows each
    /// image's size (see [`FamilyConfig::image_text`]).
    pub fn seq_len(&self, height: usize, width: usize) -> Option<usize> {
        match self {
            FamilyConfig::Idefics3(c) => Some(c.image_seq_len),
            FamilyConfig::Llava {
                config,
                image_seq_length,
            } => config.image_seq_len(height, width).or(*image_seq_length),
            FamilyConfig::Qwen2Vl { .. } => None,
        }
    }

    /// The text replacing the placeholder of one processed image.
    pub fn image_text(&self, image: &ProcessedImage, origin: &str) -> Result<String> {
        if let FamilyConfig::Qwen2Vl { merge_size, .. } = self {
            let [t, h, w] = image.grid_thw.unwrap_or_default();
            let count = t * h * w / (merge_size * merge_size).max(1);
            return Ok(llava_image_prompt(self.placeholder(), count));
        }
        let count = self
            .seq_len(image.height, image.width)
            .filter(|n| *n > 0)
            .ok_or_else(|| no_count(origin))?;
        Ok(match self {
            FamilyConfig::Idefics3(_) => image_prompt(image.grid, count),
            _ => llava_image_prompt(self.placeholder(), count),
        })
    }
}

/// The error for a LLaVA configuration that gives no token count.
pub(crate) fn no_count(origin: &str) -> ProcessorError {
    ProcessorError::config(
        origin,
        "cannot tell how many image tokens an image takes: processor_config.json needs \
         patch_size and vision_feature_select_strategy (or config.json image_seq_length), \
         and the count must be positive",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::Grid;

    fn image(height: usize, width: usize) -> ProcessedImage {
        ProcessedImage {
            pixel_values: Vec::new(),
            num_tiles: 1,
            height,
            width,
            grid: Grid::default(),
            grid_thw: None,
        }
    }

    #[test]
    fn llava_counts_from_patches_then_from_the_model_config() {
        let mut c = FamilyConfig::Llava {
            config: LlavaProcessorConfig::llava_1_5(14),
            image_seq_length: Some(7),
        };
        assert_eq!(c.seq_len(336, 336), Some(576));
        assert_eq!(
            c.image_text(&image(28, 28), "o").unwrap(),
            "<image>".repeat(4)
        );
        if let FamilyConfig::Llava { config, .. } = &mut c {
            config.patch_size = None;
            config.image_token = Some("<img>".into());
        }
        assert_eq!(
            c.image_text(&image(28, 28), "o").unwrap(),
            "<img>".repeat(7)
        );
        let none = FamilyConfig::Llava {
            config: LlavaProcessorConfig::default(),
            image_seq_length: None,
        };
        let e = none
            .image_text(&image(28, 28), "dir")
            .unwrap_err()
            .to_string();
        assert!(e.contains("patch_size") && e.contains("dir"), "{e}");
    }
}
