//! Reading burn-flex tensors in place: a [`View`] is an f32 buffer with a rank-4 shape and
//! element strides (head-split tensors are transposed views, read without a copy), and
//! [`matmul`] is burn-flex's own GEMM on such strided operands. [`Out`] lets parallel tasks
//! write disjoint parts of one output buffer.
//!
//! Every layout is checked against its buffer's length before anything reads through it
//! ([`check_layout`]), and every GEMM operand carries the length of the buffer it points into,
//! which [`matmul`] checks its shape and strides against: what stays `unsafe` is only that
//! parallel tasks write disjoint elements.

use std::marker::PhantomData;

use burn::tensor::TensorData;
use burn_flex::{FlexTensor, Layout};

use super::error::FusedError;

/// Elements in `tensor`'s buffer (of its own dtype).
pub fn buffer_len(tensor: &FlexTensor) -> usize {
    tensor.bytes().len() / tensor.dtype().size().max(1)
}

/// Checks that every element `layout` addresses lies inside a buffer of `len` elements
/// (an empty tensor addresses none).
pub fn check_layout(
    layout: &Layout,
    len: usize,
    [kernel, operand]: [&'static str; 2],
) -> Result<(), FusedError> {
    let (shape, strides) = (layout.shape(), layout.strides());
    if layout.num_elements() == 0 {
        return Ok(());
    }
    let offset = layout.start_offset() as i128;
    let (mut low, mut high) = (offset, offset);
    for (&dim, &stride) in shape.iter().zip(strides) {
        let span = (dim as i128 - 1) * stride as i128;
        if span < 0 {
            low += span;
        } else {
            high += span;
        }
    }
    if low >= 0 && high < len as i128 {
        return Ok(());
    }
    Err(FusedError::OutOfBounds {
        kernel,
        operand,
        shape: shape.to_vec(),
        strides: strides.to_vec(),
        offset: layout.start_offset(),
        reach: if low < 0 { low } else { high },
        len,
    })
}

/// [`check_layout`] for `tensor`'s own layout and buffer.
pub fn check_tensor(tensor: &FlexTensor, names: [&'static str; 2]) -> Result<(), FusedError> {
    check_layout(tensor.layout(), buffer_len(tensor), names)
}

/// A rank-4 f32 tensor read in place; the last dimension is contiguous, and every element the
/// shape and strides address lies inside the buffer (checked by [`View::new`]).
#[derive(Debug, Clone)]
pub struct View {
    tensor: FlexTensor,
    /// `[d0, d1, d2, d3]`.
    pub shape: [usize; 4],
    /// Element strides of the first three dimensions (the last is 1; 0 broadcasts).
    pub strides: [usize; 3],
    offset: usize,
}

impl View {
    /// Views `tensor` (f32 or bool, rank 4), copying it only when its layout is not a plain
    /// strided one (negative strides, or a non-contiguous last dimension). `names` (kernel,
    /// operand) label the error when the tensor is not rank 4 or its layout leaves its buffer.
    pub fn new(tensor: &FlexTensor, names: [&'static str; 2]) -> Result<Self, FusedError> {
        let layout = tensor.layout();
        if layout.num_dims() != 4 {
            let [kernel, operand] = names;
            let detail = format!("{operand} has shape {:?}, expected rank 4", layout.shape());
            return Err(FusedError::shape(kernel, detail));
        }
        check_tensor(tensor, names)?;
        let fits = layout.strides().iter().all(|&s| s >= 0)
            && (layout.strides()[3] == 1 || layout.shape()[3] == 1);
        let tensor = if fits {
            tensor.clone()
        } else {
            tensor.to_contiguous()
        };
        let layout = tensor.layout();
        check_layout(layout, buffer_len(&tensor), names)?;
        let (dims, strides) = (layout.shape(), layout.strides());
        Ok(Self {
            shape: [dims[0], dims[1], dims[2], dims[3]],
            strides: [
                strides[0] as usize,
                strides[1] as usize,
                strides[2] as usize,
            ],
            offset: layout.start_offset(),
            tensor: tensor.clone(),
        })
    }

    /// Offset of element `[i, j, k, 0]` in [`Self::data`].
    pub fn at(&self, i: usize, j: usize, k: usize) -> usize {
        self.offset + i * self.strides[0] + j * self.strides[1] + k * self.strides[2]
    }

    /// The whole f32 buffer the view reads.
    pub fn data(&self) -> &[f32] {
        self.tensor.storage::<f32>()
    }

    /// The whole buffer of a bool tensor (one byte per element).
    pub fn bools(&self) -> &[u8] {
        self.tensor.storage::<u8>()
    }
}

/// A zero-filled f32 output buffer written by parallel tasks, each to its own elements.
pub struct Out {
    data: Vec<f32>,
}

/// A raw pointer into an [`Out`] that tasks may share, with the buffer's length: every access
/// through it is bounds-checked; only who writes which element is the caller's to guarantee.
#[derive(Clone, Copy)]
pub struct OutPtr {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: tasks holding copies write disjoint elements (each kernel says why) and the buffer
// outlives them (they run inside a rayon scope or parallel loop that `Out` outlives).
unsafe impl Send for OutPtr {}
// SAFETY: as for `Send`: shared copies only ever write disjoint elements.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Elements `start..start + len` as a slice.
    ///
    /// # Safety
    /// The [`Out`] must outlive the slice, and while it lives no other slice, [`Dst`] or
    /// write through this buffer may touch these elements (parallel tasks own disjoint
    /// ranges). Panics, touching nothing, when the range passes the buffer's end.
    pub unsafe fn slice_mut<'a>(self, start: usize, len: usize) -> &'a mut [f32] {
        let end = start.checked_add(len).expect("output range overflows");
        assert!(
            end <= self.len,
            "output range {start}..{end} past {}",
            self.len
        );
        // SAFETY: `start..end` is inside the buffer (checked above); the caller guarantees
        // that the buffer outlives the slice and that no one else touches these elements.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }

    /// Stores `value` at `offset`.
    ///
    /// # Safety
    /// The [`Out`] must be alive and no other task may read or write element `offset` at the
    /// same time. Panics, writing nothing, when `offset` is past the buffer's end.
    pub unsafe fn write(self, offset: usize, value: f32) {
        assert!(
            offset < self.len,
            "output offset {offset} past {}",
            self.len
        );
        // SAFETY: in bounds (checked above); exclusive and alive by the caller's contract.
        unsafe { *self.ptr.add(offset) = value }
    }

    /// A GEMM destination from element `offset` on, rows `row` apart (`accumulate`: the
    /// product is added to what is there).
    ///
    /// # Safety
    /// The [`Out`] must outlive every [`matmul`] into it, and no other task may read or write
    /// the elements such a product covers while it runs. Panics when `offset` is past the end
    /// (the product's own extent is checked by [`matmul`]).
    pub unsafe fn dst(self, offset: usize, row: usize, accumulate: bool) -> Dst<'static> {
        assert!(
            offset <= self.len,
            "output offset {offset} past {}",
            self.len
        );
        Dst {
            // SAFETY: `offset` is at most the length: in bounds or one past the end.
            ptr: unsafe { self.ptr.add(offset) },
            len: self.len - offset,
            row,
            accumulate,
            buffer: PhantomData,
        }
    }
}

impl Out {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Self {
        Self {
            data: vec![0.0; len],
        }
    }

    /// A pointer for the tasks.
    pub fn ptr(&mut self) -> OutPtr {
        OutPtr {
            ptr: self.data.as_mut_ptr(),
            len: self.data.len(),
        }
    }

    /// The values.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// The buffer as a contiguous tensor of `shape`.
    pub fn into_tensor(self, shape: [usize; 4]) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(self.data, shape))
    }
}

/// A strided matrix operand: element `[0, 0]` of a borrowed buffer, the elements left from
/// there, row stride and column stride.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    ptr: *const f32,
    len: usize,
    row: usize,
    col: usize,
    buffer: PhantomData<&'a [f32]>,
}

