//! Under `train.precision = "bf16-mixed"` a frozen part is held in bf16, with no f32 master
//! copy, and what trains stays f32, for every model family: checked on the model `setup` hands
//! the run loop, with the vision tower frozen and with LoRA (the base frozen, the connector
//! trained), on the `tiny` (Idefics3) and `tiny-llava` (LLaVA) presets. A few steps on one
//! batch then give finite, falling losses, keep the types, and leave the frozen values as they
//! were; and the model computes exactly what it computes with those values widened to f32
//! (loss under autocast and without, prefill and a decoding step as validation runs them),
//! and its losses stay within 0.1% of those of the same steps with the frozen parts held in f32
//! (what bf16-mixed did before: the rounding of frozen norms and embeddings to bf16 shows, the
//! frozen linear weights were cast to bf16 for their products anyway).
//! `plan` counts a frozen weight at 2 bytes there. (Exact resume of such runs is checked
//! end to end in `tests/train_e2e.rs`.)

use std::collections::HashMap;
use std::path::Path;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Tensor, TensorData};
use safeaware_model::precision::{autocast, params_in};
use safeaware_model::{ModelConfig, ModelPart, ParamPart, VisionLanguageModel, Vlm};
use safeaware_trainer::batching::collate;
use safeaware_trainer::plan::{device_memory, Workload};
use safeaware_trainer::recipe::{load_recipe, Precision};
use safeaware_trainer::setup::{setup, RunModel};
use safeaware_trainer::step::{AccumulationStep, ForwardSettings, TrainStep, Update};
use safeaware_trainer::train_data::Example;
use safeaware_trainer::training::TrainJob;

type Ad = Autodiff<Flex>;

/// The quickstart recipe of each family.
const FAMILIES: [&str; 2] = ["quickstart.toml", "quickstart-llava.toml"];

/// Eight synthetic examples, one batch of four, bf16-mixed.
const SMALL: &[&str] = &[
    "data.synthetic.train=8",
    "data.synthetic.val=0",
    "data.synthetic.test=2",
    "data.synthetic.describe_only=0",
    "train.batch_size=4",
    "train.eval_every=0",
    "train.precision=\"bf16-mixed\"",
];

/// LoRA on the text model's attention and MLP, the connector trained in full.
const LORA: &[&str] = &[
    "lora.rank=4",
    "lora.alpha=8",
    "lora.targets=[\"q_proj\", \"v_proj\", \"gate_proj\"]",
    "lora.parts=[\"text\"]",
    "lora.train_parts=[\"connector\"]",
];

/// Each float parameter's type and values, by id.
fn params<B: Backend, M: Module<B>>(model: &M) -> HashMap<ParamId, (DType, TensorData)> {
    struct Collect(HashMap<ParamId, (DType, TensorData)>);
    impl<B: Backend> ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let value = param.val();
            self.0.insert(param.id, (value.dtype(), value.into_data()));
        }
    }
    let mut collect = Collect(HashMap::new());
    model.visit(&mut collect);
    collect.0
}

/// The job of `recipe` with [`SMALL`] and `extra` overrides, in `dir`.
fn job(dir: &Path, recipe: &str, extra: &[&str]) -> TrainJob {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../recipes")
        .join(recipe);
    let overrides: Vec<String> = SMALL.iter().chain(extra).map(|s| s.to_string()).collect();
    TrainJob {
        recipe: load_recipe(&path, &overrides).unwrap().recipe,
        run_dir: dir.join("run"),
        resume: false,
        stop_at_step: None,
        cache_dir: dir.join("cache"),
        record_recipe: None,
    }
}

