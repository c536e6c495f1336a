//! Image placeholder expansion: every `<image>` of the rendered prompt becomes its image's token
//! text. LLaVA (`LlavaProcessor`): the placeholder repeated `image_seq_length` times; Qwen2-VL
//! (`Qwen2VLProcessor`): `<|image_pad|>` repeated once per merged patch. SmolVLM
//! (`Idefics3Processor`): A single (unsplit) image is
//! `<fake_token_around_image><global-img>` + `<image>`×n + `<fake_token_around_image>`; a split
//! image is, row by row, `<fake_token_around_image><row_r_col_c>` + `<image>`×n for each tile and
//! `\n` after each row, then `\n<fake_token_around_image><global-img>` + `<image>`×n +
//! `<fake_token_around_image>`.

use super::error::{ProcessorError, Result};
use super::image_processor::Grid;
use super::tokens::{row_col_token, FAKE_IMAGE_TOKEN, GLOBAL_IMAGE_TOKEN, IMAGE_TOKEN};

/// LLaVA's (and Qwen2-VL's) text for one image: `image_token` repeated `count` times.
pub fn llava_image_prompt(image_token: &str, count: usize) -> String {
    image_token.repeat(count)
}

/// The text that stands for one image tiled as `grid`, with `image_seq_len` tokens per tile.
pub fn image_prompt(grid: Grid, image_seq_len: usize) -> String {
    let tile = IMAGE_TOKEN.repeat(image_seq_len);
    let global = format!("{FAKE_IMAGE_TOKEN}{GLOBAL_IMAGE_TOKEN}{tile}{FAKE_IMAGE_TOKEN}");
    if grid.rows == 0 && grid.cols == 0 {
        return global;
    }
    let mut out = String::new();
    for r in 1..=grid.rows {
        for c in 1..=grid.cols {
            out.push_str(FAKE_IMAGE_TOKEN);
            out.push_str(&row_col_token(r, c));
            out.push_str(&tile);
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&global);
    out
}

/// A prompt with its placeholders expanded, and where each placeholder went.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expanded {
    pub text: String,
    /// Per placeholder: its end in the original text and the total growth up to and including it.
    shifts: Vec<(usize, isize)>,
}

impl Expanded {
    /// Maps a byte position of the original text (outside placeholders) into the expanded text.
    pub fn map(&self, pos: usize) -> usize {
        let i = self.shifts.partition_point(|(end, _)| *end <= pos);
        let shift = if i == 0 { 0 } else { self.shifts[i - 1].1 };
        (pos as isize + shift) as usize
    }
}

/// Replaces the `placeholder`s of `text`, in order, by `replacements`; their counts must agree.
pub(crate) fn expand(text: &str, placeholder: &str, replacements: &[String]) -> Result<Expanded> {
    let positions: Vec<usize> = text.match_indices(placeholder).map(|(i, _)| i).collect();
    if positions.len() != replacements.len() {
        return Err(ProcessorError::ImageCount {
            placeholders: positions.len(),
            images: replacements.len(),
        });
    }
    let extra: usize = replacements.iter().map(String::len).sum();
    let mut out = String::with_capacity(text.len() + extra);
    let mut shifts = Vec::with_capacity(positions.len());
    let (mut last, mut growth) = (0usize, 0isize);
    for (&start, replacement) in positions.iter().zip(replacements) {
        out.push_str(&text[last..start]);
        out.push_str(replacement);
        last = start + placeholder.len();
        growth += replacement.len() as isize - placeholder.len() as isize;
        shifts.push((last, growth));
    }
    out.push_str(&text[last..]);
    Ok(Expanded { text: out, shifts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_image_text() {
        assert_eq!(
            image_prompt(Grid::default(), 2),
            "<fake_token_around_image><global-img><image><image><fake_token_around_image>"
        );
    }

    #[test]
    fn split_image_text_matches_hf_layout() {
        let f = FAKE_IMAGE_TOKEN;
        let expected = format!(
            "{f}<row_1_col_1><image>{f}<row_1_col_2><image>\n{f}<row_2_col_1><image>{f}<row_2_col_2><image>\n\n{f}<global-img><image>{f}"
        );
        assert_eq!(image_prompt(Grid { rows: 2, cols: 2 }, 1), expected);
    }

    #[test]
    fn expansion_maps_offsets_around_placeholders() {
        let text = "A<image>BC<image>D";
        let e = expand(text, IMAGE_TOKEN, &["xyz".to_string(), String::new()]).unwrap();
        assert_eq!(e.text, "AxyzBCD");
        assert_eq!(e.map(0), 0); // A
        assert_eq!(e.map(8), 4); // B
        assert_eq!(e.map(17), 6); // D
        assert_eq!(e.map(text.len()), e.text.len());
        let err = expand(text, IMAGE_TOKEN, &["x".to_string()]).unwrap_err();
        assert!(matches!(
            err,
            ProcessorError::ImageCount {
                placeholders: 2,
                images: 1
            }
        ));
    }
}
