//! Activations of a run on a GPU backend (wgpu, CUDA), derived from what autodiff and the custom
//! ops keep and allocate rather than fitted (the CPU formula is; `plan.rs`). On these backends,
//! under autodiff and with f32 activations (f32, bf16-mixed), attention is
//! [`memory_efficient_attention`](safeaware_model::memory_efficient_attention) and the loss is
//! [`chunked_ce`](safeaware_model::chunked_ce) (the LM head is a plain weight in every family:
//! no bias, and no LoRA target names it).
//!
//! **Kept for the backward**, per row of the micro-batch, in floats of the precision's
//! activation factor (f32; f32 plus the products' bf16 copies under bf16-mixed, as on the CPU;
//! bf16). Counted from the tensors Burn 0.21's autodiff nodes keep (a product keeps its input
//! when its weight trains, a multiply both operands, a sigmoid its output, a subtraction or a
//! scalar operation nothing):
//! - a language-model layer (`s` positions, width `d`, MLP width `m`, query width `dq`,
//!   key/value width `dkv`) keeps `6·s·d + 5·s·dq + 4·s·dkv + 5·s·m`: each RMSNorm its input,
//!   the normalised input and its output (the products' input); q and k their projection,
//!   rotated half and rotary output, v its projection; the attention output and its merged
//!   copy (the output projection's input); the MLP's gate, its sigmoid, SiLU, up and their
//!   product. The attention op saves only its inputs (counted), its output (counted) and one
//!   f32 log-sum-exp per head and query, `h·s` (at 4 bytes).
//! - a vision layer (a tile's positions) keeps `13·s·d + 4·s·m`: each LayerNorm four (two
//!   centred copies, the normalised input, its output); q, k, v; the attention output and its
//!   merged copy; fc1's output, the tanh approximation's inner factor, its sigmoid and the GELU.
//!   Every tile's layers count, scaled by [`checkpointed_vision_keep`] (fitted on the CPU;
//!   unmeasured here) under activation checkpointing; the log-sum-exps are the op's state,
//!   kept whatever the strategy.
//! - the loss keeps the hidden rows with a target (`s·d`, gathered for it) and one f32
//!   log-sum-exp per row (`s`), instead of the CPU's `3·s·V` logits and log-probabilities.
//! - the language model's additive causal mask `[h, s, s]` (built once per forward pass and
//!   shared by every layer; the attention op keeps it as an input): `h·s²` f32 (bf16 under pure
//!   bf16), once, not per layer.
//!
//! **Transient, at the peak** (one block or chunk at a time; the largest counts, once, beyond
//! what the backward has freed when it appears):
//! - the loss backward, first, recomputes one chunk of [`CHUNK_ROWS`] target rows (chunks run
//!   over the whole micro-batch's targets): the logits, their probabilities and the scattered
//!   `softmax − one-hot`, three f32 `CHUNK_ROWS × V` buffers (plus a bf16 copy under
//!   bf16-mixed), and, when the head trains, the chunk's `[V, d]` f32 weight gradient before it
//!   joins the running sum (and the f32 weight's bf16 copy under bf16-mixed).
//! - the attention backward recomputes one block of [`BLOCK`] query rows (a group's query heads
//!   folded onto the rows: `min(BLOCK, h/kvh·s)` rows for each of the `kvh` key/value heads)
//!   against every key: the probabilities, the gradient of the probabilities and the product
//!   forming the scores' gradient live at once, three f32 buffers of `kvh · rows · s` per row
//!   (per tile in the vision tower), plus the bf16 copies of the scores' gradient and the
//!   probabilities under bf16-mixed. The last text layer's block comes after its MLP states
//!   (`5·s·m`) were freed, the vision tower's after every language-model state was.
//!
//! Pure bf16 keeps Burn's attention (the op's statistics and masks are f32), so its layers
//! also keep the CPU formula's `3·h·s²` and have no block transient; its loss is chunked.
//!
//! Checked against CubeCL's pools on wgpu (lavapipe, f32; the test
//! `plans_lie_between_the_wgpu_pool_readings`): the device's tensors as planned lie between the
//! live bytes read after the forward and backward passes and the pools' reserved peak, and the
//! kept part is 5–7% above the live bytes after the forward where the tiny preset's layers
//! dominate. bf16-mixed is not measured there.

