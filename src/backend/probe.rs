//! Device probes: before any tensor work on a GPU, ask its driver whether the device exists, in
//! ways that cannot take the process down. Burn's GPU runtimes panic inside a device thread when
//! the CUDA driver library is missing or no Vulkan adapter is found; a probe turns each of those
//! into a [`DeviceUnavailable`] error that says what is missing and how to check it.

use std::fmt;

use safeaware_runtime::device::DeviceSpec;

/// A device that answered its probe.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceInfo {
    /// The device as `--device` names it (`cpu`, `cuda:0`, `wgpu`).
    pub device: String,
    /// CPU model, GPU name or wgpu adapter name.
    pub name: String,
    /// Memory the device has, where its driver tells (bytes).
    pub memory_bytes: Option<u64>,
    /// Driver, backend and adapter details.
    pub detail: String,
}

/// A device that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceUnavailable {
    /// The device as `--device` names it.
    pub device: String,
    /// What is missing and how to check it.
    pub reason: String,
}

impl fmt::Display for DeviceUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "device `{}` cannot be used: {}",
            self.device, self.reason
        )
    }
}

impl std::error::Error for DeviceUnavailable {}

/// Probes `spec` (a backend this binary lacks is reported as unavailable too).
pub fn probe(spec: DeviceSpec) -> Result<DeviceInfo, DeviceUnavailable> {
    match spec {
        DeviceSpec::Cpu => Ok(cpu()),
        DeviceSpec::Cuda(index) => cuda(index),
        DeviceSpec::Wgpu => wgpu(),
    }
}

/// Every device of every backend compiled in (one CUDA entry per GPU the driver reports), or
/// the reason a compiled-in backend has none.
pub fn list_devices() -> Vec<Result<DeviceInfo, DeviceUnavailable>> {
    let mut out = Vec::new();
    if cfg!(feature = "cpu") {
        out.push(Ok(cpu()));
    }
    if cfg!(feature = "cuda") {
        match cuda(0) {
            Ok(first) => {
                out.push(Ok(first));
                for index in 1..cuda_count().unwrap_or(1) {
                    out.push(cuda(index));
                }
            }
            Err(err) => out.push(Err(err)),
        }
    }
    if cfg!(feature = "wgpu") {
        out.push(wgpu());
    }
    out
}

/// The CPU this process runs on.
fn cpu() -> DeviceInfo {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    DeviceInfo {
        device: DeviceSpec::Cpu.to_string(),
        name: cpu_name(),
        memory_bytes: meminfo_total_bytes(),
        detail: format!("burn-flex, {threads} hardware thread(s)"),
    }
}

/// The CPU's model name (`/proc/cpuinfo`), or the architecture.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn meminfo_total_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<DeviceInfo, DeviceUnavailable> {
    use cudarc::driver::result as driver;
    let device = DeviceSpec::Cuda(index).to_string();
    let unavailable = |reason: String| DeviceUnavailable {
        device: device.clone(),
        reason,
    };
    // SAFETY: only tries to dlopen the candidate names; nothing is called through them.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(unavailable(format!(
            "the NVIDIA driver library was not found (looked for {} on the dynamic loader's path). \
             Install the NVIDIA driver, check it with `nvidia-smi` and `ldconfig -p | grep libcuda`, \
             or add its folder to LD_LIBRARY_PATH.",
            cudarc::get_lib_name_candidates("cuda").join(", ")
        )));
    }
    driver::init().map_err(|e| {
        unavailable(format!(
            "the NVIDIA driver is installed but did not start (cuInit: {e:?}); `nvidia-smi` shows \
             whether the kernel module and the driver library match"
        ))
    })?;
    let count = cuda_count().map_err(|e| unavailable(e.to_string()))?;
    if index >= count {
        return Err(unavailable(if count == 0 {
            "the NVIDIA driver reports no GPU (check `nvidia-smi` and CUDA_VISIBLE_DEVICES)".into()
        } else {
            format!(
                "the NVIDIA driver reports {count} GPU(s), so the index must be below {count} \
                 (cuda:0 … cuda:{}); check `nvidia-smi` and CUDA_VISIBLE_DEVICES",
                count - 1
            )
        }));
    }
    // SAFETY: as above, dlopen only.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(unavailable(format!(
            "the NVRTC runtime compiler was not found (looked for {}); safeaware compiles its CUDA \
             kernels at run time and needs it: install the CUDA runtime (e.g. the `cuda-nvrtc` \
             package) or add its folder to LD_LIBRARY_PATH",
            cudarc::get_lib_name_candidates("nvrtc").join(", ")
        )));
    }
    let handle = driver::device::get(index as i32)
        .map_err(|e| unavailable(format!("cuDeviceGet: {e:?}")))?;
    let name = driver::device::get_name(handle).unwrap_or_else(|_| "NVIDIA GPU".into());
    // SAFETY: `handle` came from cuDeviceGet after cuInit.
    let memory = unsafe { driver::device::total_mem(handle) }.ok();
    let mut version = 0;
    // SAFETY: the library is loaded and initialised; the pointer is to a local.
    let version = match unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) } {
        cudarc::driver::sys::CUresult::CUDA_SUCCESS => {
            format!("{}.{}", version / 1000, version % 1000 / 10)
        }
        _ => "?".into(),
    };
    Ok(DeviceInfo {
        device,
        name,
        memory_bytes: memory.map(|m| m as u64),
        detail: format!("CUDA driver API {version}, {count} GPU(s) visible"),
    })
}

