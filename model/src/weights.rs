//! HF safetensors ⇄ Burn parameters. The whole name mapping is [`hf_param`]: module fields are
//! named exactly like HF's submodules, so a parameter's HF name is its Burn module path, with
//! two renames/re-layouts:
//!
//! | Burn parameter                         | HF tensor                  |
//! |----------------------------------------|----------------------------|
//! | `….{Linear}.weight` `[in, out]`        | `….weight` `[out, in]` (transposed) |
//! | `….{LayerNorm}.gamma` / `.beta`        | `….weight` / `….bias`      |
//! | anything else (`bias`, `Embedding.weight`, `patch_embedding.weight`, RMSNorm `weight`) | same name, same layout |
//! | `….{Linear}.lora.lora_a` / `.lora_b` `[in, r]` / `[r, out]` | `….lora_A.weight` `[r, in]` / `….lora_B.weight` `[out, r]` (PEFT's names, without its `base_model.model.` prefix; transposed) |
//!
//! giving e.g. `model.vision_model.encoder.layers.3.self_attn.q_proj.weight`,
//! `model.connector.modality_projection.proj.weight`, `model.text_model.norm.weight`,
//! `lm_head.weight` (absent when tied: a checkpoint without it loads as tied).

use std::collections::BTreeSet;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::config::Idefics3Config;
use crate::error::{ModelError, Result};
use crate::safetensors_io::{write_safetensors, FloatDtype, OutTensor, TensorStore, WEIGHTS_FILE};
use crate::vision_language_model::Idefics3;

/// The config file name of an HF folder.
pub const CONFIG_FILE: &str = "config.json";

/// `name` with its prefix swapped by the first of `layouts` (`(hub prefix, in-memory
/// prefix)` pairs) that it starts with: in-memory → hub when `to_hub`, else hub → in-memory;
/// `name` unchanged when none matches. The families' checkpoint-layout renames.
pub fn swap_prefix(name: &str, layouts: &[(&str, &str)], to_hub: bool) -> String {
    layouts
        .iter()
        .find_map(|&(hub, memory)| {
            let (from, to) = if to_hub { (memory, hub) } else { (hub, memory) };
            name.strip_prefix(from).map(|rest| format!("{to}{rest}"))
        })
        .unwrap_or_else(|| name.to_owned())
}

/// What a parameter is, for initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRole {
    /// A projection, convolution or embedding matrix (normal init).
    Matrix,
    /// A bias (zero init).
    Bias,
    /// A norm's scale (one init).
    NormScale,
    /// A LoRA factor: not part of the HF model folder, saved in PEFT adapter folders.
    Adapter,
}

/// One parameter as HF names and lays it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfParam {
    /// The HF tensor name.
    pub name: String,
    /// The HF shape.
    pub shape: Vec<usize>,
    /// Whether Burn stores the transpose (Linear weights).
    pub transposed: bool,
    /// What it is.
    pub role: ParamRole,
    /// The Burn parameter's id.
    pub id: ParamId,
}

impl HfParam {
    /// Whether this is a LoRA factor rather than a weight of the HF model.
    pub fn is_adapter(&self) -> bool {
        self.role == ParamRole::Adapter
    }
}

/// THE mapping: a Burn parameter at `path` (field names, each with the type of the struct that
/// owns the field) with Burn shape `burn_shape` → its HF tensor. An enum module's variant (a
/// module that is one of several kinds, e.g. a LayerNorm or an RMSNorm) is no part of the name.
fn hf_param(path: &[(String, String)], burn_shape: &[usize], id: ParamId) -> HfParam {
    let path: Vec<(String, String)> = path
        .iter()
        .filter(|(_, owner)| !owner.starts_with("Enum:"))
        .cloned()
        .collect();
    let (field, owner) = path
        .last()
        .map(|(f, o)| (f.as_str(), o.as_str()))
        .unwrap_or_default();
    let (leaf, transposed, role) = match (owner, field) {
        ("Struct:Linear", "weight") => ("weight", true, ParamRole::Matrix),
        ("Struct:LoraAdapter", "lora_a") => ("lora_A.weight", true, ParamRole::Adapter),
        ("Struct:LoraAdapter", "lora_b") => ("lora_B.weight", true, ParamRole::Adapter),
        ("Struct:LayerNorm", "gamma") | ("Struct:LlamaRmsNorm", "weight") => {
            ("weight", false, ParamRole::NormScale)
        }
        ("Struct:LayerNorm", "beta") | (_, "bias") => ("bias", false, ParamRole::Bias),
        (_, other) => (other, false, ParamRole::Matrix),
    };
    // An adapter's factors sit in the layer's `lora` field, which HF's names do not have.
    let owned_by = if role == ParamRole::Adapter { 2 } else { 1 };
    let mut name: Vec<&str> = path[..path.len().saturating_sub(owned_by)]
        .iter()
        .map(|(f, _)| f.as_str())
        .collect();
    name.push(leaf);
    let mut shape = burn_shape.to_vec();
    if transposed {
        shape.reverse();
    }
    HfParam {
        name: name.join("."),
        shape,
        transposed,
        role,
        id,
    }
}

