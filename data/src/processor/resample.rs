//! Image resizing that reproduces Pillow's `Image.resize` on 8-bit RGB images bit for bit.
//!
//! HF's Idefics3 image processor resizes with Pillow, so matching its pixels means matching
//! Pillow's algorithm: separable convolution with the filter's support stretched by the
//! downscale factor, coefficients normalised per output pixel and converted to 22-bit fixed
//! point, then one pass per axis (order chosen as Pillow 13 does), rounding and clamping to 8
//! bits after each pass. `Nearest` follows Pillow's
//! scale-affine nearest-neighbour path. Verified against Pillow by the parity fixtures.

use image::RgbImage;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Pillow's resampling filters, with Pillow's numeric codes (as stored in `resample`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resample {
    Nearest = 0,
    Lanczos = 1,
    Bilinear = 2,
    Bicubic = 3,
    Box = 4,
    Hamming = 5,
}

impl Resample {
    /// The filter for Pillow's numeric code.
    pub fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            0 => Resample::Nearest,
            1 => Resample::Lanczos,
            2 => Resample::Bilinear,
            3 => Resample::Bicubic,
            4 => Resample::Box,
            5 => Resample::Hamming,
            _ => return None,
        })
    }

    /// The filter for a Pillow name (`"lanczos"`, `"BICUBIC"`, `"antialias"`, …).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "nearest" => Resample::Nearest,
            "lanczos" | "antialias" => Resample::Lanczos,
            "bilinear" | "linear" => Resample::Bilinear,
            "bicubic" | "cubic" => Resample::Bicubic,
            "box" => Resample::Box,
            "hamming" => Resample::Hamming,
            _ => return None,
        })
    }

    /// Half-width of the filter kernel at scale 1.
    fn support(self) -> f64 {
        match self {
            Resample::Nearest => 0.0,
            Resample::Box => 0.5,
            Resample::Bilinear | Resample::Hamming => 1.0,
            Resample::Bicubic => 2.0,
            Resample::Lanczos => 3.0,
        }
    }

    /// The kernel, with Pillow's exact formulas (including its single-precision constants).
    fn weight(self, x: f64) -> f64 {
        match self {
            Resample::Nearest => 0.0,
            Resample::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Resample::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Resample::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    x.sin() / x * (0.54f32 as f64 + 0.46f32 as f64 * x.cos())
                }
            }
            Resample::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Resample::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

impl Serialize for Resample {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*self as u64)
    }
}

impl<'de> Deserialize<'de> for Resample {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => {
                n.as_u64().and_then(Resample::from_code).ok_or_else(|| {
                    D::Error::custom(format!("unknown resample code {n} (Pillow codes are 0-5)"))
                })
            }
            serde_json::Value::String(s) => Resample::from_name(&s)
                .ok_or_else(|| D::Error::custom(format!("unknown resample filter {s:?}"))),
            other => Err(D::Error::custom(format!(
                "resample must be a Pillow code or name, got {other}"
            ))),
        }
    }
}

