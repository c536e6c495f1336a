//! LLaVA's image pipeline, step for step as HF's PIL `LlavaImageProcessor` /
//! `CLIPImageProcessor`: optionally pad to a square of the mean colour (original LLaVA's
//! `expand2square`), resize the shortest edge with Pillow's filter (sizes truncated as
//! `get_resize_output_image_size(default_to_square=False)` does), centre-crop (zero-padding an
//! image smaller than the crop, as `center_crop` does), then rescale and normalise into
//! channel-first `f32` planes. One frame per image.

use image::{Rgb, RgbImage};

use super::decode::ImageSource;
use super::error::Result;
use super::image_processor::{Grid, PlaneLut, ProcessedImage};
use super::llava_config::ClipImageProcessorConfig;
use super::resample::resize;

/// The CLIP image processor for one configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipImageProcessor {
    config: ClipImageProcessorConfig,
}

impl ClipImageProcessor {
    /// Validates `config`; `origin` names its file in errors.
    pub fn new(config: ClipImageProcessorConfig, origin: &str) -> Result<Self> {
        config.validate(origin)?;
        Ok(ClipImageProcessor { config })
    }

    /// The configuration.
    pub fn config(&self) -> &ClipImageProcessorConfig {
        &self.config
    }

    /// `(height, width)` of the output when it does not depend on the image.
    pub fn frame_size(&self) -> Option<(usize, usize)> {
        let c = &self.config;
        let size = if c.do_center_crop {
            c.crop_size
        } else if c.do_resize && c.size.shortest_edge.is_none() {
            c.size
        } else {
            return None;
        };
        Some((size.height? as usize, size.width? as usize))
    }

    /// Decodes `source` and preprocesses it.
    pub fn process_source(&self, source: &ImageSource) -> Result<ProcessedImage> {
        let rgb = source.load_rgb(self.config.do_convert_rgb)?;
        Ok(self.process(&rgb))
    }

    /// Preprocesses an RGB image into one normalised frame.
    pub fn process(&self, img: &RgbImage) -> ProcessedImage {
        let c = &self.config;
        let padded;
        let mut frame = img;
        if c.pads_to_square() {
            padded = pad_to_square(frame, c.pad_colour());
            frame = &padded;
        }
        let resized;
        if c.do_resize {
            let (w, h) = self.resize_size(frame.width(), frame.height());
            resized = resize(frame, w, h, c.resample);
            frame = &resized;
        }
        let cropped;
        if c.do_center_crop {
            let (h, w) = (
                c.crop_size.height.unwrap_or(1),
                c.crop_size.width.unwrap_or(1),
            );
            cropped = center_crop(frame, w, h);
            frame = &cropped;
        }
        let lut = PlaneLut::new(
            c.do_rescale.then_some(c.rescale_factor),
            c.do_normalize.then_some((c.image_mean, c.image_std)),
        );
        let mut pixel_values =
            Vec::with_capacity(3 * frame.width() as usize * frame.height() as usize);
        lut.push_planes(frame, &mut pixel_values);
        ProcessedImage {
            pixel_values,
            num_tiles: 1,
            height: frame.height() as usize,
            width: frame.width() as usize,
            grid: Grid::default(),
            grid_thw: None,
        }
    }

    /// `(width, height)` after the resize: the shortest edge set to `size.shortest_edge` and the
    /// other side truncated from `shortest_edge * long / short`, or the exact `height`×`width`.
    fn resize_size(&self, width: u32, height: u32) -> (u32, u32) {
        let size = self.config.size;
        let Some(short_target) = size.shortest_edge else {
            return (size.width.unwrap_or(width), size.height.unwrap_or(height));
        };
        let (short, long) = if width <= height {
            (width, height)
        } else {
            (height, width)
        };
        let new_long = ((short_target as u64 * long as u64) as f64 / short as f64) as u32;
        let new_long = new_long.max(1);
        if width <= height {
            (short_target, new_long)
        } else {
            (new_long, short_target)
        }
    }
}

/// HF's `pad_to_square`: the image centred (offset truncated) on a square of `colour` whose side
/// is the longer edge.
fn pad_to_square(img: &RgbImage, colour: [u8; 3]) -> RgbImage {
    let (w, h) = img.dimensions();
    if w == h {
        return img.clone();
    }
    let side = w.max(h);
    let mut out = RgbImage::from_pixel(side, side, Rgb(colour));
    let (x, y) = ((side - w) / 2, (side - h) / 2);
    image::imageops::replace(&mut out, img, x as i64, y as i64);
    out
}