/// The current module path, maintained from enter/exit callbacks.
#[derive(Default)]
struct PathTracker(Vec<(String, String)>);

impl PathTracker {
    fn enter(&mut self, name: &str, owner: &str) {
        self.0.push((name.to_owned(), owner.to_owned()));
    }
    fn exit(&mut self) {
        self.0.pop();
    }
}

struct Collect {
    path: PathTracker,
    params: Vec<HfParam>,
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, owner: &str) {
        self.path.enter(name, owner);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.params
            .push(hf_param(&self.path.0, &param.lazy_shape(), param.id));
    }
}

/// Every float parameter of `model` once (a tied tensor is listed once), with the part
/// `part_of` gives its HF name: what a family's `VisionLanguageModel::param_parts` returns.
pub fn param_parts<B, M, F>(model: &M, part_of: F) -> Vec<crate::vlm::ParamPart>
where
    B: Backend,
    M: Module<B>,
    F: Fn(&str) -> crate::vlm::ModelPart,
{
    let mut seen = std::collections::HashSet::new();
    hf_params::<B, _>(model)
        .into_iter()
        .filter(|hf| seen.insert(hf.id))
        .map(|hf| crate::vlm::ParamPart {
            part: part_of(&hf.name),
            numel: hf.shape.iter().product(),
            id: hf.id,
            adapter: hf.is_adapter(),
            name: hf.name,
        })
        .collect()
}

/// Every parameter of `model` with its HF name and shape, in module order.
pub fn hf_params<B: Backend, M: Module<B>>(model: &M) -> Vec<HfParam> {
    let mut collect = Collect {
        path: PathTracker::default(),
        params: Vec::new(),
    };
    model.visit(&mut collect);
    collect.params
}

struct Replace<F> {
    path: PathTracker,
    values: F,
}

impl<B: Backend, F: FnMut(&HfParam) -> Option<Vec<f32>>> ModuleMapper<B> for Replace<F> {
    fn enter_module(&mut self, name: &str, owner: &str) {
        self.path.enter(name, owner);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let hf = hf_param(&self.path.0, &param.lazy_shape(), param.id);
        let Some(values) = (self.values)(&hf) else {
            return param;
        };
        let device = param.lazy_device();
        // Transposed on the host so the Burn tensor is contiguous: matmuls against a transposed
        // view are markedly slower on CPU backends.
        let (values, shape) = match (hf.transposed, hf.shape.as_slice()) {
            (true, &[rows, cols]) => (transpose(&values, rows, cols), vec![cols, rows]),
            _ => (values, hf.shape.clone()),
        };
        let tensor = Tensor::<B, D>::from_data(TensorData::new(values, shape), &device);
        Param::initialized(param.id, tensor.require_grad())
    }
}

/// `[rows, cols]` row-major → `[cols, rows]` row-major.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// Replaces every parameter for which `values` returns data (HF layout, row-major).
pub(crate) fn replace_params<B: Backend, M: Module<B>>(
    model: M,
    values: impl FnMut(&HfParam) -> Option<Vec<f32>>,
) -> M {
    model.map(&mut Replace {
        path: PathTracker::default(),
        values,
    })
}

impl<B: Backend> Idefics3<B> {
    /// Loads an HF folder (`config.json` + `model.safetensors` or a sharded index), converting
    /// f32/f16/bf16 weights to the backend's float type. A missing `lm_head.weight` means tied.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let mut config = Idefics3Config::from_file(&dir.join(CONFIG_FILE))?;
        let store = TensorStore::open_dir(dir)?;
        config.tie_word_embeddings = store.shape("lm_head.weight").is_none();
        load_params(dir, Self::new(&config, device), &store)
    }

    /// Saves `config.json` and `model.safetensors` (HF names, `dtype` on disk) into `dir`, each
    /// file written atomically; HF transformers loads the result.
    pub fn save(&self, dir: &Path, dtype: FloatDtype) -> Result<()> {
        save_params(self, dir, dtype)?;
        self.config().save(&dir.join(CONFIG_FILE))
    }
}

