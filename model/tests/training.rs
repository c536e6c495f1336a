//! Training-side behaviour on the autodiff backend: the target-rows-only loss equals the loss
//! over full logits, gradients reach every part of the model, and a few optimiser steps on one
//! batch reduce the loss.

mod common;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::{Int, Tensor, TensorData};
use common::{tiny_config, Cpu, Device};
use safeaware_model::{causal_lm_loss, Idefics3, VlmInput, IGNORE_INDEX};

type Train = Autodiff<Cpu>;

fn batch(device: &Device) -> (VlmInput<Train>, Vec<i64>) {
    let ids: Vec<i64> = [
        [1, 5, 60, 60, 60, 60, 7, 9, 10, 11],
        [1, 60, 60, 60, 60, 11, 12, 13, 14, 2],
    ]
    .concat();
    let labels: Vec<i64> = ids
        .iter()
        .enumerate()
        .map(|(i, &t)| if i % 10 < 6 { IGNORE_INDEX } else { t })
        .collect();
    let pixels = common::tiny_pixels(2, 5, device);
    let input = VlmInput::new(
        Tensor::<Train, 2, Int>::from_data(TensorData::new(ids, [2, 10]), device),
        Some(Tensor::from_inner(pixels)),
    );
    (input, labels)
}

#[test]
fn target_row_loss_equals_full_logit_loss() {
    let device = Device::default();
    let model = Idefics3::<Train>::init_random(&tiny_config(false), 31, &device).valid();
    let (input, labels) = batch(&device);
    let input = VlmInput {
        input_ids: input.input_ids.inner(),
        attention_mask: None,
        pixel_values: input.pixel_values.map(|p| p.inner()),
        image_grid_thw: None,
    };
    let label_tensor =
        Tensor::<Cpu, 2, Int>::from_data(TensorData::new(labels.clone(), [2, 10]), &device);
    let rows = model.forward_loss(&input, &label_tensor).unwrap();
    let full = causal_lm_loss(model.forward(&input).unwrap(), &labels).unwrap();
    // Labels 6..9 of each row are targets, predicted from positions 5..8.
    assert_eq!((rows.count, full.count), (8, 8));
    let (a, b) = (rows.sum.into_scalar(), full.sum.into_scalar());
    assert!((a - b).abs() < 1e-4 * b.abs(), "{a} vs {b}");
    // A random 64-token model is close to uniform: about ln(64) nats per target.
    assert!((rows.mean.into_scalar() - 64f32.ln()).abs() < 0.5);
}

#[test]
fn gradients_reach_every_part_and_adam_reduces_the_loss() {
    let device = Device::default();
    for tied in [false, true] {
        let mut model = Idefics3::<Train>::init_random(&tiny_config(tied), 32, &device);
        let (input, labels) = batch(&device);
        let labels = Tensor::<Train, 2, Int>::from_data(TensorData::new(labels, [2, 10]), &device);
        let mut optim = AdamConfig::new().init();
        let mut losses = Vec::new();
        for step in 0..8 {
            let loss = model.forward_loss(&input, &labels).unwrap();
            losses.push(loss.mean.clone().into_scalar());
            let grads = GradientsParams::from_grads(loss.mean.backward(), &model);
            if step == 0 {
                let m = &model.model;
                let ids = [
                    (
                        "patch_embedding",
                        m.vision_model.embeddings.patch_embedding.weight.id,
                    ),
                    (
                        "vision q_proj",
                        m.vision_model.encoder.layers[0].self_attn.q_proj.weight.id,
                    ),
                    ("connector", m.connector.modality_projection.proj.weight.id),
                    (
                        "text down_proj",
                        m.text_model.layers[1].mlp.down_proj.weight.id,
                    ),
                    ("embed_tokens", m.text_model.embed_tokens.weight.id),
                ];
                for (name, id) in ids {
                    let grad = grads
                        .get::<Cpu, 2>(id)
                        .or_else(|| grads.get::<Cpu, 4>(id).map(|g| g.flatten(0, 3)));
                    let norm = grad
                        .unwrap_or_else(|| panic!("no gradient for {name}"))
                        .abs()
                        .sum()
                        .into_scalar();
                    assert!(norm > 0.0, "zero gradient for {name}");
                }
                if let Some(head) = &model.lm_head {
                    assert!(grads.get::<Cpu, 2>(head.weight.id).is_some());
                }
            }
            model = optim.step(1e-2, model, grads);
        }
        assert!(
            losses[7] < losses[0] * 0.8,
            "tied={tied}: losses {losses:?}"
        );
    }
}

