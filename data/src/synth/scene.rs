//! Composes one synthetic image: a tinted, noisy background, the main object at a random place
//! and scale, sometimes a small distractor, and a short text description of what was drawn.

use image::RgbImage;

use super::draw::{darker, Colour, Pen};
use super::objects::ObjectKind;
use super::rng::Rng;

/// Background tints and their names.
pub const BACKGROUNDS: [(&str, Colour); 8] = [
    ("blue", [175, 205, 235]),
    ("green", [185, 225, 180]),
    ("yellow", [242, 232, 165]),
    ("grey", [205, 205, 205]),
    ("pink", [240, 205, 218]),
    ("white", [246, 246, 246]),
    ("purple", [212, 195, 236]),
    ("orange", [246, 210, 168]),
];
/// Words describing the object's size.
pub const SIZES: [&str; 2] = ["small", "large"];
/// Phrases describing the object's place.
pub const POSITIONS: [&str; 5] = [
    "on the left",
    "on the right",
    "at the top",
    "at the bottom",
    "in the middle",
];

/// A rendered image and its description.
#[derive(Debug, Clone)]
pub struct Scene {
    pub image: RgbImage,
    pub description: String,
}

/// Draws `kind` on a random background into a `size`×`size` image; with probability
/// `distractor_prob` a small distractor object is added where it does not overlap.
pub fn render(kind: ObjectKind, size: u32, distractor_prob: f32, rng: &mut Rng) -> Scene {
    let colour = kind.base_colour();
    let (bg_name, bg) = pick_background(colour, rng);
    let noise = rng.below(11) as i32;
    let shade = rng.range(0.0, 0.18);
    let s = size as f32;
    let mut image = RgbImage::from_fn(size, size, |_, y| {
        let t = y as f32 / s;
        image::Rgb(darker(bg, shade * t))
    });

    let scale = if kind == ObjectKind::Kitchen {
        rng.range(0.85, 1.0)
    } else {
        rng.range(0.55, 0.9)
    };
    let side = scale * s;
    let x = rng.range(0.0, s - side);
    let y = rng.range(0.0, s - side);
    kind.draw(&mut Pen::new(&mut image, x, y, side), colour);

    let mut distractor = None;
    if rng.chance(distractor_prob) {
        let d = *rng.pick(&ObjectKind::DISTRACTORS);
        let dc = d.base_colour();
        let dside = rng.range(0.18, 0.28) * s;
        for _ in 0..20 {
            let (dx, dy) = (rng.range(0.0, s - dside), rng.range(0.0, s - dside));
            let apart = dx + dside <= x || dx >= x + side || dy + dside <= y || dy >= y + side;
            if apart {
                d.draw(&mut Pen::new(&mut image, dx, dy, dside), dc);
                distractor = Some(d);
                break;
            }
        }
    }

    if noise > 0 {
        for px in image.pixels_mut() {
            for ch in px.0.iter_mut() {
                let n = rng.below(2 * noise as usize + 1) as i32 - noise;
                *ch = (*ch as i32 + n).clamp(0, 255) as u8;
            }
        }
    }

    let size_word = if scale < 0.72 { SIZES[0] } else { SIZES[1] };
    let position = position_phrase((x + side / 2.0) / s, (y + side / 2.0) / s);
    let description = describe(kind, size_word, position, bg_name, distractor);
    Scene { image, description }
}

/// The description of a scene, e.g. `a small yellow car on the left. the background is blue.
/// there is also a cup.`
pub fn describe(
    kind: ObjectKind,
    size_word: &str,
    position: &str,
    background: &str,
    distractor: Option<ObjectKind>,
) -> String {
    let colour_word = kind
        .colour_name()
        .map(|c| format!("{c} "))
        .unwrap_or_default();
    let mut text = format!(
        "a {size_word} {colour_word}{} {position}. the background is {background}.",
        kind.noun()
    );
    if let Some(d) = distractor {
        text.push_str(&format!(" there is also {}.", d.with_article()));
    }
    text
}

/// A background that contrasts with `colour` (summed channel difference of at least 160): the
/// first of up to 17 random picks that does, else the most contrasting of them.
fn pick_background(colour: Colour, rng: &mut Rng) -> (&'static str, Colour) {
    let distance = |bg: &Colour| -> i32 {
        bg.iter()
            .zip(colour)
            .map(|(a, b)| (*a as i32 - b as i32).abs())
            .sum()
    };
    let mut best = *rng.pick(&BACKGROUNDS);
    for _ in 0..16 {
        if distance(&best.1) >= 160 {
            break;
        }
        let next = *rng.pick(&BACKGROUNDS);
        if distance(&next.1) > distance(&best.1) {
            best = next;
        }
    }
    best
}

/// The place phrase for an object centred at `(cx, cy)` in unit image coordinates.
fn position_phrase(cx: f32, cy: f32) -> &'static str {
    let (dx, dy) = (cx - 0.5, cy - 0.5);
    if dx.abs() < 0.12 && dy.abs() < 0.12 {
        POSITIONS[4]
    } else if dx.abs() >= dy.abs() {
        if dx < 0.0 {
            POSITIONS[0]
        } else {
            POSITIONS[1]
        }
    } else if dy < 0.0 {
        POSITIONS[2]
    } else {
        POSITIONS[3]
    }
}
