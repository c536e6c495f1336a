//! Saving and loading HF folders: save → reload gives identical logits (fixtures and random
//! models, tied and untied), other on-disk dtypes and sharded checkpoints load, HF transformers
//! loads what we save (when tools/.venv exists), and broken folders fail with errors that name
//! every offending tensor or file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixture_input, idefics3_fixtures, logits, tiny_config, tiny_input, Cpu, Device};
use safeaware_model::safetensors_io::{
    write_safetensors, OutTensor, TensorStore, INDEX_FILE, WEIGHTS_FILE,
};
use safeaware_model::{inspect, FloatDtype, Idefics3, ModelError};

/// The venv's Python (a missing venv fails the test: tools/test.sh makes it).
fn venv_python_if_ready() -> Option<PathBuf> {
    Some(common::venv_python())
}

#[test]
fn fixtures_save_reload_identically_and_hf_accepts_the_result() {
    let device = Device::default();
    let python = venv_python_if_ready();
    for folder in idefics3_fixtures() {
        let model = Idefics3::<Cpu>::load(&folder.join("model"), &device).unwrap();
        let input = fixture_input(&folder, &device).unwrap();
        let before = logits(&model, &input);
        let out = tempfile::tempdir().unwrap();
        model.save(out.path(), FloatDtype::F32).unwrap();
        let reloaded = Idefics3::<Cpu>::load(out.path(), &device).unwrap();
        assert_eq!(before, logits(&reloaded, &input), "{}", folder.display());
        assert_eq!(reloaded.lm_head.is_none(), model.lm_head.is_none());
        match &python {
            Some(python) => {
                let script =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/check_hf_roundtrip.py");
                let run = Command::new(python)
                    .arg(&script)
                    .arg(out.path())
                    .arg(&folder)
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
            None => eprintln!("tools/.venv missing: skipping the HF load check"),
        }
    }
}

#[test]
fn random_models_round_trip_and_are_deterministic_per_seed() {
    let device = Device::default();
    let input = tiny_input(&device);
    for tied in [true, false] {
        let config = tiny_config(tied);
        let model = Idefics3::<Cpu>::init_random(&config, 7, &device);
        let reference = logits(&model, &input);
        assert_eq!(
            reference,
            logits(&Idefics3::<Cpu>::init_random(&config, 7, &device), &input)
        );
        assert_ne!(
            reference,
            logits(&Idefics3::<Cpu>::init_random(&config, 8, &device), &input)
        );
        let out = tempfile::tempdir().unwrap();
        model.save(out.path(), FloatDtype::F32).unwrap();
        let store = TensorStore::open_dir(out.path()).unwrap();
        assert_eq!(store.shape("lm_head.weight").is_some(), !tied);
        assert_eq!(
            store.shape("model.text_model.layers.1.self_attn.k_proj.weight"),
            Some(&[16usize, 32][..])
        );
        let reloaded = Idefics3::<Cpu>::load(out.path(), &device).unwrap();
        assert_eq!(reference, logits(&reloaded, &input));
    }
}

/// Loads `dir` in HF transformers and returns its logits for `ids` `[B, T]` and the tiles in
/// `pixels.safetensors` (written next to the model).
const HF_LOGITS: &str = r#"
import json, sys, torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText
model_dir, ids, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
model = AutoModelForImageTextToText.from_pretrained(model_dir, attn_implementation="eager").eval()
pixels = load_file(model_dir + "/../pixels.safetensors")["pixel_values"]
ids = torch.tensor(ids, dtype=torch.long)
with torch.no_grad():
    logits = model(input_ids=ids, pixel_values=pixels.view(ids.shape[0], -1, *pixels.shape[1:])).logits
save_file({"logits": logits.float().contiguous()}, out)
"#;

#[test]
fn models_built_in_code_load_in_hf_with_the_same_logits() {
    let python = common::venv_python();
    let device = Device::default();
    let input = tiny_input(&device);
    let ids: Vec<Vec<i64>> = common::int_rows(&input.input_ids);
    let pixels = input.pixel_values.clone().unwrap();
    for tied in [true, false] {
        let model = Idefics3::<Cpu>::init_random(&tiny_config(tied), 11, &device);
        let ours = logits(&model, &input);
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("model");
        model.save(&dir, FloatDtype::F32).unwrap();
        common::write_pixels(&root.path().join("pixels.safetensors"), &pixels);
        let out = root.path().join("hf_logits.safetensors");
        let args = [
            dir.display().to_string(),
            serde_json::to_string(&ids).unwrap(),
        ];
        let theirs = common::venv_logits(&python, HF_LOGITS, &args, &out, "HF");
        let diff = common::max_abs_diff(&ours, &theirs);
        assert!(diff <= 1e-4, "tied={tied}: max |diff| {diff}");
    }
}

#[test]
fn half_precision_saves_load_with_rounded_weights() {
    let device = Device::default();
    let input = tiny_input(&device);
    let model = Idefics3::<Cpu>::init_random(&tiny_config(false), 3, &device);
    let reference = logits(&model, &input);
    for dtype in [FloatDtype::BF16, FloatDtype::F16] {
        let out = tempfile::tempdir().unwrap();
        model.save(out.path(), dtype).unwrap();
        let summary = inspect(out.path()).unwrap();
        assert_eq!(
            summary.disk_dtypes.unwrap().into_iter().collect::<Vec<_>>(),
            [dtype.name()]
        );
        let reloaded = logits(&Idefics3::<Cpu>::load(out.path(), &device).unwrap(), &input);
        let diff = common::max_abs_diff(&reference, &reloaded);
        assert!(diff > 0.0 && diff < 5e-2, "{dtype:?}: diff {diff}");
    }
}

#[test]
fn sharded_checkpoints_load() {
    let device = Device::default();
    let input = tiny_input(&device);
    let model = Idefics3::<Cpu>::init_random(&tiny_config(false), 5, &device);
    let single = tempfile::tempdir().unwrap();
    model.save(single.path(), FloatDtype::F32).unwrap();
    let store = TensorStore::open_dir(single.path()).unwrap();
    let names: Vec<String> = store.names().map(str::to_owned).collect();
    let sharded = tempfile::tempdir().unwrap();
    std::fs::copy(
        single.path().join("config.json"),
        sharded.path().join("config.json"),
    )
    .unwrap();
    let halves = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (index, part) in [halves.0, halves.1].into_iter().enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", index + 1);
        let layout: Vec<(String, Vec<usize>)> = part
            .iter()
            .map(|n| (n.clone(), store.shape(n).unwrap().to_vec()))
            .collect();
        write_safetensors(
            &sharded.path().join(&file),
            &layout,
            FloatDtype::BF16,
            |i| OutTensor {
                name: layout[i].0.clone(),
                shape: layout[i].1.clone(),
                values: store.read_f32(&layout[i].0).unwrap().unwrap(),
            },
        )
        .unwrap();
        part.iter()
            .for_each(|n| drop(weight_map.insert(n.clone(), file.clone().into())));
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(sharded.path().join(INDEX_FILE), index.to_string()).unwrap();
    let from_shards = Idefics3::<Cpu>::load(sharded.path(), &device).unwrap();
    let from_bf16_single = {
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path(), FloatDtype::BF16).unwrap();
        logits(&Idefics3::<Cpu>::load(dir.path(), &device).unwrap(), &input)
    };
    assert_eq!(logits(&from_shards, &input), from_bf16_single);
}

