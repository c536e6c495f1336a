//! Qwen2-VL (and Qwen2.5-VL, whose fixtures these tests also run) HF folders and behaviour
//! beyond the logits the parity test compares: save → reload is identical and writes the hub
//! layout, which HF transformers loads and reproduces the fixtures with (tools/.venv); the
//! transformers 4.52 layout loads; parameter counts equal HF's from the config, from `inspect`
//! and from the model; broken folders and inputs fail naming the tensor; and the training path
//! (autodiff) gives the inference loss and gradients in the tower.

mod common;

use std::path::Path;
use std::process::Command;

use burn::backend::Autodiff;
use burn::tensor::{s, Int, Tensor, TensorData};
use common::{family_of, fixture_input, logits, parity_fixtures, Cpu, Device};
use safeaware_model::qwen2_vl::weights::hub_name;
use safeaware_model::registry::Family;
use safeaware_model::safetensors_io::{write_safetensors, OutTensor, TensorStore, WEIGHTS_FILE};
use safeaware_model::{
    inspect, FloatDtype, ModelError, ParamCounts, Qwen2Vl, VisionLanguageModel, VlmInput,
};
use serde_json::Value;

type Train = Autodiff<Cpu>;

/// The Qwen2-VL and Qwen2.5-VL parity fixtures (one model type serves both): the shipped ones
/// and those checked on the CPU only (`parity_cpu_only/`, see tools/README.md).
fn qwen2_vl_fixtures() -> Vec<std::path::PathBuf> {
    let cpu_only = common::sub_folders(&common::fixtures_dir().join("parity_cpu_only"));
    let folders: Vec<_> = parity_fixtures()
        .into_iter()
        .chain(cpu_only)
        .filter(|f| matches!(family_of(f), Family::Qwen2Vl | Family::Qwen2_5Vl))
        .collect();
    assert!(folders.len() >= 2, "{folders:?}");
    folders
}

/// The fixture named `name`.
fn fixture(name: &str) -> std::path::PathBuf {
    let found = qwen2_vl_fixtures().into_iter().find(|f| f.ends_with(name));
    found.unwrap_or_else(|| panic!("no fixture {name}"))
}

/// The fixture whose two rows hold images of different grids, left-padded.
const TWO_GRIDS: &str = "qwen2_vl_untied_b2_grids_left_padded";

