//! LoRA on Idefics3, LLaVA and Qwen2-VL: fresh adapters leave the logits unchanged, adapter
//! folders are PEFT's format and round-trip, merging gives the adapted logits, and (in
//! tools/.venv) PEFT's `PeftModel.from_pretrained` on the HF base reproduces our logits.

mod common;

use burn::module::Param;
use burn::tensor::TensorData;
use common::{
    fixture_input, fixtures_dir, int_rows, logits, max_abs_diff, tiny_config, tiny_input,
    tiny_llava_config, tiny_llava_input, Cpu, Device,
};
use safeaware_model::adapters::AdaptableModel;
use safeaware_model::peft::{ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE};
use safeaware_model::qwen2_vl::model::Qwen2Vl;
use safeaware_model::safetensors_io::TensorStore;
use safeaware_model::{
    AdapterConfig, AdapterSpec, FloatDtype, Idefics3, Llava, LoraSpec, ModelPart, ParamCounts,
    VisionLanguageModel, VlmInput,
};

/// Rank 4 adapters on some attention and MLP layers of `parts` (and the connector's
/// projection when it is one of them).
fn spec(parts: &[ModelPart]) -> LoraSpec {
    spec_with(parts, &["proj"])
}

/// [`spec`] with LLaVA's projector layers.
fn llava_spec(parts: &[ModelPart]) -> LoraSpec {
    spec_with(parts, &["linear_1", "linear_2"])
}

fn spec_with(parts: &[ModelPart], connector: &[&'static str]) -> LoraSpec {
    let mut targets = vec!["q_proj", "v_proj"];
    if parts.contains(&ModelPart::Text) {
        targets.push("gate_proj");
    }
    if parts.contains(&ModelPart::Vision) {
        targets.push("fc1");
    }
    if parts.contains(&ModelPart::Connector) {
        targets.extend(connector);
    }
    LoraSpec {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: targets.into_iter().map(String::from).collect(),
        parts: parts.to_vec(),
    }
}

/// Gives every adapter a non-zero `B` (a fresh one is zero), deterministically.
fn perturb_adapters<M: AdaptableModel<Cpu>>(mut model: M) -> M {
    let mut state = 12345u32;
    model.for_each_linear_mut(|_, linear| {
        if let Some(adapter) = &mut linear.lora {
            let shape = adapter.lora_b.val().dims();
            let values: Vec<f32> = (0..shape[0] * shape[1])
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 8) as f32 / (1u32 << 24) as f32 * 0.2 - 0.1
                })
                .collect();
            let device = adapter.lora_b.val().device();
            adapter.lora_b = Param::from_data(TensorData::new(values, shape), &device);
        }
    });
    model
}

fn adapted(tied: bool, parts: &[ModelPart], device: &Device) -> Idefics3<Cpu> {
    let base = Idefics3::<Cpu>::init_random(&tiny_config(tied), 21, device);
    perturb_adapters(base.with_lora(&spec(parts), 5).unwrap())
}

#[test]
fn fresh_adapters_keep_the_logits_and_are_listed_as_adapters() {
    let device = Device::default();
    let input = tiny_input(&device);
    let base = Idefics3::<Cpu>::init_random(&tiny_config(true), 21, &device);
    let before = logits(&base, &input);
    let counts = ParamCounts::of_model(&base);
    let with = base.with_lora(&spec(&[ModelPart::Text]), 5).unwrap();
    assert_eq!(before, logits(&with, &input), "B starts at zero");
    assert_eq!(
        ParamCounts::of_model(&with),
        counts,
        "adapters are not model weights"
    );
    let adapters: Vec<_> = with
        .param_parts()
        .into_iter()
        .filter(|p| p.adapter)
        .collect();
    // 2 layers × (q, v, gate) × (A, B).
    assert_eq!(adapters.len(), 12);
    assert!(adapters.iter().all(|p| p.part == ModelPart::Text));
    assert_eq!(
        adapters[0].name,
        "model.text_model.layers.0.self_attn.q_proj.lora_A.weight"
    );
    let changed = logits(&perturb_adapters(with), &input);
    assert!(
        max_abs_diff(&before, &changed) > 1e-3,
        "a non-zero B changes the logits"
    );
}

