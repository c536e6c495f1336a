//! The order examples are trained in: each epoch a permutation seeded by the run seed and the
//! epoch number, cut into micro-batches, `grad_accum` of them per step. The position in it is
//! the trainer state's `epoch` and `data_position`, so a resumed run continues exactly where
//! the checkpoint left off.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::trainer_state::TrainerState;

/// Micro-batches of example indices, epoch after epoch.
#[derive(Debug, Clone)]
pub struct DataOrder {
    seed: u64,
    batch_size: usize,
    accum: usize,
    examples: usize,
    /// The current epoch's permutation.
    order: Vec<usize>,
}

impl DataOrder {
    /// The order for `examples` examples in batches of `batch_size`, `accum` per step, at the
    /// epoch `state` is in.
    pub fn new(
        seed: u64,
        batch_size: usize,
        accum: usize,
        examples: usize,
        state: &TrainerState,
    ) -> Self {
        DataOrder {
            seed,
            batch_size: batch_size.max(1),
            accum: accum.max(1),
            examples,
            order: epoch_order(seed, state.epoch, examples),
        }
    }

    /// Micro-batches per epoch (the last one may be short).
    pub fn batches_per_epoch(&self) -> u64 {
        self.examples.div_ceil(self.batch_size) as u64
    }

    /// The micro-batches of the next step, advancing `state.epoch` and `state.data_position`.
    pub fn next_window(&mut self, state: &mut TrainerState) -> Vec<Vec<usize>> {
        let mut window = Vec::with_capacity(self.accum);
        for _ in 0..self.accum {
            if state.data_position >= self.batches_per_epoch() {
                state.epoch += 1;
                state.data_position = 0;
                self.order = epoch_order(self.seed, state.epoch, self.examples);
            }
            let start = state.data_position as usize * self.batch_size;
            let end = (start + self.batch_size).min(self.examples);
            window.push(self.order[start..end].to_vec());
            state.data_position += 1;
        }
        window
    }
}

/// The example order of `epoch`: a permutation seeded by the run seed and the epoch.
fn epoch_order(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mixed = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    order.shuffle(&mut StdRng::seed_from_u64(mixed));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trainer_state::RunIdentity;

    fn state() -> TrainerState {
        TrainerState::new(RunIdentity {
            recipe_fingerprint: "r".into(),
            seed: 3,
            data_fingerprint: "d".into(),
        })
    }

    /// Every example once per epoch; the last batch short; a new permutation each epoch; and an
    /// order rebuilt from a saved position continues identically.
    #[test]
    fn epochs_cover_every_example_and_resume_exactly() {
        let mut s = state();
        let mut order = DataOrder::new(3, 4, 1, 10, &s);
        let epoch: Vec<Vec<usize>> = (0..3).flat_map(|_| order.next_window(&mut s)).collect();
        assert_eq!(epoch.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let mut seen: Vec<usize> = epoch.into_iter().flatten().collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!((s.epoch, s.data_position), (0, 3));
        // Two micro-batches per step cross into epoch 1, whose permutation differs.
        let mut s = state();
        let mut order = DataOrder::new(3, 4, 2, 10, &s);
        order.next_window(&mut s);
        order.next_window(&mut s);
        assert_eq!((s.epoch, s.data_position), (1, 1));
        let mut resumed = DataOrder::new(3, 4, 2, 10, &s);
        let mut saved = s.clone();
        assert_eq!(resumed.next_window(&mut saved), order.next_window(&mut s));
        assert_ne!(epoch_order(3, 0, 10), epoch_order(3, 1, 10));
    }
}
