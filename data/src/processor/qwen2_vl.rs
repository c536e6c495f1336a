//! Qwen2-VL's image pipeline, step for step as HF's PIL `Qwen2VLImageProcessor` (Qwen2.5-VL uses
//! the same): `smart_resize` to a multiple of `patch_size·merge_size` within the pixel bounds
//! (Python's round-half-to-even), Pillow's bicubic, rescale and normalise, then patches. A still
//! image is one temporal patch (`grid_t = 1`) whose `temporal_patch_size` frames are copies.
//!
//! Patch order is HF's: merge windows row-major, the `merge_size`² patches of each window
//! row-major, and within a patch the values `[channel, frame, row, column]`. The output is
//! `grid_h·grid_w` frames of `3 × (temporal_patch_size·patch_size) × patch_size` values, so a
//! batch's pixels stay `[N, 3, H, W]` like the other families' (`N` patches here); the model
//! reads each frame as one flattened `C·T·P·P` patch, which is the same memory.

use image::RgbImage;

use super::decode::ImageSource;
use super::error::{ProcessorError, Result};
use super::image_processor::{Grid, PlaneLut, ProcessedImage};
use super::qwen2_vl_config::Qwen2VlImageProcessorConfig;
use super::resample::resize;

/// The Qwen2-VL image processor for one configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Qwen2VlImageProcessor {
    config: Qwen2VlImageProcessorConfig,
}

