//! `data preview`: a contact sheet of images with their id, verdict, subset/scenario and
//! prompt drawn underneath, for a person to look at.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{ImageFormat, Rgb, RgbImage};
use safeaware_common::fsio::write_atomic;

use super::font::{draw_text, wrap, GLYPH};
use super::source::Entry;
use crate::benchmark::Verdict;
use crate::fileio;

/// Width of one cell in pixels.
pub const CELL_WIDTH: u32 = 256;
/// Side of the square the thumbnail is fitted into.
pub const THUMB: u32 = 128;
/// Cells per row (fewer when there are fewer entries).
pub const COLUMNS: usize = 4;
const PAD: u32 = 6;
const LINE: u32 = GLYPH + 2;
const PROMPT_LINES: usize = 5;
const CELL_HEIGHT: u32 = PAD + THUMB + PAD + (2 + PROMPT_LINES as u32) * LINE + PAD;
const TEXT: [u8; 3] = [20, 20, 20];
const MUTED: [u8; 3] = [110, 110, 110];

/// Errors writing a preview.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("nothing to preview")]
    Empty,
    #[error("{path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// Picks `n` entries evenly spread over `entries` (all of them if there are fewer).
pub fn pick_evenly(entries: &[Entry], n: usize) -> Vec<&Entry> {
    let n = n.min(entries.len());
    (0..n).map(|i| &entries[i * entries.len() / n]).collect()
}

/// Draws the contact sheet of `entries`, `COLUMNS` cells a row. Missing or undecodable images
/// show as a grey box saying so.
pub fn contact_sheet(entries: &[&Entry]) -> RgbImage {
    let columns = COLUMNS.min(entries.len()).max(1);
    let rows = entries.len().div_ceil(columns).max(1);
    let mut sheet = RgbImage::from_pixel(
        CELL_WIDTH * columns as u32,
        CELL_HEIGHT * rows as u32,
        Rgb([255, 255, 255]),
    );
    for (i, entry) in entries.iter().enumerate() {
        let x = (i % columns) as u32 * CELL_WIDTH;
        let y = (i / columns) as u32 * CELL_HEIGHT;
        draw_cell(&mut sheet, x, y, entry);
    }
    sheet
}

/// Draws a contact sheet of `n` entries spread over `entries` and writes it as PNG, atomically.
pub fn write_preview(entries: &[Entry], n: usize, out: &Path) -> Result<usize, PreviewError> {
    let picked = pick_evenly(entries, n);
    if picked.is_empty() {
        return Err(PreviewError::Empty);
    }
    let sheet = contact_sheet(&picked);
    let mut bytes = Vec::new();
    let err = |message: String| PreviewError::Write {
        path: out.to_path_buf(),
        message,
    };
    sheet
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(|e| err(e.to_string()))?;
    write_atomic(out, &bytes).map_err(|e| err(e.to_string()))?;
    Ok(picked.len())
}

fn draw_cell(sheet: &mut RgbImage, x: u32, y: u32, entry: &Entry) {
    for px in x..x + CELL_WIDTH {
        sheet.put_pixel(px, y, Rgb([200, 200, 200]));
    }
    for py in y..y + CELL_HEIGHT {
        sheet.put_pixel(x, py, Rgb([200, 200, 200]));
    }
    let thumb = entry
        .image
        .as_deref()
        .ok_or_else(|| "NO IMAGE".to_string())
        .and_then(|p| fileio::decode_image(p).map_err(|_| "BAD IMAGE".to_string()))
        .map(|img| thumbnail(&img.to_rgb8()));
    let top = y + PAD;
    match thumb {
        Ok(t) => {
            let tx = x + (CELL_WIDTH - t.width()) / 2;
            let ty = top + (THUMB - t.height()) / 2;
            imageops::replace(sheet, &t, tx as i64, ty as i64);
        }
        Err(label) => {
            let bx = x + (CELL_WIDTH - THUMB) / 2;
            for py in top..top + THUMB {
                for px in bx..bx + THUMB {
                    sheet.put_pixel(px, py, Rgb([215, 215, 215]));
                }
            }
            let lx = bx + (THUMB - label.len() as u32 * GLYPH) / 2;
            draw_text(
                sheet,
                lx,
                top + THUMB / 2 - GLYPH / 2,
                &label,
                [160, 30, 30],
                1,
            );
        }
    }
    let width = ((CELL_WIDTH - 2 * PAD) / GLYPH) as usize;
    let mut ty = top + THUMB + PAD;
    let (verdict, colour) = match entry.verdict {
        Some(Verdict::Safe) => ("SAFE", [20, 140, 40]),
        Some(Verdict::Unsafe) => ("UNSAFE", [200, 30, 30]),
        None => ("?", MUTED),
    };
    let id: String = entry.id.chars().take(width - verdict.len() - 1).collect();
    draw_text(sheet, x + PAD, ty, &id, TEXT, 1);
    let vx = x + CELL_WIDTH - PAD - verdict.len() as u32 * GLYPH;
    draw_text(sheet, vx, ty, verdict, colour, 1);
    ty += LINE;
    let label = match (&entry.subset, &entry.scenario) {
        (Some(s), Some(c)) => format!("{s} / {c}"),
        (Some(s), None) => s.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => String::new(),
    };
    draw_text(
        sheet,
        x + PAD,
        ty,
        &label.chars().take(width).collect::<String>(),
        MUTED,
        1,
    );
    ty += LINE;
    let mut lines = wrap(&format!("\"{}\"", entry.prompt), width);
    if lines.len() > PROMPT_LINES {
        lines.truncate(PROMPT_LINES);
        let last = &mut lines[PROMPT_LINES - 1];
        let keep: String = last.chars().take(width - 3).collect();
        *last = format!("{keep}...");
    }
    for line in lines {
        draw_text(sheet, x + PAD, ty, &line, TEXT, 1);
        ty += LINE;
    }
}

/// Fits `img` into `THUMB`×`THUMB`: small images grow by a whole factor (crisp pixels), large
/// ones shrink smoothly.
fn thumbnail(img: &RgbImage) -> RgbImage {
    let (w, h) = (img.width().max(1), img.height().max(1));
    if w <= THUMB && h <= THUMB {
        let k = (THUMB / w).min(THUMB / h).max(1);
        return imageops::resize(img, w * k, h * k, FilterType::Nearest);
    }
    let scale = THUMB as f32 / w.max(h) as f32;
    let (nw, nh) = (
        ((w as f32 * scale) as u32).max(1),
        ((h as f32 * scale) as u32).max(1),
    );
    imageops::resize(img, nw, nh, FilterType::Triangle)
}
