//! Collation: encoded examples → one right-padded batch on the device (tiles stacked, and
//! Qwen2-VL's `image_grid_thw` rows concatenated in the same order).
//!
//! Right padding needs no attention mask for training: attention is causal, so real tokens never
//! see the padding after them, and padded positions carry label -100.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use safeaware_model::{VlmInput, IGNORE_INDEX};

use crate::train_data::Example;

/// A batch ready for `forward_loss`.
pub struct Batch<B: Backend> {
    pub input: VlmInput<B>,
    pub labels: Tensor<B, 2, Int>,
    /// Tokens in this batch (padding excluded).
    pub tokens: usize,
    /// Images in this batch.
    pub images: usize,
}

/// Pads `examples` to the longest one with `pad_id` (labels with -100) and stacks their tiles.
pub fn collate<B: Backend>(examples: &[&Example], pad_id: u32, device: &B::Device) -> Batch<B> {
    let seq = examples
        .iter()
        .map(|e| e.input_ids.len())
        .max()
        .unwrap_or(0);
    let rows = examples.len();
    let mut ids = Vec::with_capacity(rows * seq);
    let mut labels = Vec::with_capacity(rows * seq);
    let mut pixels = Vec::new();
    let mut tiles = 0;
    let mut tile_shape = [0; 3];
    let mut grids = Vec::new();
    for e in examples {
        let pad = seq - e.input_ids.len();
        ids.extend(
            e.input_ids
                .iter()
                .map(|&t| t as i64)
                .chain(std::iter::repeat_n(pad_id as i64, pad)),
        );
        labels.extend(
            e.labels
                .iter()
                .copied()
                .chain(std::iter::repeat_n(IGNORE_INDEX, pad)),
        );
        pixels.extend_from_slice(&e.pixels);
        tiles += e.tiles;
        grids.extend_from_slice(&e.grid_thw);
        if e.tiles > 0 {
            tile_shape = e.tile_shape;
        }
    }
    let pixel_values = (tiles > 0).then(|| {
        let [c, h, w] = tile_shape;
        Tensor::<B, 4>::from_data(TensorData::new(pixels, [tiles, c, h, w]), device)
    });
    let mut input = VlmInput::new(
        Tensor::from_data(TensorData::new(ids, [rows, seq]), device),
        pixel_values,
    );
    input.image_grid_thw = (!grids.is_empty()).then_some(grids);
    Batch {
        input,
        labels: Tensor::from_data(TensorData::new(labels, [rows, seq]), device),
        tokens: examples.iter().map(|e| e.input_ids.len()).sum(),
        images: examples.iter().filter(|e| e.tiles > 0).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::flex::FlexDevice;
    use burn::backend::Flex;

    fn example(len: usize, tiles: usize) -> Example {
        Example {
            id: format!("e{len}"),
            input_ids: (1..=len as u32).collect(),
            labels: (0..len)
                .map(|i| if i + 1 == len { 7 } else { IGNORE_INDEX })
                .collect(),
            pixels: vec![0.5; tiles * 3 * 2 * 2],
            tiles,
            tile_shape: [3, 2, 2],
            grid_thw: Vec::new(),
            rejected: None,
        }
    }

    #[test]
    fn pads_right_and_stacks_tiles() {
        let (a, b) = (example(3, 1), example(5, 2));
        let batch = collate::<Flex>(&[&a, &b], 0, &FlexDevice);
        let ids = batch
            .input
            .input_ids
            .to_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap();
        assert_eq!(ids, vec![1, 2, 3, 0, 0, 1, 2, 3, 4, 5]);
        let labels = batch
            .labels
            .to_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap();
        assert_eq!(
            labels,
            vec![-100, -100, 7, -100, -100, -100, -100, -100, -100, 7]
        );
        assert_eq!(batch.input.pixel_values.unwrap().dims(), [3, 3, 2, 2]);
        assert_eq!((batch.tokens, batch.images), (8, 2));
    }
}
