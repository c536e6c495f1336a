//! Data parallelism on a backend that all-reduces gradients inside `backward()`: Burn's NCCL
//! path on CUDA. One thread per device, each with its own replica of the model and its own
//! AdamW state, all in lock step. It is a [`TrainStep`], so the run loop, its logging and its
//! checkpoints are those of one device (rank 0: the first device, whose model the loop holds).
//!
//! Each worker runs every micro-batch's shard ([`shard`]) with its loss normalised over the
//! **whole** global batch (for DPO the reference is scored on rank 0 first, see
//! `objective.rs`), and [`GradientSync`] marks each trained parameter so
//! that its gradient is summed over the workers while backward still runs (overlapping the
//! transfer with the rest of the backward pass). Every worker then holds the gradient of the
//! whole global batch, clips it to the same norm and applies the same AdamW update, so the
//! replicas stay equal and the update is the one-device update of that batch. Backward passes
//! line up across workers ([`ForwardSettings::lockstep`]): one per micro-batch, empty shards
//! included, each giving every trained parameter a gradient.
//!
//! The state to resume is the one-device state (rank 0's model and optimiser), so a checkpoint
//! resumes on any number of devices and on either data-parallel path.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use burn::tensor::backend::AutodiffBackend;
use safeaware_model::{dropout, TrainableModel};
use safeaware_runtime::task::GradientSync;

use crate::data_parallel::{shard, worker_panic};
use crate::objective::{Objective, WindowLoss};
use crate::step::{
    window_gradients, ForwardSettings, StepOutcome, TrainStep, Update, WindowGradients,
};
use crate::train_data::Example;

/// Workers in lock step on distinct devices, gradients summed by `S` during backward (one
/// worker is allowed: a one-rank check of the machinery on a machine with one GPU).
pub struct NcclStep<B: AutodiffBackend, M: TrainableModel<B>, S: GradientSync<B>> {
    sync: Arc<S>,
    forward: ForwardSettings,
    objective: Objective<B, M>,
    /// One device per worker; rank 0's model is the run loop's.
    devices: Vec<B::Device>,
    /// How each worker's device is named, for errors.
    names: Vec<String>,
    /// One optimiser per worker (replicated AdamW state); empty after a failed step.
    updates: Vec<Update<B, M>>,
    /// The models of ranks 1.., forked from rank 0's on the first step.
    replicas: Vec<M>,
}

impl<B: AutodiffBackend, M: TrainableModel<B>, S: GradientSync<B>> NcclStep<B, M, S> {
    /// Workers on `devices` (named `names`), worker `i` updating through `updates[i]`; starts
    /// `sync`'s communication.
    pub fn new(
        updates: Vec<Update<B, M>>,
        forward: ForwardSettings,
        devices: Vec<B::Device>,
        names: Vec<String>,
        sync: S,
    ) -> Result<Self> {
        if updates.len() != devices.len() || devices.is_empty() {
            anyhow::bail!(
                "the NCCL step needs one optimiser per device (got {} device(s), {} optimiser(s))",
                devices.len(),
                updates.len()
            );
        }
        sync.start(&devices)?;
        Ok(NcclStep {
            sync: Arc::new(sync),
            forward: ForwardSettings {
                lockstep: true,
                ..forward
            },
            objective: Objective::Sft,
            devices,
            names,
            updates,
            replicas: Vec::new(),
        })
    }
}

impl<B: AutodiffBackend, M: TrainableModel<B>, S: GradientSync<B>> NcclStep<B, M, S> {
    /// The step minimising `objective` (SFT by default).
    pub fn with_objective(mut self, objective: Objective<B, M>) -> Self {
        self.objective = objective;
        self
    }
}

/// What one worker did in one step: its model and optimiser, and its numbers (gradients
/// already applied).
struct RankDone<B: AutodiffBackend, M: TrainableModel<B>> {
    model: M,
    update: Update<B, M>,
    grad_norm: f64,
    numbers: WindowGradients,
}

/// One worker's share of a step: everything it needs, owned (it runs on its own thread).
struct RankJob<B: AutodiffBackend, M: TrainableModel<B>, S: GradientSync<B>> {
    model: M,
    update: Update<B, M>,
    shard: Vec<Vec<Example>>,
    loss: WindowLoss,
    lr_factor: f64,
    forward: ForwardSettings,
    device: B::Device,
    sync: Arc<S>,
    /// The worker's dropout generator seed (drawn on the run loop's thread, seeded per step).
    dropout_seed: u64,
}

