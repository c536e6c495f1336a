//! Reading and writing safetensors files as HF lays them out: a single `model.safetensors` or
//! shards listed by `model.safetensors.index.json`. Floats on disk may be f32, f16 or bf16 and
//! are handed out as f32; writing streams one tensor at a time into an atomically renamed file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use safeaware_common::fsio::write_atomic_with;
use safetensors::tensor::{Dtype, SafeTensors};
use serde_json::{json, Map, Value};

use crate::error::{ModelError, Result};

/// The single-file weights name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The sharded-weights index name.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Floating-point formats this crate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FloatDtype {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// bfloat16.
    BF16,
}

impl FloatDtype {
    /// The safetensors / torch name (`F32`, `F16`, `BF16`).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
        }
    }

    /// The format named `name` (`f32`, `f16`, `bf16`, any case).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::F32, Self::F16, Self::BF16]
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(name))
    }

    fn from_safetensors(dtype: Dtype) -> Option<Self> {
        match dtype {
            Dtype::F32 => Some(Self::F32),
            Dtype::F16 => Some(Self::F16),
            Dtype::BF16 => Some(Self::BF16),
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
        }
    }

    /// Little-endian bytes of `values` in this format.
    fn encode(self, values: &[f32], out: &mut Vec<u8>) {
        out.reserve(values.len() * self.size());
        match self {
            Self::F32 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Self::F16 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes())),
            Self::BF16 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&half::bf16::from_f32(*v).to_le_bytes())),
        }
    }

    fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            Self::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Self::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Self::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        }
    }
}

/// Where one tensor lives.
#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range inside the file buffer.
    range: std::ops::Range<usize>,
}

/// All tensors of a model folder, read into memory and validated.
#[derive(Debug)]
pub struct TensorStore {
    files: Vec<(PathBuf, Vec<u8>)>,
    entries: BTreeMap<String, Entry>,
}

impl TensorStore {
    /// Opens `dir/model.safetensors`, or every shard of `dir/model.safetensors.index.json`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let mut store = Self {
            files: Vec::new(),
            entries: BTreeMap::new(),
        };
        for path in weight_files(dir)? {
            store.add_file(path)?;
        }
        Ok(store)
    }

    /// Opens one safetensors file.
    pub fn open_file(path: &Path) -> Result<Self> {
        let mut store = Self {
            files: Vec::new(),
            entries: BTreeMap::new(),
        };
        store.add_file(path.to_owned())?;
        Ok(store)
    }

    fn add_file(&mut self, path: PathBuf) -> Result<()> {
        let bytes = std::fs::read(&path).map_err(ModelError::io("reading", &path))?;
        let (header_len, metadata) =
            SafeTensors::read_metadata(&bytes).map_err(|e| ModelError::Safetensors {
                path: path.clone(),
                message: describe_metadata_error(&e, &bytes),
            })?;
        let data_start = 8 + header_len;
        let file = self.files.len();
        for (name, info) in metadata.tensors() {
            let (start, end) = info.data_offsets;
            let entry = Entry {
                file,
                dtype: info.dtype,
                shape: info.shape.clone(),
                range: data_start + start..data_start + end,
            };
            if self.entries.insert(name.clone(), entry).is_some() {
                return Err(ModelError::Safetensors {
                    path,
                    message: format!("tensor `{name}` appears in more than one shard"),
                });
            }
        }
        self.files.push((path, bytes));
        Ok(())
    }

    /// The store with every tensor renamed by `rename` (one checkpoint layout read as
    /// another); two tensors given the same name are an error naming both.
    pub fn renamed(mut self, rename: impl Fn(&str) -> String) -> Result<Self> {
        let mut entries = BTreeMap::new();
        for (name, entry) in std::mem::take(&mut self.entries) {
            let new_name = rename(&name);
            let path = self.files[entry.file].0.clone();
            if let Some(_clash) = entries.insert(new_name.clone(), entry) {
                return Err(ModelError::Safetensors {
                    path,
                    message: format!(
                        "tensor `{name}` and another tensor both stand for `{new_name}`"
                    ),
                });
            }
        }
        self.entries = entries;
        Ok(self)
    }

    /// Every tensor name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// The values of `name` as f32 (row-major), converting from f16/bf16. Non-finite values
    /// (NaN, infinity) are an error naming the tensor: such a model only answers garbage.
    pub fn read_f32(&self, name: &str) -> Result<Option<Vec<f32>>> {
        let Some(entry) = self.entries.get(name) else {
            return Ok(None);
        };
        let (path, bytes) = &self.files[entry.file];
        let dtype =
            FloatDtype::from_safetensors(entry.dtype).ok_or_else(|| ModelError::Safetensors {
                path: path.clone(),
                message: format!(
                    "tensor `{name}` has dtype {:?}; only F32, F16 and BF16 weights are supported",
                    entry.dtype
                ),
            })?;
        let values = dtype.decode(&bytes[entry.range.clone()]);
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(ModelError::Safetensors {
                path: path.clone(),
                message: format!("tensor `{name}` holds non-finite values ({bad})"),
            });
        }
        Ok(Some(values))
    }
}