/// HF's `smart_resize`: `(height, width)` rounded to multiples of `factor` with the pixel count
/// brought within `min_pixels..=max_pixels`, aspect kept as closely as possible. `None` when
/// the aspect ratio exceeds 200 (HF raises then).
pub fn smart_resize(
    height: u32,
    width: u32,
    factor: u32,
    min_pixels: u64,
    max_pixels: u64,
) -> Option<(u32, u32)> {
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    if height == 0 || width == 0 || h.max(w) / h.min(w) > 200.0 {
        return None;
    }
    let mut h_bar = (h / f).round_ties_even() * f;
    let mut w_bar = (w / f).round_ties_even() * f;
    if h_bar * w_bar > max_pixels as f64 {
        let beta = ((h * w) / max_pixels as f64).sqrt();
        h_bar = f.max((h / beta / f).floor() * f);
        w_bar = f.max((w / beta / f).floor() * f);
    } else if h_bar * w_bar < min_pixels as f64 {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    Some((h_bar as u32, w_bar as u32))
}

impl Qwen2VlImageProcessor {
    /// Validates `config`; `origin` names its file in errors.
    pub fn new(config: Qwen2VlImageProcessorConfig, origin: &str) -> Result<Self> {
        config.validate(origin)?;
        Ok(Qwen2VlImageProcessor { config })
    }

    /// The configuration.
    pub fn config(&self) -> &Qwen2VlImageProcessorConfig {
        &self.config
    }

    /// The patch grid `[rows, columns]` an image of `height × width` pixels becomes
    /// ([`smart_resize`] with this configuration's bounds); `None` past HF's aspect limit.
    pub fn patch_grid(&self, height: u32, width: u32) -> Option<[usize; 2]> {
        let c = &self.config;
        let (min, max) = c.pixel_bounds();
        let (h, w) = smart_resize(height, width, c.factor(), min, max)?;
        let p = c.patch_size as usize;
        Some([h as usize / p, w as usize / p])
    }

    /// `(height, width)` of each output frame (one patch with its frames stacked).
    pub fn frame_size(&self) -> (usize, usize) {
        let c = &self.config;
        let p = c.patch_size as usize;
        (c.temporal_patch_size as usize * p, p)
    }

    /// Decodes `source` and preprocesses it.
    pub fn process_source(&self, source: &ImageSource) -> Result<ProcessedImage> {
        let rgb = source.load_rgb(self.config.do_convert_rgb)?;
        self.process(&rgb, &source.name())
    }

    /// `(width, height)` the image is resized to; an error for an aspect ratio over 200 or a
    /// size that is not a multiple of the factor without resizing.
    fn target_size(&self, width: u32, height: u32) -> std::result::Result<(u32, u32), String> {
        let c = &self.config;
        let factor = c.factor();
        if !c.do_resize {
            if !width.is_multiple_of(factor) || !height.is_multiple_of(factor) {
                return Err(format!(
                    "{width}x{height} pixels is not a multiple of {factor} (patch_size x merge_size) and do_resize is off"
                ));
            }
            return Ok((width, height));
        }
        let (min, max) = c.pixel_bounds();
        let (h, w) = smart_resize(height, width, factor, min, max).ok_or_else(|| {
            format!("{width}x{height} pixels: the aspect ratio must be at most 200")
        })?;
        Ok((w, h))
    }

    /// Preprocesses an RGB image into its patches; an image that cannot be is an error naming
    /// it as `name`.
    pub fn process(&self, img: &RgbImage, name: &str) -> Result<ProcessedImage> {
        let c = &self.config;
        let (w, h) = self
            .target_size(img.width(), img.height())
            .map_err(|reason| ProcessorError::Image {
                name: name.to_string(),
                reason,
            })?;
        let resized;
        let mut frame = img;
        if (w, h) != frame.dimensions() {
            resized = resize(frame, w, h, c.resample);
            frame = &resized;
        }
        let lut = PlaneLut::new(
            c.do_rescale.then_some(c.rescale_factor),
            c.do_normalize.then_some((c.image_mean, c.image_std)),
        );
        let mut planes = Vec::with_capacity(3 * (w * h) as usize);
        lut.push_planes(frame, &mut planes);
        let (p, m) = (c.patch_size as usize, c.merge_size as usize);
        let (grid_h, grid_w) = (h as usize / p, w as usize / p);
        let pixel_values = patchify(
            &planes,
            [grid_h, grid_w],
            p,
            m,
            c.temporal_patch_size as usize,
        );
        let (height, width) = self.frame_size();
        Ok(ProcessedImage {
            pixel_values,
            num_tiles: grid_h * grid_w,
            height,
            width,
            grid: Grid::default(),
            grid_thw: Some([1, grid_h, grid_w]),
        })
    }
}

/// HF's `patchify` of channel planes `[3, grid_h·p, grid_w·p]`: rows ordered by merge window,
/// then by patch within the window; each row `[channel, frame, y, x]` with the frame repeated.
fn patchify(
    planes: &[f32],
    [grid_h, grid_w]: [usize; 2],
    p: usize,
    m: usize,
    t: usize,
) -> Vec<f32> {
    let (height, width) = (grid_h * p, grid_w * p);
    let mut out = Vec::with_capacity(grid_h * grid_w * 3 * t * p * p);
    for bh in 0..grid_h / m {
        for bw in 0..grid_w / m {
            for mh in 0..m {
                for mw in 0..m {
                    let (y0, x0) = ((bh * m + mh) * p, (bw * m + mw) * p);
                    for ch in 0..3 {
                        let plane = &planes[ch * height * width..(ch + 1) * height * width];
                        for _ in 0..t {
                            for y in y0..y0 + p {
                                out.extend_from_slice(&plane[y * width + x0..y * width + x0 + p]);
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_resize_matches_hf_examples() {
        // Rounded to multiples of 28, half to even: 42/28 = 1.5 -> 2, 70/28 = 2.5 -> 2.
        assert_eq!(smart_resize(42, 70, 28, 1, 1 << 30), Some((56, 56)));
        // Too many pixels: scaled down by sqrt(h·w / max), floored to the factor.
        assert_eq!(
            smart_resize(1000, 2000, 28, 3136, 200_000),
            Some((308, 616))
        );
        // Too few: scaled up, ceiled.
        assert_eq!(smart_resize(10, 20, 28, 3136, 1 << 30), Some((56, 84)));
        assert_eq!(smart_resize(1, 201, 28, 1, 1 << 30), None);
        assert_eq!(smart_resize(0, 5, 28, 1, 100), None);
    }

    #[test]
    fn patches_follow_merge_windows_and_repeat_frames() {
        let mut c = Qwen2VlImageProcessorConfig::with_bounds(16, 1 << 20);
        c.patch_size = 2;
        c.merge_size = 2;
        c.do_normalize = false;
        c.do_rescale = false;
        let p = Qwen2VlImageProcessor::new(c, "t").unwrap();
        // 4x8 pixels: grid 2x4 patches of 2x2, two merge windows side by side.
        let img = RgbImage::from_fn(8, 4, |x, y| image::Rgb([(y * 8 + x) as u8, 0, 7]));
        let out = p.process(&img, "t").unwrap();
        assert_eq!(out.grid_thw, Some([1, 2, 4]));
        assert_eq!((out.num_tiles, out.height, out.width), (8, 4, 2));
        let row = 3 * 2 * 2 * 2;
        assert_eq!(out.pixel_values.len(), 8 * row);
        // Row 1 = window (0,0), patch (0,1): pixels x 2..4, y 0..2; red frame twice.
        assert_eq!(
            &out.pixel_values[row..row + 8],
            &[2., 3., 10., 11., 2., 3., 10., 11.]
        );
        // Row 4 = window (0,1), patch (0,0): x 4..6.
        assert_eq!(&out.pixel_values[4 * row..4 * row + 4], &[4., 5., 12., 13.]);
        assert!(out.pixel_values[row + 16..row + 24]
            .iter()
            .all(|v| *v == 7.0));
    }
}
