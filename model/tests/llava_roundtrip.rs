//! LLaVA HF folders: save → reload gives identical logits (fixtures and random models, tied
//! and untied) in the hub layout, every checkpoint layout loads (hub, transformers 4.52's
//! `model.*`, transformers 5's without `vision_model.`, sharded), HF transformers loads what we
//! save and reproduces the fixtures (in tools/.venv, which tools/test.sh makes), and broken
//! folders fail naming the tensor and folder.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::s;
use common::{
    fixture_input, llava_fixtures, logits, tiny_llava_config, tiny_llava_input, Cpu, Device,
};
use safeaware_model::llava::weights::{hub_name, module_name};
use safeaware_model::safetensors_io::{
    write_safetensors, OutTensor, TensorStore, INDEX_FILE, WEIGHTS_FILE,
};
use safeaware_model::{FloatDtype, Llava, ModelError, VisionLanguageModel};

/// The venv's Python (a missing venv fails the test: tools/test.sh makes it).
fn venv_python_if_ready() -> Option<PathBuf> {
    Some(common::venv_python())
}

/// Runs tools/check_hf_roundtrip.py on our save `saved` of the fixture `folder`.
fn hf_accepts(python: &Path, saved: &Path, folder: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/check_hf_roundtrip.py");
    let run = Command::new(python)
        .arg(&script)
        .arg(saved)
        .arg(folder)
        .arg("--generate")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "HF rejected our save of {}:\n{}\n{}",
        folder.display(),
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn fixtures_save_reload_identically_in_the_hub_layout_and_hf_accepts_the_result() {
    let device = Device::default();
    let python = venv_python_if_ready();
    let folders = llava_fixtures();
    assert!(folders.len() >= 3, "{folders:?}");
    for folder in folders {
        let model = Llava::<Cpu>::load(&folder.join("model"), &device).unwrap();
        let input = fixture_input(&folder, &device).unwrap();
        let before = logits(&model, &input);
        let out = tempfile::tempdir().unwrap();
        model.save(out.path(), FloatDtype::F32).unwrap();
        let store = TensorStore::open_dir(out.path()).unwrap();
        let class = "vision_tower.vision_model.embeddings.class_embedding";
        assert!(store.shape(class).is_some(), "hub layout");
        assert!(store.names().all(|n| hub_name(n) == n), "hub layout only");
        assert_eq!(
            store.shape("language_model.lm_head.weight").is_some(),
            !model.config().tie_word_embeddings
        );
        let reloaded = Llava::<Cpu>::load(out.path(), &device).unwrap();
        assert_eq!(before, logits(&reloaded, &input), "{}", folder.display());
        match &python {
            Some(python) => hf_accepts(python, out.path(), &folder),
            None => eprintln!("tools/.venv missing: skipping the HF load check"),
        }
    }
}

#[test]
fn random_models_round_trip_and_are_deterministic_per_seed() {
    let device = Device::default();
    let input = tiny_llava_input(&device);
    for tied in [true, false] {
        let config = tiny_llava_config(tied);
        let model = Llava::<Cpu>::init_random(&config, 7, &device);
        let reference = logits(&model, &input);
        let again = Llava::<Cpu>::init_random(&config, 7, &device);
        assert_eq!(reference, logits(&again, &input));
        let other = Llava::<Cpu>::init_random(&config, 8, &device);
        assert_ne!(reference, logits(&other, &input));
        let out = tempfile::tempdir().unwrap();
        VisionLanguageModel::save(&model, out.path(), FloatDtype::F32).unwrap();
        let reloaded = <Llava<Cpu> as VisionLanguageModel<Cpu>>::load(out.path(), &device).unwrap();
        assert_eq!(reference, logits(&reloaded, &input));
        assert_eq!(reloaded.config().tie_word_embeddings, tied);
    }
}

/// The standard deviation of the saved tensor `name` in `folder`.
fn saved_std(folder: &Path, name: &str) -> f64 {
    let store = TensorStore::open_dir(folder).unwrap();
    let values = store.read_f32(name).unwrap().unwrap();
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    (values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

#[test]
fn a_fresh_projector_starts_at_lecun_spread_and_the_rest_at_initializer_range() {
    let device = Device::default();
    let config = tiny_llava_config(false);
    let model = Llava::<Cpu>::init_random(&config, 3, &device);
    let out = tempfile::tempdir().unwrap();
    VisionLanguageModel::save(&model, out.path(), FloatDtype::F32).unwrap();
    let fan_ins = [
        (
            "multi_modal_projector.linear_1.weight",
            config.projector_input_size(),
        ),
        (
            "multi_modal_projector.linear_2.weight",
            config.text.hidden_size,
        ),
    ];
    for (name, fan_in) in fan_ins {
        let expected = 1.0 / (fan_in as f64).sqrt();
        let std = saved_std(out.path(), name);
        assert!(
            (std / expected - 1.0).abs() < 0.1,
            "{name}: std {std} vs {expected}"
        );
    }
    for name in [
        "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight",
        "language_model.lm_head.weight",
    ] {
        let std = saved_std(out.path(), name);
        assert!((std / 0.02 - 1.0).abs() < 0.1, "{name}: std {std} vs 0.02");
    }
}

/// Rewrites the single-file checkpoint in `from` into `to` with every tensor renamed by
/// `rename`, split over two shards with an index.
fn rewrite_sharded(from: &Path, to: &Path, rename: impl Fn(&str) -> String) {
    std::fs::copy(from.join("config.json"), to.join("config.json")).unwrap();
    let store = TensorStore::open_dir(from).unwrap();
    let names: Vec<String> = store.names().map(str::to_owned).collect();
    let halves = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (index, part) in [halves.0, halves.1].into_iter().enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", index + 1);
        let layout: Vec<(String, Vec<usize>)> = part
            .iter()
            .map(|n| (rename(n), store.shape(n).unwrap().to_vec()))
            .collect();
        write_safetensors(&to.join(&file), &layout, FloatDtype::F32, |i| OutTensor {
            name: layout[i].0.clone(),
            shape: layout[i].1.clone(),
            values: store.read_f32(&part[i]).unwrap().unwrap(),
        })
        .unwrap();
        for (name, _) in &layout {
            weight_map.insert(name.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(to.join(INDEX_FILE), index.to_string()).unwrap();
}

/// A tensor renaming, from the hub layout to another.
type Rename = dyn Fn(&str) -> String;

#[test]
fn every_checkpoint_layout_loads_sharded() {
    let device = Device::default();
    let input = tiny_llava_input(&device);
    let model = Llava::<Cpu>::init_random(&tiny_llava_config(false), 5, &device);
    let reference = logits(&model, &input);
    let single = tempfile::tempdir().unwrap();
    model.save(single.path(), FloatDtype::F32).unwrap();
    let transformers_5_saved =
        |name: &str| name.replacen("vision_tower.vision_model.", "vision_tower.", 1);
    let transformers_4_52 = |name: &str| match name.strip_prefix("vision_tower.") {
        Some(rest) => format!("model.vision_tower.{rest}"),
        None => module_name(name),
    };
    let renames: [(&str, &Rename); 3] = [
        ("transformers 5 in memory", &module_name),
        ("transformers 5 saved", &transformers_5_saved),
        ("transformers 4.52", &transformers_4_52),
    ];
    for (layout, rename) in renames {
        let sharded = tempfile::tempdir().unwrap();
        rewrite_sharded(single.path(), sharded.path(), rename);
        let loaded = Llava::<Cpu>::load(sharded.path(), &device).unwrap();
        assert_eq!(reference, logits(&loaded, &input), "{layout}");
    }
}

#[test]
fn missing_and_mis_shaped_tensors_are_named_with_the_folder() {
    let device = Device::default();
    let model = Llava::<Cpu>::init_random(&tiny_llava_config(false), 1, &device);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path(), FloatDtype::F32).unwrap();
    let store = TensorStore::open_dir(dir.path()).unwrap();
    let dropped = "vision_tower.vision_model.encoder.layers.2.mlp.fc2.bias";
    let reshaped = "multi_modal_projector.linear_1.weight";
    let layout: Vec<(String, Vec<usize>)> = store
        .names()
        .filter(|n| *n != dropped)
        .map(|n| {
            let shape = if n == reshaped {
                vec![32, 15]
            } else {
                store.shape(n).unwrap().to_vec()
            };
            (n.to_owned(), shape)
        })
        .collect();
    drop(store);
    write_safetensors(
        &dir.path().join(WEIGHTS_FILE),
        &layout,
        FloatDtype::F32,
        |i| OutTensor {
            name: layout[i].0.clone(),
            shape: layout[i].1.clone(),
            values: vec![0.5; layout[i].1.iter().product()],
        },
    )
    .unwrap();
    let err = Llava::<Cpu>::load(dir.path(), &device).unwrap_err();
    assert!(matches!(err, ModelError::WeightsMismatch { .. }), "{err:?}");
    let message = err.to_string();
    for needle in [
        format!("{dropped} [16]"),
        format!("{reshaped}: file has [32, 15], config needs [32, 16]"),
        dir.path().display().to_string(),
    ] {
        assert!(
            message.contains(&needle),
            "`{needle}` missing from:\n{message}"
        );
    }
}

#[test]
fn image_token_count_mismatch_is_an_error() {
    let device = Device::default();
    let model = Llava::<Cpu>::init_random(&tiny_llava_config(true), 1, &device);
    let input = tiny_llava_input(&device);
    let one_image = safeaware_model::VlmInput::new(
        input.input_ids.clone(),
        input
            .pixel_values
            .clone()
            .map(|p| p.slice(s![0..1, .., .., ..])),
    );
    let err = model.forward(&one_image).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::ImageTokenMismatch {
                image_tokens: 8,
                tiles: 1,
                tokens_per_tile: 4,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Loads `argv[1]` in HF transformers and writes the logits for ids `argv[2]` and the images
/// in `pixels.safetensors` (next to the model) to `argv[3]`.
const HF_LOGITS: &str = r#"
import json, sys, torch
from safetensors.torch import load_file, save_file
from transformers import LlavaForConditionalGeneration
model_dir, ids, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
model = LlavaForConditionalGeneration.from_pretrained(model_dir, attn_implementation="eager").eval()
pixels = load_file(model_dir + "/../pixels.safetensors")["pixel_values"]
with torch.no_grad():
    logits = model(input_ids=torch.tensor(ids, dtype=torch.long), pixel_values=pixels).logits
save_file({"logits": logits.float().contiguous()}, out)
"#;

#[test]
fn models_built_in_code_load_in_hf_with_the_same_logits() {
    let device = Device::default();
    let input = tiny_llava_input(&device);
    let ids = common::int_rows(&input.input_ids);
    for tied in [true, false] {
        let model = Llava::<Cpu>::init_random(&tiny_llava_config(tied), 11, &device);
        let ours = logits(&model, &input);
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("model");
        model.save(&dir, FloatDtype::F32).unwrap();
        common::write_pixels(
            &root.path().join("pixels.safetensors"),
            input.pixel_values.as_ref().unwrap(),
        );
        let out = root.path().join("hf_logits.safetensors");
        let args = [
            dir.display().to_string(),
            serde_json::to_string(&ids).unwrap(),
        ];
        let theirs = common::venv_logits(&common::venv_python(), HF_LOGITS, &args, &out, "HF");
        let diff = common::max_abs_diff(&ours, &theirs);
        assert!(diff <= 1e-4, "tied={tied}: max |diff| {diff}");
    }
}