/// Runs tools/check_hf_roundtrip.py on our save `saved` against the fixture-style `folder`
/// (its inputs and expected logits; with `generate`, its greedy tokens too).
fn hf_accepts(saved: &Path, folder: &Path, generate: bool) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/check_hf_roundtrip.py");
    let run = Command::new(common::venv_python())
        .arg(&script)
        .args([saved, folder])
        .args(generate.then_some("--generate"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "HF rejected our save against {}:\n{}\n{}",
        folder.display(),
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

/// The fixtures kept out of the shipped set (wgpu diverges on them) still match HF on the CPU.
#[test]
fn cpu_only_fixtures_match_hf_on_the_cpu() {
    let folders = common::sub_folders(&common::fixtures_dir().join("parity_cpu_only"));
    assert!(!folders.is_empty());
    for folder in folders {
        let outcome = safeaware_model::parity::run_fixture::<Cpu>(&folder, &Device::default());
        let outcome = outcome.unwrap();
        assert!(outcome.passes(1e-4), "{}: {outcome:?}", folder.display());
    }
}

#[test]
fn fixtures_save_reload_identically_in_the_hub_layout_and_hf_accepts_the_result() {
    let device = Device::default();
    for folder in qwen2_vl_fixtures() {
        let model = Qwen2Vl::<Cpu>::load(&folder.join("model"), &device).unwrap();
        let input = fixture_input(&folder, &device).unwrap();
        let before = logits(&model, &input);
        let out = tempfile::tempdir().unwrap();
        model.save(out.path(), FloatDtype::F32).unwrap();
        let store = TensorStore::open_dir(out.path()).unwrap();
        assert!(store.shape("visual.patch_embed.proj.weight").is_some());
        assert!(store.shape("visual.merger.mlp.2.bias").is_some());
        assert!(store.names().all(|n| hub_name(n) == n), "hub layout only");
        let reloaded = Qwen2Vl::<Cpu>::load(out.path(), &device).unwrap();
        assert_eq!(before, logits(&reloaded, &input), "{}", folder.display());
        hf_accepts(out.path(), &folder, true);
    }
}

fn hf_counts(folder: &Path) -> [usize; 5] {
    let text = std::fs::read_to_string(folder.join("hf_param_counts.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    ["vision", "connector", "text", "lm_head", "total"].map(|k| json[k].as_u64().unwrap() as usize)
}

fn ours(c: &ParamCounts) -> [usize; 5] {
    [c.vision, c.connector, c.text, c.lm_head, c.total()]
}

#[test]
fn counts_match_hf_from_config_inspect_and_the_model() {
    let device = Device::default();
    for folder in qwen2_vl_fixtures() {
        let expected = hf_counts(&folder);
        let summary = inspect(&folder.join("model")).unwrap();
        assert_eq!(
            ours(&summary.counts),
            expected,
            "inspect {}",
            folder.display()
        );
        assert!(summary.to_string().contains("M-RoPE"), "{summary}");
        let model = Qwen2Vl::<Cpu>::load(&folder.join("model"), &device).unwrap();
        assert_eq!(ours(&model.config().param_counts()), expected);
        let from_model = ParamCounts::of_model::<Cpu, _>(&model);
        assert_eq!(ours(&from_model), expected, "model {}", folder.display());
    }
}

#[test]
fn missing_and_mis_shaped_tensors_are_named_with_the_folder() {
    let device = Device::default();
    let folder = &qwen2_vl_fixtures()[0];
    let model = Qwen2Vl::<Cpu>::load(&folder.join("model"), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path(), FloatDtype::F32).unwrap();
    let store = TensorStore::open_dir(dir.path()).unwrap();
    let dropped = "model.layers.1.self_attn.k_proj.bias";
    let reshaped = "visual.patch_embed.proj.weight";
    let layout: Vec<(String, Vec<usize>)> = store
        .names()
        .filter(|n| *n != dropped)
        .map(|n| {
            let mut shape = store.shape(n).unwrap().to_vec();
            if n == reshaped {
                shape[2] = 1;
            }
            (n.to_owned(), shape)
        })
        .collect();
    drop(store);
    let path = dir.path().join(WEIGHTS_FILE);
    write_safetensors(&path, &layout, FloatDtype::F32, |i| OutTensor {
        name: layout[i].0.clone(),
        shape: layout[i].1.clone(),
        values: vec![0.5; layout[i].1.iter().product()],
    })
    .unwrap();
    let err = Qwen2Vl::<Cpu>::load(dir.path(), &device).unwrap_err();
    assert!(matches!(err, ModelError::WeightsMismatch { .. }), "{err:?}");
    let message = err.to_string();
    for needle in [dropped, reshaped, &dir.path().display().to_string()] {
        assert!(
            message.contains(needle),
            "`{needle}` missing from:\n{message}"
        );
    }
}

#[test]
fn inputs_that_do_not_fit_the_grids_name_the_input() {
    let device = Device::default();
    let folder = fixture(TWO_GRIDS);
    let model = Qwen2Vl::<Cpu>::load(&folder.join("model"), &device).unwrap();
    let input = fixture_input(&folder, &device).unwrap();
    let error = |input: &VlmInput<Cpu>| model.forward(input).unwrap_err().to_string();
    let no_grids = VlmInput {
        image_grid_thw: None,
        ..input.clone()
    };
    assert!(
        error(&no_grids).contains("image_grid_thw"),
        "{}",
        error(&no_grids)
    );
    let mut grids = input.image_grid_thw.clone().unwrap();
    grids.swap(0, 1);
    let swapped = VlmInput {
        image_grid_thw: Some(grids),
        ..input.clone()
    };
    assert!(error(&swapped).contains("input_ids"), "{}", error(&swapped));
    let mut grids = input.image_grid_thw.clone().unwrap();
    grids[0] = [1, 4, 8];
    let too_many = VlmInput {
        image_grid_thw: Some(grids),
        ..input.clone()
    };
    let message = error(&too_many);
    assert!(
        message.contains("input_ids") && message.contains("needs 14"),
        "{message}"
    );
    let no_pixels = VlmInput {
        pixel_values: None,
        ..input.clone()
    };
    assert!(
        error(&no_pixels).contains("pixel_values"),
        "{}",
        error(&no_pixels)
    );
    let pixels = input.pixel_values.clone().unwrap();
    let rows = pixels.dims()[0];
    let wrong_patches = VlmInput {
        pixel_values: Some(pixels.slice(s![0..rows - 1, .., .., ..])),
        ..input
    };
    assert!(
        error(&wrong_patches).contains("pixel_values"),
        "{}",
        error(&wrong_patches)
    );
}

/// The fixture with two images of different grids under autodiff (the attention kernels of
/// training, the tower's attention frame by frame): the loss equals the inference loss and
/// every tower block gets a gradient.
#[test]
fn training_loss_matches_inference_and_reaches_the_tower() {
    let device = Device::default();
    let folder = fixture(TWO_GRIDS);
    let input = safeaware_model::parity::fixture_input::<Train>(&folder, &device).unwrap();
    let ids = common::int_rows(&input.input_ids.clone().inner()).concat();
    let mask = common::int_rows(&input.attention_mask.clone().unwrap().inner()).concat();
    let labels: Vec<i64> = ids
        .iter()
        .zip(&mask)
        .map(|(&t, &m)| if m == 1 { t } else { -100 })
        .collect();
    let shape = input.input_ids.dims();
    let labels = Tensor::<Train, 2, Int>::from_data(TensorData::new(labels, shape), &device);
    let model = Qwen2Vl::<Train>::load(&folder.join("model"), &device).unwrap();
    let loss = model.forward_loss(&input, &labels).unwrap();
    let inner = Qwen2Vl::<Cpu>::load(&folder.join("model"), &device).unwrap();
    let plain_input = fixture_input(&folder, &device).unwrap();
    let plain = inner.forward_loss(&plain_input, &labels.inner()).unwrap();
    let (a, b) = (loss.mean.clone().into_scalar(), plain.mean.into_scalar());
    assert!((a - b).abs() < 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    let grads = loss.mean.backward();
    for block in &model.visual.blocks {
        let grad = block.attn.qkv.weight.grad(&grads).expect("a gradient");
        let norm: f32 = grad.abs().sum().into_scalar();
        assert!(norm > 0.0 && norm.is_finite(), "{norm}");
    }
}

/// A model whose config is built in code (written in transformers 5's nested layout) loads in
/// HF with our logits on the two-grid fixture's inputs.
#[test]
fn a_model_built_in_code_loads_in_hf_with_the_same_logits() {
    let device = Device::default();
    let folder = fixture(TWO_GRIDS);
    let loaded = Qwen2Vl::<Cpu>::load(&folder.join("model"), &device).unwrap();
    let config = safeaware_model::Qwen2VlConfig {
        raw: Value::Null,
        ..loaded.config().clone()
    };
    let model = Qwen2Vl::<Cpu>::init_random(&config, 5, &device);
    let input = fixture_input(&folder, &device).unwrap();
    let mask = common::int_rows(input.attention_mask.as_ref().unwrap()).concat();
    let vocab = config.text.vocab_size;
    let ours: Vec<f32> = logits(&model, &input)
        .chunks(vocab)
        .zip(&mask)
        .flat_map(|(row, &m)| row.iter().map(move |&v| v * m as f32))
        .collect();
    let root = tempfile::tempdir().unwrap();
    let (saved, reference) = (root.path().join("model"), root.path().join("reference"));
    model.save(&saved, FloatDtype::F32).unwrap();
    let text = std::fs::read_to_string(saved.join("config.json")).unwrap();
    assert!(text.contains("\"text_config\""), "{text}");
    std::fs::create_dir(&reference).unwrap();
    std::fs::copy(
        folder.join("inputs.safetensors"),
        reference.join("inputs.safetensors"),
    )
    .unwrap();
    let [batch, seq] = input.input_ids.dims();
    let shape = vec![batch, seq, vocab];
    let layout = [("logits".to_owned(), shape.clone())];
    let expected = reference.join("expected.safetensors");
    write_safetensors(&expected, &layout, FloatDtype::F32, |_| OutTensor {
        name: "logits".into(),
        shape: shape.clone(),
        values: ours.clone(),
    })
    .unwrap();
    hf_accepts(&saved, &reference, false);
}
