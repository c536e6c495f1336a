//! Devices as recipes and the command line name them (`cpu | cuda:N | wgpu`), and the worker
//! lists of data-parallel runs (`cpu:0, cpu:1`, `cuda:0, cuda:1`). Naming a device compiles
//! nothing in: the binary checks that its backend was built and that the device answers
//! (`src/backend/`).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

/// A device name that names no device, or a worker list that is not one backend's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device `{0}`: expected `cpu`, `cuda:N` or `wgpu`")]
    Unknown(String),
    #[error("the device list is empty")]
    EmptyList,
    #[error("device `{0}` is listed twice")]
    Twice(String),
    #[error("devices `{first}` and `{other}` are of different backends: one run uses one backend")]
    MixedBackends { first: String, other: String },
}

/// A device named on the command line or in a recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The pure-Rust CPU backend (feature `cpu`).
    #[default]
    Cpu,
    /// An NVIDIA GPU by index (feature `cuda`).
    Cuda(usize),
    /// The default wgpu adapter (feature `wgpu`).
    Wgpu,
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, DeviceError> {
        match s.trim() {
            "cpu" => Ok(Self::Cpu),
            "wgpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(index)) => Ok(Self::Cuda(index)),
                _ => Err(DeviceError::Unknown(other.to_string())),
            },
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map_err(|e: DeviceError| e.to_string())
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
            Self::Wgpu => write!(f, "wgpu"),
        }
    }
}

/// The workers of a data-parallel run, from names such as `cpu:0`, `cpu:1`, `cuda:0`, `wgpu:1`:
/// one [`DeviceSpec`] per worker, all of one backend, each name once. `cpu:N` and `wgpu:N` name
/// worker N on the CPU or the wgpu adapter (those backends have one device each).
pub fn parse_workers(names: &[String]) -> Result<Vec<DeviceSpec>, DeviceError> {
    if names.is_empty() {
        return Err(DeviceError::EmptyList);
    }
    let mut seen = HashSet::new();
    let mut workers = Vec::new();
    for name in names {
        let name = name.trim();
        if !seen.insert(name.to_string()) {
            return Err(DeviceError::Twice(name.to_string()));
        }
        let spec = match name.split_once(':') {
            Some(("cpu", n)) if n.parse::<usize>().is_ok() => DeviceSpec::Cpu,
            Some(("wgpu", n)) if n.parse::<usize>().is_ok() => DeviceSpec::Wgpu,
            _ => name.parse()?,
        };
        if let Some(first) = workers.first() {
            if std::mem::discriminant(first) != std::mem::discriminant(&spec) {
                return Err(DeviceError::MixedBackends {
                    first: names[0].clone(),
                    other: name.to_string(),
                });
            }
        }
        workers.push(spec);
    }
    Ok(workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_worker_lists() {
        assert_eq!(
            parse_workers(&names(&["cpu:0", "cpu:1"])).unwrap(),
            [DeviceSpec::Cpu; 2]
        );
        assert_eq!(
            parse_workers(&names(&["cuda:0", "cuda:1"])).unwrap(),
            [DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]
        );
        assert_eq!(
            parse_workers(&names(&["wgpu:0", "wgpu:1"])).unwrap(),
            [DeviceSpec::Wgpu; 2]
        );
    }

    #[test]
    fn refuses_bad_worker_lists_naming_the_device() {
        assert_eq!(
            parse_workers(&names(&["cpu:0", "cpu:0"])),
            Err(DeviceError::Twice("cpu:0".into()))
        );
        let mixed = parse_workers(&names(&["cpu:0", "cuda:0"])).unwrap_err();
        assert_eq!(
            mixed.to_string(),
            "devices `cpu:0` and `cuda:0` are of different backends: one run uses one backend"
        );
        assert_eq!(parse_workers(&[]), Err(DeviceError::EmptyList));
        assert_eq!(
            parse_workers(&names(&["tpu:0"])),
            Err(DeviceError::Unknown("tpu:0".into()))
        );
    }

    #[test]
    fn parses_device_names_and_prints_them_back() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!(" wgpu ".parse::<DeviceSpec>().unwrap(), DeviceSpec::Wgpu);
        for spec in [DeviceSpec::Cpu, DeviceSpec::Cuda(2), DeviceSpec::Wgpu] {
            assert_eq!(spec.to_string().parse::<DeviceSpec>(), Ok(spec));
        }
        assert_eq!(
            "tpu".parse::<DeviceSpec>().unwrap_err().to_string(),
            "unknown device `tpu`: expected `cpu`, `cuda:N` or `wgpu`"
        );
        // `cpu:N` and `wgpu:N` name workers (parse_workers), not devices.
        for bad in ["tpu", "cuda:x", "cuda:", "cuda:-1", "cpu:1", "wgpu:1", ""] {
            assert!(bad.parse::<DeviceSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_reads_and_writes_the_name() {
        use serde::de::value::{Error, StringDeserializer};
        use serde::Deserialize;
        let read = |s: &str| DeviceSpec::deserialize(StringDeserializer::<Error>::new(s.into()));
        assert_eq!(read("cuda:1").unwrap(), DeviceSpec::Cuda(1));
        assert_eq!(String::from(DeviceSpec::Cuda(1)), "cuda:1");
        assert_eq!(
            read("npu").unwrap_err().to_string(),
            "unknown device `npu`: expected `cpu`, `cuda:N` or `wgpu`"
        );
    }
}
