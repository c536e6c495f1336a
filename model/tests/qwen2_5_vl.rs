//! Qwen2.5-VL beyond what the parity test and the shared Qwen2-VL tests (`qwen2_vl.rs`, which
//! run over these fixtures too: save → reload in the hub layout, HF accepts the save, counts)
//! check: the fixtures' windows matter (all-full attention changes the logits), both checkpoint
//! layouts load to the same logits, the family and its LoRA targets come from the config, and
//! broken configs fail naming the field.

mod common;

use std::path::{Path, PathBuf};

use common::{family_of, fixture_input, logits, max_abs_diff, parity_fixtures, Cpu, Device};
use safeaware_model::qwen2_vl::weights::module_name;
use safeaware_model::registry::{Family, ModelConfig};
use safeaware_model::safetensors_io::{write_safetensors, OutTensor, TensorStore, WEIGHTS_FILE};
use safeaware_model::{
    FloatDtype, LoraSpec, ModelError, ModelPart, Qwen2Vl, VisionLanguageModel, Vlm,
};
use serde_json::{json, Value};

/// The fixture whose two rows hold images of different grids, one of them over four windows.
const WINDOWS: &str = "qwen2_5_vl_untied_b2_windows_left_padded";

/// The Qwen2.5-VL parity fixtures.
fn fixtures() -> Vec<PathBuf> {
    let found: Vec<_> = parity_fixtures()
        .into_iter()
        .filter(|f| family_of(f) == Family::Qwen2_5Vl)
        .collect();
    assert!(found.len() >= 2, "{found:?}");
    found
}

fn fixture(name: &str) -> PathBuf {
    let found = fixtures().into_iter().find(|f| f.ends_with(name));
    found.unwrap_or_else(|| panic!("no fixture {name}"))
}

/// A copy of the fixture's model folder with its config.json changed by `edit`.
fn edited_copy(folder: &Path, edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(folder.join("model")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let config_path = dir.path().join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&config_path, config.to_string()).unwrap();
    dir
}

/// With every block attending over whole images the logits move: the fixture's window blocks
/// (and so its reordering) are exercised, not a no-op.
#[test]
fn the_window_blocks_change_the_logits() {
    let device = Device::default();
    let folder = fixture(WINDOWS);
    let input = fixture_input(&folder, &device).unwrap();
    let model = Qwen2Vl::<Cpu>::load(&folder.join("model"), &device).unwrap();
    let windowed = logits(&model, &input);
    let all_full = edited_copy(&folder, |c| {
        c["vision_config"]["fullatt_block_indexes"] = json!([0, 1, 2]);
    });
    let full = Qwen2Vl::<Cpu>::load(all_full.path(), &device).unwrap();
    let diff = max_abs_diff(&windowed, &logits(&full, &input));
    assert!(diff > 1e-2, "window attention made no difference ({diff})");
    let huge_windows = edited_copy(&folder, |c| c["vision_config"]["window_size"] = json!(280));
    let one_window = Qwen2Vl::<Cpu>::load(huge_windows.path(), &device).unwrap();
    let same = max_abs_diff(&logits(&full, &input), &logits(&one_window, &input));
    assert!(
        same < 1e-5,
        "one window per image is full attention ({same})"
    );
}

/// The hub-layout fixture rewritten in transformers 4.52's names (`model.visual.*`,
/// `model.language_model.*`) loads to the same logits, and saving writes the hub names again.
#[test]
fn both_layouts_load_to_the_same_logits() {
    let device = Device::default();
    let folder = fixture(WINDOWS);
    let input = fixture_input(&folder, &device).unwrap();
    let hub = Qwen2Vl::<Cpu>::load(&folder.join("model"), &device).unwrap();
    let copy = edited_copy(&folder, |_| {});
    let path = copy.path().join(WEIGHTS_FILE);
    let store = TensorStore::open_dir(&folder.join("model")).unwrap();
    assert!(store
        .names()
        .any(|n| n.starts_with("visual.blocks.0.mlp.gate_proj")));
    let hub_names: Vec<String> = store.names().map(str::to_owned).collect();
    let layout: Vec<(String, Vec<usize>)> = hub_names
        .iter()
        .map(|n| (module_name(n), store.shape(n).unwrap().to_vec()))
        .collect();
    write_safetensors(&path, &layout, FloatDtype::F32, |i| OutTensor {
        name: layout[i].0.clone(),
        shape: layout[i].1.clone(),
        values: store.read_f32(&hub_names[i]).unwrap().unwrap(),
    })
    .unwrap();
    let renamed = TensorStore::open_dir(copy.path()).unwrap();
    assert!(renamed.names().all(|n| !n.starts_with("visual.")));
    assert!(renamed
        .names()
        .any(|n| n == "model.visual.blocks.0.norm1.weight"));
    let v4_52 = Qwen2Vl::<Cpu>::load(copy.path(), &device).unwrap();
    assert_eq!(logits(&hub, &input), logits(&v4_52, &input));
}

