//! Decoding settings (`--decoding greedy|sample|vcd` and its knobs), recorded in results.
//!
//! Endpoints get greedy as temperature 0 and sampling as temperature/top_p/seed; visual
//! contrastive decoding (`vcd`) needs the model's logits and so only a local model can do it
//! (its pure parts are in [`crate::vcd`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// How tokens are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DecodingMode {
    #[default]
    Greedy,
    Sample,
    Vcd,
}

impl DecodingMode {
    /// `greedy`, `sample` or `vcd`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodingMode::Greedy => "greedy",
            DecodingMode::Sample => "sample",
            DecodingMode::Vcd => "vcd",
        }
    }
}

impl fmt::Display for DecodingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DecodingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            DecodingMode::Greedy,
            DecodingMode::Sample,
            DecodingMode::Vcd,
        ]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| format!("unknown decoding `{s}` (expected greedy, sample or vcd)"))
    }
}

/// Visual contrastive decoding parameters (Leng et al. 2023).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VcdParams {
    /// Weight of the contrast: `(1+α)·logits(v) − α·logits(v′)`.
    pub alpha: f32,
    /// Adaptive plausibility cut-off: tokens below β × the top clean probability are dropped.
    pub beta: f32,
    /// Diffusion step of the noised image, in `0..1000`.
    pub noise_step: usize,
}

impl Default for VcdParams {
    fn default() -> Self {
        VcdParams {
            alpha: 1.0,
            beta: 0.1,
            noise_step: 500,
        }
    }
}

/// All decoding settings of an evaluation run, as given on the command line and recorded in
/// results (a local model turns them into `safeaware_model::TokenSampling`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodingSettings {
    pub mode: DecodingMode,
    /// Sampling temperature (used by `sample`; greedy is temperature 0).
    pub temperature: f32,
    /// Nucleus sampling mass (used by `sample`).
    pub top_p: f32,
    /// Sampling seed, if fixed.
    pub seed: Option<u64>,
    /// Most new tokens per answer.
    pub max_tokens: usize,
    /// Used by `vcd` (recorded whatever the mode).
    pub vcd: VcdParams,
}

impl Default for DecodingSettings {
    fn default() -> Self {
        DecodingSettings {
            mode: DecodingMode::Greedy,
            temperature: 1.0,
            top_p: 1.0,
            seed: None,
            max_tokens: 256,
            vcd: VcdParams::default(),
        }
    }
}

impl DecodingSettings {
    /// Checks ranges: temperature ≥ 0, top_p in (0, 1], max_tokens ≥ 1, α ≥ 0, β in [0, 1],
    /// noise step < 1000.
    pub fn validate(&self) -> Result<(), EvalError> {
        let bad = |m: String| Err(EvalError::Config(m));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!(
                "--temperature must be ≥ 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("--top-p must be in (0, 1], got {}", self.top_p));
        }
        if self.max_tokens == 0 {
            return bad("--max-tokens must be at least 1".to_string());
        }
        if !(self.vcd.alpha >= 0.0 && self.vcd.alpha.is_finite()) {
            return bad(format!("--vcd-alpha must be ≥ 0, got {}", self.vcd.alpha));
        }
        if !(0.0..=1.0).contains(&self.vcd.beta) {
            return bad(format!(
                "--vcd-beta must be in [0, 1], got {}",
                self.vcd.beta
            ));
        }
        if self.vcd.noise_step >= crate::vcd::NOISE_STEPS {
            return bad(format!(
                "--vcd-noise-step must be below {}, got {}",
                crate::vcd::NOISE_STEPS,
                self.vcd.noise_step
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_catches_out_of_range_values() {
        assert!(DecodingSettings::default().validate().is_ok());
        let with = |f: fn(&mut DecodingSettings)| {
            let mut d = DecodingSettings::default();
            f(&mut d);
            d.validate()
        };
        assert!(with(|d| d.temperature = -0.1).is_err());
        assert!(with(|d| d.top_p = 0.0).is_err());
        assert!(with(|d| d.top_p = 1.5).is_err());
        assert!(with(|d| d.max_tokens = 0).is_err());
        assert!(with(|d| d.vcd.beta = 1.5).is_err());
        assert!(with(|d| d.vcd.noise_step = 1000).is_err());
        assert!(with(|d| d.vcd.noise_step = 999).is_ok());
        assert_eq!("VCD".parse::<DecodingMode>().unwrap(), DecodingMode::Vcd);
        assert!("beam".parse::<DecodingMode>().is_err());
    }
}
