//! Gradient utilities on a real (tiny) Burn model with the Flex backend + autodiff: global-norm
//! clipping against an independently computed norm, per-part gradient splitting with one
//! optimiser and several learning rates, freezing, and optimiser state surviving new param ids.

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer, SgdConfig};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use safeaware_model::{ModelPart, ParamPart};
use safeaware_trainer::grad_clip::{clip_grad_norm, global_grad_norm, scale_grads, CLIP_EPS};
use safeaware_trainer::param_groups::{
    float_params, freeze, param_ids_by_part, record_from_portable, record_to_portable,
    split_grads_by_part,
};
use std::collections::HashSet;

type B = Autodiff<Flex>;
type Inner = Flex;

#[derive(Module, Debug)]
struct Net<B: Backend> {
    vision_proj: Linear<B>,
    connector: Linear<B>,
    text_head: Linear<B>,
}

impl<B: Backend> Net<B> {
    fn new(device: &B::Device) -> Self {
        Self {
            vision_proj: LinearConfig::new(3, 5).init(device),
            connector: LinearConfig::new(5, 4).init(device),
            text_head: LinearConfig::new(4, 2).init(device),
        }
    }

    fn loss(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        let y = self
            .text_head
            .forward(self.connector.forward(self.vision_proj.forward(x)).tanh());
        y.square().sum()
    }

    /// The part of each parameter, as a model decides it: the `vision_proj` layer is the
    /// vision part, `connector` the connector, `text_head` the text part.
    fn parts(&self) -> Vec<ParamPart> {
        let layers = [
            (&self.vision_proj, ModelPart::Vision),
            (&self.connector, ModelPart::Connector),
            (&self.text_head, ModelPart::Text),
        ];
        let mut out = Vec::new();
        for (layer, part) in layers {
            let bias = layer.bias.as_ref().expect("linear has a bias");
            for (id, numel) in [
                (layer.weight.id, layer.weight.val().shape().num_elements()),
                (bias.id, bias.val().shape().num_elements()),
            ] {
                out.push(ParamPart {
                    name: String::new(),
                    part,
                    id,
                    numel,
                    adapter: false,
                });
            }
        }
        out
    }

    /// Every float parameter (id, tensor), in a fixed order, for independent checks.
    fn params(&self) -> Vec<(ParamId, Weight<B>)> {
        let mut out = Vec::new();
        for l in [&self.vision_proj, &self.connector, &self.text_head] {
            out.push((l.weight.id, Weight::Matrix(l.weight.val())));
            let b = l.bias.as_ref().expect("linear has a bias");
            out.push((b.id, Weight::Vector(b.val())));
        }
        out
    }
}

/// A parameter tensor of either rank used by `Linear`.
enum Weight<B: Backend> {
    Matrix(Tensor<B, 2>),
    Vector(Tensor<B, 1>),
}

impl Weight<B> {
    fn values(self) -> Vec<f32> {
        match self {
            Weight::Matrix(t) => values(t),
            Weight::Vector(t) => values(t),
        }
    }

    /// The gradient of this tensor in `grads`, read from the autodiff graph.
    fn grad(
        &self,
        grads: &<B as burn::tensor::backend::AutodiffBackend>::Gradients,
    ) -> Option<Vec<f32>> {
        match self {
            Weight::Matrix(t) => t.grad(grads).map(values),
            Weight::Vector(t) => t.grad(grads).map(values),
        }
    }
}

/// A deterministic input (Burn's RNG seed is global, and tests run in parallel).
fn input(seed: u64) -> Tensor<B, 2> {
    let data: Vec<f32> = (0..12)
        .map(|i| ((seed * 31 + i) as f32 * 1.7).sin() * 3.0)
        .collect();
    Tensor::<B, 1>::from_floats(data.as_slice(), &Default::default()).reshape([4, 3])
}

