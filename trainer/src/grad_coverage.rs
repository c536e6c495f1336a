//! A zero that depends on every trained parameter. Added to a worker's loss, it makes the
//! backward pass give every trained parameter a gradient (exactly zero where the worker's shard
//! did not use it: a text-only shard leaves the vision tower out of the graph). Workers whose
//! gradients are all-reduced inside `backward()` (Burn's NCCL path) need this: each parameter's
//! reduction waits for every worker, so every worker's graph must hold the same parameters, and
//! a worker with an empty shard must still run a backward pass.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{FloatDType, Tensor};

/// `0 × Σ p` over the trained (gradient-requiring) parameters of `model`, in `dtype`; `None`
/// when nothing is trained. Adding it to a loss changes neither the loss nor any gradient.
pub fn trained_params_zero<B: AutodiffBackend, M: Module<B>>(
    model: &M,
    dtype: FloatDType,
) -> Option<Tensor<B, 1>> {
    let mut visitor = ZeroSum { dtype, sum: None };
    model.visit(&mut visitor);
    visitor.sum.map(|sum| sum.mul_scalar(0.0))
}

/// Sums every trained parameter into one scalar.
struct ZeroSum<B: AutodiffBackend> {
    dtype: FloatDType,
    sum: Option<Tensor<B, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ZeroSum<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let term = value.sum().cast(self.dtype);
        self.sum = Some(match self.sum.take() {
            Some(sum) => sum + term,
            None => term,
        });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use burn::backend::{Autodiff, Flex};
    use burn::optim::GradientsParams;
    use safeaware_model::Vlm;

    use crate::objective::WindowLoss;
    use crate::preset;
    use crate::step::{window_gradients, ForwardSettings};
    use crate::train_data::Example;

    type Ad = Autodiff<Flex>;

    pub(crate) fn text_only(id: &str) -> Example {
        Example {
            id: id.into(),
            input_ids: vec![5, 6, 7, 8, 9],
            labels: vec![-100, -100, 7, 8, 9],
            pixels: Vec::new(),
            tiles: 0,
            tile_shape: [3, 64, 64],
            grid_thw: Vec::new(),
            rejected: None,
        }
    }

    /// Each trained parameter's gradient (flattened), by parameter name.
    fn grads_by_name(model: &Vlm<Ad>, grads: &GradientsParams) -> BTreeMap<String, Vec<f32>> {
        struct Collect<'a> {
            grads: &'a GradientsParams,
            path: Vec<String>,
            out: BTreeMap<String, Vec<f32>>,
        }
        impl burn::module::ModuleVisitor<Ad> for Collect<'_> {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.path.push(name.to_string());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(
                &mut self,
                param: &burn::module::Param<burn::tensor::Tensor<Ad, D>>,
            ) {
                if let Some(g) = self.grads.get::<Flex, D>(param.id) {
                    let values = g.into_data().to_vec::<f32>().unwrap();
                    self.out.insert(self.path.join("."), values);
                }
            }
        }
        let mut visitor = Collect {
            grads,
            path: Vec::new(),
            out: BTreeMap::new(),
        };
        burn::module::Module::visit(model, &mut visitor);
        visitor.out
    }

    /// The loss of a global batch of six target tokens.
    const SIX: WindowLoss = WindowLoss::Sft { targets: 6 };

    fn settings(lockstep: bool) -> ForwardSettings {
        ForwardSettings {
            pad_id: 0,
            autocast: None,
            lockstep,
        }
    }

    /// In lock step a text-only shard still gives the vision tower a (zero) gradient, an empty
    /// shard gives every trained parameter one, and the gradients the shard does produce are
    /// bit-identical to those without lock step.
    #[test]
    fn lock_step_covers_every_trained_parameter_without_changing_gradients() {
        let config = preset::build("tiny", 64).unwrap().config;
        let device = Default::default();
        let model = Vlm::<Ad>::init_random(&config, 3, &device);
        let (a, b) = (text_only("a"), text_only("b"));
        let window = vec![vec![&a, &b]];
        let free = window_gradients(&model, &window, &SIX, settings(false), &device).unwrap();
        let locked = window_gradients(&model, &window, &SIX, settings(true), &device).unwrap();
        assert_eq!(free.loss, locked.loss);
        let free = grads_by_name(&model, &free.grads);
        let locked = grads_by_name(&model, &locked.grads);
        let vision: Vec<_> = locked.keys().filter(|k| k.contains("vision")).collect();
        assert!(!vision.is_empty(), "{:?}", locked.keys());
        assert!(
            free.keys().all(|k| !k.contains("vision")),
            "{:?}",
            free.keys()
        );
        for (name, values) in &locked {
            match free.get(name) {
                Some(expected) => assert_eq!(values, expected, "{name}"),
                None => assert!(values.iter().all(|v| *v == 0.0), "{name}"),
            }
        }

        let empty = vec![vec![]];
        let nothing = window_gradients(&model, &empty, &SIX, settings(true), &device).unwrap();
        assert_eq!((nothing.loss, nothing.tokens, nothing.images), (0.0, 0, 0));
        let nothing = grads_by_name(&model, &nothing.grads);
        assert_eq!(nothing.len(), locked.len());
        assert!(nothing.values().flatten().all(|v| *v == 0.0));
        let skipped = window_gradients(&model, &empty, &SIX, settings(false), &device).unwrap();
        assert!(grads_by_name(&model, &skipped.grads).is_empty());
    }
}
