//! The image processor of a model family: SmolVLM/Idefics3's tiling ([`Idefics3ImageProcessor`]),
//! LLaVA's CLIP pipeline ([`ClipImageProcessor`]) or Qwen2-VL's patches
//! ([`Qwen2VlImageProcessor`]), behind one type the processor calls, plus
//! what both share: the processed output and the rescale/normalise step into channel planes.

use image::RgbImage;

use super::clip::ClipImageProcessor;
use super::decode::ImageSource;
use super::error::Result;
use super::qwen2_vl::Qwen2VlImageProcessor;
use super::tiling::Idefics3ImageProcessor;

/// How an image was tiled: `rows`×`cols` tiles plus a global view, or `0`×`0` for a single
/// unsplit image (always so for LLaVA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Grid {
    pub rows: usize,
    pub cols: usize,
}

impl Grid {
    /// Number of tiles this grid produces, the global view included.
    pub fn num_tiles(self) -> usize {
        if self.rows == 0 && self.cols == 0 {
            1
        } else {
            self.rows * self.cols + 1
        }
    }
}

/// One image after preprocessing: `num_tiles` planes of `3×height×width` values (SmolVLM: HF's
/// tile order, row-major tiles then the global view; LLaVA: one frame; Qwen2-VL: one frame per
/// patch, see `qwen2_vl.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedImage {
    pub pixel_values: Vec<f32>,
    pub num_tiles: usize,
    pub height: usize,
    pub width: usize,
    pub grid: Grid,
    /// Qwen2-VL's `image_grid_thw` row `[t, h, w]` in patches; `None` for the other families.
    pub grid_thw: Option<[usize; 3]>,
}

/// A family's image processor.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageProcessor {
    /// SmolVLM/Idefics3: resize, split into tiles, add a global view.
    Tiling(Idefics3ImageProcessor),
    /// LLaVA: (pad,) resize the shortest edge, centre-crop.
    Clip(ClipImageProcessor),
    /// Qwen2-VL / Qwen2.5-VL: resize to a multiple of the merged patch, cut into patches.
    Qwen2Vl(Qwen2VlImageProcessor),
}

impl ImageProcessor {
    /// Decodes `source` and preprocesses it.
    pub fn process_source(&self, source: &ImageSource) -> Result<ProcessedImage> {
        match self {
            ImageProcessor::Tiling(p) => p.process_source(source),
            ImageProcessor::Clip(p) => p.process_source(source),
            ImageProcessor::Qwen2Vl(p) => p.process_source(source),
        }
    }

    /// Preprocesses an RGB image; `name` names it in errors (Qwen2-VL rejects aspect ratios
    /// over 200).
    pub fn process(&self, img: &RgbImage, name: &str) -> Result<ProcessedImage> {
        match self {
            ImageProcessor::Tiling(p) => Ok(p.process(img)),
            ImageProcessor::Clip(p) => Ok(p.process(img)),
            ImageProcessor::Qwen2Vl(p) => p.process(img, name),
        }
    }

    /// `(height, width)` of every frame when it does not depend on the image (tiles, crops).
    pub fn frame_size(&self) -> Option<(usize, usize)> {
        match self {
            ImageProcessor::Tiling(p) => Some((p.tile_size(), p.tile_size())),
            ImageProcessor::Clip(p) => p.frame_size(),
            ImageProcessor::Qwen2Vl(p) => Some(p.frame_size()),
        }
    }

    /// The SmolVLM tiling processor, if this is one.
    pub fn as_tiling(&self) -> Option<&Idefics3ImageProcessor> {
        match self {
            ImageProcessor::Tiling(p) => Some(p),
            _ => None,
        }
    }

    /// The LLaVA CLIP processor, if this is one.
    pub fn as_clip(&self) -> Option<&ClipImageProcessor> {
        match self {
            ImageProcessor::Clip(p) => Some(p),
            _ => None,
        }
    }

    /// The Qwen2-VL processor, if this is one.
    pub fn as_qwen2_vl(&self) -> Option<&Qwen2VlImageProcessor> {
        match self {
            ImageProcessor::Qwen2Vl(p) => Some(p),
            _ => None,
        }
    }
}

/// Per channel, the float value of each 8-bit level after HF's rescale (in f64, stored as f32)
/// and normalisation (in f32), so a frame converts by table look-up.
pub(crate) struct PlaneLut([[f32; 256]; 3]);

impl PlaneLut {
    /// The table for an optional rescale factor and optional (mean, std).
    pub fn new(rescale: Option<f64>, normalize: Option<([f64; 3], [f64; 3])>) -> Self {
        PlaneLut(std::array::from_fn(|ch| {
            std::array::from_fn(|v| {
                let mut x = match rescale {
                    Some(factor) => (v as f64 * factor) as f32,
                    None => v as f32,
                };
                if let Some((mean, std)) = normalize {
                    x = (x - mean[ch] as f32) / std[ch] as f32;
                }
                x
            })
        }))
    }

    /// Appends the three channel planes of `frame` to `out`.
    pub fn push_planes(&self, frame: &RgbImage, out: &mut Vec<f32>) {
        for (ch, table) in self.0.iter().enumerate() {
            out.extend(frame.pixels().map(|p| table[p.0[ch] as usize]));
        }
    }
}