use safeaware_model::chunked_ce::CHUNK_ROWS;
use safeaware_model::memory_efficient_attention::BLOCK;
use safeaware_model::ModelConfig;

use super::{
    activation_factor, base_trains, connector_floats, product, sum, u, vision_floats, GradientFlow,
    Workload,
};
use crate::recipe::{Precision, Recipe};
use safeaware_model::ModelPart;

/// Activation bytes of a micro-batch on a GPU backend: what the backward keeps plus the largest
/// transient buffer set; `None` past 64 bits.
pub(super) fn activation_bytes(
    recipe: &Recipe,
    config: &ModelConfig,
    work: Workload,
) -> Option<u64> {
    sum(&[
        saved_bytes(recipe, config, work)?,
        transient_bytes(recipe, config, work)?,
    ])
}

/// Whether attention is the memory-efficient op: f32 activations (f32 and bf16-mixed).
fn efficient(precision: Precision) -> bool {
    precision != Precision::Bf16
}

/// A layer's shape: positions, width, MLP width, query heads, key/value heads, head width.
struct Layer {
    s: usize,
    d: usize,
    m: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

/// Floats one layer keeps in the activation type (module documentation): the language model's
/// `6·s·d + 5·s·dq + 4·s·dkv + 5·s·m` or the vision tower's `13·s·d + 4·s·m`, plus Burn's
/// `3·h·s²` attention state where the op does not run.
fn layer_floats(precision: Precision, layer: &Layer, text: bool) -> Option<u64> {
    let (s, d, m, h) = (u(layer.s), u(layer.d), u(layer.m), u(layer.heads));
    let (dq, dkv) = (
        product(&[h, u(layer.head_dim)])?,
        product(&[u(layer.kv_heads), u(layer.head_dim)])?,
    );
    let scores = match efficient(precision) {
        true => 0,
        false => product(&[3, h, s, s])?,
    };
    let kept = match text {
        true => sum(&[
            product(&[6, s, d])?,
            product(&[5, s, dq])?,
            product(&[4, s, dkv])?,
            product(&[5, s, m])?,
        ])?,
        false => sum(&[product(&[13, s, d])?, product(&[4, s, m])?])?,
    };
    sum(&[scores, kept])
}

/// The language model's layer shape at `s` positions.
fn text_layer(config: &ModelConfig, s: usize) -> Layer {
    let t = config.text();
    Layer {
        s,
        d: t.hidden_size,
        m: t.intermediate_size,
        heads: t.num_attention_heads,
        kv_heads: t.num_key_value_heads,
        head_dim: t.head_dim,
    }
}

/// The vision tower's layer shape (one tile; every head attends to its own keys).
fn vision_layer(config: &ModelConfig, work: Workload) -> Layer {
    let v = work.vision(config);
    Layer {
        s: v.positions,
        d: v.hidden_size,
        m: v.intermediate_size,
        heads: v.heads,
        kv_heads: v.heads,
        head_dim: v.hidden_size / v.heads.max(1),
    }
}

/// Bytes kept for the backward (module documentation), for the whole micro-batch.
fn saved_bytes(recipe: &Recipe, config: &ModelConfig, work: Workload) -> Option<u64> {
    let precision = recipe.train.precision;
    let t = config.text();
    let mask_bytes = match precision {
        Precision::Bf16 => 2,
        Precision::F32 | Precision::Bf16Mixed => 4,
    };
    let s = u(work.seq);
    let per_row = sum(&[
        product(&[
            kept_floats(recipe, config, work)?,
            activation_factor(precision),
        ])?,
        product(&[lse_floats(recipe, config, work)?, 4])?,
        product(&[u(t.num_attention_heads), s, s, mask_bytes])?,
    ])?;
    product(&[per_row, u(work.rows)])
}

/// Floats a row keeps in the activation type: the layers, the connector and the loss's rows.
fn kept_floats(recipe: &Recipe, config: &ModelConfig, work: Workload) -> Option<u64> {
    let precision = recipe.train.precision;
    let t = config.text();
    let vision = layer_floats(precision, &vision_layer(config, work), false)?;
    sum(&[
        vision_floats(recipe, config, work, vision)?,
        connector_floats(recipe, config, work)?,
        text_floats(precision, config, work.seq)?,
        product(&[u(work.seq), u(t.hidden_size)])?,
    ])
}

/// Floats the language model's layers keep for one row of `s` positions.
fn text_floats(precision: Precision, config: &ModelConfig, s: usize) -> Option<u64> {
    let layer = layer_floats(precision, &text_layer(config, s), true)?;
    product(&[layer, u(config.text().num_hidden_layers)])
}

/// The f32 log-sum-exps a row keeps: one per head and position in every layer the attention op
/// runs in with a gradient flowing, and one per target of the loss.
fn lse_floats(recipe: &Recipe, config: &ModelConfig, work: Workload) -> Option<u64> {
    if !efficient(recipe.train.precision) {
        return Some(u(work.seq));
    }
    let (v, t) = (work.vision(config), config.text());
    let vision = match GradientFlow::of(recipe).vision {
        true => product(&[u(v.heads), u(v.positions), u(v.layers), u(work.tiles)])?,
        false => 0,
    };
    let text = product(&[
        u(t.num_attention_heads),
        u(work.seq),
        u(t.num_hidden_layers),
    ])?;
    sum(&[vision, text, u(work.seq)])
}

/// The largest transient buffer set of the backward beyond what the backward has freed when it
/// appears (module documentation), in bytes.
fn transient_bytes(recipe: &Recipe, config: &ModelConfig, work: Workload) -> Option<u64> {
    let precision = recipe.train.precision;
    let block_bytes = match (efficient(precision), precision == Precision::Bf16Mixed) {
        (false, _) => 0,
        (true, false) => 3 * 4,
        (true, true) => 3 * 4 + 2 * 2,
    };
    let block = |layer: Layer, batch: u64| {
        // The rows of one block: a group's query heads folded onto the query rows.
        let rows = (layer.heads / layer.kv_heads.max(1))
            .saturating_mul(layer.s)
            .min(BLOCK);
        product(&[u(layer.kv_heads), u(rows), u(layer.s), batch, block_bytes])
    };
    let rows = u(work.rows);
    let factor = activation_factor(precision);
    let t = config.text();
    // The last layer's MLP states (5·s·m) are freed before its attention's backward runs.
    let mlp = product(&[5, u(work.seq), u(t.intermediate_size), rows, factor])?;
    let text = block(text_layer(config, work.seq), rows)?.saturating_sub(mlp);
    // The language model's states are all freed before the vision tower's backward runs.
    let vision = match GradientFlow::of(recipe).vision {
        true => {
            let freed = product(&[text_floats(precision, config, work.seq)?, rows, factor])?;
            let tiles = product(&[rows, u(work.tiles)])?;
            block(vision_layer(config, work), tiles)?.saturating_sub(freed)
        }
        false => 0,
    };
    Some(
        text.max(vision)
            .max(loss_chunk_bytes(recipe, config, work)?),
    )
}

/// One chunk of the loss backward: its `CHUNK_ROWS × V` buffers and, when the head trains, the
/// chunk's weight gradient (and the weight's bf16 copy under bf16-mixed).
fn loss_chunk_bytes(recipe: &Recipe, config: &ModelConfig, work: Workload) -> Option<u64> {
    let mixed = recipe.train.precision == Precision::Bf16Mixed;
    let t = config.text();
    let targets = product(&[u(work.rows), u(work.seq)])?;
    let rows = u(CHUNK_ROWS).min(targets);
    let per_logit = if mixed { 3 * 4 + 2 } else { 3 * 4 };
    let logits = product(&[rows, u(t.vocab_size), per_logit])?;
    let per_weight = if mixed { 4 + 2 } else { 4 };
    let weight = match base_trains(recipe, ModelPart::Text) {
        true => product(&[u(t.vocab_size), u(t.hidden_size), per_weight])?,
        false => 0,
    };
    sum(&[logits, weight])
}
