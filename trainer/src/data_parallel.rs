//! Data parallelism: one replica per device, each global batch split across them, gradients
//! summed, one optimiser step. It is a [`TrainStep`], so the run loop, its logging and its
//! checkpoints are the same as on one device (they run once, on the first device: rank 0).
//!
//! Each micro-batch of the global batch is cut into one shard per worker. Every worker runs
//! forward and backward on its shard with a replica of the model forked onto its device
//! (Burn's `fork`: fresh autodiff leaves, so the workers' graphs share nothing), each shard's
//! loss normalised over the **whole** global batch (its target tokens; for DPO its pairs, with
//! the reference scored once, on the first device, before the workers start). The workers' gradients are
//! moved to the first device (Burn's `GradientsParams::to_device`) and summed in rank order
//! there (`GradientsAccumulator`), then clipped and applied once by the [`Update`]. The update
//! is therefore the one-device update of the same global batch, up to the order of float
//! additions, and it is deterministic. The state to resume is the one-device state (the
//! model and the optimiser on rank 0): a checkpoint resumes on any number of devices.

use std::path::Path;

use anyhow::{anyhow, Result};
use burn::optim::GradientsAccumulator;
use burn::tensor::backend::AutodiffBackend;
use safeaware_model::{dropout, TrainableModel};
use safeaware_runtime::guard::panic_message;

use crate::fail_points;
use crate::objective::Objective;
use crate::step::{
    window_gradients, ForwardSettings, StepOutcome, TrainStep, Update, WindowGradients,
};
use crate::train_data::Example;

/// Workers on several devices (the same device named twice is two workers on it).
pub struct DataParallelStep<B: AutodiffBackend, M: TrainableModel<B>> {
    update: Update<B, M>,
    forward: ForwardSettings,
    objective: Objective<B, M>,
    /// One device per worker; the first holds the model and the optimiser.
    devices: Vec<B::Device>,
    /// How each worker's device is named, for errors.
    names: Vec<String>,
}

impl<B: AutodiffBackend, M: TrainableModel<B>> DataParallelStep<B, M> {
    /// Workers on `devices` (named `names`), updating through `update` on the first one.
    pub fn new(
        update: Update<B, M>,
        forward: ForwardSettings,
        devices: Vec<B::Device>,
        names: Vec<String>,
    ) -> Result<Self> {
        Ok(DataParallelStep {
            update,
            forward,
            objective: Objective::Sft,
            devices,
            names,
        })
    }

    /// The step minimising `objective` (SFT by default).
    pub fn with_objective(self, objective: Objective<B, M>) -> Self {
        DataParallelStep { objective, ..self }
    }
}

/// Worker `w`'s shard of every micro-batch: the `w`-th of `n` contiguous slices (sizes differ
/// by at most one; some may be empty).
pub fn shard<'a>(window: &[Vec<&'a Example>], w: usize, n: usize) -> Vec<Vec<&'a Example>> {
    window
        .iter()
        .map(|batch| {
            let (len, workers) = (batch.len(), n.max(1));
            let start = w * len / workers;
            let end = (w + 1) * len / workers;
            batch[start..end].to_vec()
        })
        .collect()
}

impl<B: AutodiffBackend, M: TrainableModel<B>> TrainStep<B, M> for DataParallelStep<B, M> {
    fn step(
        &mut self,
        model: M,
        window: &[Vec<&Example>],
        lr_factor: f64,
    ) -> Result<(M, StepOutcome)> {
        let workers = self.devices.len();
        let failing = fail_points::failing_worker();
        let main = &self.devices[0];
        let loss = self
            .objective
            .window_loss(&model, window, self.forward, main)?;
        // Each worker's dropout generator, seeded from this thread's (seeded per step).
        let seeds: Vec<u64> = (0..workers).map(|_| dropout::next_seed()).collect();
        let results: Vec<Result<WindowGradients>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let (model, device, shard) =
                        (&model, &self.devices[w], shard(window, w, workers));
                    let (forward, seed, loss) = (self.forward, seeds[w], &loss);
                    scope.spawn(move || -> Result<WindowGradients> {
                        dropout::seed(seed);
                        if failing == Some(w) {
                            panic!("simulated failure of worker {w}");
                        }
                        let replica = model.clone().fork(device);
                        let mut g = window_gradients(&replica, &shard, loss, forward, device)?;
                        if w > 0 {
                            g.grads = g.grads.to_device(main, &replica);
                        }
                        Ok(g)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|panic| Err(worker_panic(panic))))
                .collect()
        });
        let mut accumulator = GradientsAccumulator::<M>::new();
        let mut total = WindowGradients::default();
        for (w, result) in results.into_iter().enumerate() {
            let g = result.map_err(|err| anyhow!("worker {w} ({}): {err:#}", self.names[w]))?;
            total.add_numbers(&g);
            accumulator.accumulate(&model, g.grads);
        }
        let (model, grad_norm) = self.update.apply(model, accumulator.grads(), lr_factor)?;
        Ok((model, total.outcome(&loss, grad_norm)))
    }

    fn save_state(&self, model: &M, path: &Path) -> Result<()> {
        self.update.save(model, path)
    }

    fn load_state(&mut self, model: &M, path: &Path) -> Result<()> {
        self.update.load(model, path)
    }
}

/// The error of a worker thread that panicked: the message it left.
pub(crate) fn worker_panic(payload: Box<dyn std::any::Any + Send>) -> anyhow::Error {
    anyhow!(panic_message(&*payload).unwrap_or_else(|| "the worker panicked".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_each_micro_batch_once_in_order() {
        let examples: Vec<Example> = (0..5)
            .map(|i| Example {
                id: i.to_string(),
                input_ids: vec![1],
                labels: vec![-100],
                pixels: Vec::new(),
                tiles: 0,
                tile_shape: [3, 1, 1],
                grid_thw: Vec::new(),
                rejected: None,
            })
            .collect();
        let window = vec![
            examples.iter().collect::<Vec<_>>(),
            examples[..1].iter().collect(),
        ];
        let ids = |w| -> Vec<Vec<String>> {
            shard(&window, w, 2)
                .iter()
                .map(|b| b.iter().map(|e| e.id.clone()).collect())
                .collect()
        };
        assert_eq!(ids(0), [vec!["0", "1"], vec![]]);
        assert_eq!(ids(1), [vec!["2", "3", "4"], vec!["0"]]);
    }
}