/// Four bf16-mixed steps (autocast) of `model` on `batch`; the model after them and the losses.
fn four_steps(
    job: &TrainJob,
    mut model: RunModel<Ad>,
    batch: &[&Example],
    pad: u32,
) -> (RunModel<Ad>, Vec<f64>) {
    let (r, device) = (&job.recipe, Default::default());
    let update = Update::new(&r.optim, |part| r.trains(part), &device);
    let forward = ForwardSettings {
        pad_id: pad,
        autocast: Precision::Bf16Mixed.autocast(),
        lockstep: false,
    };
    let mut step = AccumulationStep::<Ad, RunModel<Ad>>::new(update, forward, &device);
    let window = vec![batch.to_vec()];
    let mut losses = Vec::new();
    for _ in 0..4 {
        let (next, outcome) = step.step(model, &window, 1.0).unwrap();
        model = next;
        losses.push(outcome.loss);
    }
    (model, losses)
}

/// Sets up `recipe` with `extra` overrides in `dir` and checks every parameter's type against
/// `frozen`; then four steps on the first batch: finite falling losses, frozen values kept,
/// within 0.1% of the losses of the same steps with the frozen parts held in f32 (as before
/// they were held in bf16: the same recipe set up in f32, stepped under the same autocast).
fn check_run(dir: &Path, recipe: &str, extra: &[&str], frozen: impl Fn(&ParamPart) -> bool) {
    let job = job(dir, recipe, extra);
    let run = setup::<Ad>(&job, &Default::default()).unwrap();
    let before = assert_types(&run.model, &frozen, recipe);
    let pad = run.processor.special_tokens().pad;
    let batch: Vec<&Example> = run.data.train.iter().take(4).collect();
    let (model, losses) = four_steps(&job, run.model, &batch, pad);
    assert!(losses.iter().all(|l| l.is_finite()), "{recipe}: {losses:?}");
    assert!(
        losses[3] < losses[0],
        "{recipe} {extra:?}: the loss did not fall: {losses:?}"
    );
    let after = assert_types(&model, &frozen, recipe);
    for p in model.param_parts() {
        let changed = before[&p.id].1 != after[&p.id].1;
        assert_eq!(
            changed,
            !frozen(&p),
            "{recipe}: `{}` changed: {changed}",
            p.name
        );
    }
    assert_same_numbers_as_widened(&model.valid(), &batch, pad, recipe);
    assert_tracks_frozen_f32(dir, recipe, extra, &losses);
}

/// The same four steps with the frozen parts held in f32 give losses within 0.1% of `losses`
/// (measured: at most 6.5e-5 relative on both presets).
fn assert_tracks_frozen_f32(dir: &Path, recipe: &str, extra: &[&str], losses: &[f64]) {
    let in_f32 = ["train.precision=\"f32\""];
    let in_f32: Vec<&str> = extra.iter().chain(&in_f32).copied().collect();
    let job = TrainJob {
        run_dir: dir.join("f32-frozen"),
        ..job(dir, recipe, &in_f32)
    };
    let run = setup::<Ad>(&job, &Default::default()).unwrap();
    let held = params(&run.model);
    assert!(
        held.values().all(|(dtype, _)| *dtype == DType::F32),
        "{recipe}"
    );
    let pad = run.processor.special_tokens().pad;
    let batch: Vec<&Example> = run.data.train.iter().take(4).collect();
    let (_, reference) = four_steps(&job, run.model, &batch, pad);
    for (step, (a, b)) in losses.iter().zip(&reference).enumerate() {
        let rel = (a - b).abs() / b.abs();
        assert!(
            rel < 1e-3,
            "{recipe} {extra:?}: step {step} loss {a} vs {b} with the frozen parts in f32"
        );
    }
}

