//! Parameter counts against HF transformers' (`hf_param_counts.json`, written by
//! tools/make_parity_fixtures.py): from the config alone for every parity fixture and the
//! config-only SmolVLM and LLaVA-1.5-7B folders, and from the loaded model for the parity
//! fixtures of both families. Also `inspect` on both kinds of Idefics3 folder.

mod common;

use std::path::Path;

use common::{family_of, fixtures_dir, idefics3_fixtures, llava_fixtures, sub_folders, Cpu};
use safeaware_model::registry::{Family, ModelConfig};
use safeaware_model::{inspect, Idefics3, Idefics3Config, Llava, LlavaConfig, ParamCounts};
use serde_json::Value;

fn hf_counts(folder: &Path) -> [usize; 5] {
    let text = std::fs::read_to_string(folder.join("hf_param_counts.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    ["vision", "connector", "text", "lm_head", "total"]
        .map(|k| json[k].as_u64().unwrap_or_else(|| panic!("{k}")) as usize)
}

fn ours(c: &ParamCounts) -> [usize; 5] {
    [c.vision, c.connector, c.text, c.lm_head, c.total()]
}

#[test]
fn counts_from_config_match_hf_for_config_only_folders() {
    let folders = sub_folders(&fixtures_dir().join("config_only"));
    assert!(!folders.is_empty(), "no config-only fixtures");
    for folder in folders
        .into_iter()
        .filter(|f| family_of(f) == Family::Idefics3)
    {
        let config = Idefics3Config::from_file(&folder.join("config.json")).unwrap();
        assert_eq!(
            ours(&ParamCounts::from_config(&config)),
            hf_counts(&folder),
            "{}",
            folder.display()
        );
        let summary = inspect(&folder).unwrap();
        assert_eq!(ours(&summary.counts), hf_counts(&folder));
        assert!(summary.disk_dtypes.is_none());
        let text = summary.to_string();
        assert!(
            text.contains("none (config only)") && text.contains("tokens per tile"),
            "{text}"
        );
    }
}

#[test]
fn counts_match_hf_for_parity_fixtures_from_config_and_from_the_model() {
    let device = Default::default();
    for folder in idefics3_fixtures() {
        let expected = hf_counts(&folder);
        let summary = inspect(&folder.join("model")).unwrap();
        assert_eq!(
            ours(&summary.counts),
            expected,
            "inspect {}",
            folder.display()
        );
        assert_eq!(
            summary
                .disk_dtypes
                .as_ref()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            ["F32"]
        );
        assert_eq!(summary.counts.lm_head_tied, expected[3] == 0);
        let model = Idefics3::<Cpu>::load(&folder.join("model"), &device).unwrap();
        assert_eq!(
            ours(&ParamCounts::of_model::<Cpu, _>(&model)),
            expected,
            "model {}",
            folder.display()
        );
    }
}

#[test]
fn llava_counts_from_config_match_hf_for_llava_1_5_7b() {
    let folder = fixtures_dir().join("config_only/llava-1.5-7b");
    let config = LlavaConfig::from_file(&folder.join("config.json")).unwrap();
    let counts = ParamCounts::from_llava_config(&config);
    assert_eq!(ours(&counts), hf_counts(&folder));
    assert_eq!(
        counts.total(),
        7_063_427_072,
        "HF's count for llava-hf/llava-1.5-7b-hf"
    );
    assert_eq!(config.tokens_per_image(), 576);
    let registered = ModelConfig::from_file(&folder.join("config.json")).unwrap();
    assert_eq!(registered.family(), Family::Llava);
    assert_eq!(ours(&registered.param_counts()), hf_counts(&folder));
    let summary = inspect(&folder).unwrap();
    assert_eq!(ours(&summary.counts), hf_counts(&folder));
    assert!(
        summary.to_string().contains("tokens per image"),
        "{summary}"
    );
}

#[test]
fn llava_counts_match_hf_for_parity_fixtures_from_config_and_from_the_model() {
    let device = Default::default();
    let folders = llava_fixtures();
    assert!(folders.len() >= 3, "{folders:?}");
    for folder in folders {
        let expected = hf_counts(&folder);
        let summary = inspect(&folder.join("model")).unwrap();
        assert_eq!(
            ours(&summary.counts),
            expected,
            "inspect {}",
            folder.display()
        );
        let model = Llava::<Cpu>::load(&folder.join("model"), &device).unwrap();
        let from_config = ParamCounts::from_llava_config(model.config());
        assert_eq!(ours(&from_config), expected, "config {}", folder.display());
        assert_eq!(
            ours(&ParamCounts::of_model::<Cpu, _>(&model)),
            expected,
            "model {}",
            folder.display()
        );
    }
}

/// Qwen2-VL-2B-Instruct and Qwen2.5-VL-7B-Instruct (config-only folders, the hub's config.json
/// as published): our counts from the config equal HF's, which
/// tools/make_parity_fixtures.py (`make_qwen2_vl_config_only`) computes by building
/// `Qwen2VLForConditionalGeneration` / `Qwen2_5_VLForConditionalGeneration` from the folder's
/// config under `torch.device("meta")` and summing `numel()` per part (`hf_param_counts.json`).
#[test]
fn qwen2_vl_counts_from_config_match_hf_for_the_published_sizes() {
    for (name, family, total) in [
        ("qwen2-vl-2b", Family::Qwen2Vl, 2_208_985_600),
        ("qwen2.5-vl-7b", Family::Qwen2_5Vl, 8_292_166_656),
    ] {
        let folder = fixtures_dir().join("config_only").join(name);
        let config = ModelConfig::from_file(&folder.join("config.json")).unwrap();
        assert_eq!(config.family(), family, "{name}");
        let counts = config.param_counts();
        assert_eq!(ours(&counts), hf_counts(&folder), "{name}");
        assert_eq!(counts.total(), total, "HF's count for {name}");
        let summary = inspect(&folder).unwrap();
        assert_eq!(ours(&summary.counts), hf_counts(&folder), "inspect {name}");
    }
}
