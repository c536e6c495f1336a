//! Image fingerprints for the benchmark guard: an exact hash of the decoded pixels and a
//! 256-bit perceptual hash (pHash) that survives re-encoding and resizing.
//!
//! **Exact**: FNV-1a 64 of the width, height and RGBA8 pixels, so the same picture in another
//! lossless file (PNG, BMP, a renamed copy) matches.
//!
//! **Perceptual** (the DCT pHash of Zauner 2010, as Python's `imagehash.phash(hash_size=16)`
//! computes it): the image in 8-bit grayscale is resized to 64×64 (triangle filter, aspect
//! ratio dropped), a 2-D DCT-II is taken, and the 16×16 lowest frequencies (the DC term
//! included) are compared with their median: bit `16·v + u` is set when coefficient `(v, u)` is
//! above it. Two images are near duplicates when the Hamming distance of their hashes is at most
//! [`PERCEPTUAL_THRESHOLD`] of the 256 bits. (The common 64-bit form, 8×8 of 32×32, was tried
//! first: on MMSafeAware its re-encoded copies reached 12 bits while two different pictures of
//! text on white lay 10 apart, so no threshold separated them.) An image with almost no
//! structure (its 64×64 grayscale varies by less than [`FLAT_SPREAD`] levels) has a meaningless
//! pHash (every flat image hashes alike), so it gets none and matches by its exact hash only.

use image::imageops::{self, FilterType};
use image::DynamicImage;

use safeaware_common::fnv::Fnv64;

/// Side of the grayscale image the DCT is taken of.
const SIDE: usize = 64;
/// Side of the block of low frequencies kept: `KEEP²` = 256 bits.
const KEEP: usize = 16;

/// A 256-bit perceptual hash, bit `i` in word `i / 64`.
pub type Perceptual = [u64; 4];

/// Largest Hamming distance (of 256 bits) at which two perceptual hashes are the same picture.
///
/// Measured on the MMSafeAware release (its 444 distinct pictures): a JPEG (quality 75)
/// re-encoding of each at half and at three-quarter size lies at most 30 bits from the original,
/// while two different pictures lie at least 78 bits apart (data README).
pub const PERCEPTUAL_THRESHOLD: u32 = 48;

/// Below this spread (max − min of the 64×64 grayscale, in 8-bit levels) an image is flat.
pub const FLAT_SPREAD: f32 = 4.0;

/// The fingerprints of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageHash {
    /// FNV-1a 64 of width, height and RGBA8 pixels.
    pub exact: u64,
    /// The pHash; `None` for a flat image.
    pub perceptual: Option<Perceptual>,
}

impl ImageHash {
    /// The distance to `other` if they are the same picture within `max_distance` bits: 0 for
    /// identical pixels, else the Hamming distance of the perceptual hashes.
    pub fn distance_within(&self, other: &ImageHash, max_distance: u32) -> Option<u32> {
        if self.exact == other.exact {
            return Some(0);
        }
        let d = hamming(self.perceptual?, other.perceptual?);
        (d <= max_distance).then_some(d)
    }
}

/// Number of differing bits.
pub fn hamming(a: Perceptual, b: Perceptual) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Both fingerprints of `image`.
pub fn hash_image(image: &DynamicImage) -> ImageHash {
    ImageHash {
        exact: exact_hash(image),
        perceptual: perceptual_hash(image),
    }
}

fn exact_hash(image: &DynamicImage) -> u64 {
    let rgba = image.to_rgba8();
    let mut h = Fnv64::default();
    h.update(&rgba.width().to_le_bytes())
        .update(&rgba.height().to_le_bytes())
        .update(rgba.as_raw());
    h.finish()
}

/// The pHash of `image`, or `None` when it is flat.
pub fn perceptual_hash(image: &DynamicImage) -> Option<Perceptual> {
    let gray = imageops::resize(
        &image.to_luma8(),
        SIDE as u32,
        SIDE as u32,
        FilterType::Triangle,
    );
    let pixels: Vec<f32> = gray.as_raw().iter().map(|&p| f32::from(p)).collect();
    let (min, max) = pixels
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &p| (lo.min(p), hi.max(p)));
    if max - min < FLAT_SPREAD {
        return None;
    }
    let low = low_frequencies(&pixels);
    let mut sorted = low;
    sorted.sort_by(f32::total_cmp);
    let median = (sorted[KEEP * KEEP / 2 - 1] + sorted[KEEP * KEEP / 2]) / 2.0;
    let mut bits = [0u64; 4];
    for (i, _) in low.iter().enumerate().filter(|(_, &c)| c > median) {
        bits[i / 64] |= 1 << (i % 64);
    }
    Some(bits)
}

/// The `KEEP`×`KEEP` lowest-frequency coefficients of the (unnormalised) 2-D DCT-II of a
/// `SIDE`×`SIDE` image, row-major by (vertical, horizontal) frequency.
fn low_frequencies(pixels: &[f32]) -> [f32; KEEP * KEEP] {
    let basis: Vec<f32> = (0..KEEP)
        .flat_map(|u| {
            (0..SIDE).map(move |x| {
                let angle =
                    std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / (2 * SIDE) as f64;
                angle.cos() as f32
            })
        })
        .collect();
    let cos = |u: usize, x: usize| basis[u * SIDE + x];
    // Along each row, then down each column of the result.
    let mut rows = [[0f32; KEEP]; SIDE];
    for (y, row) in rows.iter_mut().enumerate() {
        for (u, out) in row.iter_mut().enumerate() {
            *out = (0..SIDE).map(|x| pixels[y * SIDE + x] * cos(u, x)).sum();
        }
    }
    let mut out = [0f32; KEEP * KEEP];
    for v in 0..KEEP {
        for u in 0..KEEP {
            out[v * KEEP + u] = (0..SIDE).map(|y| rows[y][u] * cos(v, y)).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    #[test]
    fn flat_images_have_no_perceptual_hash_and_match_only_exactly() {
        let red = DynamicImage::ImageRgb8(RgbImage::from_pixel(40, 30, Rgb([200, 10, 10])));
        let blue = DynamicImage::ImageRgb8(RgbImage::from_pixel(40, 30, Rgb([10, 10, 200])));
        let (r, b) = (hash_image(&red), hash_image(&blue));
        assert_eq!(r.perceptual, None);
        assert_eq!(r.distance_within(&b, 64), None);
        assert_eq!(r.distance_within(&hash_image(&red.clone()), 0), Some(0));
    }

    #[test]
    fn the_dc_term_of_a_constant_image_is_its_sum() {
        let low = low_frequencies(&vec![2.0; SIDE * SIDE]);
        assert!((low[0] - 2.0 * (SIDE * SIDE) as f32).abs() < 1e-2);
        assert!(low[1..].iter().all(|c| c.abs() < 1e-2), "{low:?}");
    }
}
