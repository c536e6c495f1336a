//! PEFT adapter folders: `adapter_config.json` (PEFT's `LoraConfig` fields) and
//! `adapter_model.safetensors`, whose tensors carry PEFT's names — the base model's module path
//! prefixed with `base_model.model.`, e.g.
//! `base_model.model.model.text_model.layers.0.self_attn.q_proj.lora_A.weight` `[r, in]` and
//! `….lora_B.weight` `[out, r]` — plus the full weights of the modules PEFT calls
//! `modules_to_save` under their own names. `PeftModel.from_pretrained(base, folder)` loads
//! such a folder onto the model `base_model_name_or_path` names.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{ModelError, Result};
use crate::lora::LoraSpec;
use crate::vlm::ModelPart;
use safeaware_common::fsio::write_atomic;

/// The adapter config file of a PEFT folder.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
/// The adapter weights file of a PEFT folder.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// What PEFT puts before a base-model module path in tensor names.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// Whether `dir` is a PEFT adapter folder (it holds `adapter_config.json`).
pub fn is_adapter_folder(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG_FILE).is_file()
}

/// An adapter to write: the base it adapts, the LoRA settings and the parts trained in full
/// next to it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterSpec {
    /// The base model folder (`base_model_name_or_path`).
    pub base: PathBuf,
    /// Where the adapters are and their size.
    pub lora: LoraSpec,
    /// Parts trained in full, saved with the adapter (PEFT's `modules_to_save`).
    pub train_parts: Vec<ModelPart>,
}

/// The fields of `adapter_config.json` this crate writes and reads.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterConfig {
    /// The base model (a folder or a hub id).
    pub base_model_name_or_path: String,
    /// `r`.
    pub rank: usize,
    /// `lora_alpha`.
    pub alpha: f64,
    /// `lora_dropout`.
    pub dropout: f64,
    /// `use_rslora`: the scaling is `alpha / √r` instead of `alpha / r`.
    pub rslora: bool,
    /// `target_modules`: a regular expression PEFT matches against whole module paths (or,
    /// read from another tool, a list of names), kept as written.
    pub target_modules: Value,
    /// `modules_to_save`: modules saved in full.
    pub modules_to_save: Vec<String>,
}

impl AdapterConfig {
    /// The factor the adapter's product is multiplied by.
    pub fn scaling(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    /// The JSON PEFT writes for a LoRA adapter (its defaults for everything not used here).
    pub fn to_json(&self) -> Value {
        json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": self.base_model_name_or_path,
            "revision": null,
            "inference_mode": true,
            "r": self.rank,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": self.target_modules,
            "exclude_modules": null,
            "modules_to_save": if self.modules_to_save.is_empty() {
                Value::Null
            } else {
                json!(self.modules_to_save)
            },
            "bias": "none",
            "fan_in_fan_out": false,
            "use_rslora": self.rslora,
            "use_dora": false,
            "init_lora_weights": true,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
        })
    }

    /// Writes `dir/adapter_config.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.to_json()).expect("JSON values serialise");
        let path = dir.join(ADAPTER_CONFIG_FILE);
        write_atomic(&path, text.as_bytes()).map_err(ModelError::io("writing", &path))
    }

    /// Reads `dir/adapter_config.json`, refusing what this crate cannot apply (another PEFT
    /// method, DoRA, biases, per-layer ranks, `fan_in_fan_out`).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(ADAPTER_CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(ModelError::io("reading", &path))?;
        let value: Value = serde_json::from_str(&text).map_err(|cause| ModelError::Json {
            path: path.clone(),
            cause,
        })?;
        Self::from_json(&value).map_err(|(field, message)| ModelError::Adapter {
            path,
            message: format!("`{field}`: {message}"),
        })
    }

    fn from_json(v: &Value) -> std::result::Result<Self, (&'static str, String)> {
        let text = |field: &'static str| v.get(field).and_then(Value::as_str);
        let number = |field: &'static str| {
            v.get(field)
                .and_then(Value::as_f64)
                .ok_or((field, "missing or not a number".to_string()))
        };
        let flag = |field: &'static str| v.get(field).and_then(Value::as_bool).unwrap_or(false);
        match text("peft_type") {
            Some("LORA") => {}
            other => return Err(("peft_type", format!("{other:?}: only LORA is supported"))),
        }
        for field in ["use_dora", "fan_in_fan_out"] {
            if flag(field) {
                return Err((field, "true is not supported".into()));
            }
        }
        if !matches!(text("bias"), None | Some("none")) {
            return Err(("bias", "only \"none\" is supported".into()));
        }
        for field in ["rank_pattern", "alpha_pattern"] {
            if v.get(field)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
            {
                return Err((field, "per-layer ranks or alphas are not supported".into()));
            }
        }
        let rank = number("r")?;
        if rank < 1.0 || rank.fract() != 0.0 {
            return Err(("r", format!("{rank} is not a positive integer")));
        }
        let modules_to_save = match v.get("modules_to_save") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|m| m.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or(("modules_to_save", "not a list of names".to_string()))?,
            Some(_) => return Err(("modules_to_save", "not a list of names".into())),
        };
        Ok(Self {
            base_model_name_or_path: text("base_model_name_or_path").unwrap_or("").to_owned(),
            rank: rank as usize,
            alpha: number("lora_alpha")?,
            dropout: v.get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
            rslora: flag("use_rslora"),
            target_modules: v.get("target_modules").cloned().unwrap_or(Value::Null),
            modules_to_save,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AdapterConfig {
        AdapterConfig {
            base_model_name_or_path: "/models/base".into(),
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            rslora: false,
            target_modules: json!("model\\.text_model\\..*\\.(q_proj|v_proj)"),
            modules_to_save: vec!["connector".into()],
        }
    }

    #[test]
    fn config_round_trips_through_peft_json() {
        let dir = tempfile::tempdir().unwrap();
        config().write(dir.path()).unwrap();
        assert!(is_adapter_folder(dir.path()));
        let read = AdapterConfig::read(dir.path()).unwrap();
        assert_eq!(read, config());
        assert_eq!(read.scaling(), 2.0);
        let json = read.to_json();
        assert_eq!(json["peft_type"], "LORA");
        assert_eq!(json["r"], 8);
    }

    #[test]
    fn unsupported_options_are_named() {
        let mut json = config().to_json();
        json["use_dora"] = json!(true);
        let err = AdapterConfig::from_json(&json).unwrap_err();
        assert_eq!(err.0, "use_dora");
        let mut json = config().to_json();
        json["rank_pattern"] = json!({"q_proj": 4});
        assert_eq!(
            AdapterConfig::from_json(&json).unwrap_err().0,
            "rank_pattern"
        );
        let mut json = config().to_json();
        json["peft_type"] = json!("IA3");
        assert_eq!(AdapterConfig::from_json(&json).unwrap_err().0, "peft_type");
    }
}
