//! Which data-parallel path a multi-device run takes, and the NCCL one itself.
//!
//! Two or more `cuda:N` devices in a binary built with the `nccl` feature run Burn's NCCL path:
//! gradients summed over the GPUs inside `backward()` (overlapped with it), one thread and one
//! optimiser per GPU in lock step (`safeaware_trainer::nccl_step`). Everything else with
//! several devices (CPU and wgpu workers, a build without `nccl`, a machine without libnccl)
//! runs the portable path (`safeaware_trainer::data_parallel`), which gathers the gradients on
//! the first device. [`DATA_PARALLEL_ENV`] forces either path.
//!
//! The `nccl` feature turns on Burn's `distributed` feature, under which Burn's autodiff runs
//! only on backends that implement `DistributedBackend`: the CPU backend does not, so `nccl`
//! builds leave out `cpu` (`--no-default-features --features cuda,nccl`).

use anyhow::{bail, Result};

use super::probe::DeviceUnavailable;
use safeaware_runtime::device::DeviceSpec;

#[cfg(all(feature = "nccl", feature = "cpu"))]
compile_error!(
    "the `nccl` feature cannot be combined with `cpu`: Burn's `distributed` feature makes its \
     autodiff require a DistributedBackend, which the CPU backend is not. Build with \
     `--no-default-features --features cuda,nccl`."
);

/// Chooses the data-parallel path: `auto` (the default: NCCL where it can run, else portable),
/// `nccl` (NCCL or an error) or `portable`.
pub const DATA_PARALLEL_ENV: &str = "SAFEAWARE_DATA_PARALLEL";

/// The path a multi-device run takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Burn's NCCL all-reduce inside backward, one optimiser per GPU.
    Nccl,
    /// Gradients gathered and summed on the first device, one optimiser there.
    Portable,
}

/// How [`DATA_PARALLEL_ENV`] asks the path to be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Auto,
    Nccl,
    Portable,
}

impl Request {
    fn parse(value: Option<&str>) -> Result<Self> {
        match value.map(str::trim) {
            None | Some("") | Some("auto") => Ok(Request::Auto),
            Some("nccl") => Ok(Request::Nccl),
            Some("portable") => Ok(Request::Portable),
            Some(other) => {
                bail!("{DATA_PARALLEL_ENV}={other:?}: expected `auto`, `nccl` or `portable`")
            }
        }
    }
}