#[test]
fn mismatched_weights_are_all_listed_in_one_error() {
    let device = Device::default();
    let model = Idefics3::<Cpu>::init_random(&tiny_config(false), 1, &device);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path(), FloatDtype::F32).unwrap();
    let store = TensorStore::open_dir(dir.path()).unwrap();
    let dropped = "model.vision_model.encoder.layers.1.mlp.fc2.bias";
    let reshaped = "model.connector.modality_projection.proj.weight";
    let mut layout: Vec<(String, Vec<usize>)> = store
        .names()
        .filter(|n| *n != dropped)
        .map(|n| {
            (
                n.to_owned(),
                if n == reshaped {
                    vec![32, 63]
                } else {
                    store.shape(n).unwrap().to_vec()
                },
            )
        })
        .collect();
    layout.push(("model.text_model.rotary_emb.inv_freq".to_owned(), vec![4]));
    let path = dir.path().join(WEIGHTS_FILE);
    let tensors: Vec<Vec<f32>> = layout
        .iter()
        .map(|(_, shape)| vec![0.5; shape.iter().product()])
        .collect();
    drop(store);
    write_safetensors(&path, &layout, FloatDtype::F32, |i| OutTensor {
        name: layout[i].0.clone(),
        shape: layout[i].1.clone(),
        values: tensors[i].clone(),
    })
    .unwrap();
    let err = Idefics3::<Cpu>::load(dir.path(), &device).unwrap_err();
    assert!(matches!(err, ModelError::WeightsMismatch { .. }), "{err:?}");
    let message = err.to_string();
    let needles = [
        format!("{dropped} [16]"),
        format!("{reshaped}: file has [32, 63], config needs [32, 64]"),
        "model.text_model.rotary_emb.inv_freq [4]".to_owned(),
    ];
    for needle in needles {
        assert!(
            message.contains(&needle),
            "`{needle}` missing from:\n{message}"
        );
    }
}

#[test]
fn corrupt_or_absent_files_are_named() {
    let device = Device::default();
    let model = Idefics3::<Cpu>::init_random(&tiny_config(true), 1, &device);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path(), FloatDtype::F32).unwrap();
    let path = dir.path().join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = Idefics3::<Cpu>::load(dir.path(), &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");

    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        Idefics3::<Cpu>::load(dir.path(), &device),
        Err(ModelError::NoWeights(_))
    ));
    std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
    let err = Idefics3::<Cpu>::load(dir.path(), &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
}
