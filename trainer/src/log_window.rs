//! The training numbers between two log lines: loss per target token (DPO: per pair, with
//! TRL's reward metrics), tokens and images per second over the steps since the last line. A pause closes the window too, so no step's loss
//! is lost (a resumed run starts a new window).

use std::time::Instant;

use crate::dpo::loss::PreferenceSums;
use crate::metrics_log::MetricsRecord;
use crate::step::StepOutcome;

/// Sums since the last logged line.
#[derive(Debug)]
pub struct LogWindow {
    loss_sum: f64,
    /// What the loss is a mean over: target tokens (SFT) or pairs (DPO).
    weight: usize,
    preference: PreferenceSums,
    tokens: usize,
    images: usize,
    start: Instant,
}

impl Default for LogWindow {
    fn default() -> Self {
        LogWindow {
            loss_sum: 0.0,
            weight: 0,
            preference: PreferenceSums::default(),
            tokens: 0,
            images: 0,
            start: Instant::now(),
        }
    }
}

impl LogWindow {
    /// Adds one step.
    pub fn add(&mut self, outcome: &StepOutcome) {
        self.loss_sum += outcome.loss * outcome.loss_weight() as f64;
        self.weight += outcome.loss_weight();
        if let Some(p) = &outcome.preference {
            self.preference.add(p);
        }
        self.tokens += outcome.tokens;
        self.images += outcome.images;
    }

    /// The training fields of the line for `step` (the caller sets `step`, `elapsed_s`, `lr`,
    /// `grad_norm`, `eta_s`), and a fresh window.
    pub fn close(&mut self) -> MetricsRecord {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let record = MetricsRecord {
            loss: Some(self.loss_sum / self.weight.max(1) as f64),
            preference: self.preference.means(),
            tokens_per_s: Some(self.tokens as f64 / secs),
            images_per_s: Some(self.images as f64 / secs),
            ..Default::default()
        };
        *self = LogWindow::default();
        record
    }
}