/// HF's `center_crop` to `width`×`height`: offsets `(orig - crop) // 2`; where the crop is larger
/// than the image, the image is first centred on black with `ceil` padding, as HF does.
fn center_crop(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w >= width && h >= height {
        return image::imageops::crop_imm(img, (w - width) / 2, (h - height) / 2, width, height)
            .to_image();
    }
    // Python's floor division of a possibly negative difference, plus the padding's ceil.
    let start = |orig: u32, crop: u32| -> i64 {
        let top = (orig as i64 - crop as i64).div_euclid(2);
        let pad = (crop.saturating_sub(orig) as i64 + 1) / 2;
        top + pad
    };
    let (new_w, new_h) = (w.max(width), h.max(height));
    let (pad_x, pad_y) = ((new_w - w).div_ceil(2), (new_h - h).div_ceil(2));
    let mut canvas = RgbImage::new(new_w, new_h);
    image::imageops::replace(&mut canvas, img, pad_x as i64, pad_y as i64);
    let (x, y) = (start(w, width) as u32, start(h, height) as u32);
    image::imageops::crop_imm(&canvas, x, y, width, height).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::config::Size;

    fn processor(config: ClipImageProcessorConfig) -> ClipImageProcessor {
        ClipImageProcessor::new(config, "test").unwrap()
    }

    #[test]
    fn shortest_edge_sizes_truncate_like_hf() {
        let p = processor(ClipImageProcessorConfig::clip(336));
        assert_eq!(p.resize_size(640, 480), (448, 336));
        assert_eq!(p.resize_size(100, 333), (336, 1118)); // int(336 * 333 / 100) = 1118
        assert_eq!(p.resize_size(336, 336), (336, 336));
        let mut c = ClipImageProcessorConfig::clip(336);
        c.size = Size::exact(20, 30);
        assert_eq!(processor(c).resize_size(7, 9), (30, 20));
    }

    #[test]
    fn crop_is_centred_and_pads_small_images_with_black() {
        let img = RgbImage::from_fn(5, 4, |x, y| Rgb([x as u8 * 10, y as u8 * 10, 1]));
        let c = center_crop(&img, 3, 2);
        assert_eq!(c.get_pixel(0, 0).0, [10, 10, 1]); // left = (5-3)//2 = 1, top = 1
        let big = center_crop(&img, 8, 7);
        // left pad ceil(3/2) = 2, top pad ceil(3/2) = 2; start = floor(-3/2) + 2 = 0.
        assert_eq!(big.dimensions(), (8, 7));
        assert_eq!(big.get_pixel(1, 1).0, [0, 0, 0]);
        assert_eq!(big.get_pixel(2, 2).0, [0, 0, 1]);
        assert_eq!(big.get_pixel(6, 5).0, [40, 30, 1]);
    }

    #[test]
    fn padding_centres_the_image_on_the_mean_colour() {
        let img = RgbImage::from_pixel(2, 5, Rgb([9, 9, 9]));
        let sq = pad_to_square(&img, [1, 2, 3]);
        assert_eq!(sq.dimensions(), (5, 5));
        assert_eq!(sq.get_pixel(0, 0).0, [1, 2, 3]);
        assert_eq!(sq.get_pixel(1, 0).0, [9, 9, 9]); // offset (5-2)//2 = 1
        assert_eq!(sq.get_pixel(3, 0).0, [1, 2, 3]);
    }

    #[test]
    fn output_is_one_normalised_crop() {
        let mut c = ClipImageProcessorConfig::clip(4);
        c.image_mean = [0.5; 3];
        c.image_std = [0.5; 3];
        let p = processor(c);
        let out = p.process(&RgbImage::from_pixel(9, 6, Rgb([255, 0, 255])));
        assert_eq!((out.num_tiles, out.height, out.width), (1, 4, 4));
        assert_eq!(out.pixel_values.len(), 3 * 16);
        assert!(out.pixel_values[..16].iter().all(|v| *v == 1.0));
        assert!(out.pixel_values[16..32].iter().all(|v| *v == -1.0));
        assert_eq!(p.frame_size(), Some((4, 4)));
    }
}