#[test]
fn adapter_folders_use_peft_names_round_trip_and_merge_to_the_same_logits() {
    let device = Device::default();
    let input = tiny_input(&device);
    let all = vec![ModelPart::Vision, ModelPart::Connector, ModelPart::Text];
    let towers = vec![ModelPart::Vision, ModelPart::Text];
    for (tied, parts, train_parts) in [
        (true, towers, vec![ModelPart::Connector]),
        (false, all, vec![]),
    ] {
        let model = adapted(tied, &parts, &device);
        let expected = logits(&model, &input);
        let dir = tempfile::tempdir().unwrap();
        let adapter_spec = AdapterSpec {
            base: "/models/base".into(),
            lora: spec(&parts),
            train_parts: train_parts.clone(),
        };
        model
            .save_adapter(dir.path(), &adapter_spec, FloatDtype::F32)
            .unwrap();
        let store = TensorStore::open_file(&dir.path().join(ADAPTER_WEIGHTS_FILE)).unwrap();
        let prefix = "base_model.model.model.";
        assert_eq!(
            store.shape(&format!(
                "{prefix}text_model.layers.1.mlp.gate_proj.lora_A.weight"
            )),
            Some(&[4usize, 32][..]),
            "[r, in]"
        );
        assert_eq!(
            store.shape(&format!(
                "{prefix}text_model.layers.1.mlp.gate_proj.lora_B.weight"
            )),
            Some(&[48usize, 4][..]),
            "[out, r]"
        );
        assert_eq!(
            store
                .shape(&format!(
                    "{prefix}connector.modality_projection.proj.weight"
                ))
                .is_some(),
            !train_parts.is_empty(),
            "a part trained in full is saved whole"
        );
        assert!(store.names().all(|n| n.starts_with("base_model.model.")));
        let config = AdapterConfig::read(dir.path()).unwrap();
        assert_eq!(config.base_model_name_or_path, "/models/base");
        assert_eq!((config.rank, config.alpha), (4, 8.0));

        let base = Idefics3::<Cpu>::init_random(&tiny_config(tied), 21, &device);
        let loaded = base.load_adapter(dir.path()).unwrap();
        assert_eq!(expected, logits(&loaded, &input), "tied={tied}");
        let merged = logits(&loaded.merge_lora(), &input);
        let diff = max_abs_diff(&expected, &merged);
        assert!(diff < 1e-4, "tied={tied}: merged differs by {diff}");
    }
}

#[test]
fn adapters_for_layers_the_model_lacks_are_named() {
    let device = Device::default();
    let model = adapted(true, &[ModelPart::Text], &device);
    let dir = tempfile::tempdir().unwrap();
    let adapter_spec = AdapterSpec {
        base: "/b".into(),
        lora: spec(&[ModelPart::Text]),
        train_parts: vec![],
    };
    model
        .save_adapter(dir.path(), &adapter_spec, FloatDtype::F32)
        .unwrap();
    // A base with one text layer has no `layers.1`.
    let mut config = tiny_config(true).raw;
    config["text_config"]["num_hidden_layers"] = 1.into();
    let small = safeaware_model::Idefics3Config::from_value(config).unwrap();
    let err = Idefics3::<Cpu>::init_random(&small, 1, &device)
        .load_adapter(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("layers.1"), "{err}");
    assert!(err.contains(ADAPTER_WEIGHTS_FILE), "{err}");
    assert!(dir.path().join(ADAPTER_CONFIG_FILE).is_file());
}