fn values<BB: Backend, const D: usize>(t: Tensor<BB, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

/// Gradients of `model` both as Burn's GradientsParams and as host vectors per param id,
/// read straight from the autodiff graph (independent of the code under test).
fn grads_and_reference(
    model: &Net<B>,
    x: Tensor<B, 2>,
) -> (GradientsParams, Vec<(ParamId, Vec<f32>)>) {
    let grads = model.loss(x).backward();
    let reference = model
        .params()
        .into_iter()
        .filter_map(|(id, p)| p.grad(&grads).map(|g| (id, g)))
        .collect();
    (GradientsParams::from_grads(grads, model), reference)
}

fn norm_of(reference: &[(ParamId, Vec<f32>)]) -> f64 {
    reference
        .iter()
        .flat_map(|(_, v)| v.iter())
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>()
        .sqrt()
}

fn grad_values(grads: &GradientsParams, model: &Net<B>) -> Vec<(ParamId, Vec<f32>)> {
    model
        .params()
        .into_iter()
        .filter_map(|(id, w)| {
            let g = match w {
                Weight::Matrix(_) => grads.get::<Inner, 2>(id).map(values),
                Weight::Vector(_) => grads.get::<Inner, 1>(id).map(values),
            };
            g.map(|g| (id, g))
        })
        .collect()
}

fn assert_close(a: f64, b: f64, rel: f64) {
    assert!((a - b).abs() <= rel * b.abs().max(1e-12), "{a} vs {b}");
}

#[test]
fn global_norm_matches_independent_computation_and_clips_like_pytorch() {
    let device = Default::default();
    let model = Net::<B>::new(&device);
    let (mut grads, reference) = grads_and_reference(&model, input(1));
    assert_eq!(reference.len(), 6);
    let expected = norm_of(&reference);
    assert!(expected > 1e-3, "degenerate test gradients");
    assert_close(global_grad_norm(&model, &grads).unwrap(), expected, 1e-5);

    // Above the norm: nothing changes.
    let outcome = clip_grad_norm(&model, &mut grads, expected * 2.0).unwrap();
    assert_eq!(outcome.scale, 1.0);
    assert_close(outcome.total_norm, expected, 1e-5);
    assert_eq!(grad_values(&grads, &model), reference);

    // Below the norm: every gradient scaled by max / (norm + 1e-6).
    let max = expected / 4.0;
    let outcome = clip_grad_norm(&model, &mut grads, max).unwrap();
    let coef = max / (outcome.total_norm + CLIP_EPS);
    assert_close(outcome.scale, coef, 1e-12);
    for ((id, clipped), (rid, orig)) in grad_values(&grads, &model).iter().zip(&reference) {
        assert_eq!(id, rid);
        for (c, o) in clipped.iter().zip(orig) {
            assert!((f64::from(*c) - f64::from(*o) * coef).abs() < 1e-5 * (1.0 + o.abs() as f64));
        }
    }
    assert_close(global_grad_norm(&model, &grads).unwrap(), max, 1e-4);

    // max_norm = 0 only measures.
    let before = grad_values(&grads, &model);
    assert_eq!(clip_grad_norm(&model, &mut grads, 0.0).unwrap().scale, 1.0);
    assert_eq!(grad_values(&grads, &model), before);
}

#[test]
fn scale_grads_averages_accumulated_gradients() {
    let model = Net::<B>::new(&Default::default());
    let (mut grads, reference) = grads_and_reference(&model, input(2));
    scale_grads(&model, &mut grads, 0.25);
    assert_close(
        global_grad_norm(&model, &grads).unwrap(),
        norm_of(&reference) * 0.25,
        1e-5,
    );
}

#[test]
fn params_are_grouped_by_part_from_module_paths() {
    let model = Net::<B>::new(&Default::default());
    let paths: Vec<String> = float_params(&model).into_iter().map(|p| p.path).collect();
    assert_eq!(
        paths,
        [
            "vision_proj.weight",
            "vision_proj.bias",
            "connector.weight",
            "connector.bias",
            "text_head.weight",
            "text_head.bias"
        ]
    );
    let numel: usize = float_params(&model).iter().map(|p| p.numel).sum();
    assert_eq!(numel, model.num_params());
    let parts = param_ids_by_part(&model.parts());
    assert_eq!(
        parts[&ModelPart::Vision],
        HashSet::from([
            model.vision_proj.weight.id,
            model.vision_proj.bias.as_ref().unwrap().id
        ])
    );
    assert_eq!(parts[&ModelPart::Connector].len(), 2);
    assert_eq!(parts[&ModelPart::Text].len(), 2);
}

#[test]
fn one_optimizer_stepped_per_part_applies_each_parts_rate() {
    let model = Net::<B>::new(&Default::default());
    let before: Vec<(ParamId, Vec<f32>)> = model
        .params()
        .into_iter()
        .map(|(id, p)| (id, p.values()))
        .collect();
    let (grads, reference) = grads_and_reference(&model, input(3));
    let parts = split_grads_by_part(&model, grads, &model.parts());
    assert_eq!(parts.keys().copied().collect::<Vec<_>>(), ModelPart::ALL);
    let lr = |p: ModelPart| match p {
        ModelPart::Vision => 0.5,
        ModelPart::Connector => 0.1,
        ModelPart::Text => 0.0,
    };
    let mut optim = SgdConfig::new().init::<B, Net<B>>();
    let mut model = model;
    for (part, g) in parts {
        model = optim.step(lr(part), model, g);
    }
    let ids = param_ids_by_part(&model.parts());
    let after = model.params();
    for (((id, old), (_, new)), (_, g)) in before.iter().zip(after).zip(&reference) {
        let part = ModelPart::ALL
            .into_iter()
            .find(|p| ids[p].contains(id))
            .unwrap();
        for ((o, n), g) in old.iter().zip(new.values()).zip(g) {
            assert!(
                (n - (o - lr(part) as f32 * g)).abs() < 1e-5,
                "{part}: {o} - {} * {g} != {n}",
                lr(part)
            );
        }
    }
}

#[test]
fn frozen_parts_get_no_gradients() {
    let model = Net::<B>::new(&Default::default());
    let frozen = param_ids_by_part(&model.parts())[&ModelPart::Vision].clone();
    let model = freeze(model, &frozen, burn::tensor::FloatDType::F32);
    let grads = GradientsParams::from_grads(model.loss(input(4)).backward(), &model);
    assert_eq!(grads.len(), 4);
    let parts = split_grads_by_part(&model, grads, &model.parts());
    assert_eq!(
        parts.keys().copied().collect::<Vec<_>>(),
        [ModelPart::Connector, ModelPart::Text]
    );
}

/// Gives every parameter a fresh id, as loading a model from safetensors does.
struct FreshIds;

impl<BB: Backend> ModuleMapper<BB> for FreshIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<BB, D>>) -> Param<Tensor<BB, D>> {
        let (_, tensor, mapper) = param.consume();
        Param::from_mapped_value(ParamId::new(), tensor, mapper)
    }
}