/// `model` (frozen parts in bf16) computes exactly what it computes with every parameter
/// widened to f32: the loss of `batch` under bf16-mixed's autocast and without, and the logits
/// of a prefill and a decoding step (validation's generation, outside autocast).
fn assert_same_numbers_as_widened(model: &Vlm<Flex>, batch: &[&Example], pad: u32, recipe: &str) {
    let widened = params_in(model.clone(), FloatDType::F32);
    let batch = collate::<Flex>(batch, pad, &Default::default());
    for dtype in [None, Precision::Bf16Mixed.autocast()] {
        let loss = |m: &Vlm<Flex>| {
            let loss = autocast(dtype, || m.forward_loss(&batch.input, &batch.labels));
            loss.unwrap().sum.into_data()
        };
        assert_eq!(
            loss(model),
            loss(&widened),
            "{recipe}: loss, autocast {dtype:?}"
        );
    }
    let logits = |m: &Vlm<Flex>| {
        let (first, mut cache) = m.prefill(&batch.input).unwrap();
        let rows = first.dims()[0];
        let next = m.decode_step(&vec![1; rows], &mut cache).unwrap();
        (first.into_data(), next.into_data())
    };
    assert_eq!(
        logits(model),
        logits(&widened),
        "{recipe}: generation logits"
    );
}

/// Asserts that the parameters `frozen` selects are bf16 and the others f32, with some of
/// each; returns every parameter's type and values.
fn assert_types(
    model: &RunModel<Ad>,
    frozen: &impl Fn(&ParamPart) -> bool,
    recipe: &str,
) -> HashMap<ParamId, (DType, TensorData)> {
    let values = params(model);
    let parts = model.param_parts();
    assert_eq!(
        parts.len(),
        values.len(),
        "{recipe}: every parameter has a part"
    );
    for p in &parts {
        let expected = match frozen(p) {
            true => DType::BF16,
            false => DType::F32,
        };
        assert_eq!(values[&p.id].0, expected, "{recipe}: `{}`", p.name);
    }
    let held = parts.iter().filter(|p| frozen(p)).count();
    assert!(
        held > 0 && held < parts.len(),
        "{recipe}: {held} of {} parameters frozen",
        parts.len()
    );
    values
}

#[test]
fn a_frozen_vision_tower_is_held_in_bf16_and_trains_the_rest_in_f32() {
    for recipe in FAMILIES {
        let dir = tempfile::tempdir().unwrap();
        let extra = ["train.freeze=[\"vision\"]"];
        check_run(dir.path(), recipe, &extra, |p| p.part == ModelPart::Vision);
    }
}

#[test]
fn a_lora_base_is_held_in_bf16_and_the_adapters_and_connector_train_in_f32() {
    for recipe in FAMILIES {
        let dir = tempfile::tempdir().unwrap();
        check_run(dir.path(), recipe, LORA, |p| {
            !p.adapter && p.part != ModelPart::Connector
        });
    }
}

/// `plan` under bf16-mixed: trained weights at 4 bytes, frozen ones at 2 (the LLaVA-1.5-7B
/// LoRA recipe on its config-only fixture); in f32 every weight at 4.
#[test]
fn plan_counts_frozen_weights_at_two_bytes_under_bf16_mixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixture = root.join("model/tests/fixtures/config_only/llava-1.5-7b/config.json");
    let config = ModelConfig::from_file(&fixture).unwrap();
    let recipe_path = root.join("recipes/llava-1.5-7b-vcr-lora.toml");
    let mut recipe = load_recipe(&recipe_path, &[]).unwrap().recipe;
    assert_eq!(recipe.train.precision, Precision::Bf16Mixed);
    let work = Workload {
        rows: 1,
        seq: 256,
        tiles: 1,
        grid: None,
    };
    let mixed = device_memory(&recipe, &config, work).unwrap();
    recipe.train.precision = Precision::F32;
    let full = device_memory(&recipe, &config, work).unwrap();
    // Gradients are one f32 value per trained weight.
    let (trained, total) = (mixed.gradients / 4, full.weights / 4);
    assert_eq!(full.gradients, mixed.gradients);
    assert_eq!(mixed.weights, trained * 4 + (total - trained) * 2);
    assert!(mixed.weights < full.weights * 52 / 100, "{mixed:?}");
}
