//! The Qwen2-VL / Qwen2.5-VL vision tower (`visual`, HF `Qwen2VisionTransformerPretrainedModel`,
//! `Qwen2_5_VisionTransformerPretrainedModel`): every image's flattened patches `[patches,
//! C·T·P·P]` → a linear patch embedding (HF's Conv3d whose stride equals its kernel) → the
//! blocks (`vision_block.rs`), with a 2-D rotary embedding over each patch's (row, column) and
//! attention only among the patches of the same image frame, or for Qwen2.5-VL's window blocks
//! of the same window → the `PatchMerger`, which folds each `spatial_merge_size²` square of
//! patches (adjacent in the sequence: the processor orders them so) into one language-model
//! token. Qwen2.5-VL runs the blocks and the merger in window order (`windows.rs`) and puts the
//! merged tokens back in the processor's order.

use burn::module::{Initializer, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::activation::Activation;
use crate::error::{ModelError, Result};
use crate::linear::Linear;
use crate::precision;
use crate::qwen2_vl::vision_block::{TowerContext, VisionBlock, VisionNorm};
use crate::qwen2_vl::vision_config::Qwen2VisionConfig;
use crate::qwen2_vl::windows::WindowOrder;
use crate::rope::Rope;

/// HF's `Conv3d` patch projection (`patch_embed.proj`), kept in its layout.
#[derive(Module, Debug)]
pub struct PatchConv3d<B: Backend> {
    /// `[embed_dim, C, T, P, P]`, exactly as HF stores it.
    pub weight: Param<Tensor<B, 5>>,
}

/// `patch_embed`: the patch projection.
#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    /// The projection.
    pub proj: PatchConv3d<B>,
}

impl<B: Backend> PatchEmbed<B> {
    /// `[N, C·T·P·P]` → `[N, embed_dim]`: a convolution whose stride equals its kernel, over
    /// inputs the size of the kernel, is one matrix product with the flattened kernel.
    pub fn forward(&self, patches: Tensor<B, 2>) -> Tensor<B, 2> {
        let [width, c, t, p, _] = self.proj.weight.dims();
        let weight = self.proj.weight.val().reshape([width, c * t * p * p]);
        precision::linear(patches, weight.transpose(), None)
    }
}

/// `merger` (HF `PatchMerger`): LayerNorm (Qwen2.5-VL: RMSNorm), then each
/// `spatial_merge_size²` consecutive patches concatenated and mapped by `Linear → GELU →
/// Linear` to the language model's width.
#[derive(Module, Debug)]
pub struct PatchMerger<B: Backend> {
    /// The norm (`ln_q`).
    pub ln_q: VisionNorm<B>,
    /// HF's `nn.Sequential(Linear, GELU, Linear)`: slots 0 and 2 hold the linears, slot 1 (the
    /// GELU) nothing, so the parameters keep HF's names `mlp.0.*` and `mlp.2.*`.
    pub mlp: Vec<Option<Linear<B>>>,
}

impl<B: Backend> PatchMerger<B> {
    fn new(v: &Qwen2VisionConfig, device: &B::Device) -> Self {
        let merged = v.merged_width();
        Self {
            ln_q: VisionNorm::new(&v.variant, v.embed_dim, device),
            mlp: vec![
                Some(Linear::new(merged, merged, true, device)),
                None,
                Some(Linear::new(merged, v.hidden_size, true, device)),
            ],
        }
    }

    /// `[1, N, embed_dim]` → `[N / merge², hidden_size]`.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 2> {
        let [_, n, width] = x.dims();
        let [Some(first), None, Some(second)] = self.mlp.as_slice() else {
            unreachable!("the merger is built with linears in slots 0 and 2 only");
        };
        let merged = first.weight.dims()[0];
        let x = self.ln_q.forward(x).reshape([n * width / merged, merged]);
        second.forward(Activation::Gelu.forward(first.forward(x)))
    }
}

/// The tower (`visual`).
#[derive(Module, Debug)]
pub struct Qwen2VisionTransformer<B: Backend> {
    /// Patch embedding.
    pub patch_embed: PatchEmbed<B>,
    /// Blocks in order.
    pub blocks: Vec<VisionBlock<B>>,
    /// The merger.
    pub merger: PatchMerger<B>,
    #[module(skip)]
    rope: Rope,
    #[module(skip)]
    merge: usize,
    /// Qwen2.5-VL's window side in merged tokens (`None`: no windows).
    #[module(skip)]
    window: Option<usize>,
}

impl<B: Backend> Qwen2VisionTransformer<B> {
    /// A placeholder tower of `v` (zeros, allocated lazily; norms at their defaults).
    pub fn new(v: &Qwen2VisionConfig, device: &B::Device) -> Self {
        let shape = [
            v.embed_dim,
            v.in_channels,
            v.temporal_patch_size,
            v.patch_size,
            v.patch_size,
        ];
        Self {
            patch_embed: PatchEmbed {
                proj: PatchConv3d {
                    weight: Initializer::Zeros.init(shape, device),
                },
            },
            blocks: (0..v.depth)
                .map(|i| VisionBlock::new(v, i, device))
                .collect(),
            merger: PatchMerger::new(v, device),
            rope: Rope::axial(v.head_dim(), v.rope_theta),
            merge: v.spatial_merge_size,
            window: v.window_tokens(),
        }
    }

