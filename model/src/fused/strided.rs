//! Reading burn-flex tensors in place: a [`View`] is an f32 buffer with a rank-4 shape and
//! element strides (head-split tensors are transposed views, read without a copy), and
//! [`matmul`] is burn-flex's own GEMM on such strided operands. [`Out`] lets parallel tasks
//! write disjoint parts of one output buffer.

use burn::tensor::TensorData;
use burn_flex::FlexTensor;

/// A rank-4 f32 tensor read in place; the last dimension is contiguous.
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
    /// strided one (negative strides, or a non-contiguous last dimension).
    pub fn new(tensor: &FlexTensor) -> Self {
        let layout = tensor.layout();
        let fits = layout.num_dims() == 4
            && layout.strides().iter().all(|&s| s >= 0)
            && (layout.strides()[3] == 1 || layout.shape()[3] == 1);
        let tensor = if fits {
            tensor.clone()
        } else {
            tensor.to_contiguous()
        };
        let layout = tensor.layout();
        let (dims, strides) = (layout.shape(), layout.strides());
        Self {
            shape: [dims[0], dims[1], dims[2], dims[3]],
            strides: [
                strides[0] as usize,
                strides[1] as usize,
                strides[2] as usize,
            ],
            offset: layout.start_offset(),
            tensor: tensor.clone(),
        }
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

/// A raw pointer into an [`Out`] that tasks may share.
#[derive(Clone, Copy)]
pub struct OutPtr(*mut f32);

// SAFETY: tasks holding copies write disjoint elements (each kernel says why) and the buffer
// outlives them (they run inside a rayon scope that `Out` outlives).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The element at `offset`.
    pub fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: callers stay inside the buffer.
        unsafe { self.0.add(offset) }
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
        OutPtr(self.data.as_mut_ptr())
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

/// A strided matrix operand: pointer to element `[0, 0]`, row stride, column stride.
#[derive(Clone, Copy)]
pub struct Mat {
    pub ptr: *const f32,
    pub row: usize,
    pub col: usize,
}

/// A GEMM destination: pointer to element `[0, 0]`, row stride (columns contiguous), and
/// whether the product is added to what is there.
#[derive(Clone, Copy)]
pub struct Dst {
    ptr: *mut f32,
    row: usize,
    accumulate: bool,
}

impl Dst {
    /// The product overwrites the destination.
    pub fn set(ptr: *mut f32, row: usize) -> Self {
        Self {
            ptr,
            row,
            accumulate: false,
        }
    }

    /// The product is added to the destination.
    pub fn add(ptr: *mut f32, row: usize) -> Self {
        Self {
            ptr,
            row,
            accumulate: true,
        }
    }
}

/// `dst[m×n] (+)= scale · lhs[m×k] · rhs[k×n]`, single-threaded (the kernels parallelise
/// over heads).
///
/// # Safety
/// Every operand must be valid for its shape and strides, and `dst` must not alias the others.
pub unsafe fn matmul([m, n, k]: [usize; 3], dst: Dst, lhs: Mat, rhs: Mat, scale: f32) {
    // SAFETY: forwarded from the caller.
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