#[cfg(feature = "cuda")]
fn cuda_count() -> Result<usize, String> {
    cudarc::driver::result::device::get_count()
        .map(|n| n.max(0) as usize)
        .map_err(|e| format!("cuDeviceGetCount failed: {e:?}"))
}

#[cfg(not(feature = "cuda"))]
fn cuda(index: usize) -> Result<DeviceInfo, DeviceUnavailable> {
    Err(not_built(DeviceSpec::Cuda(index), "cuda"))
}

#[cfg(not(feature = "cuda"))]
fn cuda_count() -> Result<usize, String> {
    Ok(0)
}

/// Asks wgpu for an adapter exactly as Burn's wgpu runtime does for the default device (the
/// platform's graphics API, high-performance preference).
#[cfg(feature = "wgpu")]
fn wgpu() -> Result<DeviceInfo, DeviceUnavailable> {
    use burn::backend::wgpu::graphics::{AutoGraphicsApi, GraphicsApi};
    let backend = AutoGraphicsApi::backend();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: backend.into(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let options = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
    };
    let adapter = pollster::block_on(instance.request_adapter(&options)).map_err(|e| {
        DeviceUnavailable {
            device: DeviceSpec::Wgpu.to_string(),
            reason: format!(
                "no {backend:?} adapter was found ({e}). Check the driver with `vulkaninfo --summary`; \
                 without a GPU, Mesa's software Vulkan driver (Debian/Ubuntu: `apt-get install \
                 mesa-vulkan-drivers`) provides one. VK_ICD_FILENAMES / VK_DRIVER_FILES, if set, \
                 must name an installed driver manifest."
            ),
        }
    })?;
    let info = adapter.get_info();
    Ok(DeviceInfo {
        device: DeviceSpec::Wgpu.to_string(),
        name: info.name,
        memory_bytes: None,
        detail: format!(
            "{:?} adapter ({:?}), driver {} {}",
            info.backend, info.device_type, info.driver, info.driver_info
        ),
    })
}

/// On a machine without a display session (no `XDG_RUNTIME_DIR`: servers, containers, CI),
/// turns off Mesa's implicit Vulkan device-selection layer, which would otherwise try to reach a
/// Wayland display and print `error: XDG_RUNTIME_DIR is invalid…` lines that look like ours.
/// wgpu's own adapter choice applies instead. Call at start-up, before any thread exists.
pub fn quiet_headless_vulkan() {
    let headless = std::env::var_os("XDG_RUNTIME_DIR").is_none();
    if cfg!(feature = "wgpu") && headless && std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

#[cfg(not(feature = "wgpu"))]
fn wgpu() -> Result<DeviceInfo, DeviceUnavailable> {
    Err(not_built(DeviceSpec::Wgpu, "wgpu"))
}

/// A backend this binary was built without.
#[allow(dead_code)]
pub(crate) fn not_built(spec: DeviceSpec, feature: &str) -> DeviceUnavailable {
    DeviceUnavailable {
        device: spec.to_string(),
        reason: format!(
            "this binary was built without the `{feature}` backend; rebuild with \
             `cargo build --release --features {feature}`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_always_answers() {
        let info = probe(DeviceSpec::Cpu).unwrap();
        assert_eq!(info.device, "cpu");
        assert!(!info.name.is_empty());
        assert!(list_devices().iter().any(|d| d.as_ref() == Ok(&info)));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_backend_not_built_is_unavailable_with_the_rebuild_command() {
        let err = probe(DeviceSpec::Cuda(0)).unwrap_err();
        assert_eq!(err.device, "cuda:0");
        assert!(err.reason.contains("--features cuda"), "{err}");
    }
}