impl<B: AutodiffBackend, M: TrainableModel<B>, S: GradientSync<B>> RankJob<B, M, S> {
    /// Forward and backward over the shard (gradients summed over the workers inside
    /// backward), then the update every worker makes alike.
    fn run(self) -> Result<RankDone<B, M>> {
        let RankJob {
            model,
            mut update,
            shard,
            loss,
            lr_factor,
            forward,
            device,
            sync,
            dropout_seed,
        } = self;
        dropout::seed(dropout_seed);
        let model = sync.mark(model);
        let shard: Vec<Vec<&Example>> = shard.iter().map(|b| b.iter().collect()).collect();
        let mut numbers = window_gradients(&model, &shard, &loss, forward, &device)?;
        let grads = std::mem::take(&mut numbers.grads);
        let (model, grad_norm) = update.apply(model, grads, lr_factor)?;
        Ok(RankDone {
            model,
            update,
            grad_norm,
            numbers,
        })
    }
}

impl<B, M, S> TrainStep<B, M> for NcclStep<B, M, S>
where
    B: AutodiffBackend,
    M: TrainableModel<B> + 'static,
    S: GradientSync<B>,
{
    fn step(
        &mut self,
        model: M,
        window: &[Vec<&Example>],
        lr_factor: f64,
    ) -> Result<(M, StepOutcome)> {
        if self.updates.len() != self.devices.len() {
            anyhow::bail!("an earlier step of the NCCL workers failed; the run cannot go on");
        }
        if self.replicas.is_empty() {
            self.replicas = self.devices[1..]
                .iter()
                .map(|device| model.clone().fork(device))
                .collect();
        }
        let loss = self
            .objective
            .window_loss(&model, window, self.forward, &self.devices[0])?;
        let models = std::iter::once(model).chain(std::mem::take(&mut self.replicas));
        let updates = std::mem::take(&mut self.updates);
        let workers = self.devices.len();
        let jobs = models.zip(updates).enumerate().map(|(w, (model, update))| {
            let shard = shard(window, w, workers)
                .into_iter()
                .map(|batch| batch.into_iter().cloned().collect())
                .collect();
            RankJob {
                model,
                update,
                shard,
                loss: loss.clone(),
                lr_factor,
                forward: self.forward,
                device: self.devices[w].clone(),
                sync: Arc::clone(&self.sync),
                dropout_seed: dropout::next_seed(),
            }
        });
        let done = run_in_lock_step(jobs.collect(), &self.names)?;
        Ok(self.gather(done, &loss))
    }

    fn save_state(&self, model: &M, path: &Path) -> Result<()> {
        let rank0 = self
            .updates
            .first()
            .ok_or_else(|| anyhow!("no optimiser state"))?;
        rank0.save(model, path)
    }

    /// Every worker's optimiser loads the one state (replicas share rank 0's parameter ids).
    fn load_state(&mut self, model: &M, path: &Path) -> Result<()> {
        self.updates
            .iter_mut()
            .try_for_each(|update| update.load(model, path))
    }
}

impl<B: AutodiffBackend, M: TrainableModel<B>, S: GradientSync<B>> NcclStep<B, M, S> {
    /// Keeps the workers' models and optimisers for the next step; returns rank 0's model and
    /// the step's outcome (losses and counts summed over the workers; the gradient norm is
    /// every worker's, as they all clip the same summed gradient).
    fn gather(&mut self, done: Vec<RankDone<B, M>>, loss: &WindowLoss) -> (M, StepOutcome) {
        let grad_norm = done[0].grad_norm;
        let mut total = WindowGradients::default();
        let mut models = Vec::with_capacity(done.len());
        for rank in done {
            total.add_numbers(&rank.numbers);
            models.push(rank.model);
            self.updates.push(rank.update);
        }
        let rank0 = models.remove(0);
        self.replicas = models;
        (rank0, total.outcome(loss, grad_norm))
    }
}

impl<B: AutodiffBackend, M: TrainableModel<B>, S: GradientSync<B>> Drop for NcclStep<B, M, S> {
    fn drop(&mut self) {
        self.sync.close(&self.devices);
    }
}