    /// Merged image features `[Σ t·h·w / merge², hidden_size]` for the patches `[Σ t·h·w,
    /// C·T·P·P]` of images with patch grids `grids` (`[t, h, w]` each, in order).
    pub fn forward(&self, patches: Tensor<B, 2>, grids: &[[usize; 3]]) -> Result<Tensor<B, 2>> {
        self.check_grids(patches.dims()[0], grids)?;
        let device = patches.device();
        let x = self.patch_embed.forward(patches);
        let (mut rows, mut cols) = patch_positions(grids, self.merge);
        let frames: Vec<usize> = grids
            .iter()
            .flat_map(|&[t, h, w]| std::iter::repeat_n(h * w, t))
            .collect();
        let unit = self.merge * self.merge;
        let order = self.window.map(|w| WindowOrder::new(grids, self.merge, w));
        let (x, windows) = match &order {
            Some(order) => {
                rows = order.reorder(&rows, unit);
                cols = order.reorder(&cols, unit);
                let x = select_tokens(x, &order.index, unit);
                (x, order.windows.clone())
            }
            None => (x, frames.clone()),
        };
        let n = rows.len();
        let (cos, sin) = self
            .rope
            .tables_3d::<B>([&rows, &cols, &cols], 1, n, &device);
        let context = TowerContext {
            cos,
            sin,
            frames,
            windows,
        };
        let x = self
            .blocks
            .iter()
            .fold(x.unsqueeze::<3>(), |x, block| block.forward(x, &context));
        let merged = self.merger.forward(x);
        Ok(match &order {
            Some(order) => select_tokens(merged, &order.inverse(), 1),
            None => merged,
        })
    }

    /// Errors unless the grids cover exactly `patches` rows and each side is a multiple of
    /// the merge size.
    fn check_grids(&self, patches: usize, grids: &[[usize; 3]]) -> Result<()> {
        let m = self.merge;
        if let Some(bad) = grids
            .iter()
            .find(|[t, h, w]| *t == 0 || *h == 0 || !h.is_multiple_of(m) || !w.is_multiple_of(m))
        {
            return Err(ModelError::input(
                "image_grid_thw",
                format!("grid {bad:?}: t must be positive and h, w positive multiples of spatial_merge_size {m}"),
            ));
        }
        let total: usize = grids.iter().map(|[t, h, w]| t * h * w).sum();
        if total != patches {
            return Err(ModelError::input(
                "pixel_values",
                format!("{patches} patches, but image_grid_thw {grids:?} covers {total}"),
            ));
        }
        Ok(())
    }
}

/// The rows of `x [N, D]` in groups of `unit` consecutive rows, group `index[i]` put at place
/// `i` (a permutation of the groups).
fn select_tokens<B: Backend>(x: Tensor<B, 2>, index: &[usize], unit: usize) -> Tensor<B, 2> {
    let [n, width] = x.dims();
    let index: Vec<i64> = index.iter().map(|&i| i as i64).collect();
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [n / unit]), &x.device());
    x.reshape([n / unit, unit * width])
        .select(0, index)
        .reshape([n, width])
}

/// Each patch's (row, column) in the sequence order the processor writes: per frame, the
/// `merge × merge` squares row by row, each square's patches row by row (HF
/// `get_vision_position_ids`).
pub fn patch_positions(grids: &[[usize; 3]], merge: usize) -> (Vec<i64>, Vec<i64>) {
    let (mut rows, mut cols) = (Vec::new(), Vec::new());
    for &[t, h, w] in grids {
        for _ in 0..t {
            for block_row in 0..h / merge {
                for block_col in 0..w / merge {
                    for i in 0..merge {
                        for j in 0..merge {
                            rows.push((block_row * merge + i) as i64);
                            cols.push((block_col * merge + j) as i64);
                        }
                    }
                }
            }
        }
    }
    (rows, cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_positions_follow_the_merge_blocks() {
        let (rows, cols) = patch_positions(&[[1, 2, 4]], 2);
        assert_eq!(rows, vec![0, 0, 1, 1, 0, 0, 1, 1]);
        assert_eq!(cols, vec![0, 1, 0, 1, 2, 3, 2, 3]);
        // A second image restarts at (0, 0); frames repeat the grid.
        let (rows, cols) = patch_positions(&[[1, 2, 2], [2, 2, 2]], 2);
        assert_eq!(rows.len(), 12);
        assert_eq!(&rows[4..8], &rows[8..12]);
        assert_eq!(&cols[..4], &[0, 1, 0, 1]);
    }
}
