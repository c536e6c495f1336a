//! How each object kind is drawn in its unit square: shapes from the pen, main part in the
//! colour given.

use super::draw::{darker, lighter, Colour, Pen};
use super::objects::ObjectKind::{self, *};
use super::objects::{
    BLACK, BLUE, BROWN, GOLD, GREEN, GREY, ORANGE, PINK, RED, SILVER, SKIN, SKY, WHITE, YELLOW,
};

impl ObjectKind {
    /// Draws the object filling the pen's unit square, main part in `c`.
    pub fn draw(self, p: &mut Pen, c: Colour) {
        match self {
            Person => {
                p.line(0.45, 0.62, 0.40, 0.95, 0.09, [40, 50, 90]);
                p.line(0.55, 0.62, 0.60, 0.95, 0.09, [40, 50, 90]);
                p.line(0.40, 0.38, 0.22, 0.62, 0.08, c);
                p.line(0.60, 0.38, 0.78, 0.62, 0.08, c);
                p.rect(0.37, 0.32, 0.63, 0.66, c);
                p.circle(0.5, 0.19, 0.13, SKIN);
                p.rect(0.38, 0.05, 0.62, 0.11, BROWN);
            }
            Dog => {
                for x in [0.28, 0.38, 0.60, 0.70] {
                    p.line(x, 0.6, x, 0.88, 0.07, darker(c, 0.2));
                }
                p.line(0.2, 0.52, 0.08, 0.32, 0.05, c);
                p.ellipse(0.48, 0.55, 0.30, 0.15, c);
                p.circle(0.80, 0.40, 0.13, c);
                p.ellipse(0.90, 0.45, 0.07, 0.05, lighter(c, 0.3));
                p.circle(0.96, 0.44, 0.025, BLACK);
                p.ellipse(0.74, 0.38, 0.05, 0.11, darker(c, 0.4));
                p.circle(0.82, 0.36, 0.02, BLACK);
            }
            Cat => {
                for x in [0.30, 0.40, 0.55, 0.65] {
                    p.line(x, 0.62, x, 0.88, 0.06, c);
                }
                p.line(0.2, 0.62, 0.1, 0.3, 0.05, c);
                p.ellipse(0.45, 0.60, 0.25, 0.14, c);
                p.polygon(&[(0.64, 0.36), (0.67, 0.18), (0.75, 0.32)], c);
                p.polygon(&[(0.78, 0.32), (0.85, 0.18), (0.88, 0.36)], c);
                p.circle(0.76, 0.42, 0.13, c);
                p.circle(0.71, 0.40, 0.025, GREEN);
                p.circle(0.81, 0.40, 0.025, GREEN);
                p.circle(0.76, 0.47, 0.02, PINK);
            }
            Mosquito => {
                p.ellipse(0.42, 0.34, 0.14, 0.07, [215, 225, 235]);
                p.ellipse(0.56, 0.32, 0.12, 0.06, [200, 212, 225]);
                for (x, s) in [(0.40, -1.0), (0.50, 0.0), (0.60, 1.0)] {
                    p.line(x, 0.5, x + s * 0.12, 0.88, 0.025, c);
                }
                p.line(0.22, 0.52, 0.66, 0.48, 0.07, [70, 60, 50]);
                p.circle(0.70, 0.47, 0.05, c);
                p.line(0.72, 0.48, 0.92, 0.58, 0.02, c);
            }
            Spider => {
                for side in [-1.0f32, 1.0] {
                    for k in 0..4 {
                        let y = 0.22 + k as f32 * 0.18;
                        let knee = (0.5 + side * 0.28, y - 0.06);
                        p.line(0.5, 0.52, knee.0, knee.1, 0.04, c);
                        p.line(knee.0, knee.1, 0.5 + side * 0.44, y + 0.12, 0.04, c);
                    }
                }
                p.circle(0.5, 0.56, 0.16, c);
                p.circle(0.5, 0.36, 0.09, c);
                p.circle(0.47, 0.34, 0.02, RED);
                p.circle(0.53, 0.34, 0.02, RED);
            }
            Rat => {
                p.line(0.22, 0.64, 0.04, 0.42, 0.03, PINK);
                p.ellipse(0.45, 0.62, 0.25, 0.13, c);
                p.polygon(&[(0.62, 0.50), (0.62, 0.74), (0.92, 0.64)], c);
                p.circle(0.66, 0.49, 0.06, PINK);
                p.circle(0.78, 0.58, 0.02, BLACK);
                p.circle(0.92, 0.64, 0.02, PINK);
                p.line(0.40, 0.72, 0.38, 0.82, 0.04, PINK);
                p.line(0.55, 0.72, 0.57, 0.82, 0.04, PINK);
            }
            Knife => {
                p.polygon(&[(0.04, 0.50), (0.58, 0.34), (0.58, 0.62), (0.20, 0.62)], c);
                p.line(0.12, 0.58, 0.56, 0.58, 0.03, darker(c, 0.25));
                p.rect(0.58, 0.37, 0.96, 0.61, [40, 30, 25]);
                p.circle(0.68, 0.49, 0.03, SILVER);
                p.circle(0.86, 0.49, 0.03, SILVER);
            }
            Gun => {
                p.rect(0.08, 0.30, 0.86, 0.44, c);
                p.rect(0.04, 0.32, 0.08, 0.42, BLACK);
                p.polygon(
                    &[(0.60, 0.44), (0.84, 0.44), (0.92, 0.86), (0.70, 0.86)],
                    darker(c, 0.3),
                );
                p.ring(0.56, 0.50, 0.09, 0.05, 1.0, c);
                p.line(0.56, 0.44, 0.54, 0.54, 0.03, BLACK);
                p.rect(0.78, 0.24, 0.84, 0.30, c);
            }
            Syringe => {
                p.line(0.04, 0.5, 0.22, 0.5, 0.03, c);
                p.rect(0.20, 0.44, 0.26, 0.56, c);
                p.rect(0.26, 0.34, 0.70, 0.66, [215, 235, 250]);
                p.rect(0.28, 0.40, 0.52, 0.60, [120, 200, 240]);
                for x in [0.36, 0.44, 0.52, 0.60] {
                    p.line(x, 0.34, x, 0.43, 0.02, GREY);
                }
                p.rect(0.70, 0.45, 0.86, 0.55, GREY);
                p.rect(0.86, 0.30, 0.92, 0.70, GREY);
                p.rect(0.67, 0.28, 0.72, 0.72, GREY);
            }
            PillBottle => {
                p.rect(0.30, 0.30, 0.70, 0.90, c);
                p.rect(0.26, 0.16, 0.74, 0.32, WHITE);
                p.rect(0.34, 0.48, 0.66, 0.74, WHITE);
                p.line(0.38, 0.56, 0.62, 0.56, 0.03, RED);
                p.line(0.38, 0.65, 0.58, 0.65, 0.02, GREY);
                p.ellipse(0.84, 0.86, 0.07, 0.04, WHITE);
            }
            Bleach => {
                p.ring(0.66, 0.36, 0.14, 0.08, 1.0, c);
                p.rect(0.24, 0.30, 0.76, 0.92, c);
                p.rect(0.40, 0.14, 0.58, 0.30, BLUE);
                p.polygon(
                    &[(0.50, 0.46), (0.66, 0.62), (0.50, 0.78), (0.34, 0.62)],
                    YELLOW,
                );
                p.line(0.50, 0.54, 0.50, 0.66, 0.04, BLACK);
                p.circle(0.50, 0.72, 0.025, BLACK);
                p.rect(0.24, 0.30, 0.76, 0.34, BLUE);
            }
            Campfire => {
                p.polygon(&[(0.26, 0.78), (0.50, 0.12), (0.74, 0.78)], c);
                p.polygon(&[(0.18, 0.78), (0.30, 0.40), (0.42, 0.78)], RED);
                p.polygon(&[(0.58, 0.78), (0.72, 0.44), (0.82, 0.78)], RED);
                p.polygon(&[(0.38, 0.78), (0.50, 0.40), (0.62, 0.78)], YELLOW);
                p.line(0.14, 0.88, 0.86, 0.72, 0.09, BROWN);
                p.line(0.14, 0.72, 0.86, 0.88, 0.09, darker(BROWN, 0.2));
            }
            Grill => {
                p.line(0.32, 0.6, 0.18, 0.95, 0.05, GREY);
                p.line(0.68, 0.6, 0.82, 0.95, 0.05, GREY);
                p.polygon(
                    &[
                        (0.12, 0.42),
                        (0.88, 0.42),
                        (0.80, 0.58),
                        (0.64, 0.68),
                        (0.36, 0.68),
                        (0.20, 0.58),
                    ],
                    c,
                );
                // Flames over the grate: a grill is a fire, and they set it apart from other
                // dark shapes such as the spider.
                p.polygon(&[(0.22, 0.42), (0.33, 0.16), (0.44, 0.42)], ORANGE);
                p.polygon(&[(0.38, 0.42), (0.50, 0.06), (0.62, 0.42)], RED);
                p.polygon(&[(0.56, 0.42), (0.67, 0.18), (0.78, 0.42)], ORANGE);
                p.polygon(&[(0.43, 0.42), (0.50, 0.24), (0.57, 0.42)], YELLOW);
                p.line(0.10, 0.42, 0.90, 0.42, 0.04, SILVER);
            }
            Car => {
                p.polygon(&[(0.24, 0.46), (0.34, 0.24), (0.66, 0.24), (0.80, 0.46)], c);
                p.polygon(
                    &[(0.30, 0.45), (0.37, 0.29), (0.63, 0.29), (0.73, 0.45)],
                    SKY,
                );
                p.line(0.50, 0.28, 0.50, 0.46, 0.03, c);
                p.rect(0.06, 0.45, 0.94, 0.72, c);
                p.rect(0.88, 0.50, 0.94, 0.56, YELLOW);
                p.circle(0.27, 0.72, 0.11, BLACK);
                p.circle(0.73, 0.72, 0.11, BLACK);
                p.circle(0.27, 0.72, 0.04, SILVER);
                p.circle(0.73, 0.72, 0.04, SILVER);
            }
            House => {
                p.rect(0.20, 0.46, 0.80, 0.94, c);
                p.polygon(&[(0.10, 0.48), (0.50, 0.10), (0.90, 0.48)], [150, 50, 40]);
                p.rect(0.44, 0.66, 0.57, 0.94, BROWN);
                p.rect(0.27, 0.56, 0.38, 0.67, SKY);
                p.rect(0.63, 0.56, 0.74, 0.67, SKY);
                p.rect(0.66, 0.16, 0.74, 0.32, darker(c, 0.4));
            }
            Kitchen => {
                p.rect(0.0, 0.0, 1.0, 1.0, [236, 230, 214]);
                p.rect(0.04, 0.04, 0.96, 0.28, c);
                for x in [0.34, 0.66] {
                    p.line(x, 0.04, x, 0.28, 0.02, darker(c, 0.35));
                }
                p.rect(0.0, 0.56, 1.0, 1.0, c);
                p.rect(0.0, 0.52, 1.0, 0.58, GREY);
                p.rect(0.36, 0.52, 0.64, 1.0, WHITE);
                p.rect(0.40, 0.66, 0.60, 0.90, [60, 60, 60]);
                p.ellipse(0.44, 0.53, 0.05, 0.015, BLACK);
                p.ellipse(0.56, 0.53, 0.05, 0.015, BLACK);
                p.rect(0.48, 0.42, 0.62, 0.52, SILVER);
                p.line(0.62, 0.44, 0.70, 0.42, 0.02, BLACK);
                p.rect(0.78, 0.36, 0.86, 0.52, [200, 220, 235]);
            }
            Padlock => {
                p.ring(0.5, 0.44, 0.22, 0.13, 0.46, SILVER);
                p.line(0.28, 0.44, 0.28, 0.50, 0.09, SILVER);
                p.line(0.72, 0.44, 0.72, 0.50, 0.09, SILVER);
                p.rect(0.22, 0.46, 0.78, 0.90, c);
                p.circle(0.5, 0.62, 0.05, BLACK);
                p.polygon(
                    &[(0.47, 0.64), (0.53, 0.64), (0.55, 0.78), (0.45, 0.78)],
                    BLACK,
                );
            }
            Banknote => {
                p.rect(0.04, 0.26, 0.96, 0.74, darker(c, 0.25));
                p.rect(0.07, 0.30, 0.93, 0.70, c);
                p.circle(0.5, 0.5, 0.14, darker(c, 0.3));
                p.circle(0.5, 0.5, 0.09, lighter(c, 0.4));
                for (x, y) in [(0.15, 0.38), (0.85, 0.62)] {
                    p.circle(x, y, 0.05, darker(c, 0.3));
                }
                p.line(0.70, 0.38, 0.86, 0.38, 0.03, darker(c, 0.3));
                p.line(0.14, 0.62, 0.30, 0.62, 0.03, darker(c, 0.3));
            }
            IdCard => {
                p.rect(0.06, 0.24, 0.94, 0.76, c);
                p.rect(0.06, 0.24, 0.94, 0.34, BLUE);
                p.rect(0.12, 0.40, 0.38, 0.70, [170, 180, 190]);
                p.circle(0.25, 0.50, 0.06, SKIN);
                p.ellipse(0.25, 0.66, 0.10, 0.05, [60, 80, 120]);
                for y in [0.46, 0.54, 0.62] {
                    p.line(0.46, y, 0.86, y, 0.03, [90, 90, 100]);
                }
            }
            Passport => {
                p.rect(0.24, 0.08, 0.76, 0.92, c);
                p.rect(0.24, 0.08, 0.28, 0.92, darker(c, 0.3));
                p.ring(0.52, 0.44, 0.13, 0.09, 1.0, GOLD);
                p.circle(0.52, 0.44, 0.04, GOLD);
                p.line(0.38, 0.70, 0.66, 0.70, 0.03, GOLD);
                p.line(0.42, 0.20, 0.62, 0.20, 0.03, GOLD);
            }
            Cake => {
                p.ellipse(0.5, 0.86, 0.42, 0.06, [220, 220, 225]);
                p.rect(0.16, 0.56, 0.84, 0.86, c);
                p.rect(0.26, 0.36, 0.74, 0.57, c);
                p.rect(0.16, 0.56, 0.84, 0.61, WHITE);
                p.rect(0.26, 0.36, 0.74, 0.41, WHITE);
                for x in [0.24, 0.40, 0.56, 0.72] {
                    p.circle(x + 0.04, 0.70, 0.025, RED);
                }
                p.rect(0.48, 0.18, 0.52, 0.36, SKY);
                p.ellipse(0.50, 0.13, 0.03, 0.05, ORANGE);
            }
            Bread => {
                p.ellipse(0.5, 0.52, 0.42, 0.24, c);
                p.rect(0.08, 0.52, 0.92, 0.74, c);
                p.rect(0.08, 0.70, 0.92, 0.74, darker(c, 0.2));
                for x in [0.28, 0.46, 0.64] {
                    p.line(x, 0.46, x + 0.1, 0.34, 0.035, darker(c, 0.3));
                }
            }
            Apple => {
                p.circle(0.5, 0.58, 0.32, c);
                p.circle(0.40, 0.48, 0.06, lighter(c, 0.4));
                p.line(0.5, 0.30, 0.53, 0.14, 0.04, BROWN);
                p.ellipse(0.63, 0.20, 0.10, 0.045, GREEN);
            }
            Lemon => {
                p.ellipse(0.5, 0.5, 0.36, 0.25, c);
                p.circle(0.13, 0.5, 0.05, c);
                p.circle(0.87, 0.5, 0.05, c);
                p.ellipse(0.42, 0.42, 0.10, 0.04, lighter(c, 0.5));
            }
            TeddyBear => {
                p.circle(0.34, 0.16, 0.08, c);
                p.circle(0.66, 0.16, 0.08, c);
                p.circle(0.22, 0.56, 0.09, c);
                p.circle(0.78, 0.56, 0.09, c);
                p.circle(0.34, 0.88, 0.10, c);
                p.circle(0.66, 0.88, 0.10, c);
                p.ellipse(0.5, 0.66, 0.24, 0.25, c);
                p.ellipse(0.5, 0.68, 0.13, 0.14, lighter(c, 0.35));
                p.circle(0.5, 0.30, 0.17, c);
                p.circle(0.5, 0.36, 0.07, lighter(c, 0.4));
                p.circle(0.5, 0.34, 0.025, BLACK);
                p.circle(0.43, 0.26, 0.025, BLACK);
                p.circle(0.57, 0.26, 0.025, BLACK);
            }
            Ball => {
                p.circle(0.5, 0.5, 0.36, c);
                p.line(0.2, 0.36, 0.8, 0.64, 0.08, WHITE);
                p.circle(0.38, 0.32, 0.05, lighter(c, 0.5));
            }
            Book => {
                p.rect(0.22, 0.80, 0.84, 0.90, WHITE);
                p.rect(0.20, 0.12, 0.80, 0.84, c);
                p.rect(0.20, 0.12, 0.28, 0.84, darker(c, 0.35));
                p.rect(0.38, 0.28, 0.70, 0.40, lighter(c, 0.6));
                p.line(0.42, 0.52, 0.66, 0.52, 0.02, lighter(c, 0.6));
            }
            Flower => {
                p.line(0.5, 0.4, 0.5, 0.96, 0.05, GREEN);
                p.ellipse(0.62, 0.74, 0.11, 0.04, GREEN);
                p.ellipse(0.38, 0.64, 0.10, 0.04, GREEN);
                for k in 0..6 {
                    let a = k as f32 * std::f32::consts::PI / 3.0;
                    p.circle(0.5 + 0.14 * a.cos(), 0.32 + 0.14 * a.sin(), 0.10, c);
                }
                p.circle(0.5, 0.32, 0.08, YELLOW);
            }
            Computer => {
                p.rect(0.08, 0.10, 0.92, 0.70, c);
                p.rect(0.13, 0.15, 0.87, 0.65, [40, 110, 200]);
                p.rect(0.20, 0.22, 0.60, 0.45, WHITE);
                p.rect(0.20, 0.22, 0.60, 0.26, GREY);
                p.line(0.24, 0.32, 0.54, 0.32, 0.02, GREY);
                p.line(0.24, 0.38, 0.48, 0.38, 0.02, GREY);
                p.rect(0.45, 0.70, 0.55, 0.82, c);
                p.rect(0.28, 0.82, 0.72, 0.88, c);
            }
            Germ => {
                for k in 0..10 {
                    let a = k as f32 * std::f32::consts::PI / 5.0 + 0.2;
                    let (x, y) = (0.5 + 0.38 * a.cos(), 0.5 + 0.38 * a.sin());
                    p.line(0.5, 0.5, x, y, 0.04, darker(c, 0.2));
                    p.circle(x, y, 0.05, [200, 60, 60]);
                }
                p.circle(0.5, 0.5, 0.26, c);
                for (x, y) in [(0.42, 0.42), (0.58, 0.48), (0.46, 0.60)] {
                    p.circle(x, y, 0.04, darker(c, 0.35));
                }
            }
            GiftBox => {
                p.rect(0.20, 0.36, 0.80, 0.90, c);
                p.rect(0.16, 0.28, 0.84, 0.40, darker(c, 0.2));
                p.rect(0.46, 0.28, 0.54, 0.90, YELLOW);
                p.polygon(&[(0.50, 0.28), (0.32, 0.14), (0.32, 0.28)], YELLOW);
                p.polygon(&[(0.50, 0.28), (0.68, 0.14), (0.68, 0.28)], YELLOW);
            }
            Cup => {
                p.ring(0.74, 0.5, 0.16, 0.09, 1.0, c);
                p.polygon(&[(0.2, 0.25), (0.76, 0.25), (0.70, 0.82), (0.26, 0.82)], c);
                p.rect(0.2, 0.25, 0.76, 0.31, lighter(c, 0.4));
            }
            Leaf => {
                p.ellipse(0.5, 0.5, 0.40, 0.20, c);
                p.line(0.12, 0.5, 0.88, 0.5, 0.03, darker(c, 0.35));
            }
            Star => {
                let pts: Vec<(f32, f32)> = (0..10)
                    .map(|k| {
                        let a =
                            -std::f32::consts::FRAC_PI_2 + k as f32 * std::f32::consts::PI / 5.0;
                        let r = if k % 2 == 0 { 0.45 } else { 0.19 };
                        (0.5 + r * a.cos(), 0.52 + r * a.sin())
                    })
                    .collect();
                p.polygon(&pts, c);
            }
        }
    }
}
