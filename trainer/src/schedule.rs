//! Learning-rate schedule: linear warmup, then cosine decay to a floor.
//!
//! The same formula as Hugging Face's `get_cosine_with_min_lr_schedule_with_warmup`
//! (and torchtune's cosine schedule), as a pure function of the optimiser step so that a
//! resumed run gets exactly the learning rates the uninterrupted run would have had.

/// Warmup + cosine schedule, expressed as a multiplier of each part's base learning rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// Steps of linear warmup from 0 to the base rate.
    pub warmup_steps: u64,
    /// Total optimiser steps of the run; the cosine reaches the floor here and stays there.
    pub total_steps: u64,
    /// Floor as a fraction of the base rate, in `[0, 1]`.
    pub min_lr_ratio: f64,
}

impl LrSchedule {
    /// Multiplier for the 0-based optimiser `step` (the step about to be taken):
    /// `step / warmup` during warmup (0 at step 0, as in HF), then
    /// `min + (1 - min) * 0.5 * (1 + cos(pi * progress))` with
    /// `progress = (step - warmup) / (total - warmup)` clamped to `[0, 1]`.
    pub fn factor(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return step as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        let min = self.min_lr_ratio.clamp(0.0, 1.0);
        min + (1.0 - min) * cosine
    }

    /// Learning rate at `step` for a part whose peak rate is `base_lr`.
    pub fn lr(&self, base_lr: f64, step: u64) -> f64 {
        base_lr * self.factor(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn warmup_is_linear_from_zero() {
        let s = LrSchedule {
            warmup_steps: 10,
            total_steps: 110,
            min_lr_ratio: 0.1,
        };
        assert!(close(s.factor(0), 0.0));
        assert!(close(s.factor(1), 0.1));
        assert!(close(s.factor(5), 0.5));
        assert!(close(s.factor(9), 0.9));
        assert!(close(s.factor(10), 1.0), "peak right after warmup");
    }

    #[test]
    fn cosine_matches_formula_at_known_points() {
        let s = LrSchedule {
            warmup_steps: 10,
            total_steps: 110,
            min_lr_ratio: 0.1,
        };
        // Halfway through decay: cos(pi/2) = 0 -> min + (1-min)/2.
        assert!(close(s.factor(60), 0.1 + 0.9 * 0.5));
        // A quarter of the way: 0.5 * (1 + cos(pi/4)).
        let expected = 0.1 + 0.9 * 0.5 * (1.0 + (PI / 4.0).cos());
        assert!(close(s.factor(35), expected));
        assert!(
            close(s.factor(110), 0.1),
            "reaches the floor at total_steps"
        );
        assert!(
            close(s.factor(10_000), 0.1),
            "stays at the floor afterwards"
        );
        assert!(close(s.lr(2e-3, 60), 2e-3 * 0.55));
    }

    #[test]
    fn decreasing_after_warmup_and_degenerate_cases() {
        let s = LrSchedule {
            warmup_steps: 3,
            total_steps: 50,
            min_lr_ratio: 0.0,
        };
        for step in 3..50 {
            assert!(
                s.factor(step + 1) < s.factor(step),
                "not decreasing at {step}"
            );
        }
        assert!(close(s.factor(50), 0.0));
        let no_warmup = LrSchedule {
            warmup_steps: 0,
            total_steps: 0,
            min_lr_ratio: 0.2,
        };
        assert!(close(no_warmup.factor(0), 1.0));
        assert!(close(no_warmup.factor(1), 0.2));
    }
}
