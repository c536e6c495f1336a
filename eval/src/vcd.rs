//! The pure parts of visual contrastive decoding (VCD, Leng et al. 2023), as in the authors'
//! reference code: the diffusion noise that makes the distorted image `v′`, and the per-step
//! combination of clean and distorted logits. The model side (running both branches) lives with
//! the local-generation source.
//!
//! Noise: 1000 steps, `β = sigmoid(linspace(−6, 6, 1000))·(5e−3 − 1e−5) + 1e−5`,
//! `ᾱ_t = ∏_{s≤t} (1 − β_s)`, `x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε`, `ε ~ N(0, 1)`.
//!
//! Logits: `cd = (1+α)·logits(v) − α·logits(v′)`, with every token whose clean probability is
//! below `β × max clean probability` set to −∞ (the reference code's cut-off
//! `logits(v) < ln β + max logits(v)`, the same test in logit space).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// Number of diffusion steps of the schedule.
pub const NOISE_STEPS: usize = 1000;
const BETA_MIN: f64 = 1e-5;
const BETA_MAX: f64 = 5e-3;

/// Bad input to a VCD helper.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VcdError {
    #[error("noise step {step} is out of range (0..{NOISE_STEPS})")]
    StepOutOfRange { step: usize },
    #[error("{what}: lengths differ ({left} vs {right})")]
    LengthMismatch {
        what: &'static str,
        left: usize,
        right: usize,
    },
    #[error("empty logits")]
    EmptyLogits,
}

/// VCD's noise schedule: the betas and their cumulative products `ᾱ_t`.
#[derive(Debug, Clone)]
pub struct NoiseSchedule {
    betas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
}

impl Default for NoiseSchedule {
    fn default() -> Self {
        NoiseSchedule::new()
    }
}

impl NoiseSchedule {
    /// The schedule of the reference code (computed in f64).
    pub fn new() -> NoiseSchedule {
        let last = (NOISE_STEPS - 1) as f64;
        let betas: Vec<f64> = (0..NOISE_STEPS)
            .map(|i| {
                let x = -6.0 + 12.0 * i as f64 / last;
                let sigmoid = 1.0 / (1.0 + (-x).exp());
                sigmoid * (BETA_MAX - BETA_MIN) + BETA_MIN
            })
            .collect();
        let mut prod = 1.0;
        let alphas_cumprod = betas
            .iter()
            .map(|b| {
                prod *= 1.0 - b;
                prod
            })
            .collect();
        NoiseSchedule {
            betas,
            alphas_cumprod,
        }
    }

    /// `β_t` for every step.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// `ᾱ_t` for every step.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// `ᾱ_t` at `step`.
    pub fn alpha_bar(&self, step: usize) -> Result<f64, VcdError> {
        self.alphas_cumprod
            .get(step)
            .copied()
            .ok_or(VcdError::StepOutOfRange { step })
    }

    /// `x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε` with the given noise `eps` (same length as `x0`).
    pub fn q_sample(&self, x0: &[f32], eps: &[f32], step: usize) -> Result<Vec<f32>, VcdError> {
        if x0.len() != eps.len() {
            return Err(VcdError::LengthMismatch {
                what: "pixels and noise",
                left: x0.len(),
                right: eps.len(),
            });
        }
        let ab = self.alpha_bar(step)?;
        let (a, s) = (ab.sqrt(), (1.0 - ab).sqrt());
        Ok(x0
            .iter()
            .zip(eps)
            .map(|(&x, &e)| (a * x as f64 + s * e as f64) as f32)
            .collect())
    }

    /// The distorted image `v′`: `pixels` (a flat, already normalized buffer) noised to `step`
    /// with standard normal noise drawn from a generator seeded with `seed`.
    pub fn add_noise(&self, pixels: &[f32], step: usize, seed: u64) -> Result<Vec<f32>, VcdError> {
        self.alpha_bar(step)?;
        let eps = standard_normal(pixels.len(), seed);
        self.q_sample(pixels, &eps, step)
    }
}

