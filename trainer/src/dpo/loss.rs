//! The DPO loss of a batch of pairs, as TRL's `DPOTrainer` computes it. With policy
//! log-probabilities `πc, πr` of the chosen and rejected answers and the reference's `ρc, ρr`,
//! `z = (πc − πr) − (ρc − ρr)`; `sigmoid` (the DPO paper) is `−log σ(β·z)` over log-probabilities
//! summed over the answer's tokens, `ipo` is `(z − 1/(2β))²` over log-probabilities averaged
//! over them. Rewards are `β·(π − ρ)` per answer; their sums over pairs are what the logs report.

use burn::tensor::activation::log_sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, FloatDType, Tensor, TensorData};
use safeaware_model::LossOutput;

use crate::metrics_log::PreferenceRecord;
use crate::recipe::{DpoLoss, DpoSection};

/// An answer's log-probability as `loss` scores it, from its summed cross-entropy: minus the
/// sum (`sigmoid`), or minus the mean over its target tokens (`ipo`), `[1]`.
pub fn answer_logp<B: Backend>(row: &LossOutput<B>, loss: DpoLoss) -> Tensor<B, 1> {
    let logp = row.sum.clone().neg();
    match loss {
        DpoLoss::Sigmoid => logp,
        DpoLoss::Ipo => logp / row.count.max(1) as f64,
    }
}

/// The summed DPO loss of the pairs whose policy log-probabilities are `chosen` and `rejected`
/// (`[n]`, with gradient) and whose reference log-probabilities are `reference` (`(ρc, ρr)`
/// per pair), `[1]`.
pub fn pair_losses_sum<B: Backend>(
    chosen: Tensor<B, 1>,
    rejected: Tensor<B, 1>,
    reference: &[(f64, f64)],
    dpo: &DpoSection,
) -> Tensor<B, 1> {
    let device = chosen.device();
    let ref_margin: Vec<f32> = reference.iter().map(|(c, r)| (c - r) as f32).collect();
    let n = ref_margin.len();
    let ref_margin = Tensor::<B, 1>::from_data(TensorData::new(ref_margin, [n]), &device)
        .cast(FloatDType::from(chosen.dtype()));
    let z = chosen - rejected - ref_margin;
    let losses = match dpo.loss {
        DpoLoss::Sigmoid => log_sigmoid(z * dpo.beta).neg(),
        DpoLoss::Ipo => (z - 1.0 / (2.0 * dpo.beta)).powi_scalar(2),
    };
    losses.sum()
}

/// Sums over pairs of what TRL logs for DPO; [`PreferenceSums::means`] turns them into the
/// logged means. Sums add up over micro-batches, workers and steps.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PreferenceSums {
    pub pairs: usize,
    /// Σ `β·(πc − ρc)`.
    pub chosen_rewards: f64,
    /// Σ `β·(πr − ρr)`.
    pub rejected_rewards: f64,
    /// Pairs whose chosen reward exceeds the rejected one.
    pub correct: f64,
    /// Σ `πc`, Σ `πr`.
    pub chosen_logps: f64,
    pub rejected_logps: f64,
}

impl PreferenceSums {
    /// The sums of pairs with policy log-probabilities `policy` and reference ones `reference`
    /// (`(chosen, rejected)` each).
    pub fn of_pairs(policy: &[(f64, f64)], reference: &[(f64, f64)], beta: f64) -> Self {
        let mut sums = PreferenceSums::default();
        for (&(pc, pr), &(rc, rr)) in policy.iter().zip(reference) {
            let (chosen, rejected) = (beta * (pc - rc), beta * (pr - rr));
            sums.pairs += 1;
            sums.chosen_rewards += chosen;
            sums.rejected_rewards += rejected;
            sums.correct += f64::from(u8::from(chosen > rejected));
            sums.chosen_logps += pc;
            sums.rejected_logps += pr;
        }
        sums
    }

    /// Adds `other`'s pairs.
    pub fn add(&mut self, other: &PreferenceSums) {
        self.pairs += other.pairs;
        self.chosen_rewards += other.chosen_rewards;
        self.rejected_rewards += other.rejected_rewards;
        self.correct += other.correct;
        self.chosen_logps += other.chosen_logps;
        self.rejected_logps += other.rejected_logps;
    }

    /// The means over the pairs as a log line holds them (empty without pairs).
    pub fn means(&self) -> PreferenceRecord {
        if self.pairs == 0 {
            return PreferenceRecord::default();
        }
        let n = self.pairs as f64;
        PreferenceRecord {
            rewards_chosen: Some(self.chosen_rewards / n),
            rewards_rejected: Some(self.rejected_rewards / n),
            rewards_accuracies: Some(self.correct / n),
            rewards_margins: Some((self.chosen_rewards - self.rejected_rewards) / n),
            logps_chosen: Some(self.chosen_logps / n),
            logps_rejected: Some(self.rejected_logps / n),
        }
    }
}

/// The values of a `[n]` tensor as f64.
pub fn values<B: Backend>(t: Tensor<B, 1>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .unwrap_or_default()
}

/// A `[1]` tensor's value as f64.
pub fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_scalar().elem()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn loss_of(pc: f32, pr: f32, reference: (f64, f64), dpo: &DpoSection) -> f64 {
        let d = Default::default();
        let t = |v: f32| Tensor::<Flex, 1>::from_floats([v], &d);
        scalar(pair_losses_sum(t(pc), t(pr), &[reference], dpo))
    }

    #[test]
    fn sigmoid_and_ipo_follow_trl() {
        let sigmoid = DpoSection::default();
        // Policy = reference: ln 2.
        let at_reference = loss_of(-3.0, -5.0, (-3.0, -5.0), &sigmoid);
        assert!((at_reference - std::f64::consts::LN_2).abs() < 1e-6);
        // z = (−1 − −4) − (−2 − −3) = 2: −log σ(0.2).
        let z2 = loss_of(-1.0, -4.0, (-2.0, -3.0), &sigmoid);
        assert!((z2 - (1.0 + (-0.2f64).exp()).ln()).abs() < 1e-6, "{z2}");
        let ipo = DpoSection {
            loss: DpoLoss::Ipo,
            beta: 0.5,
            ..Default::default()
        };
        // (2 − 1/(2·0.5))² = 1.
        assert!((loss_of(-1.0, -4.0, (-2.0, -3.0), &ipo) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn sums_give_trl_means() {
        let sums = PreferenceSums::of_pairs(&[(-1.0, -4.0), (-6.0, -2.0)], &[(-2.0, -3.0); 2], 0.1);
        let m = sums.means();
        let (chosen, rejected) = (m.rewards_chosen.unwrap(), m.rewards_rejected.unwrap());
        assert!((chosen - 0.1 * (1.0 + -4.0) / 2.0).abs() < 1e-12);
        assert!((rejected - 0.1 * (-1.0 + 1.0) / 2.0).abs() < 1e-12);
        assert_eq!(m.rewards_accuracies, Some(0.5));
        assert!((m.rewards_margins.unwrap() - (chosen - rejected)).abs() < 1e-12);
        assert_eq!((m.logps_chosen, m.logps_rejected), (Some(-3.5), Some(-3.0)));
        assert_eq!(
            PreferenceSums::default().means(),
            PreferenceRecord::default()
        );
    }
}
