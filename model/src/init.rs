//! Seeded random initialisation in the spirit of HF's `_init_weights`: matrices (projections,
//! the patch convolution, embeddings) ~ N(0, initializer_range²) — the vision tower's range for
//! `model.vision_model.*`, the text config's elsewhere — biases 0, norm scales 1, and the
//! padding token's embedding row 0. The same seed gives the same model on every backend.
//! [`init_params`] is the family-independent part (LLaVA uses it too).

use burn::module::Module;
use burn::tensor::backend::Backend;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Idefics3Config;
use crate::vision_language_model::Idefics3;
use crate::weights::{replace_params, ParamRole};

const EMBED_TOKENS: &str = "model.text_model.embed_tokens.weight";

impl<B: Backend> Idefics3<B> {
    /// A freshly initialised model of `config`, deterministic for `seed`.
    pub fn init_random(config: &Idefics3Config, seed: u64, device: &B::Device) -> Self {
        let std = |name: &str| {
            if name.starts_with("model.vision_model.") {
                config.vision.initializer_range
            } else {
                config.text.initializer_range
            }
        };
        let pad_row = config.text.pad_token_id.map(|pad| (EMBED_TOKENS, pad));
        init_params(Self::new(config, device), seed, std, pad_row)
    }
}

/// `model` with every parameter drawn from a generator seeded by `seed`, in module order:
/// matrices ~ N(0, std(name)²), biases 0, norm scales 1, and row `pad` of the matrix named
/// `pad_row.0` zero. LoRA factors are left as they are.
pub(crate) fn init_params<B: Backend, M: Module<B>>(
    model: M,
    seed: u64,
    std: impl Fn(&str) -> f64,
    pad_row: Option<(&str, u32)>,
) -> M {
    let mut rng = StdRng::seed_from_u64(seed);
    replace_params(model, |hf| {
        let numel: usize = hf.shape.iter().product();
        Some(match hf.role {
            ParamRole::Adapter => return None,
            ParamRole::Bias => vec![0.0; numel],
            ParamRole::NormScale => vec![1.0; numel],
            ParamRole::Matrix => {
                let mut values = normal_values(&mut rng, numel, std(&hf.name));
                if let Some((_, pad)) = pad_row.filter(|(name, _)| *name == hf.name) {
                    let width = hf.shape[1];
                    let row = pad as usize * width;
                    if row + width <= values.len() {
                        values[row..row + width].fill(0.0);
                    }
                }
                values
            }
        })
    })
}

/// `n` samples of N(0, std²) by the Box–Muller transform.
fn normal_values(rng: &mut StdRng, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln stays finite
        let u2: f64 = rng.random::<f64>();
        let radius = (-2.0 * u1.ln()).sqrt() * std;
        let angle = std::f64::consts::TAU * u2;
        out.push((radius * angle.cos()) as f32);
        out.push((radius * angle.sin()) as f32);
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::normal_values;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn normal_samples_have_the_requested_spread() {
        let values = normal_values(&mut StdRng::seed_from_u64(1), 200_001, 0.02);
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 2e-4, "mean {mean}");
        assert!((var.sqrt() - 0.02).abs() < 2e-4, "std {}", var.sqrt());
    }
}