/// Loads the HF base `argv[1]` with PEFT's adapter `argv[2]` and writes the logits for `ids`
/// `argv[3]` and the tiles in `pixels.safetensors` (next to the base) to `argv[4]`.
const PEFT_LOGITS: &str = r#"
import json, sys, torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText
from peft import PeftModel
base_dir, adapter_dir, ids, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
base = AutoModelForImageTextToText.from_pretrained(base_dir, attn_implementation="eager")
model = PeftModel.from_pretrained(base, adapter_dir).eval()
pixels = load_file(base_dir + "/../pixels.safetensors")["pixel_values"]
ids = torch.tensor(ids, dtype=torch.long)
if base.config.model_type != "llava":  # Idefics3 takes tiles per row, LLaVA [N, 3, H, W]
    pixels = pixels.view(ids.shape[0], -1, *pixels.shape[1:])
with torch.no_grad():
    logits = model(input_ids=ids, pixel_values=pixels).logits
save_file({"logits": logits.float().contiguous()}, out)
"#;

#[test]
fn peft_loads_our_adapter_onto_the_hf_base_with_the_same_logits() {
    let device = Device::default();
    let input = tiny_input(&device);
    let ids = int_rows(&input.input_ids);
    let pixels = input.pixel_values.clone().unwrap();
    let all = vec![ModelPart::Vision, ModelPart::Connector, ModelPart::Text];
    let towers = vec![ModelPart::Vision, ModelPart::Text];
    for (tied, parts, train_parts) in [
        (true, towers, vec![ModelPart::Connector]),
        (false, all, vec![]),
    ] {
        let model = adapted(tied, &parts, &device);
        let ours = logits(&model, &input);
        let root = tempfile::tempdir().unwrap();
        let base_dir = root.path().join("base");
        Idefics3::<Cpu>::init_random(&tiny_config(tied), 21, &device)
            .save(&base_dir, FloatDtype::F32)
            .unwrap();
        let adapter_dir = root.path().join("adapter");
        let adapter_spec = AdapterSpec {
            base: base_dir.clone(),
            lora: spec(&parts),
            train_parts,
        };
        model
            .save_adapter(&adapter_dir, &adapter_spec, FloatDtype::F32)
            .unwrap();
        common::write_pixels(&root.path().join("pixels.safetensors"), &pixels);
        let out = root.path().join("peft_logits.safetensors");
        let args = [
            base_dir.display().to_string(),
            adapter_dir.display().to_string(),
            serde_json::to_string(&ids).unwrap(),
        ];
        let theirs = common::venv_logits(&common::venv_python(), PEFT_LOGITS, &args, &out, "PEFT");
        let diff = max_abs_diff(&ours, &theirs);
        assert!(diff <= 1e-4, "tied={tied}: max |diff| {diff}");
    }
}

#[test]
fn a_part_cannot_both_take_adapters_and_train_in_full() {
    let device = Device::default();
    let model = adapted(true, &[ModelPart::Text], &device);
    let dir = tempfile::tempdir().unwrap();
    let adapter_spec = AdapterSpec {
        base: "/b".into(),
        lora: spec(&[ModelPart::Text]),
        train_parts: vec![ModelPart::Text],
    };
    let err = model
        .save_adapter(dir.path(), &adapter_spec, FloatDtype::F32)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`text`"), "{err}");
    // The language model cannot be a PEFT `modules_to_save` here (tied embeddings).
    let model = adapted(true, &[ModelPart::Vision], &device);
    let adapter_spec = AdapterSpec {
        base: "/b".into(),
        lora: spec(&[ModelPart::Vision]),
        train_parts: vec![ModelPart::Text],
    };
    let err = model
        .save_adapter(dir.path(), &adapter_spec, FloatDtype::F32)
        .unwrap_err()
        .to_string();
    assert!(err.contains("modules_to_save"), "{err}");
    assert!(!dir.path().join(ADAPTER_WEIGHTS_FILE).exists());
}

