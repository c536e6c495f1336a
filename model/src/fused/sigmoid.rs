//! The logistic sigmoid the fused activations (SwiGLU, gelu-tanh) share: the one place their
//! `exp` is called, so a vectorised `exp` replaces it in one line.

/// `1 / (1 + e^(−x))`: 0 for very negative `x` (the exponential overflows to +∞), 1 for very
/// positive `x`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
