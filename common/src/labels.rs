//! The label convention shared by the data encoder, which writes training labels, and the
//! model's loss, which reads them.

/// The label of a position without a target: prompt, image and padding tokens are not learned
/// (PyTorch's and HF's cross-entropy `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;