impl<'a> Mat<'a> {
    /// The matrix starting at `data[start]`, rows `row` and columns `col` elements apart.
    /// Panics when `start` is past the end of `data`.
    pub fn new(data: &'a [f32], start: usize, row: usize, col: usize) -> Self {
        let data = &data[start..];
        Self {
            ptr: data.as_ptr(),
            len: data.len(),
            row,
            col,
            buffer: PhantomData,
        }
    }

    /// The transpose (rows and columns swapped).
    pub fn t(self) -> Self {
        Self {
            row: self.col,
            col: self.row,
            ..self
        }
    }
}

/// A GEMM destination: element `[0, 0]`, the elements left from there, row stride (columns
/// contiguous), and whether the product is added to what is there.
pub struct Dst<'a> {
    ptr: *mut f32,
    len: usize,
    row: usize,
    accumulate: bool,
    buffer: PhantomData<&'a mut [f32]>,
}

impl<'a> Dst<'a> {
    /// The product overwrites `values` (a task's own scratch), rows `row` apart.
    pub fn scratch(values: &'a mut [f32], row: usize) -> Self {
        Self {
            ptr: values.as_mut_ptr(),
            len: values.len(),
            row,
            accumulate: false,
            buffer: PhantomData,
        }
    }
}

/// Whether a `rows × cols` matrix with strides `row`, `col` fits in `len` elements.
fn fits([rows, cols]: [usize; 2], [row, col]: [usize; 2], len: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1)
        .checked_mul(row)
        .zip((cols - 1).checked_mul(col))
        .and_then(|(a, b)| a.checked_add(b));
    last.is_some_and(|last| last < len)
}