/// What a header that does not parse means, in words (not the parser's variant names).
fn describe_metadata_error(e: &safetensors::SafeTensorError, bytes: &[u8]) -> String {
    use safetensors::SafeTensorError as E;
    let header_len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    if header_len.is_some_and(|n| n < 100_000_000 && 8 + n > bytes.len() as u64) {
        return format!(
            "truncated: the file holds {} bytes, less than its {}-byte header",
            bytes.len(),
            header_len.unwrap_or(0)
        );
    }
    match e {
        E::HeaderTooSmall | E::MetadataIncompleteBuffer => {
            "truncated: the file is shorter or longer than its header says".to_string()
        }
        E::HeaderTooLarge | E::InvalidHeaderLength => {
            "corrupt: the header length is impossible".to_string()
        }
        _ => "corrupt: the header is not valid safetensors".to_string(),
    }
}

/// The weight files of a folder: the single file, or the shards its index names (sorted).
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join(WEIGHTS_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join(INDEX_FILE);
    if !index.is_file() {
        return Err(ModelError::NoWeights(dir.to_owned()));
    }
    let text = std::fs::read_to_string(&index).map_err(ModelError::io("reading", &index))?;
    let value: Value = serde_json::from_str(&text).map_err(|cause| ModelError::Json {
        path: index.clone(),
        cause,
    })?;
    let map = value
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| ModelError::Safetensors {
            path: index.clone(),
            message: "missing `weight_map` object".into(),
        })?;
    let mut shards = BTreeSet::new();
    for (name, file) in map {
        let file = file.as_str().ok_or_else(|| ModelError::Safetensors {
            path: index.clone(),
            message: format!("`weight_map.{name}` is not a file name"),
        })?;
        shards.insert(dir.join(file));
    }
    Ok(shards.into_iter().collect())
}

/// One tensor's header entry: dtype name and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderEntry {
    /// Safetensors dtype (`F32`, `BF16`, ...).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
}

/// The float format holding most of a folder's weight elements (read from the headers only);
/// `None` when the folder has no float weights.
pub fn stored_dtype(dir: &Path) -> Result<Option<FloatDtype>> {
    let mut elements: BTreeMap<FloatDtype, usize> = BTreeMap::new();
    for entry in read_headers(dir)?.values() {
        if let Some(dtype) = FloatDtype::parse(&entry.dtype) {
            *elements.entry(dtype).or_default() += entry.shape.iter().product::<usize>();
        }
    }
    Ok(elements
        .into_iter()
        .max_by_key(|&(_, n)| n)
        .map(|(dtype, _)| dtype))
}