#[test]
fn portable_optimizer_record_resumes_adamw_exactly_after_reload() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("optimizer.mpk");
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let config = AdamWConfig::new().with_weight_decay(0.01);

    // Uninterrupted run: two steps.
    let mut optim = config.init::<B, Net<B>>();
    let model = Net::<B>::new(&Default::default());
    let g1 = GradientsParams::from_grads(model.loss(input(5)).backward(), &model);
    let model = optim.step(1e-2, model, g1);

    // Checkpoint after step 1: optimiser state keyed by path, through a real file.
    Recorder::<B>::record(
        &recorder,
        record_to_portable(optim.to_record(), &model),
        file.clone(),
    )
    .unwrap();
    let reloaded = model.clone().map(&mut FreshIds);
    assert!(float_params(&reloaded)
        .iter()
        .zip(float_params(&model))
        .all(|(a, b)| a.id != b.id));

    let g2 = GradientsParams::from_grads(model.loss(input(6)).backward(), &model);
    let uninterrupted = optim.step(1e-2, model, g2);

    // Resumed run: fresh ids, state loaded and mapped onto them.
    let loaded = Recorder::<B>::load(&recorder, file.clone(), &Default::default()).unwrap();
    let mut resumed_optim = config
        .init::<B, Net<B>>()
        .load_record(record_from_portable(loaded, &reloaded));
    let g2 = GradientsParams::from_grads(reloaded.loss(input(6)).backward(), &reloaded);
    let resumed = resumed_optim.step(1e-2, reloaded.clone(), g2);

    // Without the state (what happens if ids don't match), the step differs.
    let g2 = GradientsParams::from_grads(reloaded.loss(input(6)).backward(), &reloaded);
    let stateless = config.init::<B, Net<B>>().step(1e-2, reloaded, g2);

    let mut max_diff_resumed = 0f32;
    let mut max_diff_stateless = 0f32;
    for (((_, u), (_, r)), (_, s)) in uninterrupted
        .params()
        .into_iter()
        .zip(resumed.params())
        .zip(stateless.params())
    {
        let u = u.values();
        for ((a, b), c) in u.iter().zip(r.values()).zip(s.values()) {
            max_diff_resumed = max_diff_resumed.max((a - b).abs());
            max_diff_stateless = max_diff_stateless.max((a - c).abs());
        }
    }
    assert!(
        max_diff_resumed < 1e-7,
        "resumed run diverged by {max_diff_resumed}"
    );
    assert!(
        max_diff_stateless > 1e-4,
        "test cannot tell state from no state ({max_diff_stateless})"
    );
}
