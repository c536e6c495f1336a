//! The key/value cache of the language model and the per-row bookkeeping that makes batched,
//! left-padded decoding exact: which cached keys are padding, and the next position id of each
//! row (positions are `cumsum(mask) - 1`, as HF `generate` computes them).

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::attention::AttentionMask;

/// Keys and values of every decoder layer for a batch of sequences.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    /// Per layer: keys and values `[B, kv_heads, S, head_dim]`, rotary already applied.
    pub(crate) layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    /// Per row: whether each cached position is a real token (false = padding).
    key_valid: Vec<Vec<bool>>,
    /// Per row: the position id the next real token gets.
    next_position: Vec<i64>,
    /// Per row: added to every position handed out (M-RoPE's `rope_deltas`: after an image,
    /// text positions run ahead of the token count); 0 unless set.
    position_delta: Vec<i64>,
}

/// Positions and mask for one forward step over `T` new tokens.
#[derive(Debug)]
pub(crate) struct StepLayout {
    /// Row-major `[B, T]` position ids (padding gets 0).
    pub positions: Vec<i64>,
    /// Keys visible after the step (`past + T`).
    pub key_len: usize,
    /// Explicit mask when some real token follows a padding key, `[B, T, key_len]`, true = masked.
    pub padding_mask: Option<Vec<bool>>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for `batch` rows and `layers` decoder layers.
    pub fn new(layers: usize, batch: usize) -> Self {
        Self {
            layers: vec![None; layers],
            key_valid: vec![Vec::new(); batch],
            next_position: vec![0; batch],
            position_delta: vec![0; batch],
        }
    }

    /// Sets each row's position delta (HF's `rope_deltas`: the prompt's largest M-RoPE position
    /// + 1 − its real token count), which later steps add to their positions.
    pub(crate) fn set_position_deltas(&mut self, deltas: Vec<i64>) {
        debug_assert_eq!(deltas.len(), self.batch_size());
        self.position_delta = deltas;
    }

    /// Rows in the batch.
    pub fn batch_size(&self) -> usize {
        self.key_valid.len()
    }

    /// Cached positions per row (padding included).
    pub fn seq_len(&self) -> usize {
        self.key_valid.first().map_or(0, Vec::len)
    }

    /// The most positions any row holds (real tokens only: a left-padded row's positions
    /// start at its first real token).
    pub fn max_position(&self) -> usize {
        self.next_position.iter().copied().max().unwrap_or(0) as usize
    }

    /// Plans a step over new tokens whose validity is `new_valid` (`[B][T]`) and records them.
    pub(crate) fn advance(&mut self, new_valid: &[Vec<bool>]) -> StepLayout {
        let past = self.seq_len();
        let seq = new_valid.first().map_or(0, Vec::len);
        let mut positions = Vec::with_capacity(new_valid.len() * seq);
        for (row, valid) in new_valid.iter().enumerate() {
            for &is_real in valid {
                if is_real {
                    positions.push(self.next_position[row] + self.position_delta[row]);
                    self.next_position[row] += 1;
                } else {
                    positions.push(0);
                }
            }
            self.key_valid[row].extend_from_slice(valid);
        }
        let key_len = past + seq;
        // A padding key matters only if a real token comes after it: trailing (right) padding
        // is invisible to real tokens under the causal mask, so it needs no explicit mask.
        let padding_visible = self.key_valid.iter().any(|row| {
            let first_pad = row.iter().position(|&v| !v);
            first_pad.is_some_and(|p| row[p..].iter().any(|&v| v))
        });
        // A padding query sees itself (only), so that no row is fully masked: flash kernels
        // lack the decomposed softmax's guard for such rows and would return NaN there, which
        // reaches real rows through the next layer (0 · NaN). Real queries never see padding.
        let padding_mask = padding_visible.then(|| {
            let mut mask = Vec::with_capacity(new_valid.len() * seq * key_len);
            for row in &self.key_valid {
                for i in 0..seq {
                    let query = past + i;
                    mask.extend((0..key_len).map(|j| j > query || (!row[j] && j != query)));
                }
            }
            mask
        });
        StepLayout {
            positions,
            key_len,
            padding_mask,
        }
    }