/// Reads only the JSON headers of a folder's weight files (cheap even for large checkpoints).
pub fn read_headers(dir: &Path) -> Result<BTreeMap<String, HeaderEntry>> {
    let mut out = BTreeMap::new();
    for path in weight_files(dir)? {
        let corrupt = |message: String| ModelError::Safetensors {
            path: path.clone(),
            message,
        };
        let mut file = std::fs::File::open(&path).map_err(ModelError::io("opening", &path))?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len)
            .map_err(|e| corrupt(format!("cannot read header length: {e}")))?;
        let len = u64::from_le_bytes(len);
        if len > 100_000_000 {
            return Err(corrupt(format!("header length {len} is implausible")));
        }
        let mut header = vec![0u8; len as usize];
        file.read_exact(&mut header)
            .map_err(|e| corrupt(format!("truncated header: {e}")))?;
        let value: Value = serde_json::from_slice(&header)
            .map_err(|e| corrupt(format!("header is not JSON: {e}")))?;
        let map = value
            .as_object()
            .ok_or_else(|| corrupt("header is not a JSON object".into()))?;
        let data_end = map
            .values()
            .filter_map(|info| info.get("data_offsets")?.get(1)?.as_u64())
            .max()
            .unwrap_or(0);
        let size = file
            .metadata()
            .map_err(ModelError::io("reading", &path))?
            .len();
        if size != 8 + len + data_end {
            return Err(corrupt(format!(
                "truncated: the file holds {size} bytes, its header describes {}",
                8 + len + data_end
            )));
        }
        for (name, info) in map.iter().filter(|(k, _)| k.as_str() != "__metadata__") {
            let dtype = info.get("dtype").and_then(Value::as_str);
            let shape = info
                .get("shape")
                .and_then(Value::as_array)
                .and_then(|dims| {
                    dims.iter()
                        .map(|d| d.as_u64().map(|d| d as usize))
                        .collect::<Option<Vec<_>>>()
                });
            match (dtype, shape) {
                (Some(dtype), Some(shape)) => {
                    out.insert(
                        name.clone(),
                        HeaderEntry {
                            dtype: dtype.to_owned(),
                            shape,
                        },
                    );
                }
                _ => return Err(corrupt(format!("bad header entry for `{name}`"))),
            }
        }
    }
    Ok(out)
}

/// A tensor to write: name, shape and f32 values (row-major).
pub struct OutTensor {
    /// HF name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values.
    pub values: Vec<f32>,
}

/// Writes tensors produced one at a time by `next` (in the order of `layout`, which lists every
/// `(name, shape)` up front for the header) as `dtype`, atomically.
pub fn write_safetensors(
    path: &Path,
    layout: &[(String, Vec<usize>)],
    dtype: FloatDtype,
    mut next: impl FnMut(usize) -> OutTensor,
) -> Result<()> {
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0usize;
    for (name, shape) in layout {
        let bytes = shape.iter().product::<usize>() * dtype.size();
        header.insert(
            name.clone(),
            json!({"dtype": dtype.name(), "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut header =
        serde_json::to_vec(&Value::Object(header)).expect("JSON values always serialise");
    header.resize(header.len().div_ceil(8) * 8, b' ');
    write_atomic_with(path, |out| {
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(&header)?;
        let mut buffer = Vec::new();
        for (index, (name, shape)) in layout.iter().enumerate() {
            let tensor = next(index);
            if &tensor.name != name
                || &tensor.shape != shape
                || tensor.values.len() != shape.iter().product::<usize>()
            {
                return Err(std::io::Error::other(format!(
                    "tensor {index} does not match the header entry `{name}`"
                )));
            }
            buffer.clear();
            dtype.encode(&tensor.values, &mut buffer);
            out.write_all(&buffer)?;
        }
        Ok(())
    })
    .map_err(ModelError::io("writing", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("safeaware-st-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn round_trips_every_dtype_and_reports_truncation() {
        let dir = temp_dir("rt");
        let values = vec![0.5f32, -1.25, 3.0, 1e-3, 65504.0, -0.0];
        let layout = vec![("a".to_owned(), vec![2, 3]), ("b.c".to_owned(), vec![1])];
        for dtype in [FloatDtype::F32, FloatDtype::F16, FloatDtype::BF16] {
            write_safetensors(&dir.join(WEIGHTS_FILE), &layout, dtype, |i| OutTensor {
                name: layout[i].0.clone(),
                shape: layout[i].1.clone(),
                values: if i == 0 { values.clone() } else { vec![7.0] },
            })
            .unwrap();
            let store = TensorStore::open_dir(&dir).unwrap();
            assert_eq!(store.shape("a"), Some(&[2usize, 3][..]));
            let read = store.read_f32("a").unwrap().unwrap();
            for (r, v) in read.iter().zip(&values) {
                assert!((r - v).abs() <= v.abs() * 1e-2, "{dtype:?}: {r} vs {v}");
            }
            assert_eq!(store.read_f32("b.c").unwrap().unwrap(), vec![7.0]);
            let headers = read_headers(&dir).unwrap();
            assert_eq!(headers["a"].dtype, dtype.name());
        }
        let path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = TensorStore::open_dir(&dir).unwrap_err().to_string();
        assert!(err.contains(WEIGHTS_FILE), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
