//! Fault injection for the crash tests: the names of the trainer's fail points (the `fail`
//! crate's). They exist only in builds with the `failpoints` cargo feature, which the test
//! command turns on; in any other build every `fail_point!` compiles to nothing, so release
//! binaries carry no hook. A test sets them in a child `safeaware` process through the
//! `FAILPOINTS` environment variable (`name=actions;...`, e.g. `train-step=3*off->panic(lost)`),
//! which the binary reads at start-up.

/// Evaluated in every checkpoint write once the model files are in
/// `checkpoints/.tmp-step_N/` and before the trainer state is: `sleep(600000)` stalls there, so
/// a test can kill the process in the middle of a checkpoint deterministically.
pub const CHECKPOINT_WRITE: &str = "checkpoint-write";

/// Evaluated at the start of every optimiser step, inside the backend guard: `panic(why)` fails
/// the step as a GPU lost mid-run would (`3*off->panic(why)`: the fourth step this process runs).
pub const TRAIN_STEP: &str = "train-step";

/// Evaluated once per data-parallel step: `return(W)` makes worker `W` fail (panic) in that
/// step, as a worker losing its device would (`6*off->return(1)`: worker 1, seventh step).
pub const DATA_PARALLEL_WORKER: &str = "data-parallel-worker";

/// The worker the [`DATA_PARALLEL_WORKER`] fail point picks to fail in this step; always `None`
/// without the `failpoints` feature.
pub fn failing_worker() -> Option<usize> {
    fail::fail_point!(DATA_PARALLEL_WORKER, |worker: Option<String>| worker
        .and_then(|w| w.trim().parse().ok()));
    None
}