/// `dst[m×n] (+)= scale · lhs[m×k] · rhs[k×n]`, single-threaded (the kernels parallelise
/// over heads). Each operand's shape and strides are checked against the buffer it points
/// into first: an operand too short panics, before the GEMM reads or writes anything.
///
/// # Safety
/// While the call runs, no one else may read or write the elements of `dst` the product
/// covers (in particular `dst` must not overlap `lhs` or `rhs`); a [`Dst`] made by
/// [`OutPtr::dst`] must point into an [`Out`] that is still alive.
pub unsafe fn matmul([m, n, k]: [usize; 3], dst: Dst<'_>, lhs: Mat<'_>, rhs: Mat<'_>, scale: f32) {
    assert!(
        fits([m, k], [lhs.row, lhs.col], lhs.len)
            && fits([k, n], [rhs.row, rhs.col], rhs.len)
            && fits([m, n], [dst.row, 1], dst.len),
        "matmul [{m}×{k}]·[{k}×{n}]: an operand is shorter than its shape and strides"
    );
    // SAFETY: every operand was made from a live buffer (a borrowed slice, or an `Out` the
    // caller keeps alive) and its whole extent lies inside it (checked above); the caller
    // guarantees that `dst`'s elements are this call's alone.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            1,
            dst.row as isize,
            dst.accumulate,
            lhs.ptr,
            lhs.col as isize,
            lhs.row as isize,
            rhs.ptr,
            rhs.col as isize,
            rhs.row as isize,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Shape;

    fn names() -> [&'static str; 2] {
        ["test", "x"]
    }

    #[test]
    fn a_layout_inside_its_buffer_passes() {
        let layout = Layout::new(Shape::new([2, 3]), vec![3, 1], 0);
        assert!(check_layout(&layout, 6, names()).is_ok());
        let transposed = Layout::new(Shape::new([3, 2]), vec![1, 3], 0);
        assert!(check_layout(&transposed, 6, names()).is_ok());
        let empty = Layout::new(Shape::new([0, 3]), vec![1000, 1], 99);
        assert!(check_layout(&empty, 0, names()).is_ok());
    }

    #[test]
    fn a_layout_past_its_buffer_is_refused() {
        let layout = Layout::new(Shape::new([2, 3]), vec![4, 1], 0);
        let err = check_layout(&layout, 6, names()).unwrap_err();
        assert!(
            matches!(
                err,
                FusedError::OutOfBounds {
                    reach: 6,
                    len: 6,
                    ..
                }
            ),
            "{err}"
        );
        let offset = Layout::new(Shape::new([2, 3]), vec![3, 1], 1);
        assert!(check_layout(&offset, 6, names()).is_err());
        let negative = Layout::new(Shape::new([2, 3]), vec![-3, 1], 2);
        let err = check_layout(&negative, 6, names()).unwrap_err();
        assert!(
            matches!(err, FusedError::OutOfBounds { reach: -1, .. }),
            "{err}"
        );
    }

    #[test]
    fn matmul_refuses_an_operand_shorter_than_its_shape() {
        let (a, b) = (vec![1.0f32; 6], vec![1.0f32; 5]);
        let mut c = vec![0.0f32; 4];
        let product = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: `c` is this test's own scratch.
            unsafe {
                let dst = Dst::scratch(&mut c, 2);
                matmul(
                    [2, 2, 3],
                    dst,
                    Mat::new(&a, 0, 3, 1),
                    Mat::new(&b, 0, 2, 1),
                    1.0,
                )
            }
        }));
        assert!(product.is_err(), "a 3×2 rhs read from 5 elements");
        // SAFETY: as above.
        unsafe {
            let b = vec![1.0f32; 6];
            matmul(
                [2, 2, 3],
                Dst::scratch(&mut c, 2),
                Mat::new(&a, 0, 3, 1),
                Mat::new(&b, 0, 2, 1),
                1.0,
            )
        };
        assert_eq!(c, vec![3.0; 4]);
    }
}
