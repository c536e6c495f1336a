//! Choosing the next token from logits: greedy (argmax, first index on ties) or sampling with
//! temperature and nucleus (top-p) filtering as HF's warpers do it, driven by a seeded RNG so
//! a run is reproducible. Works on host copies of the `[B, V]` logits of one step.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{ModelError, Result};

/// How the next token is picked from one step's logits (the evaluator's decoding settings,
/// `safeaware_eval::decoding::DecodingSettings`, map onto it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TokenSampling {
    /// Always the most likely token.
    Greedy,
    /// Sample from `softmax(logits / temperature)` restricted to the top-p nucleus.
    Sample {
        /// Softmax temperature (> 0).
        temperature: f32,
        /// Nucleus mass in (0, 1]; 1 disables the filter.
        top_p: f32,
        /// RNG seed.
        seed: u64,
    },
}

/// Picks tokens step after step.
#[derive(Debug, Clone)]
pub struct Sampler {
    sampling: TokenSampling,
    rng: StdRng,
}

impl Sampler {
    /// A sampler for `sampling`; fails on a non-positive temperature or top-p outside (0, 1].
    pub fn new(sampling: TokenSampling) -> Result<Self> {
        let seed = match sampling {
            TokenSampling::Greedy => 0,
            TokenSampling::Sample {
                temperature,
                top_p,
                seed,
            } => {
                if !(temperature > 0.0 && temperature.is_finite()) {
                    return Err(ModelError::input(
                        "temperature",
                        format!("must be positive, got {temperature}"),
                    ));
                }
                if !(top_p > 0.0 && top_p <= 1.0) {
                    return Err(ModelError::input(
                        "top_p",
                        format!("must be in (0, 1], got {top_p}"),
                    ));
                }
                seed
            }
        };
        Ok(Self {
            sampling,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// One token per row of `logits [B, V]`.
    pub fn pick_rows<B: Backend>(&mut self, logits: Tensor<B, 2>) -> Vec<u32> {
        let [_, vocab] = logits.dims();
        let values = logits
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("converted to f32");
        values
            .chunks(vocab.max(1))
            .map(|row| self.pick(row))
            .collect()
    }

    /// One token from a row of logits.
    pub fn pick(&mut self, logits: &[f32]) -> u32 {
        match self.sampling {
            TokenSampling::Greedy => argmax(logits),
            TokenSampling::Sample {
                temperature, top_p, ..
            } => sample_top_p(logits, temperature, top_p, &mut self.rng),
        }
    }
}

/// Index of the largest value (the first on ties; NaN never wins).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] || values[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

fn sample_top_p(logits: &[f32], temperature: f32, top_p: f32, rng: &mut StdRng) -> u32 {
    let scaled: Vec<f64> = logits
        .iter()
        .map(|&l| l as f64 / temperature as f64)
        .collect();
    let max = scaled.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut probs: Vec<(usize, f64)> = scaled
        .iter()
        .map(|&l| (l - max).exp())
        .enumerate()
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= total);
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    // HF's TopPLogitsWarper drops tokens whose ascending cumulative mass is <= 1 - top_p, i.e.
    // keeps a token while the mass strictly above it is below top_p (always at least one).
    let mut kept = 0;
    let mut mass_above = 0.0;
    for &(_, p) in &probs {
        if kept > 0 && mass_above >= top_p as f64 {
            break;
        }
        mass_above += p;
        kept += 1;
    }
    let nucleus = &probs[..kept];
    let mut draw = rng.random::<f64>() * mass_above;
    for &(token, p) in nucleus {
        if draw < p {
            return token as u32;
        }
        draw -= p;
    }
    nucleus[kept - 1].0 as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_maximum() {
        assert_eq!(argmax(&[0.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
    }

    #[test]
    fn sampling_is_deterministic_per_seed_and_respects_the_nucleus() {
        let logits = [2.0f32, 1.9, 0.0, -1.0, -5.0];
        let draw = |seed| {
            let mut s = Sampler::new(TokenSampling::Sample {
                temperature: 1.0,
                top_p: 0.8,
                seed,
            })
            .unwrap();
            (0..200).map(|_| s.pick(&logits)).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        // p ≈ [.45, .41, .06, .02, .0003]: the 0.8 nucleus is the first two tokens.
        assert!(a.iter().all(|&t| t < 2), "{a:?}");
        assert!(a.contains(&0) && a.contains(&1));
    }

    #[test]
    fn tiny_top_p_is_greedy_and_bad_settings_fail() {
        let mut s = Sampler::new(TokenSampling::Sample {
            temperature: 0.7,
            top_p: 1e-6,
            seed: 3,
        })
        .unwrap();
        assert!((0..50).all(|_| s.pick(&[0.1, 0.3, 0.2]) == 1));
        assert!(Sampler::new(TokenSampling::Sample {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0
        })
        .is_err());
        assert!(Sampler::new(TokenSampling::Sample {
            temperature: 1.0,
            top_p: 1.5,
            seed: 0
        })
        .is_err());
    }
}
