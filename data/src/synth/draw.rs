//! Drawing primitives for the synthetic images: filled shapes in an object's unit square
//! (`0..1` on both axes, y down) mapped onto a square box of the image.

use image::{Rgb, RgbImage};

/// An RGB colour.
pub type Colour = [u8; 3];

/// Draws into the square box at `(x, y)` (pixels, top-left) of side `size` pixels.
pub struct Pen<'a> {
    img: &'a mut RgbImage,
    x: f32,
    y: f32,
    size: f32,
}

impl<'a> Pen<'a> {
    /// A pen whose unit square is the given box of `img`.
    pub fn new(img: &'a mut RgbImage, x: f32, y: f32, size: f32) -> Pen<'a> {
        Pen { img, x, y, size }
    }

    /// Paints every pixel whose centre, in unit coordinates, satisfies `inside`, over the
    /// unit-space bounding box `(x0, y0, x1, y1)`.
    fn fill(
        &mut self,
        bounds: (f32, f32, f32, f32),
        colour: Colour,
        inside: impl Fn(f32, f32) -> bool,
    ) {
        let (w, h) = (self.img.width() as i64, self.img.height() as i64);
        let px0 = ((self.x + bounds.0 * self.size).floor() as i64).clamp(0, w);
        let px1 = ((self.x + bounds.2 * self.size).ceil() as i64 + 1).clamp(0, w);
        let py0 = ((self.y + bounds.1 * self.size).floor() as i64).clamp(0, h);
        let py1 = ((self.y + bounds.3 * self.size).ceil() as i64 + 1).clamp(0, h);
        for py in py0..py1 {
            for px in px0..px1 {
                let u = (px as f32 + 0.5 - self.x) / self.size;
                let v = (py as f32 + 0.5 - self.y) / self.size;
                if inside(u, v) {
                    self.img.put_pixel(px as u32, py as u32, Rgb(colour));
                }
            }
        }
    }

    /// Axis-aligned rectangle from `(x0, y0)` to `(x1, y1)`.
    pub fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, c: Colour) {
        self.fill((x0, y0, x1, y1), c, |u, v| {
            u >= x0 && u <= x1 && v >= y0 && v <= y1
        });
    }

    /// Ellipse centred at `(cx, cy)` with radii `rx`, `ry`.
    pub fn ellipse(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, c: Colour) {
        self.fill((cx - rx, cy - ry, cx + rx, cy + ry), c, |u, v| {
            let (du, dv) = ((u - cx) / rx, (v - cy) / ry);
            du * du + dv * dv <= 1.0
        });
    }

    /// Circle centred at `(cx, cy)` of radius `r`.
    pub fn circle(&mut self, cx: f32, cy: f32, r: f32, c: Colour) {
        self.ellipse(cx, cy, r, r, c);
    }

    /// Ring between radii `r_in` and `r_out`, only where `v <= max_v` (e.g. an upper arc).
    pub fn ring(&mut self, cx: f32, cy: f32, r_out: f32, r_in: f32, max_v: f32, c: Colour) {
        self.fill(
            (cx - r_out, cy - r_out, cx + r_out, cy + r_out),
            c,
            |u, v| {
                let d2 = (u - cx) * (u - cx) + (v - cy) * (v - cy);
                v <= max_v && d2 <= r_out * r_out && d2 >= r_in * r_in
            },
        );
    }

    /// Thick line segment of width `w`.
    pub fn line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, w: f32, c: Colour) {
        let r = w / 2.0;
        let bounds = (
            x0.min(x1) - r,
            y0.min(y1) - r,
            x0.max(x1) + r,
            y0.max(y1) + r,
        );
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = (dx * dx + dy * dy).max(1e-9);
        self.fill(bounds, c, |u, v| {
            let t = (((u - x0) * dx + (v - y0) * dy) / len2).clamp(0.0, 1.0);
            let (ex, ey) = (u - x0 - t * dx, v - y0 - t * dy);
            ex * ex + ey * ey <= r * r
        });
    }

    /// Filled polygon (even-odd rule).
    pub fn polygon(&mut self, pts: &[(f32, f32)], c: Colour) {
        let x0 = pts.iter().map(|p| p.0).fold(f32::MAX, f32::min);
        let x1 = pts.iter().map(|p| p.0).fold(f32::MIN, f32::max);
        let y0 = pts.iter().map(|p| p.1).fold(f32::MAX, f32::min);
        let y1 = pts.iter().map(|p| p.1).fold(f32::MIN, f32::max);
        self.fill((x0, y0, x1, y1), c, |u, v| {
            let mut inside = false;
            let mut j = pts.len() - 1;
            for i in 0..pts.len() {
                let (xi, yi) = pts[i];
                let (xj, yj) = pts[j];
                if (yi > v) != (yj > v) && u < (xj - xi) * (v - yi) / (yj - yi) + xi {
                    inside = !inside;
                }
                j = i;
            }
            inside
        });
    }
}

/// `c` scaled towards black by `f` (0 = unchanged, 1 = black).
pub fn darker(c: Colour, f: f32) -> Colour {
    c.map(|x| (x as f32 * (1.0 - f)).round() as u8)
}

/// `c` moved towards white by `f` (0 = unchanged, 1 = white).
pub fn lighter(c: Colour, f: f32) -> Colour {
    c.map(|x| (x as f32 + (255.0 - x as f32) * f).round() as u8)
}
