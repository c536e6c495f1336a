//! Global-norm gradient clipping, as PyTorch's `clip_grad_norm_`: the L2 norm over *all*
//! trainable parameters' gradients together, and when it exceeds `max_norm` every gradient is
//! scaled by `max_norm / (norm + 1e-6)`.
//!
//! Burn's own `GradientClipping::Norm` clips each tensor by its own norm, which changes the
//! update direction and is not what reference recipes mean by `max_grad_norm`. This works on
//! Burn's [`GradientsParams`] by visiting the module's float parameters (gradients are stored
//! on the inner backend, keyed by [`ParamId`]).

use anyhow::{anyhow, Result};
use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, FloatDType, Tensor};
use std::collections::HashSet;

/// The epsilon PyTorch adds to the norm before dividing.
pub const CLIP_EPS: f64 = 1e-6;

/// What [`clip_grad_norm`] measured and did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipOutcome {
    /// Global L2 norm of the gradients before clipping (may be NaN/inf: skip the step then).
    pub total_norm: f64,
    /// Factor the gradients were multiplied by (1.0 when not clipped).
    pub scale: f64,
}

/// Global L2 norm of the gradients in `grads` of `module`'s float parameters (computed in
/// f32 on the device, one read back). Parameters without a gradient (frozen) are skipped;
/// a parameter shared between layers is counted once.
pub fn global_grad_norm<B, M>(module: &M, grads: &GradientsParams) -> Result<f64>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let mut visitor = SquaredNorm::<B> {
        grads,
        seen: HashSet::new(),
        sum: None,
    };
    module.visit(&mut visitor);
    let Some(sum) = visitor.sum else {
        return Ok(0.0);
    };
    let sum: f64 = sum
        .try_into_scalar()
        .map_err(|e| anyhow!("reading the gradient norm from the device: {e:?}"))?
        .elem();
    Ok(sum.sqrt())
}

/// Clips `grads` in place to a global L2 norm of at most `max_norm` (`max_norm <= 0` only
/// measures). A non-finite norm leaves the gradients untouched; the caller should skip that
/// optimiser step.
pub fn clip_grad_norm<B, M>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> Result<ClipOutcome>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let total_norm = global_grad_norm(module, grads)?;
    let coef = max_norm / (total_norm + CLIP_EPS);
    if max_norm > 0.0 && total_norm.is_finite() && coef < 1.0 {
        scale_grads(module, grads, coef);
        return Ok(ClipOutcome {
            total_norm,
            scale: coef,
        });
    }
    Ok(ClipOutcome {
        total_norm,
        scale: 1.0,
    })
}

/// Multiplies every gradient of `module`'s parameters in `grads` by `factor` (what clipping
/// does to bring the global norm down; accumulated gradients need no averaging, as the loss is
/// already divided by the accumulation window's target tokens).
pub fn scale_grads<B, M>(module: &M, grads: &mut GradientsParams, factor: f64)
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    module.visit(&mut Scale::<B> {
        grads,
        seen: HashSet::new(),
        factor,
        _b: Default::default(),
    });
}

struct SquaredNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    seen: HashSet<ParamId>,
    sum: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !self.seen.insert(param.id) {
            return;
        }
        let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) else {
            return;
        };
        let sq = grad.cast(FloatDType::F32).square().sum();
        self.sum = Some(match self.sum.take() {
            None => sq,
            Some(acc) => {
                let sq = sq.to_device(&acc.device());
                acc + sq
            }
        });
    }
}

struct Scale<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    seen: HashSet<ParamId>,
    factor: f64,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !self.seen.insert(param.id) {
            return;
        }
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads
                .register::<B::InnerBackend, D>(param.id, grad.mul_scalar(self.factor));
        }
    }
}
