//! LoRA on Idefics3 / SmolVLM: which linear layers take adapters (by HF module name, per part),
//! attaching them, merging them into the base weights, and the PEFT adapter folder
//! (`peft.rs`) of an adapted model — adapters under PEFT's names, parts trained in full as
//! PEFT's `modules_to_save` (`connector` = `model.connector`, `vision_model` =
//! `model.vision_model`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::TensorData;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::{ModelError, Result};
use crate::idefics3::idefics3_part;
use crate::linear::Linear;
use crate::lora::{LoraAdapter, LoraSpec};
use crate::peft::{AdapterConfig, AdapterSpec, ADAPTER_WEIGHTS_FILE, PEFT_PREFIX};
use crate::safetensors_io::{FloatDtype, TensorStore};
use crate::vision_language_model::Idefics3;
use crate::vlm::ModelPart;
use crate::weights::{flat_params, replace_params, write_hf_tensors};

/// The layers LoRA may adapt, per part, by the name HF gives the module (the LM head is left
/// out, as PEFT's `all-linear` leaves it out).
pub const IDEFICS3_LORA_TARGETS: [(ModelPart, &[&str]); 3] = [
    (
        ModelPart::Vision,
        &["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    ),
    (ModelPart::Connector, &["proj"]),
    (
        ModelPart::Text,
        &[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    ),
];

/// The module of a part as PEFT's `modules_to_save` names it; the language model cannot be
/// saved that way (its embeddings may be tied to the head), so it has none.
pub fn idefics3_part_module(part: ModelPart) -> Option<&'static str> {
    match part {
        ModelPart::Vision => Some("vision_model"),
        ModelPart::Connector => Some("connector"),
        ModelPart::Text => None,
    }
}

/// The module path prefix of a part (`model.vision_model.`, …), as a regular expression.
fn part_pattern(part: ModelPart) -> &'static str {
    match part {
        ModelPart::Vision => r"model\.vision_model\.",
        ModelPart::Connector => r"model\.connector\.",
        ModelPart::Text => r"model\.text_model\.",
    }
}

/// Errors unless every target of `spec` names a layer of one of its parts.
pub fn check_lora_targets(spec: &LoraSpec) -> Result<()> {
    crate::lora::check_targets(spec, &IDEFICS3_LORA_TARGETS)
}

/// Errors unless `spec` can be written as a PEFT folder: each part trained in full is a
/// module PEFT can save (`vision`, `connector`) and takes no adapters (PEFT would load its full
/// weights and drop them).
pub fn check_adapter_spec(spec: &AdapterSpec) -> std::result::Result<(), String> {
    for part in &spec.train_parts {
        if spec.lora.parts.contains(part) {
            return Err(format!(
                "part `{part}` cannot both take adapters and train in full"
            ));
        }
        if idefics3_part_module(*part).is_none() {
            return Err(format!(
                "part `{part}` cannot train in full next to adapters (PEFT's `modules_to_save` \
                 cannot hold it); give it adapters instead"
            ));
        }
    }
    Ok(())
}

/// Whether the layer at module `path` gets an adapter under `spec`.
fn adapted(spec: &LoraSpec, path: &str) -> bool {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    path != "lm_head"
        && spec.parts.contains(&idefics3_part(path))
        && spec.targets.iter().any(|t| t == leaf)
}

impl<B: Backend> Idefics3<B> {
    /// Calls `f` with every linear layer and its HF module path, in module order.
    pub fn for_each_linear_mut(&mut self, mut f: impl FnMut(&str, &mut Linear<B>)) {
        let vision = &mut self.model.vision_model.encoder.layers;
        for (i, layer) in vision.iter_mut().enumerate() {
            let (attn, mlp) = (&mut layer.self_attn, &mut layer.mlp);
            for (name, linear) in [
                ("self_attn.q_proj", &mut attn.q_proj),
                ("self_attn.k_proj", &mut attn.k_proj),
                ("self_attn.v_proj", &mut attn.v_proj),
                ("self_attn.out_proj", &mut attn.out_proj),
                ("mlp.fc1", &mut mlp.fc1),
                ("mlp.fc2", &mut mlp.fc2),
            ] {
                f(
                    &format!("model.vision_model.encoder.layers.{i}.{name}"),
                    linear,
                );
            }
        }
        let connector = &mut self.model.connector.modality_projection.proj;
        f("model.connector.modality_projection.proj", connector);
        for (i, layer) in self.model.text_model.layers.iter_mut().enumerate() {
            let (attn, mlp) = (&mut layer.self_attn, &mut layer.mlp);
            for (name, linear) in [
                ("self_attn.q_proj", &mut attn.q_proj),
                ("self_attn.k_proj", &mut attn.k_proj),
                ("self_attn.v_proj", &mut attn.v_proj),
                ("self_attn.o_proj", &mut attn.o_proj),
                ("mlp.gate_proj", &mut mlp.gate_proj),
                ("mlp.up_proj", &mut mlp.up_proj),
                ("mlp.down_proj", &mut mlp.down_proj),
            ] {
                f(&format!("model.text_model.layers.{i}.{name}"), linear);
            }
        }
        if let Some(head) = &mut self.lm_head {
            f("lm_head", head);
        }
    }

    /// The model with a fresh adapter (seeded by `seed`) on every layer `spec` targets.
    pub fn with_lora(mut self, spec: &LoraSpec, seed: u64) -> Result<Self> {
        check_lora_targets(spec)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let device = self.model.text_model.embed_tokens.weight.device();
        self.for_each_linear_mut(|path, linear| {
            if adapted(spec, path) {
                linear.lora = Some(LoraAdapter::init(linear.dims(), spec, &mut rng, &device));
            }
        });
        Ok(self)
    }

    /// The model with every adapter folded into its layer's weight (`W + A·B·scaling`).
    pub fn merge_lora(mut self) -> Self {
        self.for_each_linear_mut(|_, linear| {
            if let Some(adapter) = linear.lora.take() {
                let delta = adapter.delta();
                linear.weight = linear.weight.clone().map(|w| w + delta);
            }
        });
        self
    }

    /// Writes the adapter folder of this adapted model: `adapter_config.json` and
    /// `adapter_model.safetensors` (adapters and the parts trained in full, `dtype` on disk).
    pub fn save_adapter(&self, dir: &Path, spec: &AdapterSpec, dtype: FloatDtype) -> Result<()> {
        check_adapter_spec(spec).map_err(|message| ModelError::Adapter {
            path: dir.to_owned(),
            message,
        })?;
        std::fs::create_dir_all(dir).map_err(ModelError::io("creating", dir))?;
        let tensors: Vec<_> = flat_params(self)
            .into_iter()
            .filter(|(hf, _)| {
                hf.is_adapter() || spec.train_parts.contains(&idefics3_part(&hf.name))
            })
            .collect();
        let file = dir.join(ADAPTER_WEIGHTS_FILE);
        write_hf_tensors(&file, &tensors, dtype, |name| {
            format!("{PEFT_PREFIX}{name}")
        })?;
        adapter_config(spec).write(dir)
    }

    /// Applies the adapter folder `dir` (as PEFT saved it): attaches an adapter to each layer
    /// it has factors for (or reuses the one there) and loads every tensor it holds.
    pub fn load_adapter(mut self, dir: &Path) -> Result<Self> {
        let config = AdapterConfig::read(dir)?;
        let file = dir.join(ADAPTER_WEIGHTS_FILE);
        let store = TensorStore::open_file(&file)?;
        let fail = |message: String| ModelError::Adapter {
            path: file.clone(),
            message,
        };
        let layers = adapter_layers(&store).map_err(&fail)?;
        let device = self.model.text_model.embed_tokens.weight.device();
        let mut attached = BTreeSet::new();
        self.for_each_linear_mut(|path, linear| {
            if let Some(&rank) = layers.get(path) {
                attached.insert(path.to_owned());
                if linear.lora.as_ref().map(LoraAdapter::rank) != Some(rank) {
                    let (d_in, d_out) = linear.dims();
                    linear.lora = Some(LoraAdapter::from_values(
                        TensorData::zeros::<f32, _>([d_in, rank]),
                        TensorData::zeros::<f32, _>([rank, d_out]),
                        config.scaling(),
                        config.dropout,
                        &device,
                    ));
                }
            }
        });
        if let Some(path) = layers.keys().find(|p| !attached.contains(*p)) {
            return Err(fail(format!("no linear layer `{path}` in this model")));
        }
        fill_from_store(self, &store).map_err(fail)
    }
}

/// The adapter config of `spec` for Idefics3: the targets as a regular expression over the
/// adapted parts' module paths, the parts trained in full as `modules_to_save`.
fn adapter_config(spec: &AdapterSpec) -> AdapterConfig {
    let parts: Vec<&str> = spec.lora.parts.iter().map(|&p| part_pattern(p)).collect();
    let target_modules = format!(
        r"(?:{}).*\.(?:{})",
        parts.join("|"),
        spec.lora.targets.join("|")
    );
    AdapterConfig {
        base_model_name_or_path: spec.base.display().to_string(),
        rank: spec.lora.rank,
        alpha: spec.lora.alpha,
        dropout: spec.lora.dropout,
        rslora: false,
        target_modules: target_modules.into(),
        modules_to_save: spec
            .train_parts
            .iter()
            .filter_map(|&p| idefics3_part_module(p))
            .map(str::to_owned)
            .collect(),
    }
}

/// The layers an adapter file has factors for, by module path, with their rank; errors on a
/// name without PEFT's prefix or on factors of inconsistent shapes.
fn adapter_layers(store: &TensorStore) -> std::result::Result<BTreeMap<String, usize>, String> {
    let mut layers = BTreeMap::new();
    for name in store.names() {
        let path = name
            .strip_prefix(PEFT_PREFIX)
            .ok_or_else(|| format!("tensor `{name}` does not start with `{PEFT_PREFIX}`"))?;
        let Some(layer) = path.strip_suffix(".lora_A.weight") else {
            continue;
        };
        let rank = match store.shape(name) {
            Some(&[rank, _]) => rank,
            other => return Err(format!("tensor `{name}` has shape {other:?}, not [r, in]")),
        };
        let b = format!("{PEFT_PREFIX}{layer}.lora_B.weight");
        match store.shape(&b) {
            Some(&[_, r]) if r == rank => {}
            other => return Err(format!("`{b}` has shape {other:?}, expected [out, {rank}]")),
        }
        layers.insert(layer.to_owned(), rank);
    }
    Ok(layers)
}

/// Replaces every parameter the adapter file holds (by PEFT name); errors on a tensor the
/// model has no place for or of the wrong shape.
fn fill_from_store<B: Backend>(
    model: Idefics3<B>,
    store: &TensorStore,
) -> std::result::Result<Idefics3<B>, String> {
    let mut used = BTreeSet::new();
    let mut failure = None;
    let model = replace_params(model, |hf| {
        let name = format!("{PEFT_PREFIX}{}", hf.name);
        let shape = store.shape(&name)?;
        if shape != hf.shape.as_slice() {
            failure.get_or_insert(format!(
                "tensor `{name}` has shape {shape:?}, the model needs {:?}",
                hf.shape
            ));
            return None;
        }
        used.insert(name.clone());
        match store.read_f32(&name) {
            Ok(values) => values,
            Err(err) => {
                failure.get_or_insert(err.to_string());
                None
            }
        }
    });
    if let Some(failure) = failure {
        return Err(failure);
    }
    match store.names().find(|name| !used.contains(*name)) {
        Some(name) => Err(format!("tensor `{name}` matches no parameter of the model")),
        None => Ok(model),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(targets: &[&str], parts: &[ModelPart]) -> LoraSpec {
        LoraSpec {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: targets.iter().map(|t| t.to_string()).collect(),
            parts: parts.to_vec(),
        }
    }

    #[test]
    fn unknown_targets_list_the_valid_ones() {
        check_lora_targets(&spec(&["q_proj", "gate_proj"], &[ModelPart::Text])).unwrap();
        let err = check_lora_targets(&spec(&["fc1"], &[ModelPart::Text]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`fc1`"), "{err}");
        assert!(err.contains("down_proj, gate_proj, k_proj"), "{err}");
        check_lora_targets(&spec(&["fc1"], &[ModelPart::Vision, ModelPart::Text])).unwrap();
    }

    #[test]
    fn layers_are_chosen_by_part_and_name() {
        let s = spec(&["q_proj"], &[ModelPart::Text]);
        assert!(adapted(&s, "model.text_model.layers.3.self_attn.q_proj"));
        assert!(!adapted(
            &s,
            "model.vision_model.encoder.layers.3.self_attn.q_proj"
        ));
        assert!(!adapted(&s, "model.text_model.layers.3.self_attn.k_proj"));
        let head = spec(&["lm_head"], &[ModelPart::Text]);
        assert!(!adapted(&head, "lm_head"));
    }

    #[test]
    fn the_target_regex_selects_the_adapted_parts() {
        let config = adapter_config(&AdapterSpec {
            base: "/b".into(),
            lora: spec(&["q_proj", "v_proj"], &[ModelPart::Text]),
            train_parts: vec![ModelPart::Connector],
        });
        assert_eq!(
            config.target_modules,
            r"(?:model\.text_model\.).*\.(?:q_proj|v_proj)"
        );
        assert_eq!(config.modules_to_save, ["connector"]);
    }
}