#[test]
fn right_padded_training_rows_match_rows_run_alone() {
    let device = Device::default();
    let model = Idefics3::<Cpu>::init_random(&tiny_config(false), 33, &device);
    let long: Vec<i64> = vec![1, 5, 60, 60, 60, 60, 7, 9, 10, 11];
    let short: Vec<i64> = vec![1, 60, 60, 60, 60, 12, 13];
    let padded: Vec<i64> = [long.clone(), short.clone(), vec![0; 3]].concat();
    let mask: Vec<i64> = [vec![1; 10], vec![1; 7], vec![0; 3]].concat();
    let pixels = common::tiny_pixels(2, 6, &device);
    let batch = VlmInput {
        input_ids: Tensor::from_data(TensorData::new(padded, [2, 10]), &device),
        attention_mask: Some(Tensor::from_data(TensorData::new(mask, [2, 10]), &device)),
        pixel_values: Some(pixels.clone()),
        image_grid_thw: None,
    };
    let together = common::values(model.forward(&batch).unwrap());
    let vocab = 64;
    for (row, ids) in [long, short].into_iter().enumerate() {
        let len = ids.len();
        let tile = pixels
            .clone()
            .slice(burn::tensor::s![row..row + 1, .., .., ..]);
        let alone = VlmInput::new(
            Tensor::from_data(TensorData::new(ids, [1, len]), &device),
            Some(tile),
        );
        let alone = common::values(model.forward(&alone).unwrap());
        let start = row * 10 * vocab;
        let diff = common::max_abs_diff(&together[start..start + len * vocab], &alone);
        assert!(diff < 1e-4, "row {row}: {diff}");
    }
}

/// The directional derivative of the loss along `dir` for one parameter tensor, by central
/// differences on the inner backend.
fn directional_fd<const D: usize>(
    model: &Idefics3<Train>,
    pick: impl Fn(&mut Idefics3<Cpu>) -> &mut burn::module::Param<Tensor<Cpu, D>>,
    dir: &Tensor<Cpu, D>,
    eps: f32,
) -> f32 {
    let (input, labels) = batch(&Device::default());
    let input = VlmInput {
        input_ids: input.input_ids.inner(),
        attention_mask: None,
        pixel_values: input.pixel_values.map(|p| p.inner()),
        image_grid_thw: None,
    };
    let labels =
        Tensor::<Cpu, 2, Int>::from_data(TensorData::new(labels, [2, 10]), &Device::default());
    let loss_at = |sign: f32| {
        let mut m = model.valid();
        let p = pick(&mut m);
        let moved = p.val() + dir.clone() * (sign * eps);
        *p = burn::module::Param::initialized(p.id, moved);
        m.forward_loss(&input, &labels).unwrap().mean.into_scalar() as f64
    };
    ((loss_at(1.0) - loss_at(-1.0)) / (2.0 * eps as f64)) as f32
}

#[test]
fn gradients_match_finite_differences_in_every_part() {
    let device = Device::default();
    let model = Idefics3::<Train>::init_random(&tiny_config(false), 34, &device);
    let (input, labels) = batch(&device);
    let labels = Tensor::<Train, 2, Int>::from_data(TensorData::new(labels, [2, 10]), &device);
    let grads = model.forward_loss(&input, &labels).unwrap().mean.backward();
    macro_rules! check {
        ($name:literal, $dim:literal, |$m:ident| $path:expr) => {{
            let $m = &model;
            let g: Tensor<Cpu, $dim> = $path.val().grad(&grads).expect($name);
            let norm = g.clone().powf_scalar(2.0).sum().sqrt().into_scalar();
            let dir = g / norm;
            // A step big enough for f32 losses to resolve, small enough for curvature.
            let eps = (1e-3 / norm).clamp(1e-2, 0.3);
            let fd = directional_fd(&model, |$m: &mut Idefics3<Cpu>| &mut $path, &dir, eps);
            let rel = (fd - norm).abs() / norm;
            println!("{}: |grad| {norm:.4e}, finite difference {fd:.4e}", $name);
            assert!(
                rel < 2e-2,
                "{}: autodiff {norm} vs finite difference {fd}",
                $name
            );
        }};
    }
    check!("patch_embedding", 4, |m| m
        .model
        .vision_model
        .embeddings
        .patch_embedding
        .weight);
    check!("position_embedding", 2, |m| m
        .model
        .vision_model
        .embeddings
        .position_embedding
        .weight);
    check!("vision q_proj", 2, |m| m.model.vision_model.encoder.layers
        [0]
    .self_attn
    .q_proj
    .weight);
    check!("vision fc1", 2, |m| m.model.vision_model.encoder.layers[0]
        .mlp
        .fc1
        .weight);
    check!("vision post_layernorm", 1, |m| m
        .model
        .vision_model
        .post_layernorm
        .gamma);
    check!("connector", 2, |m| m
        .model
        .connector
        .modality_projection
        .proj
        .weight);
    check!("text q_proj", 2, |m| m.model.text_model.layers[0]
        .self_attn
        .q_proj
        .weight);
    check!("text norm", 1, |m| m.model.text_model.norm.weight);
    check!("embed_tokens", 2, |m| m
        .model
        .text_model
        .embed_tokens
        .weight);
}
