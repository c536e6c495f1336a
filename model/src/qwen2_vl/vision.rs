//! The Qwen2-VL vision tower (`visual`, HF `Qwen2VisionTransformerPretrainedModel`): every
//! image's flattened patches `[patches, C·T·P·P]` → a linear patch embedding (HF's Conv3d whose
//! stride equals its kernel) → pre-LayerNorm blocks with a fused `qkv` projection, a 2-D
//! rotary embedding over each patch's (row, column) and attention only among the patches of
//! the same image frame (block-diagonal over `image_grid_thw`, run frame by frame) → the
//! `PatchMerger`, which
//! folds each `spatial_merge_size²` square of patches (adjacent in the sequence: the processor
//! orders them so) into one language-model token.

use burn::module::{Initializer, Module, Param};
use burn::nn::LayerNorm;
use burn::tensor::backend::Backend;
use burn::tensor::{s, Tensor};

use crate::activation::Activation;
use crate::attention::{attention, merge_heads, split_heads, AttentionMask};
use crate::error::{ModelError, Result};
use crate::linear::Linear;
use crate::precision;
use crate::qwen2_vl::config::Qwen2VisionConfig;
use crate::rope::{apply_rotary, Rope};
use crate::vision_transformer::{layer_norm, vision_layer_norm};

/// The LayerNorm epsilon of every norm in the tower (fixed in HF's code).
const NORM_EPS: f64 = 1e-6;

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

/// `attn`: self-attention with a fused `qkv` projection.
#[derive(Module, Debug)]
pub struct VisionAttention<B: Backend> {
    /// `[embed_dim → 3·embed_dim]`: queries, keys, values.
    pub qkv: Linear<B>,
    /// Output projection.
    pub proj: Linear<B>,
    heads: usize,
}

/// The per-forward inputs every block shares.
struct TowerContext<B: Backend> {
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
    /// The patches of each image frame, in sequence order (HF's `cu_seqlens` differences).
    frames: Vec<usize>,
}

impl<B: Backend> VisionAttention<B> {
    fn forward(&self, x: Tensor<B, 3>, context: &TowerContext<B>) -> Tensor<B, 3> {
        let [_, _, width] = x.dims();
        let head_dim = width / self.heads;
        let qkv = self.qkv.forward(x);
        let part = |i: usize| {
            let slice = qkv.clone().slice(s![.., .., i * width..(i + 1) * width]);
            split_heads(slice, self.heads, head_dim)
        };
        let q = apply_rotary(part(0), &context.cos, &context.sin);
        let k = apply_rotary(part(1), &context.cos, &context.sin);
        let out = per_frame_attention(q, k, part(2), &context.frames);
        self.proj.forward(merge_heads(out))
    }
}

/// Bidirectional attention within each frame only, one frame at a time (HF eager's split over
/// `cu_seqlens`): exactly a block-diagonal mask, without building an `[N, N]` one.
fn per_frame_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    frames: &[usize],
) -> Tensor<B, 4> {
    if frames.len() <= 1 {
        return attention(q, k, v, &AttentionMask::Bidirectional);
    }
    let mut start = 0;
    let outputs = frames
        .iter()
        .map(|&len| {
            let range = start..start + len;
            start += len;
            let take = |x: &Tensor<B, 4>| x.clone().slice(s![.., .., range.clone(), ..]);
            attention(take(&q), take(&k), take(&v), &AttentionMask::Bidirectional)
        })
        .collect();
    Tensor::cat(outputs, 2)
}

/// `mlp`: `fc2(act(fc1(x)))`.
#[derive(Module, Debug)]
pub struct VisionMlp<B: Backend> {
    /// Expansion.
    pub fc1: Linear<B>,
    /// Projection back.
    pub fc2: Linear<B>,
}

