//! Parameter counts against HF transformers' (`hf_param_counts.json`, written by
//! tools/make_parity_fixtures.py): from the config alone for every parity fixture and the
//! config-only SmolVLM-256M folder, and from the loaded model for the parity fixtures. Also
//! `inspect` on both kinds of folder.

mod common;

use std::path::Path;

use common::{fixtures_dir, parity_fixtures, sub_folders, Cpu};
use safeaware_model::{inspect, Idefics3, Idefics3Config, ParamCounts};
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
    for folder in folders {
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
    for folder in parity_fixtures() {
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
