//! Direct Preference Optimization (`train.objective = "dpo"`): preference data encoded as
//! pairs (`data.rs`), the frozen reference (`reference.rs`), the loss and the logged rewards
//! as TRL's `DPOTrainer` has them (`loss.rs`), and the loss of a global batch's micro-batches
//! (`window.rs`), which every training step runs through `crate::objective`; `dump.rs` writes
//! a first batch for an independent check.

pub mod data;
pub mod dump;
pub mod loss;
pub mod reference;
pub mod window;
