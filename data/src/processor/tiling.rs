//! The Idefics3/SmolVLM image pipeline (tiling), step for step as HF's PIL image processor: resize the
//! longest edge, round both sides up to multiples of the tile size, cut row-major tiles and add
//! a squashed global view (or, without splitting, squash the whole image to one tile), then
//! rescale and normalise into channel-first `f32` planes.
//!
//! The size arithmetic deliberately uses the same float divisions and truncations as the Python
//! code, so grids and resize targets agree to the pixel.

use image::RgbImage;

use super::config::ImageProcessorConfig;
use super::decode::ImageSource;
use super::error::Result;
use super::image_processor::{Grid, PlaneLut, ProcessedImage};
use super::resample::resize;

/// Pillow's hard cap on any side after the first resize (HF's `MAX_IMAGE_SIZE`).
const MAX_IMAGE_SIDE: u32 = 4096;

/// The Idefics3 image processor for one preprocessor_config.json.
#[derive(Debug, Clone, PartialEq)]
pub struct Idefics3ImageProcessor {
    config: ImageProcessorConfig,
}

impl Idefics3ImageProcessor {
    /// Validates `config`; `origin` names its file in errors.
    pub fn new(config: ImageProcessorConfig, origin: &str) -> Result<Self> {
        config.validate(origin)?;
        Ok(Idefics3ImageProcessor { config })
    }

    /// The configuration.
    pub fn config(&self) -> &ImageProcessorConfig {
        &self.config
    }

    /// Side of every tile (`max_image_size.longest_edge`).
    pub fn tile_size(&self) -> usize {
        self.config.tile_size() as usize
    }

    /// Decodes `source` and preprocesses it.
    pub fn process_source(&self, source: &ImageSource) -> Result<ProcessedImage> {
        let rgb = source.load_rgb(self.config.do_convert_rgb)?;
        Ok(self.process(&rgb))
    }

    /// The tile grid an image of `width`×`height` gets, without touching pixels.
    pub fn grid_for(&self, width: u32, height: u32) -> Grid {
        let (w, h) = self.first_resize_size(width, height);
        if !self.config.do_image_splitting {
            return Grid::default();
        }
        let (w, h) = self.vision_encoder_size(w, h);
        split_grid(w, h, self.config.tile_size())
    }

    /// Preprocesses an RGB image into normalised tiles.
    pub fn process(&self, img: &RgbImage) -> ProcessedImage {
        let c = &self.config;
        let tile = c.tile_size();
        let (w, h) = self.first_resize_size(img.width(), img.height());
        let resized = resize(img, w, h, c.resample);
        let (frames, grid) = if c.do_image_splitting {
            let (w, h) = self.vision_encoder_size(w, h);
            let resized = resize(&resized, w, h, c.resample);
            let grid = split_grid(w, h, tile);
            let mut frames = Vec::with_capacity(grid.num_tiles());
            for r in 0..grid.rows as u32 {
                for col in 0..grid.cols as u32 {
                    frames.push(
                        image::imageops::crop_imm(&resized, col * tile, r * tile, tile, tile)
                            .to_image(),
                    );
                }
            }
            frames.push(resize(&resized, tile, tile, c.resample));
            (frames, grid)
        } else {
            (
                vec![resize(&resized, tile, tile, c.resample)],
                Grid::default(),
            )
        };
        let tile = tile as usize;
        let mut pixel_values = Vec::with_capacity(frames.len() * 3 * tile * tile);
        let lut = PlaneLut::new(
            c.do_rescale.then_some(c.rescale_factor),
            c.do_normalize.then_some((c.image_mean, c.image_std)),
        );
        for frame in &frames {
            lut.push_planes(frame, &mut pixel_values);
        }
        ProcessedImage {
            num_tiles: frames.len(),
            pixel_values,
            height: tile,
            width: tile,
            grid,
            grid_thw: None,
        }
    }

    /// HF's `resize` with `size`: the longest edge scaled to `size.longest_edge` (the other side
    /// truncated then made even), capped at 4096; or the exact `height`×`width`.
    fn first_resize_size(&self, width: u32, height: u32) -> (u32, u32) {
        let c = &self.config;
        if !c.do_resize {
            return (width, height);
        }
        if let Some(max_len) = c.size.longest_edge {
            let (w, h) = rescale_to_max_len(width, height, max_len);
            scale_below_upper_bound(w, h, MAX_IMAGE_SIDE)
        } else {
            (
                c.size.width.unwrap_or(width),
                c.size.height.unwrap_or(height),
            )
        }
    }

