//! LoRA on a whole model, written once for every family: which linear layers take adapters (by
//! HF module name, per part), attaching them, merging them into the base weights, and the PEFT
//! adapter folder (`peft.rs`) of an adapted model — adapters under PEFT's names, parts trained
//! in full as PEFT's `modules_to_save`. A family describes itself through [`AdaptableModel`]
//! (its linear layers, parts, and the module paths PEFT sees); `idefics3_adapters.rs` and
//! `llava/adapters.rs` are those descriptions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::TensorData;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::{ModelError, Result};
use crate::linear::Linear;
use crate::lora::{LoraAdapter, LoraSpec};
use crate::peft::{AdapterConfig, AdapterSpec, ADAPTER_WEIGHTS_FILE, PEFT_PREFIX};
use crate::safetensors_io::{FloatDtype, TensorStore};
use crate::vlm::ModelPart;
use crate::weights::{flat_params, replace_params, write_hf_tensors};

/// What the LoRA machinery needs to know about a family. Module paths are the model's HF
/// checkpoint names (those [`crate::weights::hf_params`] gives, without `.weight`).
pub trait AdaptableModel<B: Backend>: Module<B> + Sized {
    /// The layers LoRA may adapt, per part, by HF module name (a model type may serve several
    /// families, Qwen2-VL and Qwen2.5-VL, whose layers differ).
    fn lora_targets(&self) -> &'static LoraTargets;

    /// Calls `f` with every linear layer and its module path, in module order.
    fn for_each_linear_mut(&mut self, f: impl FnMut(&str, &mut Linear<B>));

    /// The part of the parameter or module named `name`.
    fn part_of(name: &str) -> ModelPart;

    /// The module of a part as PEFT's `modules_to_save` names it, if PEFT can save it whole.
    fn part_module(part: ModelPart) -> Option<&'static str>;

    /// A regular expression matching the start of the part's module paths as PEFT sees them.
    fn part_pattern(part: ModelPart) -> &'static str;

    /// The name PEFT's model gives the checkpoint name `name` (identity unless the family's
    /// modules are laid out differently in memory than in its checkpoints).
    fn peft_module_name(name: &str) -> String {
        name.to_owned()
    }

    /// The checkpoint name of PEFT's module name `name` (the inverse of
    /// [`Self::peft_module_name`]; also accepts checkpoint names).
    fn checkpoint_name(name: &str) -> String {
        name.to_owned()
    }

    /// The device the parameters live on.
    fn param_device(&self) -> B::Device;
}

/// The table of layers LoRA may adapt per part, by HF module name.
pub type LoraTargets = [(ModelPart, &'static [&'static str])];

/// Errors unless every target of `spec` names a layer of one of its parts in `table`.
pub fn check_lora_targets(table: &LoraTargets, spec: &LoraSpec) -> Result<()> {
    crate::lora::check_targets(spec, table)
}

/// Errors unless `spec` can be written as a PEFT folder: each part trained in full is a module
/// PEFT can save (`part_module` names it) and takes no adapters (PEFT would load its full
/// weights and drop them).
pub fn check_adapter_spec(
    part_module: fn(ModelPart) -> Option<&'static str>,
    spec: &AdapterSpec,
) -> std::result::Result<(), String> {
    for part in &spec.train_parts {
        if spec.lora.parts.contains(part) {
            return Err(format!(
                "part `{part}` cannot both take adapters and train in full"
            ));
        }
        if part_module(*part).is_none() {
            return Err(format!(
                "part `{part}` cannot train in full next to adapters (PEFT's `modules_to_save` \
                 cannot hold it); give it adapters instead"
            ));
        }
    }
    Ok(())
}

/// Whether the layer at module `path` gets an adapter under `spec`.
pub fn adapted<B: Backend, M: AdaptableModel<B>>(spec: &LoraSpec, path: &str) -> bool {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    !path.ends_with("lm_head")
        && spec.parts.contains(&M::part_of(path))
        && spec.targets.iter().any(|t| t == leaf)
}