/// The path for `workers` (one backend, as `parse_workers` gives them, at least one), as
/// `setting` (the value of [`DATA_PARALLEL_ENV`]) asks; `nccl_missing` says why NCCL cannot
/// run here, if it cannot (asked only for CUDA devices). Returns the path and the line to log
/// (`None` for one device on its own). NCCL asked for where it cannot run is a
/// [`DeviceUnavailable`]. One CUDA device with `nccl` asked for runs the NCCL path with one
/// rank: the same update as one device, through NCCL (a check for a machine with one GPU).
pub fn choose(
    workers: &[DeviceSpec],
    setting: Option<&str>,
    nccl_missing: impl FnOnce() -> Option<String>,
) -> Result<(Path, Option<String>)> {
    let request = Request::parse(setting)?;
    let cuda = matches!(workers[0], DeviceSpec::Cuda(_));
    // One GPU takes the NCCL path only when asked: a one-rank check of the NCCL machinery.
    if workers.len() < 2 && !(cuda && request == Request::Nccl) {
        return Ok((Path::Portable, None));
    }
    let names = match workers.iter().all(|w| *w == workers[0]) {
        true => format!("{} workers on {}", workers.len(), workers[0]),
        false => workers
            .iter()
            .map(DeviceSpec::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let portable = |why: &str| {
        let line = format!(
            "data parallel on {names}: portable path, gradients summed on {} ({why})",
            workers[0]
        );
        Ok((Path::Portable, Some(line)))
    };
    match (request, cuda) {
        (Request::Portable, _) => portable(&format!("{DATA_PARALLEL_ENV}=portable")),
        (Request::Nccl, false) => Err(DeviceUnavailable {
            device: names,
            reason: format!("{DATA_PARALLEL_ENV}=nccl needs CUDA devices (`cuda:0,cuda:1`)"),
        }
        .into()),
        (Request::Auto, false) => portable("NCCL is for CUDA devices only"),
        (_, true) => match (nccl_missing(), request) {
            (None, _) => Ok((
                Path::Nccl,
                Some(format!(
                    "data parallel on {names}: NCCL, gradients all-reduced during backward"
                )),
            )),
            (Some(why), Request::Nccl) => Err(DeviceUnavailable {
                device: names,
                reason: format!("{DATA_PARALLEL_ENV}=nccl, but {why}"),
            }
            .into()),
            (Some(why), _) => portable(&why),
        },
    }
}

/// Why Burn's NCCL path cannot run in this process, if it cannot: the binary lacks the `nccl`
/// feature, or libnccl is not on the dynamic loader's path (it is loaded at run time).
pub fn nccl_missing() -> Option<String> {
    if !cfg!(feature = "nccl") {
        return Some(
            "this binary was built without the `nccl` feature (rebuild with \
             `--no-default-features --features cuda,nccl`)"
                .into(),
        );
    }
    nccl_library_missing()
}

#[cfg(feature = "nccl")]
fn nccl_library_missing() -> Option<String> {
    // SAFETY: only tries to dlopen the candidate names; nothing is called through them.
    let present = unsafe { cudarc::nccl::sys::is_culib_present() };
    (!present).then(|| {
        format!(
            "the NCCL library was not found (looked for {}); install NCCL (e.g. the `libnccl2` \
             package) or add its folder to LD_LIBRARY_PATH",
            cudarc::get_lib_name_candidates("nccl").join(", ")
        )
    })
}

#[cfg(not(feature = "nccl"))]
fn nccl_library_missing() -> Option<String> {
    None
}

/// Burn's NCCL gradient sync on a backend with `DistributedBackend` (Autodiff<Cuda>): every
/// trained parameter marked with its parameter id, gradients summed (each worker's loss is
/// already divided by the whole global batch's target tokens, so the sum is that batch's
/// gradient).
#[cfg(feature = "nccl")]
pub struct NcclSync;

#[cfg(feature = "nccl")]
impl<B> safeaware_runtime::task::GradientSync<B> for NcclSync
where
    B: burn::tensor::backend::AutodiffBackend
        + burn::tensor::backend::distributed::DistributedBackend,
{
    fn start(&self, devices: &[B::Device]) -> Result<()> {
        use burn::tensor::backend::distributed::{DistributedConfig, ReduceOperation};
        let config = DistributedConfig {
            all_reduce_op: ReduceOperation::Sum,
        };
        B::start_communication_server(devices, config);
        Ok(())
    }

    fn mark<M: burn::module::Module<B>>(&self, model: M) -> M {
        model.map(&mut MarkDistributed)
    }

    fn close(&self, devices: &[B::Device]) {
        if let Some(first) = devices.first() {
            B::close_communication_server(first);
        }
    }
}

/// Marks each trained parameter as distributed under its own id (the same on every replica:
/// `fork` keeps parameter ids).
#[cfg(feature = "nccl")]
struct MarkDistributed;

#[cfg(feature = "nccl")]
impl<B: burn::tensor::backend::AutodiffBackend> burn::module::ModuleMapper<B> for MarkDistributed {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<burn::tensor::Tensor<B, D>>,
    ) -> burn::module::Param<burn::tensor::Tensor<B, D>> {
        use burn::tensor::backend::distributed::DistributedParamId;
        let (id, tensor, mapper) = param.consume();
        let tensor = match tensor.is_require_grad() {
            true => tensor.set_distributed(DistributedParamId::from(id.val())),
            false => tensor,
        };
        burn::module::Param::from_mapped_value(id, tensor, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuda2() -> Vec<DeviceSpec> {
        vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]
    }

    #[test]
    fn two_gpus_take_nccl_where_it_can_run() {
        let (path, line) = choose(&cuda2(), None, || None).unwrap();
        assert_eq!(path, Path::Nccl);
        assert!(line.unwrap().contains("NCCL"));
        let (path, _) = choose(&cuda2(), Some("nccl"), || None).unwrap();
        assert_eq!(path, Path::Nccl);
    }

    #[test]
    fn without_nccl_auto_falls_back_and_a_forced_nccl_is_a_device_error() {
        let missing = || Some("the NCCL library was not found".to_string());
        let (path, line) = choose(&cuda2(), Some("auto"), missing).unwrap();
        assert_eq!(path, Path::Portable);
        assert!(line.unwrap().contains("NCCL library was not found"));
        let err = choose(&cuda2(), Some("nccl"), missing).unwrap_err();
        assert!(crate::backend::is_device_error(&err), "{err:#}");
        assert!(err.to_string().contains("cuda:0, cuda:1"), "{err:#}");
    }

    #[test]
    fn portable_can_be_forced_and_other_backends_are_portable() {
        let asked = || -> Option<String> { panic!("NCCL need not be looked for") };
        let (path, line) = choose(&cuda2(), Some("portable"), asked).unwrap();
        assert_eq!(path, Path::Portable);
        assert!(line.unwrap().contains("=portable"));
        let cpu = [DeviceSpec::Cpu, DeviceSpec::Cpu];
        assert_eq!(choose(&cpu, None, asked).unwrap().0, Path::Portable);
        let err = choose(&cpu, Some("nccl"), asked).unwrap_err();
        assert!(err.to_string().contains("needs CUDA devices"), "{err:#}");
        assert!(crate::backend::is_device_error(&err));
    }

    #[test]
    fn one_device_needs_no_path_unless_nccl_is_asked_for() {
        let one = [DeviceSpec::Cuda(0)];
        let (path, line) = choose(&one, None, || None).unwrap();
        assert_eq!((path, line), (Path::Portable, None));
        assert_eq!(choose(&one, Some("nccl"), || None).unwrap().0, Path::Nccl);
        let err = choose(&one, Some("nccl"), || Some("no libnccl".into())).unwrap_err();
        assert!(err.to_string().contains("no libnccl"), "{err:#}");
        let cpu = [DeviceSpec::Cpu];
        assert_eq!(
            choose(&cpu, Some("nccl"), || None).unwrap().0,
            Path::Portable
        );
        let err = choose(&cuda2(), Some("ring"), || None).unwrap_err();
        assert!(err.to_string().contains(DATA_PARALLEL_ENV), "{err:#}");
    }

    #[cfg(not(feature = "nccl"))]
    #[test]
    fn a_build_without_nccl_says_so() {
        let why = nccl_missing().unwrap();
        assert!(why.contains("`nccl` feature"), "{why}");
    }
}
