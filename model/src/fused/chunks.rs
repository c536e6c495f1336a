//! Fixed-size parallel chunks for the row-wise and element-wise kernels (norms, activations):
//! inputs read as contiguous f32 slices, outputs written by rayon tasks that each own a fixed
//! range of rows, and per-chunk partial sums reduced in chunk order. Chunk boundaries depend only on the shape, so results depend neither on
//! rayon's work splitting nor on the thread count.

use std::ops::Range;

use burn::tensor::{Shape, TensorData};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::error::FusedError;
use super::strided::{check_tensor, Out};

/// Input values one task reads (32 KiB of f32): small tensors run as a single task.
const TASK_VALUES: usize = 8192;

/// `tensor` with a contiguous layout (itself, without a copy, when it already has one), once
/// its layout is checked to lie inside its buffer (`names`: kernel and operand, for the error).
pub fn contiguous(tensor: &FlexTensor, names: [&'static str; 2]) -> Result<FlexTensor, FusedError> {
    check_tensor(tensor, names)?;
    Ok(if tensor.is_contiguous() {
        tensor.clone()
    } else {
        tensor.to_contiguous()
    })
}

/// The dimensions of `tensor`.
pub fn dims(tensor: &FlexTensor) -> Vec<usize> {
    tensor.layout().shape().to_vec()
}

/// The values of a contiguous f32 tensor (see [`contiguous`]).
pub fn values(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice().expect("a contiguous f32 tensor")
}

/// A contiguous tensor of `shape` holding `values`.
pub fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Runs `task` in parallel over `rows` rows of `width` input values each, in fixed chunks of
/// rows; each call gets its row range and its part of every output (`widths[k]` values per row
/// of output `k`). Returns the outputs and each chunk's result, in chunk order.
pub fn by_rows<const O: usize, P: Send>(
    rows: usize,
    width: usize,
    widths: [usize; O],
    task: impl Fn(Range<usize>, [&mut [f32]; O]) -> P + Sync,
) -> ([Vec<f32>; O], Vec<P>) {
    let per_task = (TASK_VALUES / width.max(1)).max(1);
    let mut outputs = widths.map(|w| Out::zeros(rows * w));
    let pointers = outputs.each_mut().map(Out::ptr);
    let results = (0..rows.div_ceil(per_task))
        .into_par_iter()
        .map(|chunk| {
            let range = chunk * per_task..((chunk + 1) * per_task).min(rows);
            let parts = std::array::from_fn(|k| {
                let (start, len) = (range.start * widths[k], range.len() * widths[k]);
                // SAFETY: chunks own disjoint row ranges, so no two tasks' slices overlap, and
                // the buffers outlive this parallel loop (the range is bounds-checked).
                unsafe { pointers[k].slice_mut(start, len) }
            });
            task(range, parts)
        })
        .collect();
    (outputs.map(Out::into_vec), results)
}

/// `f` applied to every element of equally long `inputs`, in parallel fixed chunks, giving
/// `O` outputs of the same length.
pub fn pointwise<const I: usize, const O: usize>(
    inputs: [&[f32]; I],
    f: impl Fn([f32; I]) -> [f32; O] + Sync,
) -> [Vec<f32>; O] {
    let len = inputs[0].len();
    assert!(inputs.iter().all(|x| x.len() == len), "pointwise: lengths");
    let (outputs, _) = by_rows(len, 1, [1; O], |range, mut outs| {
        let inputs = inputs.map(|x| &x[range.clone()]);
        pointwise_chunk(inputs, &mut outs, &f);
    });
    outputs
}

/// One chunk of [`pointwise`], compiled for AVX-512 or AVX2 when the CPU has them (the loop
/// and `f` are inlined into a function with those target features, so they vectorise at that
/// width; `f` is then evaluated with the same operations, so results do not change).
fn pointwise_chunk<const I: usize, const O: usize, F: Fn([f32; I]) -> [f32; O]>(
    inputs: [&[f32]; I],
    outs: &mut [&mut [f32]; O],
    f: &F,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { pointwise_avx512(inputs, outs, f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { pointwise_avx2(inputs, outs, f) };
        }
    }
    pointwise_loop(inputs, outs, f)
}

/// [`pointwise_loop`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pointwise_avx512<const I: usize, const O: usize, F: Fn([f32; I]) -> [f32; O]>(
    inputs: [&[f32]; I],
    outs: &mut [&mut [f32]; O],
    f: &F,
) {
    pointwise_loop(inputs, outs, f)
}

/// [`pointwise_loop`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pointwise_avx2<const I: usize, const O: usize, F: Fn([f32; I]) -> [f32; O]>(
    inputs: [&[f32]; I],
    outs: &mut [&mut [f32]; O],
    f: &F,
) {
    pointwise_loop(inputs, outs, f)
}

/// The element loop; equal lengths, checked up front, let the compiler drop the bounds checks.
#[inline(always)]
fn pointwise_loop<const I: usize, const O: usize, F: Fn([f32; I]) -> [f32; O]>(
    inputs: [&[f32]; I],
    outs: &mut [&mut [f32]; O],
    f: &F,
) {
    let n = inputs[0].len();
    assert!(inputs.iter().all(|x| x.len() == n) && outs.iter().all(|out| out.len() == n));
    for i in 0..n {
        let values = f(inputs.map(|x| x[i]));
        for (out, value) in outs.iter_mut().zip(values) {
            out[i] = value;
        }
    }
}

/// Element-wise sum of per-chunk partial vectors of `width` values, in chunk order (a fixed
/// order, so the result is deterministic).
pub fn sum_in_order(partials: &[Vec<f32>], width: usize) -> Vec<f32> {
    let mut total = vec![0.0f32; width];
    for partial in partials {
        total.iter_mut().zip(partial).for_each(|(t, p)| *t += p);
    }
    total
}
