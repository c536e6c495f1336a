//! Why a fused kernel refused its operands. Every kernel checks every operand's shape, strides
//! and buffer length before it reads or writes anything through a pointer, and reports a
//! mismatch as a [`FusedError`] instead of computing on it: shapes no op could combine, or a
//! layout that reaches past its buffer (possible from safe code: `FlexTensor::with_layout`
//! takes any layout).

/// Operands a fused kernel cannot run on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FusedError {
    /// Shapes that do not fit together (or do not fit the kernel's own contract).
    #[error("fused {kernel}: inconsistent operands: {detail}")]
    Shape {
        /// The kernel, e.g. `attention`.
        kernel: &'static str,
        /// Which operands and how they differ.
        detail: String,
    },
    /// A tensor whose shape, strides and offset reach outside its buffer.
    #[error(
        "fused {kernel}: {operand} with shape {shape:?}, strides {strides:?} and offset {offset} \
         reaches element {reach} of a buffer of {len} elements"
    )]
    OutOfBounds {
        /// The kernel.
        kernel: &'static str,
        /// The operand, e.g. `k`.
        operand: &'static str,
        /// Its shape.
        shape: Vec<usize>,
        /// Its element strides.
        strides: Vec<isize>,
        /// Its first element's offset in the buffer.
        offset: usize,
        /// The lowest (when negative) or highest element offset the layout reaches.
        reach: i128,
        /// Elements in the buffer.
        len: usize,
    },
}

impl FusedError {
    /// A [`FusedError::Shape`] of `kernel`.
    pub fn shape(kernel: &'static str, detail: impl Into<String>) -> Self {
        Self::Shape {
            kernel,
            detail: detail.into(),
        }
    }
}

/// `Err(FusedError::Shape)` with `detail` unless `ok`.
pub fn ensure(
    ok: bool,
    kernel: &'static str,
    detail: impl FnOnce() -> String,
) -> Result<(), FusedError> {
    if ok {
        Ok(())
    } else {
        Err(FusedError::shape(kernel, detail()))
    }
}

/// Whether Burn's element-wise broadcasting combines shapes `a` and `b` (equal ranks; each
/// dimension equal, or 1 in one of them).
pub fn broadcastable(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| x == y || x == 1 || y == 1)
}

/// For an element-wise kernel whose operands do not have the shapes it covers: `Ok(None)` when
/// Burn's ops still combine them (broadcasting: the caller falls back), an error naming them
/// when no op could.
pub fn fallback_or_error<T>(
    kernel: &'static str,
    [(a, a_shape), (b, b_shape)]: [(&str, &[usize]); 2],
) -> Result<Option<T>, FusedError> {
    if broadcastable(a_shape, b_shape) {
        Ok(None)
    } else {
        let detail = format!("{a} {a_shape:?} and {b} {b_shape:?} do not broadcast");
        Err(FusedError::shape(kernel, detail))
    }
}