/// `n` draws from N(0, 1), reproducible from `seed`.
pub fn standard_normal(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// One step of contrastive decoding: `(1+α)·clean − α·noised` where the clean branch's
/// probability is at least `β × ` its top probability, −∞ elsewhere.
pub fn contrastive_logits(
    clean: &[f32],
    noised: &[f32],
    alpha: f32,
    beta: f32,
) -> Result<Vec<f32>, VcdError> {
    if clean.len() != noised.len() {
        return Err(VcdError::LengthMismatch {
            what: "clean and noised logits",
            left: clean.len(),
            right: noised.len(),
        });
    }
    let max = clean.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if clean.is_empty() || max == f32::NEG_INFINITY {
        return Err(VcdError::EmptyLogits);
    }
    // p_i ≥ β·p_max  ⇔  logit_i ≥ ln β + logit_max (the softmax normaliser cancels).
    let cutoff = beta.ln() + max;
    Ok(clean
        .iter()
        .zip(noised)
        .map(|(&c, &n)| {
            if c < cutoff {
                f32::NEG_INFINITY
            } else {
                (1.0 + alpha) * c - alpha * n
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_matches_the_closed_form() {
        let s = NoiseSchedule::new();
        assert_eq!(s.betas().len(), NOISE_STEPS);
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        // First, middle (x = 6/999) and last betas from the formula written out.
        let b0 = sig(-6.0) * (5e-3 - 1e-5) + 1e-5;
        let b999 = sig(6.0) * (5e-3 - 1e-5) + 1e-5;
        assert!((s.betas()[0] - b0).abs() < 1e-15);
        assert!((s.betas()[999] - b999).abs() < 1e-15);
        assert!((s.betas()[500] - (sig(6.0 / 999.0) * 4.99e-3 + 1e-5)).abs() < 1e-15);
        // ᾱ_t as a sum of logs, computed independently.
        for t in [0usize, 1, 250, 500, 999] {
            let log: f64 = (0..=t)
                .map(|i| (1.0 - (sig(-6.0 + 12.0 * i as f64 / 999.0) * 4.99e-3 + 1e-5)).ln())
                .sum();
            assert!((s.alpha_bar(t).unwrap() - log.exp()).abs() < 1e-12, "t={t}");
        }
        assert!(s.alpha_bar(1000).is_err());
    }

    #[test]
    fn q_sample_is_the_diffusion_forward_step() {
        let s = NoiseSchedule::new();
        let x0 = [0.5f32, -1.0, 2.0];
        let eps = [1.0f32, 0.0, -0.5];
        let ab = s.alpha_bar(500).unwrap();
        let got = s.q_sample(&x0, &eps, 500).unwrap();
        for i in 0..3 {
            let want = ab.sqrt() * x0[i] as f64 + (1.0 - ab).sqrt() * eps[i] as f64;
            assert!((got[i] as f64 - want).abs() < 1e-6);
        }
        assert!(s.q_sample(&x0, &eps[..2], 500).is_err());
    }

    #[test]
    fn seeded_noise_is_reproducible_and_has_the_right_moments() {
        let s = NoiseSchedule::new();
        let n = 200_000;
        let x0 = vec![0.8f32; n];
        let a = s.add_noise(&x0, 500, 7).unwrap();
        assert_eq!(a, s.add_noise(&x0, 500, 7).unwrap());
        assert_ne!(a, s.add_noise(&x0, 500, 8).unwrap());
        let ab = s.alpha_bar(500).unwrap();
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        // Mean √ᾱ·x0 and variance 1−ᾱ, within a few standard errors.
        assert!((mean - ab.sqrt() * 0.8).abs() < 0.01, "mean {mean}");
        assert!((var - (1.0 - ab)).abs() < 0.01, "var {var}");
    }

    #[test]
    fn contrastive_logits_follow_the_reference_rule() {
        let clean = [2.0f32, 1.0, -1.0, 0.5];
        let noised = [1.0f32, 2.0, 0.0, 0.5];
        let (alpha, beta) = (1.0f32, 0.2f32);
        let got = contrastive_logits(&clean, &noised, alpha, beta).unwrap();
        // Independently: softmax probabilities, then the β cut-off on them.
        let z: f32 = clean.iter().map(|c| c.exp()).sum();
        let p: Vec<f32> = clean.iter().map(|c| c.exp() / z).collect();
        let pmax = p.iter().copied().fold(0.0, f32::max);
        for i in 0..4 {
            if p[i] >= beta * pmax {
                let want = (1.0 + alpha) * clean[i] - alpha * noised[i];
                assert!((got[i] - want).abs() < 1e-6, "token {i}");
            } else {
                assert_eq!(got[i], f32::NEG_INFINITY, "token {i}");
            }
        }
        // p = e^x/Z: token 0 and 1 (e^-1 ≈ 0.37 ≥ 0.2) and 3 (e^-1.5 ≈ 0.22) survive, 2 does not.
        assert!(got[1].is_finite() && got[3].is_finite() && got[2].is_infinite());
        // (1+α)·clean − α·noised: 2·2 − 1 = 3 and 2·1 − 2 = 0.
        assert_eq!(got[0], 3.0);
        assert_eq!(got[1], 0.0);
        assert!(contrastive_logits(&clean, &noised[..3], alpha, beta).is_err());
        assert!(contrastive_logits(&[], &[], alpha, beta).is_err());
        // β = 0 keeps every token.
        assert!(contrastive_logits(&clean, &noised, alpha, 0.0)
            .unwrap()
            .iter()
            .all(|v| v.is_finite()));
    }
}
