//! M-RoPE positions (HF `Qwen2VLModel.get_rope_index`): every real token gets a (temporal,
//! height, width) position. A text token's three are equal and count up from the row's first
//! real token; an image's tokens take `start + (t, row, column)` on the merged grid, and the
//! text after it continues from `start + max(h, w) / merge`. Padding tokens get 0. Each row's
//! delta (largest position + 1 − real tokens) is what cached decoding adds to the token count.

use crate::error::{ModelError, Result};
use crate::language_model::RopePositions;

/// The token ids and images of a batch, as M-RoPE needs them.
pub struct RopeInput<'a> {
    /// Row-major `[B, T]` token ids.
    pub ids: &'a [i64],
    /// Per row and position: whether the token is real.
    pub valid: &'a [Vec<bool>],
    /// The image placeholder token.
    pub image_token: i64,
    /// Patch grids `[t, h, w]` of the batch's images, in order.
    pub grids: &'a [[usize; 3]],
    /// The merger's `spatial_merge_size`.
    pub merge: usize,
}

/// The positions of every token of `input` and each row's delta.
pub fn rope_index(input: &RopeInput) -> Result<RopePositions> {
    let seq = input.valid.first().map_or(0, Vec::len);
    let mut axes: [Vec<i64>; 3] = Default::default();
    let mut deltas = Vec::with_capacity(input.valid.len());
    let mut grids = input.grids.iter();
    for (row, valid) in input.valid.iter().enumerate() {
        let ids = &input.ids[row * seq..(row + 1) * seq];
        let (row_axes, delta) = row_positions(ids, valid, input, &mut grids)?;
        for (axis, values) in axes.iter_mut().zip(row_axes) {
            axis.extend(values);
        }
        deltas.push(delta);
    }
    if grids.next().is_some() {
        return Err(ModelError::input(
            "image_grid_thw",
            format!(
                "{} grids, more than the images the input ids hold",
                input.grids.len()
            ),
        ));
    }
    Ok(RopePositions { axes, deltas })
}

/// One row's positions per axis and its delta.
fn row_positions<'g>(
    ids: &[i64],
    valid: &[bool],
    input: &RopeInput,
    grids: &mut impl Iterator<Item = &'g [usize; 3]>,
) -> Result<([Vec<i64>; 3], i64)> {
    let mut axes: [Vec<i64>; 3] = std::array::from_fn(|_| vec![0; ids.len()]);
    let real: Vec<usize> = (0..ids.len()).filter(|&i| valid[i]).collect();
    let (mut next, mut largest, mut k) = (0i64, -1i64, 0);
    while k < real.len() {
        if ids[real[k]] != input.image_token {
            for axis in axes.iter_mut() {
                axis[real[k]] = next;
            }
            (largest, next, k) = (largest.max(next), next + 1, k + 1);
            continue;
        }
        let grid = grids.next().ok_or_else(|| {
            ModelError::input(
                "image_grid_thw",
                "fewer grids than the images the input ids hold",
            )
        })?;
        let image = image_positions(grid, input.merge, next);
        let span = &real[k..];
        if span.len() < image.len()
            || span[..image.len()]
                .iter()
                .any(|&p| ids[p] != input.image_token)
        {
            return Err(ModelError::input(
                "input_ids",
                format!(
                    "an image of grid {grid:?} needs {} consecutive image tokens",
                    image.len()
                ),
            ));
        }
        for (&p, position) in span.iter().zip(&image) {
            for (axis, &value) in axes.iter_mut().zip(position) {
                axis[p] = value;
                largest = largest.max(value);
            }
        }
        k += image.len();
        next += (grid[1].max(grid[2]) / input.merge) as i64;
    }
    Ok((axes, largest + 1 - real.len() as i64))
}

/// `start + (t, row, column)` for each token of an image of patch grid `[t, h, w]`, merged by
/// `merge` on both sides, in the merger's output order.
fn image_positions(&[t, h, w]: &[usize; 3], merge: usize, start: i64) -> Vec<[i64; 3]> {
    let (h, w) = (h / merge, w / merge);
    let mut out = Vec::with_capacity(t * h * w);
    for frame in 0..t {
        for row in 0..h {
            for col in 0..w {
                out.push([frame, row, col].map(|v| start + v as i64));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HF's example: text, an image of merged grid 2×2 (patch grid 4×4), then text; the text
    /// after the image continues from start + 2.
    #[test]
    fn text_after_an_image_continues_from_its_largest_side() {
        let img = 9;
        let ids = [1, 2, img, img, img, img, 3, 4];
        let valid = vec![vec![true; 8]];
        let input = RopeInput {
            ids: &ids,
            valid: &valid,
            image_token: img,
            grids: &[[1, 4, 4]],
            merge: 2,
        };
        let p = rope_index(&input).unwrap();
        assert_eq!(p.axes[0], vec![0, 1, 2, 2, 2, 2, 4, 5]);
        assert_eq!(p.axes[1], vec![0, 1, 2, 2, 3, 3, 4, 5]);
        assert_eq!(p.axes[2], vec![0, 1, 2, 3, 2, 3, 4, 5]);
        assert_eq!(p.deltas, vec![6 - 8]);
    }

    #[test]
    fn padding_gets_zero_and_grids_must_match_the_images() {
        let img = 9;
        let ids = [0, 0, 1, img, 5, 6, 1, img];
        let valid = vec![vec![false, false, true, true], vec![true; 4]];
        let mut input = RopeInput {
            ids: &ids,
            valid: &valid,
            image_token: img,
            grids: &[[1, 2, 2], [1, 2, 2]],
            merge: 2,
        };
        let p = rope_index(&input).unwrap();
        assert_eq!(p.axes[1], vec![0, 0, 0, 1, 0, 1, 2, 3]);
        assert_eq!(p.deltas, vec![0, 0]);
        input.grids = &[[1, 2, 2]];
        assert!(rope_index(&input).is_err());
        input.grids = &[[1, 2, 2], [1, 2, 2], [1, 2, 2]];
        assert!(rope_index(&input).is_err());
        input.grids = &[[1, 4, 2], [1, 2, 2]];
        assert!(rope_index(&input).is_err());
    }
}
