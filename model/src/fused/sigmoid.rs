//! The logistic sigmoid the fused activations (SwiGLU, gelu-tanh) share, on the vectorisable
//! [`super::math::exp`].

/// `1 / (1 + e^(−x))`: ~0 for very negative `x` (the exponential saturates at `e^88`), 1 for
/// very positive `x`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + super::math::exp(-x))
}