/// Runs each job on its own thread and returns their results in rank order, or the first
/// failure as soon as it happens, naming its worker: the others may be waiting in a collective
/// that will never complete, so they are left behind (the process ends with the run) rather
/// than waited for.
fn run_in_lock_step<B, M, S>(
    jobs: Vec<RankJob<B, M, S>>,
    names: &[String],
) -> Result<Vec<RankDone<B, M>>>
where
    B: AutodiffBackend,
    M: TrainableModel<B> + 'static,
    S: GradientSync<B>,
{
    let (tx, rx) = mpsc::channel();
    let workers = jobs.len();
    for (w, job) in jobs.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("nccl-worker-{w}"))
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run()))
                    .unwrap_or_else(|panic| Err(worker_panic(panic)));
                let _ = tx.send((w, result));
            })
            .map_err(|err| anyhow!("starting worker {w}: {err}"))?;
    }
    drop(tx);
    let mut done: Vec<Option<RankDone<B, M>>> = (0..workers).map(|_| None).collect();
    for _ in 0..workers {
        let (w, result) = rx
            .recv()
            .map_err(|_| anyhow!("a worker thread ended without a result"))?;
        let rank = result.map_err(|err| anyhow!("worker {w} ({}): {err:#}", names[w]))?;
        done[w] = Some(rank);
    }
    Ok(done.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use burn::backend::flex::FlexDevice;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Module;
    use safeaware_model::{ModelPart, Vlm};

    use super::*;
    use crate::grad_coverage::tests::text_only;
    use crate::preset;
    use crate::recipe::OptimSection;

    type Ad = Autodiff<Flex>;

    /// A stand-in for NCCL on the CPU: counts its calls and reduces nothing (so only what does
    /// not depend on the reduction is checked here); `fail_on_mark` makes that mark panic.
    #[derive(Default)]
    struct Counting {
        started: AtomicUsize,
        marked: AtomicUsize,
        closed: Arc<AtomicUsize>,
        fail_on_mark: Option<usize>,
    }

    impl GradientSync<Ad> for Counting {
        fn start(&self, devices: &[FlexDevice]) -> Result<()> {
            assert_eq!(devices.len(), 2);
            self.started.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        fn mark<M: Module<Ad>>(&self, model: M) -> M {
            let n = self.marked.fetch_add(1, Ordering::SeqCst);
            if self.fail_on_mark == Some(n) {
                panic!("simulated loss of a GPU");
            }
            model
        }

        fn close(&self, _devices: &[FlexDevice]) {
            self.closed.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn step_on_two(sync: Counting) -> NcclStep<Ad, Vlm<Ad>, Counting> {
        let optim = OptimSection::default();
        let updates = (0..2)
            .map(|_| Update::new(&optim, |p| p == ModelPart::Text, &FlexDevice))
            .collect();
        let forward = ForwardSettings {
            pad_id: 0,
            autocast: None,
            lockstep: false,
        };
        let names = vec!["cpu:0".to_string(), "cpu:1".to_string()];
        NcclStep::new(updates, forward, vec![FlexDevice; 2], names, sync).unwrap()
    }

    /// Without a real reduction only the bookkeeping can be checked on the CPU: communication
    /// started once and closed with the step, every worker's replica marked each step, the
    /// shards' losses adding up to the one-device loss of the global batch (a one-example
    /// micro-batch leaves worker 0 an empty shard), and counts summed over the workers.
    #[test]
    fn workers_split_the_global_batch_and_run_in_lock_step() {
        let config = preset::build("tiny", 64).unwrap().config;
        let model = Vlm::<Ad>::init_random(&config, 5, &FlexDevice);
        let mut c = text_only("c");
        c.input_ids.push(10);
        c.labels.push(10);
        let (a, b) = (text_only("a"), text_only("b"));
        let window = vec![vec![&a, &b, &c], vec![&a]];
        let loss = WindowLoss::Sft {
            targets: window.iter().flatten().map(|e| e.target_tokens()).sum(),
        };
        let targets = loss.targets();
        let forward = ForwardSettings {
            pad_id: 0,
            autocast: None,
            lockstep: false,
        };
        let one = window_gradients(&model, &window, &loss, forward, &FlexDevice).unwrap();
        let closed = Arc::new(AtomicUsize::new(0));
        let mut step = step_on_two(Counting {
            closed: Arc::clone(&closed),
            ..Counting::default()
        });
        let (model, outcome) = step.step(model, &window, 1.0).unwrap();
        assert!(
            (outcome.loss - one.loss).abs() <= 1e-6 * one.loss,
            "{outcome:?} vs {}",
            one.loss
        );
        assert_eq!((outcome.targets, outcome.tokens), (targets, one.tokens));
        assert!(outcome.grad_norm > 0.0);
        assert_eq!(step.replicas.len(), 1);
        assert_eq!(step.updates.len(), 2);
        step.step(model, &window, 1.0).unwrap();
        assert_eq!(step.sync.started.load(Ordering::SeqCst), 1);
        assert_eq!(step.sync.marked.load(Ordering::SeqCst), 4);
        assert_eq!(closed.load(Ordering::SeqCst), 0);
        drop(step);
        assert_eq!(closed.load(Ordering::SeqCst), 1);
    }

    /// A worker that panics ends the step with its error, naming it, and the step refuses to
    /// go on (its replicas and optimisers are gone).
    #[test]
    fn a_failing_worker_stops_the_step_with_its_error() {
        let config = preset::build("tiny", 64).unwrap().config;
        let model = Vlm::<Ad>::init_random(&config, 5, &FlexDevice);
        let (a, b) = (text_only("a"), text_only("b"));
        let window = vec![vec![&a, &b]];
        let mut step = step_on_two(Counting {
            fail_on_mark: Some(1),
            ..Counting::default()
        });
        let err = step
            .step(model.clone(), &window, 1.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("simulated loss of a GPU"), "{err}");
        assert!(
            err.contains("worker 0 (cpu:0)") || err.contains("worker 1 (cpu:1)"),
            "{err}"
        );
        let err = step.step(model, &window, 1.0).unwrap_err().to_string();
        assert!(err.contains("earlier step"), "{err}");
    }
}
