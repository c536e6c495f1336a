//! The device memory a training step holds on a GPU backend whose allocator is CubeCL's (wgpu,
//! CUDA): its memory pools' usage, sampled once the device has finished the forward pass and again
//! once it has finished the backward pass of every step, with the largest values kept. The
//! bytes reserved are the pools' high-water mark (what the driver has handed out, transient
//! buffers of the step included); the bytes in use at the samples are the live tensors
//! (parameters, optimiser state, and the saved activations after the forward).

use anyhow::Result;
use burn::tensor::backend::Backend;
use serde_json::{json, Map, Value};

/// One reading of a device's memory pools, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct PoolUsage {
    /// Bytes of live allocations.
    pub(super) in_use: u64,
    /// Bytes the pools hold from the driver.
    pub(super) reserved: u64,
}

/// The largest readings seen so far; empty on a device without CubeCL pools we can read.
#[derive(Debug, Default)]
pub(super) struct PoolPeak {
    peak: Option<PoolUsage>,
}

impl PoolPeak {
    /// Waits for `device` to finish its queued work, reads its pools and keeps the maxima;
    /// does nothing (no sync) on a device without readable pools.
    pub(super) fn sample<B: Backend>(&mut self, device: &B::Device) -> Result<()> {
        if pool_usage(device).is_none() {
            return Ok(());
        }
        B::sync(device).map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))?;
        if let Some(now) = pool_usage(device) {
            self.record(now);
        }
        Ok(())
    }

    /// Keeps the maxima of `now` and what was seen before.
    pub(super) fn record(&mut self, now: PoolUsage) {
        let peak = self.peak.get_or_insert(now);
        peak.in_use = peak.in_use.max(now.in_use);
        peak.reserved = peak.reserved.max(now.reserved);
    }

    /// The maxima, if any reading was taken.
    pub(super) fn peak(&self) -> Option<PoolUsage> {
        self.peak
    }

    /// The report's fields: `pool_reserved_peak_mib` and `pool_in_use_peak_mib` (null when
    /// nothing was read).
    pub(super) fn fields(&self) -> Map<String, Value> {
        let mib = |f: fn(&PoolUsage) -> u64| self.peak().map(|p| f(&p) as f64 / MIB);
        let mut out = Map::new();
        out.insert("pool_reserved_peak_mib".into(), json!(mib(|p| p.reserved)));
        out.insert("pool_in_use_peak_mib".into(), json!(mib(|p| p.in_use)));
        out
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// The CubeCL pools' usage of `device` when it is a wgpu or CUDA device; `None` for any other.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn pool_usage<D: 'static>(device: &D) -> Option<PoolUsage> {
    let device = device as &dyn std::any::Any;
    #[cfg(feature = "wgpu")]
    if let Some(device) = device.downcast_ref::<burn_wgpu::WgpuDevice>() {
        return runtime_usage::<cubecl::wgpu::WgpuRuntime>(device);
    }
    #[cfg(feature = "cuda")]
    if let Some(device) = device.downcast_ref::<burn_cuda::CudaDevice>() {
        return runtime_usage::<cubecl::cuda::CudaRuntime>(device);
    }
    None
}

/// The pools' usage of a CubeCL runtime's device; `None` when the runtime cannot say.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn runtime_usage<R: cubecl::Runtime>(device: &R::Device) -> Option<PoolUsage> {
    let usage = R::client(device).memory_usage().ok()?;
    Some(PoolUsage {
        in_use: usage.bytes_in_use,
        reserved: usage.bytes_reserved,
    })
}

/// Without a GPU backend no device has pools this reads.
#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
fn pool_usage<D: 'static>(_device: &D) -> Option<PoolUsage> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_largest_reading_of_each_kind() {
        let mut peak = PoolPeak::default();
        assert_eq!(peak.fields()["pool_reserved_peak_mib"], Value::Null);
        peak.record(PoolUsage {
            in_use: 3 << 20,
            reserved: 4 << 20,
        });
        peak.record(PoolUsage {
            in_use: 1 << 20,
            reserved: 8 << 20,
        });
        let got = peak.peak().unwrap();
        assert_eq!((got.in_use, got.reserved), (3 << 20, 8 << 20));
        assert_eq!(peak.fields()["pool_reserved_peak_mib"], json!(8.0));
        assert_eq!(peak.fields()["pool_in_use_peak_mib"], json!(3.0));
    }

    #[cfg(feature = "cpu")]
    #[test]
    fn the_cpu_has_no_pools_to_read() {
        use burn::backend::{flex::FlexDevice, Flex};
        let mut peak = PoolPeak::default();
        peak.sample::<Flex>(&FlexDevice).unwrap();
        assert!(peak.peak().is_none());
    }
}