/// A vision block (`blocks.N`): pre-LayerNorm attention and MLP, each with a residual.
#[derive(Module, Debug)]
pub struct VisionBlock<B: Backend> {
    /// Norm before attention.
    pub norm1: LayerNorm<B>,
    /// Norm before the MLP.
    pub norm2: LayerNorm<B>,
    /// Attention.
    pub attn: VisionAttention<B>,
    /// MLP.
    pub mlp: VisionMlp<B>,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> VisionBlock<B> {
    fn new(v: &Qwen2VisionConfig, device: &B::Device) -> Self {
        let (d, m) = (v.embed_dim, v.intermediate_size());
        Self {
            norm1: vision_layer_norm(d, NORM_EPS, device),
            norm2: vision_layer_norm(d, NORM_EPS, device),
            attn: VisionAttention {
                qkv: Linear::new(d, 3 * d, true, device),
                proj: Linear::new(d, d, true, device),
                heads: v.num_heads,
            },
            mlp: VisionMlp {
                fc1: Linear::new(d, m, true, device),
                fc2: Linear::new(m, d, true, device),
            },
            activation: v.hidden_act,
        }
    }

    fn forward(&self, x: Tensor<B, 3>, context: &TowerContext<B>) -> Tensor<B, 3> {
        let h = self
            .attn
            .forward(layer_norm(&self.norm1, x.clone(), NORM_EPS), context);
        let x = x + h;
        let h = self
            .mlp
            .fc1
            .forward(layer_norm(&self.norm2, x.clone(), NORM_EPS));
        x + self.mlp.fc2.forward(self.activation.forward(h))
    }
}

/// `merger` (HF `PatchMerger`): LayerNorm, then each `spatial_merge_size²` consecutive patches
/// concatenated and mapped by `Linear → GELU → Linear` to the language model's width.
#[derive(Module, Debug)]
pub struct PatchMerger<B: Backend> {
    /// The norm (`ln_q`).
    pub ln_q: LayerNorm<B>,
    /// HF's `nn.Sequential(Linear, GELU, Linear)`: slots 0 and 2 hold the linears, slot 1 (the
    /// GELU) nothing, so the parameters keep HF's names `mlp.0.*` and `mlp.2.*`.
    pub mlp: Vec<Option<Linear<B>>>,
}

impl<B: Backend> PatchMerger<B> {
    fn new(v: &Qwen2VisionConfig, device: &B::Device) -> Self {
        let merged = v.merged_width();
        Self {
            ln_q: vision_layer_norm(v.embed_dim, NORM_EPS, device),
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
        let x = layer_norm(&self.ln_q, x, NORM_EPS).reshape([n * width / merged, merged]);
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
            blocks: (0..v.depth).map(|_| VisionBlock::new(v, device)).collect(),
            merger: PatchMerger::new(v, device),
            rope: Rope::axial(v.head_dim(), v.rope_theta),
            merge: v.spatial_merge_size,
        }
    }

    /// Merged image features `[Σ t·h·w / merge², hidden_size]` for the patches `[Σ t·h·w,
    /// C·T·P·P]` of images with patch grids `grids` (`[t, h, w]` each, in order).
    pub fn forward(&self, patches: Tensor<B, 2>, grids: &[[usize; 3]]) -> Result<Tensor<B, 2>> {
        self.check_grids(patches.dims()[0], grids)?;
        let device = patches.device();
        let x = self.patch_embed.forward(patches).unsqueeze::<3>();
        let (rows, cols) = patch_positions(grids, self.merge);
        let n = rows.len();
        let (cos, sin) = self
            .rope
            .tables_3d::<B>([&rows, &cols, &cols], 1, n, &device);
        let frames = grids
            .iter()
            .flat_map(|&[t, h, w]| std::iter::repeat_n(h * w, t))
            .collect();
        let context = TowerContext { cos, sin, frames };
        let x = self
            .blocks
            .iter()
            .fold(x, |x, block| block.forward(x, &context));
        Ok(self.merger.forward(x))
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