/// Bits of fraction in Pillow's 8-bit fixed-point coefficients.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per-output-pixel source windows and fixed-point weights along one axis.
struct Coefficients {
    /// Kernel length (coefficients per output pixel, zero-padded).
    ksize: usize,
    /// `(first source index, number of source pixels)` per output pixel.
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for `in_size` → `out_size`.
fn coefficients(in_size: usize, out_size: usize, filter: Resample) -> Coefficients {
    // Pillow computes the box extent in single precision, then the scale in double.
    let scale = (in_size as f32) as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero; then clamp to the image.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut total = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = filter.weight(((x + xmin) as f64 - center + 0.5) * ss);
            *kx = w;
            total += w;
        }
        let row = &mut weights[xx * ksize..xx * ksize + ksize];
        for (x, out) in row.iter_mut().enumerate().take(n) {
            let w = if total != 0.0 { k[x] / total } else { k[x] };
            let scaled = w * (1u32 << PRECISION_BITS) as f64;
            *out = if w < 0.0 {
                (scaled - 0.5) as i32
            } else {
                (scaled + 0.5) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coefficients {
        ksize,
        bounds,
        weights,
    }
}

#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes an RGB image to `width`×`height` exactly as Pillow's `Image.resize(…, resample)`.
/// Sizes must be non-zero.
///
/// Pass order follows Pillow 13: vertical first when the height shrinks by more than twice as
/// many pixels as the width does, horizontal first otherwise (Pillow ≤ 12 always went
/// horizontal first; the two orders differ by a level or so on some pixels).
pub fn resize(src: &RgbImage, width: u32, height: u32, filter: Resample) -> RgbImage {
    let (in_w, in_h) = src.dimensions();
    if (in_w, in_h) == (width, height) {
        return src.clone();
    }
    if filter == Resample::Nearest {
        return resize_nearest(src, width, height);
    }
    let shrink_h = in_h as i64 - height as i64;
    let shrink_w = in_w as i64 - width as i64;
    let vertical_first = shrink_h > 0 && shrink_h > 2 * shrink_w;
    let horizontal = |img: &RgbImage| {
        if img.width() == width {
            img.clone()
        } else {
            pass(img, width, filter, Axis::X)
        }
    };
    let vertical = |img: &RgbImage| {
        if img.height() == height {
            img.clone()
        } else {
            pass(img, height, filter, Axis::Y)
        }
    };
    if vertical_first {
        horizontal(&vertical(src))
    } else {
        vertical(&horizontal(src))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Axis {
    X,
    Y,
}

/// One separable pass (Pillow's `ResampleHorizontal_8bpc`/`ResampleVertical_8bpc`): resamples
/// `axis` to `size`, rounding and clamping to 8 bits.
fn pass(src: &RgbImage, size: u32, filter: Resample, axis: Axis) -> RgbImage {
    let (w, h) = (src.width() as usize, src.height() as usize);
    let (in_size, lines) = if axis == Axis::X { (w, h) } else { (h, w) };
    let c = coefficients(in_size, size as usize, filter);
    let (out_w, out_h) = if axis == Axis::X {
        (size as usize, h)
    } else {
        (w, size as usize)
    };
    // Distance in bytes between consecutive samples along the axis, and between lines.
    let (step, line_step) = if axis == Axis::X {
        (3, w * 3)
    } else {
        (w * 3, 3)
    };
    let (out_step, out_line_step) = if axis == Axis::X {
        (3, out_w * 3)
    } else {
        (out_w * 3, 3)
    };
    let px = src.as_raw();
    let mut out = vec![0u8; out_w * out_h * 3];
    for line in 0..lines {
        for (o, &(first, n)) in c.bounds.iter().enumerate() {
            let k = &c.weights[o * c.ksize..o * c.ksize + n];
            let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
            for (i, &weight) in k.iter().enumerate() {
                let at = line * line_step + (first + i) * step;
                for (ch, a) in acc.iter_mut().enumerate() {
                    *a += px[at + ch] as i32 * weight;
                }
            }
            let at = line * out_line_step + o * out_step;
            for (ch, a) in acc.iter().enumerate() {
                out[at + ch] = clip8(*a);
            }
        }
    }
    RgbImage::from_raw(out_w as u32, out_h as u32, out).expect("buffer sized for the image")
}

/// Pillow's `ImagingScaleAffine`: source coordinates accumulated in double precision from the
/// pixel centres, truncated.
fn resize_nearest(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = src.dimensions();
    let ax = in_w as f32 as f64 / width as f64;
    let ay = in_h as f32 as f64 / height as f64;
    let coord = |v: f64| if v < 0.0 { -1 } else { v as i64 };
    let mut xin = Vec::with_capacity(width as usize);
    let mut xo = ax * 0.5;
    for _ in 0..width {
        xin.push(coord(xo).clamp(0, in_w as i64 - 1) as u32);
        xo += ax;
    }
    let mut out = RgbImage::new(width, height);
    let mut yo = ay * 0.5;
    for y in 0..height {
        let yi = coord(yo).clamp(0, in_h as i64 - 1) as u32;
        for (x, &xi) in xin.iter().enumerate() {
            out.put_pixel(x as u32, y, *src.get_pixel(xi, yi));
        }
        yo += ay;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 77])
        })
    }

    #[test]
    fn same_size_is_a_copy_and_constant_images_stay_constant() {
        let img = ramp(9, 7);
        assert_eq!(resize(&img, 9, 7, Resample::Lanczos), img);
        let flat = RgbImage::from_pixel(13, 5, image::Rgb([10, 200, 255]));
        for f in [
            Resample::Lanczos,
            Resample::Bicubic,
            Resample::Bilinear,
            Resample::Box,
            Resample::Hamming,
        ] {
            let out = resize(&flat, 31, 3, f);
            assert!(out.pixels().all(|p| p.0 == [10, 200, 255]), "{f:?}");
        }
    }

    #[test]
    fn weights_of_each_output_pixel_sum_to_one_in_fixed_point() {
        let c = coefficients(100, 37, Resample::Lanczos);
        for (xx, &(_, n)) in c.bounds.iter().enumerate() {
            let sum: i32 = c.weights[xx * c.ksize..xx * c.ksize + n].iter().sum();
            assert!(
                (sum - (1 << PRECISION_BITS)).abs() <= n as i32,
                "pixel {xx}: {sum}"
            );
        }
    }

    #[test]
    fn codes_and_names_round_trip() {
        for code in 0..6 {
            let r = Resample::from_code(code).unwrap();
            assert_eq!(serde_json::to_value(r).unwrap(), code);
        }
        assert_eq!(
            serde_json::from_str::<Resample>("\"BICUBIC\"").unwrap(),
            Resample::Bicubic
        );
        assert!(serde_json::from_str::<Resample>("9").is_err());
    }
}
