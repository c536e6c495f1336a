//! Parameter groups: the parameters of each model part (vision encoder, connector, text model;
//! the model decides which is which, see `VisionLanguageModel::param_parts`), so each part can
//! get its own learning rate or be frozen — plus keeping the optimiser state usable across a
//! save/load of the model.
//!
//! What Burn 0.21 offers (and what this builds on):
//! - `Optimizer::step(lr, module, grads)` takes one learning rate, but only touches parameters
//!   that have a gradient in `grads`, and keeps per-parameter state keyed by [`ParamId`]. So
//!   per-part rates need no separate optimisers: split the gradients by part
//!   ([`split_grads_by_part`]) and call `step` once per part with that part's rate on the same
//!   optimiser. Its record then covers every part.
//! - Parameter ids are random per process unless the model is loaded from a Burn record; a
//!   model loaded from safetensors gets fresh ids, so an optimiser record saved with the old
//!   ids would silently match nothing. [`record_to_portable`] re-keys it by the parameters'
//!   module paths before saving and [`record_from_portable`] maps it back after loading.
//! - Frozen parts: [`freeze`] marks their parameters `require_grad = false`, so no gradient
//!   is computed for them at all, and holds them in the type it is given (bf16 under
//!   bf16-mixed: a frozen part needs no f32 master copy).

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{FloatDType, Tensor};
use safeaware_common::fnv::fnv1a64;
use safeaware_model::precision::cast;
use safeaware_model::{ModelPart, ParamPart};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A float parameter of a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    /// Dotted module path, e.g. `text.layers.0.attn.q_proj.weight`.
    pub path: String,
    /// Its id in this process.
    pub id: ParamId,
    /// Number of elements.
    pub numel: usize,
}

/// The float parameters of `module` in visiting order, each once (a shared parameter keeps
/// its first path).
pub fn float_params<B: Backend, M: Module<B>>(module: &M) -> Vec<ParamInfo> {
    let mut v = PathCollector {
        stack: Vec::new(),
        seen: HashSet::new(),
        out: Vec::new(),
    };
    module.visit(&mut v);
    v.out
}

/// Parameter ids of each part, from a model's `param_parts()` (parts without parameters are
/// absent).
pub fn param_ids_by_part(params: &[ParamPart]) -> BTreeMap<ModelPart, HashSet<ParamId>> {
    let mut parts: BTreeMap<ModelPart, HashSet<ParamId>> = BTreeMap::new();
    for p in params {
        parts.entry(p.part).or_default().insert(p.id);
    }
    parts
}

/// Moves each gradient of `module`'s parameters into `groups[group_of(id)]`; gradients whose
/// parameter maps to `None` (or to an index `>= groups`) are dropped.
pub fn split_grads<B, M>(
    module: &M,
    grads: GradientsParams,
    groups: usize,
    group_of: impl Fn(ParamId) -> Option<usize>,
) -> Vec<GradientsParams>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let mut v = Splitter::<B, _> {
        from: grads,
        to: (0..groups).map(|_| GradientsParams::new()).collect(),
        group_of,
        _b: Default::default(),
    };
    module.visit(&mut v);
    v.to
}

/// Splits `grads` of `module` by part, as `params` (the model's `param_parts()`) assigns them;
/// parts without gradients are absent.
pub fn split_grads_by_part<B, M>(
    module: &M,
    grads: GradientsParams,
    params: &[ParamPart],
) -> BTreeMap<ModelPart, GradientsParams>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let by_id: HashMap<ParamId, usize> = params.iter().map(|p| (p.id, p.part as usize)).collect();
    let groups = split_grads(module, grads, ModelPart::ALL.len(), |id| {
        by_id.get(&id).copied()
    });
    ModelPart::ALL
        .into_iter()
        .zip(groups)
        .filter(|(_, g)| !g.is_empty())
        .collect()
}

/// Marks the float parameters whose id is in `ids` as not requiring gradients and holds them
/// in `dtype` (ids kept).
pub fn freeze<B: Backend, M: Module<B>>(module: M, ids: &HashSet<ParamId>, dtype: FloatDType) -> M {
    module.map(&mut Freezer { ids, dtype })
}

/// Re-keys an optimiser record (Burn's `HashMap<ParamId, _>`) by module path, so it can be
/// loaded into a model whose parameters got other ids: each key becomes the FNV-1a hash of the
/// parameter's path. Entries of parameters not in `module` are dropped.
pub fn record_to_portable<B, M, R, T>(record: R, module: &M) -> R
where
    B: Backend,
    M: Module<B>,
    R: IntoIterator<Item = (ParamId, T)> + FromIterator<(ParamId, T)>,
{
    rekey(
        record,
        float_params(module)
            .into_iter()
            .map(|p| (p.id, path_id(&p.path))),
    )
}

/// Inverse of [`record_to_portable`] for `module` (the freshly loaded model).
pub fn record_from_portable<B, M, R, T>(record: R, module: &M) -> R
where
    B: Backend,
    M: Module<B>,
    R: IntoIterator<Item = (ParamId, T)> + FromIterator<(ParamId, T)>,
{
    rekey(
        record,
        float_params(module)
            .into_iter()
            .map(|p| (path_id(&p.path), p.id)),
    )
}

/// `record` with each key replaced by its image under `map`; keys `map` lacks are dropped.
fn rekey<R, T>(record: R, map: impl Iterator<Item = (ParamId, ParamId)>) -> R
where
    R: IntoIterator<Item = (ParamId, T)> + FromIterator<(ParamId, T)>,
{
    let map: HashMap<ParamId, ParamId> = map.collect();
    record
        .into_iter()
        .filter_map(|(id, t)| map.get(&id).map(|&k| (k, t)))
        .collect()
}

fn path_id(path: &str) -> ParamId {
    ParamId::from(fnv1a64(path.as_bytes()))
}

struct PathCollector {
    stack: Vec<String>,
    seen: HashSet<ParamId>,
    out: Vec<ParamInfo>,
}

impl<B: Backend> ModuleVisitor<B> for PathCollector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.seen.insert(param.id) {
            let numel = param.val().shape().num_elements();
            self.out.push(ParamInfo {
                path: self.stack.join("."),
                id: param.id,
                numel,
            });
        }
    }
}

struct Splitter<B, F> {
    from: GradientsParams,
    to: Vec<GradientsParams>,
    group_of: F,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend, F: Fn(ParamId) -> Option<usize>> ModuleVisitor<B> for Splitter<B, F> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(grad) = self.from.remove::<B::InnerBackend, D>(param.id) else {
            return;
        };
        if let Some(group) = (self.group_of)(param.id).and_then(|g| self.to.get_mut(g)) {
            group.register::<B::InnerBackend, D>(param.id, grad);
        }
    }
}

struct Freezer<'a> {
    ids: &'a HashSet<ParamId>,
    dtype: FloatDType,
}

impl<B: Backend> ModuleMapper<B> for Freezer<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if self.ids.contains(&param.id) {
            let dtype = self.dtype;
            param
                .set_require_grad(false)
                .map(|value| cast(value, dtype))
        } else {
            param
        }
    }
}