    /// Appends a layer's new keys/values and returns all of them.
    pub(crate) fn extend(
        &mut self,
        layer: usize,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let (k, v) = match self.layers[layer].take() {
            Some((old_k, old_v)) => (
                Tensor::cat(vec![old_k, k], 2),
                Tensor::cat(vec![old_v, v], 2),
            ),
            None => (k, v),
        };
        self.layers[layer] = Some((k.clone(), v.clone()));
        (k, v)
    }
}

impl StepLayout {
    /// The attention mask of this step for `heads` query heads, built once per forward pass and
    /// shared by every layer.
    ///
    /// Without autodiff (evaluation, generation) the mask takes the form GPU backends run with
    /// their flash-attention kernel: [`AttentionMask::Causal`] without visible padding, else an
    /// [`AttentionMask::Masked`] boolean mask. Under autodiff Burn's attention is its decomposed
    /// fallback, which for `is_causal` or a `Bool` mask builds (causal), expands and copies a
    /// `[B, H, T, key_len]` mask and `mask_fill`s the scores in every layer, then `mask_fill`s
    /// their gradient in the backward; a full-shape [`AttentionMask::Bias`] is one in-place add
    /// per layer and no backward work. The values are the same: `s + 0 = s`, `s + (−∞) = −∞`.
    pub fn mask<B: Backend>(
        &self,
        batch: usize,
        heads: usize,
        seq: usize,
        device: &B::Device,
    ) -> AttentionMask<B> {
        let inference = !B::ad_enabled(device);
        if self.padding_mask.is_none() && inference {
            return AttentionMask::Causal;
        }
        let (key_len, tile) = (self.key_len, seq * self.key_len);
        let past = key_len - seq;
        let causal = |index: usize| index % key_len > past + index / key_len;
        let masked: Vec<bool> = (0..batch * tile)
            .map(|index| match &self.padding_mask {
                Some(mask) => mask[index],
                None => causal(index % tile),
            })
            .collect();
        // One copy of each row's tile per head.
        let per_head = |values: &[bool]| -> Vec<bool> {
            values
                .chunks(tile)
                .flat_map(|row| (0..heads).flat_map(move |_| row.iter().copied()))
                .collect()
        };
        let shape = [batch, heads, seq, key_len];
        if inference {
            let data = TensorData::new(per_head(&masked), shape);
            return AttentionMask::Masked(Tensor::from_data(data, device));
        }
        let bias: Vec<f32> = per_head(&masked)
            .into_iter()
            .map(|m| if m { f32::NEG_INFINITY } else { 0.0 })
            .collect();
        AttentionMask::Bias(Tensor::from_data(TensorData::new(bias, shape), device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn left_padding_gives_cumsum_positions_and_masks_padding() {
        let mut cache = KvCache::<NdArray>::new(1, 2);
        let step = cache.advance(&[vec![false, true, true], vec![true, true, true]]);
        assert_eq!(step.positions, vec![0, 0, 1, 0, 1, 2]);
        let mask = step.padding_mask.expect("padding present");
        // Row 0, query 1 sees key 1 only (key 0 is padding, key 2 is in the future).
        assert_eq!(&mask[3..6], &[true, false, true]);
        // Row 1, query 2 sees everything.
        assert_eq!(&mask[15..18], &[false, false, false]);
        let step = cache.advance(&[vec![true], vec![true]]);
        assert_eq!(step.positions, vec![2, 3]);
        assert_eq!(step.key_len, 4);
        assert_eq!(
            step.padding_mask.unwrap(),
            vec![true, false, false, false, false, false, false, false]
        );
    }

    #[test]
    fn no_padding_or_right_padding_means_plain_causal() {
        let mut cache = KvCache::<NdArray>::new(1, 1);
        assert!(cache.advance(&[vec![true; 4]]).padding_mask.is_none());
        let mut cache = KvCache::<NdArray>::new(1, 2);
        let step = cache.advance(&[vec![true, true, false], vec![true, true, true]]);
        assert!(step.padding_mask.is_none());
        assert_eq!(step.positions, vec![0, 1, 0, 0, 1, 2]);
        // A real token after the padding must not see it.
        assert!(cache
            .advance(&[vec![true], vec![true]])
            .padding_mask
            .is_some());
    }

    /// Without autodiff a left-padded step gets a boolean mask (the form flash kernels take):
    /// real rows equal the additive-bias result exactly, and padding rows, which see only
    /// themselves, stay finite.
    #[test]
    fn inference_mask_is_boolean_finite_and_matches_the_bias_on_real_rows() {
        use crate::attention::scaled_dot_product;
        use burn::tensor::Distribution;
        let device = Default::default();
        let (batch, heads, seq) = (2, 3, 4);
        let layout = KvCache::<NdArray>::new(1, batch)
            .advance(&[vec![false, false, true, true], vec![true; seq]]);
        let masked = layout.mask::<NdArray>(batch, heads, seq, &device);
        assert!(matches!(masked, AttentionMask::Masked(_)));
        let bias = layout.padding_mask.as_ref().unwrap().iter().map(|&m| {
            if m {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        });
        let bias: Vec<f32> = bias
            .collect::<Vec<_>>()
            .chunks(seq * seq)
            .flat_map(|row| row.repeat(heads))
            .collect();
        let bias = AttentionMask::Bias(Tensor::from_data(
            TensorData::new(bias, [batch, heads, seq, seq]),
            &device,
        ));
        let [q, k, v] = [0, 1, 2].map(|_| {
            Tensor::<NdArray, 4>::random([batch, heads, seq, 8], Distribution::Default, &device)
        });
        let run = |mask| {
            scaled_dot_product(q.clone(), k.clone(), v.clone(), &mask)
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        };
        let (with_bool, with_bias) = (run(masked), run(bias));
        assert!(with_bool.iter().all(|x| x.is_finite()));
        // Row 0's first two queries are padding; everything else is real.
        let real = |index: &usize| index / (heads * seq * 8) == 1 || index / 8 % seq >= 2;
        for index in (0..with_bool.len()).filter(real) {
            assert_eq!(with_bool[index], with_bias[index], "element {index}");
        }
    }

    /// Under autodiff the mask is a shared additive bias; outputs and gradients are exactly
    /// those of Burn's own causal and `Bool`-mask attention.
    #[test]
    fn bias_mask_matches_burn_masking_exactly_with_gradients() {
        use crate::attention::scaled_dot_product;
        use burn::backend::Autodiff;
        use burn::tensor::module::attention;
        use burn::tensor::ops::AttentionModuleOptions;
        use burn::tensor::{Bool, Distribution};
        type Ad = Autodiff<NdArray>;
        let device = Default::default();
        let (batch, heads, seq) = (2, 3, 4);
        for valid in [vec![true; seq], vec![false, true, true, true]] {
            let layout = KvCache::<Ad>::new(1, batch).advance(&[vec![true; seq], valid]);
            let AttentionMask::Bias(_) = layout.mask::<Ad>(batch, heads, seq, &device) else {
                panic!("autodiff gets a bias");
            };
            let (mask, is_causal) = match &layout.padding_mask {
                Some(m) => (
                    Some(TensorData::new(m.clone(), [batch, 1, seq, seq])),
                    false,
                ),
                None => (None, true),
            };
            let run = |use_bias: bool| {
                let qkv = [0, 1, 2].map(|_| {
                    Tensor::<Ad, 4>::random([batch, heads, seq, 8], Distribution::Default, &device)
                        .require_grad()
                });
                let [q, k, v] = qkv.clone();
                let out = if use_bias {
                    scaled_dot_product(q, k, v, &layout.mask(batch, heads, seq, &device))
                } else {
                    let mask = mask.clone().map(|m| {
                        Tensor::<Ad, 4, Bool>::from_data(m, &device)
                            .expand([batch, heads, seq, seq])
                    });
                    let options = AttentionModuleOptions {
                        scale: None,
                        softcap: None,
                        is_causal,
                    };
                    attention(q, k, v, mask, None, options)
                };
                let grads = (out.clone() * out.clone()).sum().backward();
                let mut values = out.into_data().to_vec::<f32>().unwrap();
                for x in &qkv {
                    values.extend(x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap());
                }
                values
            };
            <NdArray as burn::tensor::backend::Backend>::seed(&device, 7);
            let bias = run(true);
            <NdArray as burn::tensor::backend::Backend>::seed(&device, 7);
            assert_eq!(bias, run(false));
        }
    }
}