/// The registry reads the family from `model_type`, and writes it back with HF's class name.
#[test]
fn the_family_and_lora_targets_follow_the_config() {
    let device = Device::default();
    for folder in fixtures() {
        let model = Vlm::<Cpu>::load(&folder.join("model"), &device).unwrap();
        assert_eq!(model.family(), Family::Qwen2_5Vl);
        let out = tempfile::tempdir().unwrap();
        model.save(out.path(), FloatDtype::F32).unwrap();
        let config = ModelConfig::from_file(&out.path().join("config.json")).unwrap();
        assert_eq!(config.family(), Family::Qwen2_5Vl);
        assert_eq!(config.model_type(), "qwen2_5_vl");
        let text = std::fs::read_to_string(out.path().join("config.json")).unwrap();
        assert!(
            text.contains("Qwen2_5_VLForConditionalGeneration"),
            "{text}"
        );
        let summary = safeaware_model::inspect(&folder.join("model")).unwrap();
        assert!(summary.to_string().contains("Qwen2.5-VL ViT"), "{summary}");
    }
    let spec = |target: &str| LoraSpec {
        rank: 2,
        alpha: 4.0,
        dropout: 0.0,
        targets: vec![target.to_owned()],
        parts: vec![ModelPart::Vision],
    };
    let folder = fixture(WINDOWS);
    let model = Qwen2Vl::<Cpu>::load(&folder.join("model"), &device).unwrap();
    assert!(Family::Qwen2_5Vl.check_lora_targets(&spec("fc1")).is_err());
    assert!(Family::Qwen2Vl
        .check_lora_targets(&spec("gate_proj"))
        .is_err());
    let adapted = model.with_lora(&spec("gate_proj"), 3).unwrap();
    let names: Vec<String> = adapted
        .param_parts()
        .into_iter()
        .filter(|p| p.adapter)
        .map(|p| p.name)
        .collect();
    assert_eq!(names.len(), 2 * 3, "{names:?}");
    assert!(
        names.iter().all(|n| n.contains(".mlp.gate_proj.lora_")),
        "{names:?}"
    );
    let model = Qwen2Vl::<Cpu>::load(&folder.join("model"), &device).unwrap();
    assert!(model.with_lora(&spec("fc1"), 3).is_err());
}

/// A folder whose config breaks a Qwen2.5-VL constraint fails naming the field.
#[test]
fn invalid_configs_name_the_field() {
    let device = Device::default();
    let folder = fixture(WINDOWS);
    for (field, edit) in [
        ("vision_config.window_size", json!({"window_size": 7})),
        (
            "vision_config.fullatt_block_indexes",
            json!({"fullatt_block_indexes": [3]}),
        ),
        ("vision_config.hidden_act", json!({"hidden_act": "gelu"})),
    ] {
        let copy = edited_copy(&folder, |c| {
            for (k, v) in edit.as_object().unwrap() {
                c["vision_config"][k] = v.clone();
            }
        });
        match Qwen2Vl::<Cpu>::load(copy.path(), &device) {
            Err(ModelError::ConfigField { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{field}: expected a field error, got {:?}", other.err()),
        }
    }
    let copy = edited_copy(&folder, |c| c["model_type"] = json!("qwen3_vl"));
    let err = Vlm::<Cpu>::load(copy.path(), &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("qwen3_vl") && err.contains("qwen2_5_vl"),
        "{err}"
    );
}