/// The tiny LLaVA with seeded adapters on `parts`, their `B` factors made non-zero.
fn adapted_llava(tied: bool, parts: &[ModelPart], device: &Device) -> Llava<Cpu> {
    let base = Llava::<Cpu>::init_random(&tiny_llava_config(tied), 21, device);
    perturb_adapters(base.with_lora(&llava_spec(parts), 5).unwrap())
}

/// The LLaVA cases: adapters everywhere, or on the towers with the projector trained in full.
fn llava_cases() -> [(bool, Vec<ModelPart>, Vec<ModelPart>); 2] {
    let all = vec![ModelPart::Vision, ModelPart::Connector, ModelPart::Text];
    let towers = vec![ModelPart::Vision, ModelPart::Text];
    [
        (true, towers, vec![ModelPart::Connector]),
        (false, all, vec![]),
    ]
}

#[test]
fn llava_adapter_folders_use_peft_names_round_trip_and_merge_to_the_same_logits() {
    let device = Device::default();
    let input = tiny_llava_input(&device);
    for (tied, parts, train_parts) in llava_cases() {
        let model = adapted_llava(tied, &parts, &device);
        let expected = logits(&model, &input);
        let dir = tempfile::tempdir().unwrap();
        let adapter_spec = AdapterSpec {
            base: "/models/base".into(),
            lora: llava_spec(&parts),
            train_parts: train_parts.clone(),
        };
        model
            .save_adapter(dir.path(), &adapter_spec, FloatDtype::F32)
            .unwrap();
        let store = TensorStore::open_file(&dir.path().join(ADAPTER_WEIGHTS_FILE)).unwrap();
        let prefix = "base_model.model.model.";
        let gate = format!("{prefix}language_model.layers.1.mlp.gate_proj.lora_A.weight");
        assert_eq!(store.shape(&gate), Some(&[4usize, 32][..]), "[r, in]");
        let fc1 = format!("{prefix}vision_tower.encoder.layers.2.mlp.fc1.lora_B.weight");
        assert_eq!(store.shape(&fc1), Some(&[32usize, 4][..]), "[out, r]");
        let projector = format!("{prefix}multi_modal_projector.linear_1");
        let whole = store.shape(&format!("{projector}.weight")).is_some();
        assert_eq!(
            whole,
            !train_parts.is_empty(),
            "a part trained in full is saved whole"
        );
        let adapted = store.shape(&format!("{projector}.lora_A.weight")).is_some();
        assert_eq!(adapted, train_parts.is_empty());

        let base = Llava::<Cpu>::init_random(&tiny_llava_config(tied), 21, &device);
        let loaded = base.load_adapter(dir.path()).unwrap();
        assert_eq!(expected, logits(&loaded, &input), "tied={tied}");
        let counts = ParamCounts::of_model(&loaded);
        let merged = loaded.merge_lora();
        assert_eq!(ParamCounts::of_model(&merged), counts);
        let diff = max_abs_diff(&expected, &logits(&merged, &input));
        assert!(diff < 1e-4, "tied={tied}: merged differs by {diff}");
    }
}

#[test]
fn peft_loads_our_llava_adapter_onto_the_hf_base_with_the_same_logits() {
    let device = Device::default();
    let input: VlmInput<Cpu> = tiny_llava_input(&device);
    let ids = int_rows(&input.input_ids);
    for (tied, parts, train_parts) in llava_cases() {
        let model = adapted_llava(tied, &parts, &device);
        let ours = logits(&model, &input);
        let root = tempfile::tempdir().unwrap();
        let base_dir = root.path().join("base");
        Llava::<Cpu>::init_random(&tiny_llava_config(tied), 21, &device)
            .save(&base_dir, FloatDtype::F32)
            .unwrap();
        let adapter_dir = root.path().join("adapter");
        let adapter_spec = AdapterSpec {
            base: base_dir.clone(),
            lora: llava_spec(&parts),
            train_parts,
        };
        model
            .save_adapter(&adapter_dir, &adapter_spec, FloatDtype::F32)
            .unwrap();
        common::write_pixels(
            &root.path().join("pixels.safetensors"),
            input.pixel_values.as_ref().unwrap(),
        );
        let out = root.path().join("peft_logits.safetensors");
        let args = [
            base_dir.display().to_string(),
            adapter_dir.display().to_string(),
            serde_json::to_string(&ids).unwrap(),
        ];
        let theirs = common::venv_logits(&common::venv_python(), PEFT_LOGITS, &args, &out, "PEFT");
        let diff = max_abs_diff(&ours, &theirs);
        assert!(diff <= 1e-4, "tied={tied}: PEFT vs ours, max |diff| {diff}");
        let merged = logits(&model.merge_lora(), &input);
        let diff = max_abs_diff(&merged, &theirs);
        assert!(
            diff <= 1e-4,
            "tied={tied}: PEFT vs our merged model, max |diff| {diff}"
        );
    }
}

