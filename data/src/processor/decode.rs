//! Image inputs and their conversion to 8-bit RGB, as HF's `convert_to_rgb` does it.
//!
//! Files are decoded by content, not by extension (JPEG, PNG, WebP, GIF, BMP). Images with an
//! alpha channel (or palette transparency) are composited onto white with Pillow's
//! `alpha_composite` integer arithmetic; grayscale is replicated; CMYK JPEGs come out of the
//! decoder as RGB. EXIF orientation is not applied (neither does `PIL.Image.open`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{DynamicImage, RgbImage, RgbaImage};

use super::error::{ProcessorError, Result};
use crate::fileio;

/// Where an image of a conversation comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// A file, decoded by content.
    Path(PathBuf),
    /// An image already in memory (e.g. rendered by the synthetic world).
    Decoded(Arc<DynamicImage>),
}

impl ImageSource {
    /// A name for error messages.
    pub fn name(&self) -> String {
        match self {
            ImageSource::Path(p) => p.display().to_string(),
            ImageSource::Decoded(img) => format!("<in-memory {}x{}>", img.width(), img.height()),
        }
    }

    /// Decodes the image and converts it to RGB. With `composite_alpha` (HF's `do_convert_rgb`)
    /// transparency is composited onto white; without it the alpha channel is dropped.
    pub fn load_rgb(&self, composite_alpha: bool) -> Result<RgbImage> {
        let rgb = match self {
            ImageSource::Path(path) => to_rgb(&load_image(path)?, composite_alpha),
            ImageSource::Decoded(img) => to_rgb(img, composite_alpha),
        };
        if rgb.width() == 0 || rgb.height() == 0 {
            return Err(ProcessorError::Image {
                name: self.name(),
                reason: "image has no pixels".into(),
            });
        }
        Ok(rgb)
    }
}

impl From<PathBuf> for ImageSource {
    fn from(p: PathBuf) -> Self {
        ImageSource::Path(p)
    }
}

impl From<&Path> for ImageSource {
    fn from(p: &Path) -> Self {
        ImageSource::Path(p.to_path_buf())
    }
}

impl From<DynamicImage> for ImageSource {
    fn from(img: DynamicImage) -> Self {
        ImageSource::Decoded(Arc::new(img))
    }
}

impl From<RgbImage> for ImageSource {
    fn from(img: RgbImage) -> Self {
        ImageSource::Decoded(Arc::new(DynamicImage::ImageRgb8(img)))
    }
}

/// Decodes an image file by content; errors name the file.
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    fileio::decode_image(path).map_err(|reason| ProcessorError::Image {
        name: path.display().to_string(),
        reason,
    })
}

/// Converts any decoded image to 8-bit RGB (see the module docs).
pub fn to_rgb(img: &DynamicImage, composite_alpha: bool) -> RgbImage {
    if !img.color().has_alpha() || !composite_alpha {
        return img.to_rgb8();
    }
    composite_on_white(&img.to_rgba8())
}

/// Pillow's `alpha_composite(white, img).convert("RGB")`, exactly (7-bit fixed point, /255 by
/// shifts).
fn composite_on_white(rgba: &RgbaImage) -> RgbImage {
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        if a == 0 {
            return image::Rgb([255, 255, 255]);
        }
        let a = a as u32;
        let mix = |c: u8| -> u8 {
            let t = c as u32 * (a << 7) + 255 * ((255 - a) << 7) + (0x80 << 7);
            (((((t >> 8) + t) >> 8) >> 7).min(255)) as u8
        };
        image::Rgb([mix(r), mix(g), mix(b)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Rgba};

    #[test]
    fn alpha_is_composited_on_white_like_pillow() {
        // Values checked against PIL.Image.alpha_composite.
        let img = RgbaImage::from_fn(4, 1, |x, _| match x {
            0 => Rgba([10, 20, 30, 255]),
            1 => Rgba([10, 20, 30, 0]),
            2 => Rgba([0, 100, 200, 128]),
            _ => Rgba([255, 0, 7, 1]),
        });
        let rgb = to_rgb(&DynamicImage::ImageRgba8(img.clone()), true);
        assert_eq!(rgb.get_pixel(0, 0).0, [10, 20, 30]);
        assert_eq!(rgb.get_pixel(1, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(2, 0).0, [127, 177, 227]);
        assert_eq!(rgb.get_pixel(3, 0).0, [255, 254, 254]);
        let dropped = to_rgb(&DynamicImage::ImageRgba8(img), false);
        assert_eq!(dropped.get_pixel(1, 0).0, [10, 20, 30]);
    }

    #[test]
    fn grayscale_is_replicated() {
        let g = GrayImage::from_pixel(2, 2, image::Luma([42]));
        assert_eq!(
            to_rgb(&DynamicImage::ImageLuma8(g), true).get_pixel(1, 1).0,
            [42, 42, 42]
        );
    }

    #[test]
    fn corrupt_and_missing_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("photo.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not really a png").unwrap();
        let e = ImageSource::from(bad.as_path())
            .load_rgb(true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("photo.png"), "{e}");
        let e = ImageSource::from(dir.path().join("missing.jpg"))
            .load_rgb(true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.jpg"), "{e}");
    }

    #[test]
    fn format_is_detected_from_content_not_extension() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actually_png.jpg");
        RgbImage::from_pixel(3, 2, image::Rgb([1, 2, 3]))
            .save_with_format(&path, image::ImageFormat::Png)
            .unwrap();
        let rgb = ImageSource::from(path).load_rgb(true).unwrap();
        assert_eq!(
            (rgb.width(), rgb.height(), rgb.get_pixel(0, 0).0),
            (3, 2, [1, 2, 3])
        );
    }
}
