//! The modality connector (`model.connector`): HF's pixel shuffle, which folds each
//! `scale × scale` block of patch features into one wider feature (space-to-depth, with exactly
//! the element order of `Idefics3Connector.pixel_shuffle`), then a bias-free projection into the
//! language model's width.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::linear::Linear;

/// The projection (`modality_projection`).
#[derive(Module, Debug)]
pub struct ModalityProjection<B: Backend> {
    /// `vision_hidden · scale²` → `text_hidden`, no bias.
    pub proj: Linear<B>,
}

/// Pixel shuffle + projection.
#[derive(Module, Debug)]
pub struct Connector<B: Backend> {
    /// The projection.
    pub modality_projection: ModalityProjection<B>,
    scale_factor: usize,
}

impl<B: Backend> Connector<B> {
    /// Builds the connector with lazily-initialised placeholder parameters.
    pub fn new(
        vision_hidden: usize,
        text_hidden: usize,
        scale_factor: usize,
        device: &B::Device,
    ) -> Self {
        let proj = Linear::new(
            vision_hidden * scale_factor * scale_factor,
            text_hidden,
            false,
            device,
        );
        Self {
            modality_projection: ModalityProjection { proj },
            scale_factor,
        }
    }

    /// `[N, side², vision_hidden]` → `[N, (side/scale)², text_hidden]`.
    pub fn forward(&self, features: Tensor<B, 3>) -> Tensor<B, 3> {
        self.modality_projection
            .proj
            .forward(pixel_shuffle(features, self.scale_factor))
    }
}

/// HF's `pixel_shuffle`: `[N, seq, D]` → `[N, seq / s², D · s²]` for a square `seq`.
pub fn pixel_shuffle<B: Backend>(x: Tensor<B, 3>, s: usize) -> Tensor<B, 3> {
    let [n, seq, d] = x.dims();
    let side = (seq as f64).sqrt().round() as usize;
    debug_assert_eq!(
        side * side,
        seq,
        "pixel_shuffle needs a square number of patches"
    );
    x.reshape([n, side, side / s, d * s])
        .swap_dims(1, 2)
        .reshape([n, side / s, side / s, d * s * s])
        .swap_dims(1, 2)
        .reshape([n, seq / (s * s), d * s * s])
}

#[cfg(test)]
mod tests {
    use super::pixel_shuffle;
    use burn::backend::NdArray;
    use burn::tensor::{Tensor, TensorData};

    /// HF's view/permute sequence amounts to: with `k = side / s`,
    /// `out[n, hb·k + wb, (hi·s + wi)·D + c] = in[n, (hb·s + hi)·side + wb·s + wi, c]`
    /// (formula checked against torch running HF's function on the same input).
    #[test]
    fn matches_hf_index_order() {
        let (n, side, d, s) = (2usize, 6usize, 3usize, 3usize);
        let seq = side * side;
        let input: Vec<f32> = (0..n * seq * d).map(|v| v as f32).collect();
        let x = Tensor::<NdArray, 3>::from_data(
            TensorData::new(input.clone(), [n, seq, d]),
            &Default::default(),
        );
        let out = pixel_shuffle(x, s).into_data().to_vec::<f32>().unwrap();
        let k = side / s;
        let mut expected = Vec::with_capacity(out.len());
        for b in 0..n {
            for hb in 0..k {
                for wb in 0..k {
                    for hi in 0..s {
                        for wi in 0..s {
                            for c in 0..d {
                                let h = hb * s + hi;
                                let w = wb * s + wi;
                                expected.push(input[(b * seq + h * side + w) * d + c]);
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(out, expected);
    }
}