/// `model` with every parameter read from `store` (by its HF name, [`hf_params`]) after checking
/// that the store holds exactly those tensors with those shapes (one error listing every
/// problem, naming `dir`).
pub(crate) fn load_params<B: Backend, M: Module<B>>(
    dir: &Path,
    model: M,
    store: &TensorStore,
) -> Result<M> {
    check_names(dir, &hf_params(&model), store)?;
    let mut failure = None;
    let model = replace_params(model, |hf| match store.read_f32(&hf.name) {
        Ok(values) => values,
        Err(err) => {
            failure.get_or_insert(err);
            None
        }
    });
    match failure {
        Some(err) => Err(err),
        None => Ok(model),
    }
}

/// Writes every model weight of `model` (not its LoRA factors) to `dir/model.safetensors`
/// under its HF name, `dtype` on disk, atomically (creating `dir`).
pub(crate) fn save_params<B: Backend, M: Module<B>>(
    model: &M,
    dir: &Path,
    dtype: FloatDtype,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(ModelError::io("creating", dir))?;
    let tensors: Vec<_> = flat_params(model)
        .into_iter()
        .filter(|(hf, _)| !hf.is_adapter())
        .collect();
    write_hf_tensors(&dir.join(WEIGHTS_FILE), &tensors, dtype, str::to_owned)
}

/// Writes `tensors` (flattened, Burn layout) to the safetensors file `path` in HF layout, each
/// under `name(hf name)`, `dtype` on disk, atomically.
pub(crate) fn write_hf_tensors<B: Backend>(
    path: &Path,
    tensors: &[(HfParam, Tensor<B, 1>)],
    dtype: FloatDtype,
    name: impl Fn(&str) -> String,
) -> Result<()> {
    let layout: Vec<(String, Vec<usize>)> = tensors
        .iter()
        .map(|(hf, _)| (name(&hf.name), hf.shape.clone()))
        .collect();
    write_safetensors(path, &layout, dtype, |i| {
        let (hf, tensor) = &tensors[i];
        let values = tensor
            .clone()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("converted to f32");
        let values = if hf.transposed {
            transpose(&values, hf.shape[1], hf.shape[0])
        } else {
            values
        };
        OutTensor {
            name: layout[i].0.clone(),
            shape: hf.shape.clone(),
            values,
        }
    })
}

struct Gather<B: Backend> {
    path: PathTracker,
    out: Vec<(HfParam, Tensor<B, 1>)>,
}

impl<B: Backend> ModuleVisitor<B> for Gather<B> {
    fn enter_module(&mut self, name: &str, owner: &str) {
        self.path.enter(name, owner);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        let hf = hf_param(&self.path.0, &value.dims(), param.id);
        let numel = value.shape().num_elements();
        self.out.push((hf, value.reshape([numel])));
    }
}

/// Every parameter flattened to 1-D (Burn layout), next to its HF description.
pub(crate) fn flat_params<B: Backend, M: Module<B>>(model: &M) -> Vec<(HfParam, Tensor<B, 1>)> {
    let mut gather = Gather {
        path: PathTracker::default(),
        out: Vec::new(),
    };
    model.visit(&mut gather);
    gather.out
}

/// Fails with one error listing every missing, unexpected and mis-shaped tensor.
fn check_names(dir: &Path, expected: &[HfParam], store: &TensorStore) -> Result<()> {
    let fmt = |name: &str, shape: &[usize]| format!("{name} {shape:?}");
    let mut missing = Vec::new();
    let mut mis_shaped = Vec::new();
    for hf in expected {
        match store.shape(&hf.name) {
            None => missing.push(fmt(&hf.name, &hf.shape)),
            Some(shape) if shape != hf.shape.as_slice() => mis_shaped.push(format!(
                "{}: file has {shape:?}, config needs {:?}",
                hf.name, hf.shape
            )),
            Some(_) => {}
        }
    }
    let known: BTreeSet<&str> = expected.iter().map(|hf| hf.name.as_str()).collect();
    let unexpected: Vec<String> = store
        .names()
        .filter(|name| !known.contains(name))
        .map(|name| fmt(name, store.shape(name).unwrap_or_default()))
        .collect();
    if missing.is_empty() && unexpected.is_empty() && mis_shaped.is_empty() {
        Ok(())
    } else {
        Err(ModelError::WeightsMismatch {
            dir: dir.to_owned(),
            missing,
            unexpected,
            mis_shaped,
        })
    }
}
