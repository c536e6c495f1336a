//! The image a plan assumes, for a family that takes images at their own resolution (Qwen2-VL):
//! the patch grid its image processor resizes an image of the given size to, so the tower's
//! positions and the language model's image tokens follow the real image. The processor is the
//! model folder's (`preprocessor_config.json`; HF's defaults for a folder of config.json only)
//! or the preset's (pinned to the synthetic image size). Without a size, the plan takes the
//! synthetic world's images when the recipe trains on them, else
//! [`PLAN_IMAGE_SIDE`](safeaware_model::qwen2_vl::architecture::PLAN_IMAGE_SIDE) pixels square.

use anyhow::{anyhow, Context, Result};
use safeaware_data::processor::{load_qwen2_vl_image_processor, ImageProcessor};
use safeaware_model::qwen2_vl::architecture::PLAN_IMAGE_SIDE;
use safeaware_model::ModelConfig;

use crate::preset;
use crate::recipe::Recipe;

/// An image size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSize {
    pub height: u32,
    pub width: u32,
}

impl ImageSize {
    /// The size a plan assumes without one given (module documentation).
    pub fn default_for(recipe: &Recipe) -> ImageSize {
        let side = match recipe.data.synthetic.enabled {
            true => recipe.data.synthetic.settings.image_size,
            false => PLAN_IMAGE_SIDE as u32,
        };
        ImageSize {
            height: side,
            width: side,
        }
    }
}

impl std::str::FromStr for ImageSize {
    type Err = String;

    /// `WIDTHxHEIGHT` (`1280x720`) or one side of a square (`448`).
    fn from_str(text: &str) -> Result<Self, String> {
        let side = |s: &str| match s.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "`{text}`: expected WIDTHxHEIGHT in pixels, e.g. 1280x720, or one side"
            )),
        };
        match text.split_once(['x', 'X']) {
            Some((w, h)) => Ok(ImageSize {
                width: side(w)?,
                height: side(h)?,
            }),
            None => side(text).map(|n| ImageSize {
                width: n,
                height: n,
            }),
        }
    }
}

/// The patch grid `[rows, columns]` of `image` in the recipe's model, for families that take
/// images at their own resolution; `None` for the others (their shape is fixed).
pub fn plan_grid(
    recipe: &Recipe,
    config: &ModelConfig,
    image: ImageSize,
) -> Result<Option<[usize; 2]>> {
    if !matches!(config, ModelConfig::Qwen2Vl(_)) {
        return Ok(None);
    }
    let processor = match (&recipe.model.path, recipe.model.preset.as_deref()) {
        (Some(path), _) => load_qwen2_vl_image_processor(path)
            .with_context(|| format!("reading the image processor of {}", path.display()))?,
        (None, Some(name)) => {
            match preset::build(name, recipe.data.synthetic.settings.image_size)?
                .processor
                .image_processor()
            {
                ImageProcessor::Qwen2Vl(p) => p.clone(),
                _ => return Err(anyhow!("preset {name} has no Qwen2-VL image processor")),
            }
        }
        (None, None) => {
            return Err(anyhow!(
                "the recipe sets neither model.path nor model.preset"
            ))
        }
    };
    let grid = processor
        .patch_grid(image.height, image.width)
        .ok_or_else(|| {
            anyhow!(
                "a {}x{} image is beyond the processor's aspect-ratio limit of 200",
                image.width,
                image.height
            )
        })?;
    Ok(Some(grid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_width_by_height_or_one_side() {
        let size = |h, w| ImageSize {
            height: h,
            width: w,
        };
        assert_eq!("1280x720".parse(), Ok(size(720, 1280)));
        assert_eq!("448".parse(), Ok(size(448, 448)));
        assert!("0x5".parse::<ImageSize>().is_err());
        assert!("wide".parse::<ImageSize>().is_err());
    }

    #[test]
    fn the_qwen_grid_follows_the_image_and_other_families_have_none() {
        let mut recipe = Recipe::default();
        recipe.model.preset = Some("tiny-qwen2vl".into());
        let config = preset::build("tiny-qwen2vl", 64).unwrap().config;
        let at = |side: u32| {
            let image = ImageSize {
                height: side,
                width: side,
            };
            plan_grid(&recipe, &config, image).unwrap()
        };
        // The preset's processor resizes every image to the synthetic 64 × 64 pixels.
        assert_eq!(at(64), Some([8, 8]));
        assert_eq!(at(640), Some([8, 8]));
        assert_eq!(config.tokens_per_image_at(at(64)), 16);
        recipe.model.preset = Some("tiny".into());
        let tiny = preset::build("tiny", 64).unwrap().config;
        assert_eq!(
            plan_grid(&recipe, &tiny, ImageSize::default_for(&recipe)).unwrap(),
            None
        );
    }

    #[test]
    fn a_config_only_folder_plans_with_hf_default_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let preset = preset::build("tiny-qwen2vl", 64).unwrap();
        preset.config.save(&dir.path().join("config.json")).unwrap();
        let mut recipe = Recipe::default();
        recipe.model.path = Some(dir.path().to_path_buf());
        let grid = |width, height| {
            plan_grid(&recipe, &preset.config, ImageSize { height, width }).unwrap()
        };
        // HF's default processor: 14-px patches merged 2×2, 56² to 28²·1280 pixels.
        assert_eq!(grid(448, 448), Some([32, 32]));
        let big = grid(4000, 3000).unwrap();
        assert_eq!(big, [60, 82]);
        assert!(big[0] * big[1] * 14 * 14 <= 28 * 28 * 1280, "{big:?}");
    }
}