    /// HF's `resize_for_vision_encoder`: both sides rounded up to multiples of the tile size,
    /// the shorter one derived from the aspect ratio. Never below one tile (HF would fail there).
    fn vision_encoder_size(&self, width: u32, height: u32) -> (u32, u32) {
        let m = self.config.tile_size() as f64;
        let round_up = |v: f64| (((v / m).ceil() * m) as u32).max(m as u32);
        let aspect = width as f64 / height as f64;
        if width >= height {
            let w = round_up(width as f64);
            let h = round_up(((w as f64 / aspect) as u64) as f64);
            (w, h)
        } else {
            let h = round_up(height as f64);
            let w = round_up(((h as f64 * aspect) as u64) as f64);
            (w, h)
        }
    }
}

/// Tiles of an image already sized to multiples of `tile`: `0`×`0` when it fits in one tile.
fn split_grid(width: u32, height: u32, tile: u32) -> Grid {
    if height > tile || width > tile {
        Grid {
            rows: ((height - tile) / tile + 1) as usize,
            cols: ((width - tile) / tile + 1) as usize,
        }
    } else {
        Grid::default()
    }
}

/// HF's `_resize_output_size_rescale_to_max_len` (min_len 1).
fn rescale_to_max_len(width: u32, height: u32, max_len: u32) -> (u32, u32) {
    let aspect = width as f64 / height as f64;
    let (mut w, mut h);
    if width >= height {
        w = max_len;
        h = (w as f64 / aspect) as u32;
        if h % 2 != 0 {
            h += 1;
        }
    } else {
        h = max_len;
        w = (h as f64 * aspect) as u32;
        if w % 2 != 0 {
            w += 1;
        }
    }
    (w.max(1), h.max(1))
}

/// HF's `_resize_output_size_scale_below_upper_bound`.
fn scale_below_upper_bound(width: u32, height: u32, max_len: u32) -> (u32, u32) {
    let aspect = width as f64 / height as f64;
    let (w, h) = if width >= height && width > max_len {
        (max_len, (max_len as f64 / aspect) as u32)
    } else if height > width && height > max_len {
        ((max_len as f64 * aspect) as u32, max_len)
    } else {
        (width, height)
    };
    (w.max(1), h.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processor(tile: u32, longest: u32, split: bool) -> Idefics3ImageProcessor {
        let mut c = ImageProcessorConfig::smolvlm(tile, longest);
        c.do_image_splitting = split;
        Idefics3ImageProcessor::new(c, "test").unwrap()
    }

    #[test]
    fn sizes_follow_hf_arithmetic() {
        // 20x30 -> 128x192 (int(192*2/3)=128); 400x40 -> 192x19 -> made even 20.
        assert_eq!(rescale_to_max_len(20, 30, 192), (128, 192));
        assert_eq!(rescale_to_max_len(400, 40, 192), (192, 20));
        assert_eq!(scale_below_upper_bound(5000, 100, 4096), (4096, 81));
        let p = processor(64, 192, true);
        assert_eq!(p.vision_encoder_size(192, 20), (192, 64));
        assert_eq!(p.grid_for(400, 40), Grid { rows: 1, cols: 3 });
        assert_eq!(p.grid_for(300, 220), Grid { rows: 3, cols: 3 });
        assert_eq!(p.grid_for(20, 30), Grid { rows: 3, cols: 2 });
        assert_eq!(
            processor(64, 192, false).grid_for(300, 220),
            Grid::default()
        );
    }

    #[test]
    fn tiles_are_crops_in_row_major_order_then_the_global_view() {
        // 128x64 at tile 64 and longest edge 128: no resize, two tiles + global.
        let img = RgbImage::from_fn(128, 64, |x, _| {
            image::Rgb([if x < 64 { 0 } else { 255 }, 0, 0])
        });
        let out = processor(64, 128, true).process(&img);
        assert_eq!(
            (out.grid, out.num_tiles, out.width),
            (Grid { rows: 1, cols: 2 }, 3, 64)
        );
        let plane = 64 * 64;
        assert_eq!(out.pixel_values.len(), 3 * 3 * plane);
        assert!(out.pixel_values[..plane].iter().all(|v| *v == -1.0)); // tile 1, red = 0
        assert!(out.pixel_values[3 * plane..4 * plane]
            .iter()
            .all(|v| *v == 1.0)); // tile 2, red = 255
        let global_red = &out.pixel_values[6 * plane..7 * plane];
        assert!(global_red[0] < 0.0 && global_red[63] > 0.0);
    }

    #[test]
    fn normalisation_uses_rescale_mean_and_std() {
        let mut c = ImageProcessorConfig::smolvlm(8, 8);
        c.image_mean = [0.0, 0.5, 1.0];
        c.image_std = [1.0, 0.5, 2.0];
        let p = Idefics3ImageProcessor::new(c, "test").unwrap();
        let out = p.process(&RgbImage::from_pixel(8, 8, image::Rgb([255, 51, 0])));
        let plane = 64;
        assert_eq!(out.pixel_values[0], 1.0);
        assert!((out.pixel_values[plane] - (0.2 - 0.5) / 0.5).abs() < 1e-6);
        assert_eq!(out.pixel_values[2 * plane], -0.5);
    }
}