/// Loads the HF model `argv[1]` with PEFT's adapter `argv[2]`, runs it on a parity fixture's
/// inputs `argv[3]` (the HF forward's keyword arguments) and writes the logits to `argv[4]`.
const PEFT_FIXTURE_LOGITS: &str = r#"
import sys, torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText
from peft import PeftModel
base_dir, adapter_dir, inputs, out = sys.argv[1:5]
base = AutoModelForImageTextToText.from_pretrained(base_dir, attn_implementation="eager", dtype=torch.float32)
model = PeftModel.from_pretrained(base, adapter_dir).eval()
kwargs = load_file(inputs)
with torch.no_grad():
    logits = model(**kwargs).logits
save_file({"logits": logits.float().contiguous()}, out)
"#;

/// Qwen2-VL, on the HF-made model of a parity fixture (one row, two images): adapters on the
/// tower and the text model, the merger as PEFT's `modules_to_save` or not; PEFT on
/// `Qwen2VLForConditionalGeneration` gives our logits, and so does our merged model.
#[test]
fn peft_loads_our_qwen2_vl_adapter_onto_the_hf_base_with_the_same_logits() {
    let device = Device::default();
    let fixture = fixtures_dir().join("parity_cpu_only/qwen2_vl_tied_b1_two_images_patch14");
    let base_dir = fixture.join("model");
    let input = fixture_input(&fixture, &device).unwrap();
    let parts = vec![ModelPart::Vision, ModelPart::Text];
    let lora = LoraSpec {
        targets: ["q_proj", "v_proj", "gate_proj", "qkv", "fc1"]
            .map(String::from)
            .to_vec(),
        ..spec(&parts)
    };
    for train_parts in [vec![], vec![ModelPart::Connector]] {
        let base = Qwen2Vl::<Cpu>::load(&base_dir, &device).unwrap();
        let model = perturb_adapters(base.with_lora(&lora, 5).unwrap());
        let ours = logits(&model, &input);
        let root = tempfile::tempdir().unwrap();
        let adapter_dir = root.path().join("adapter");
        let adapter_spec = AdapterSpec {
            base: base_dir.clone(),
            lora: lora.clone(),
            train_parts: train_parts.clone(),
        };
        model
            .save_adapter(&adapter_dir, &adapter_spec, FloatDtype::F32)
            .unwrap();
        let out = root.path().join("peft_logits.safetensors");
        let args = [&base_dir, &adapter_dir, &fixture.join("inputs.safetensors")]
            .map(|p| p.display().to_string());
        let python = common::venv_python();
        let theirs = common::venv_logits(&python, PEFT_FIXTURE_LOGITS, &args, &out, "PEFT");
        let what = format!("modules_to_save {train_parts:?}");
        let diff = max_abs_diff(&ours, &theirs);
        assert!(diff <= 1e-4, "{what}: PEFT vs ours, max |diff| {diff}");
        let merged = logits(&model.merge_lora(), &input);
        let diff = max_abs_diff(&merged, &theirs);
        assert!(
            diff <= 1e-4,
            "{what}: PEFT vs our merged model, max |diff| {diff}"
        );
    }
}