/// `model` with a fresh adapter (seeded by `seed`) on every layer `spec` targets.
pub fn with_lora<B: Backend, M: AdaptableModel<B>>(
    mut model: M,
    spec: &LoraSpec,
    seed: u64,
) -> Result<M> {
    check_lora_targets(model.lora_targets(), spec)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let device = model.param_device();
    model.for_each_linear_mut(|path, linear| {
        if adapted::<B, M>(spec, path) {
            linear.lora = Some(LoraAdapter::init(linear.dims(), spec, &mut rng, &device));
        }
    });
    Ok(model)
}

/// `model` with every adapter folded into its layer's weight (`W + A·B·scaling`).
pub fn merge_lora<B: Backend, M: AdaptableModel<B>>(mut model: M) -> M {
    model.for_each_linear_mut(|_, linear| {
        if let Some(adapter) = linear.lora.take() {
            let delta = adapter.delta();
            linear.weight = linear.weight.clone().map(|w| {
                let delta = crate::precision::at_use(delta, &w);
                w + delta
            });
        }
    });
    model
}

/// `model` with every adapter dropped (its base weights untouched).
pub fn without_lora<B: Backend, M: AdaptableModel<B>>(mut model: M) -> M {
    model.for_each_linear_mut(|_, linear| linear.lora = None);
    model
}

/// Writes the adapter folder of the adapted `model`: `adapter_config.json` and
/// `adapter_model.safetensors` (adapters and the parts trained in full, `dtype` on disk).
pub fn save_adapter<B: Backend, M: AdaptableModel<B>>(
    model: &M,
    dir: &Path,
    spec: &AdapterSpec,
    dtype: FloatDtype,
) -> Result<()> {
    check_adapter_spec(M::part_module, spec).map_err(|message| ModelError::Adapter {
        path: dir.to_owned(),
        message,
    })?;
    std::fs::create_dir_all(dir).map_err(ModelError::io("creating", dir))?;
    let tensors: Vec<_> = flat_params(model)
        .into_iter()
        .filter(|(hf, _)| hf.is_adapter() || spec.train_parts.contains(&M::part_of(&hf.name)))
        .collect();
    let file = dir.join(ADAPTER_WEIGHTS_FILE);
    write_hf_tensors(&file, &tensors, dtype, |name| {
        format!("{PEFT_PREFIX}{}", M::peft_module_name(name))
    })?;
    adapter_config::<B, M>(spec).write(dir)
}

/// Applies the adapter folder `dir` (as PEFT saved it) to `model`: attaches an adapter to each
/// layer it has factors for (or reuses the one there) and loads every tensor it holds.
pub fn load_adapter<B: Backend, M: AdaptableModel<B>>(mut model: M, dir: &Path) -> Result<M> {
    let config = AdapterConfig::read(dir)?;
    let file = dir.join(ADAPTER_WEIGHTS_FILE);
    let fail = |message: String| ModelError::Adapter {
        path: file.clone(),
        message,
    };
    let store = TensorStore::open_file(&file)?;
    let store = store.renamed(|name| match name.strip_prefix(PEFT_PREFIX) {
        Some(path) => format!("{PEFT_PREFIX}{}", M::checkpoint_name(path)),
        None => name.to_owned(),
    })?;
    let layers = adapter_layers(&store).map_err(&fail)?;
    let device = model.param_device();
    let mut attached = BTreeSet::new();
    model.for_each_linear_mut(|path, linear| {
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
    fill_from_store(model, &store).map_err(fail)
}

/// The adapter config of `spec`: the targets as a regular expression over the adapted parts'
/// module paths, the parts trained in full as `modules_to_save`.
pub fn adapter_config<B: Backend, M: AdaptableModel<B>>(spec: &AdapterSpec) -> AdapterConfig {
    let parts: Vec<&str> = spec
        .lora
        .parts
        .iter()
        .map(|&p| M::part_pattern(p))
        .collect();
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
            .filter_map(|&p| M::part_module(p))
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
fn fill_from_store<B: Backend, M: Module<B>>(
    model: M,
    store: &TensorStore,
) -> std::result::Result<M, String> {
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
