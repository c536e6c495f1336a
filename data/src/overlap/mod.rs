//! The benchmark guard: finds training items that share an image or a prompt with a benchmark,
//! so that no one trains on what the evaluator will ask (`safeaware data overlap`, and the
//! trainer's check at setup).
//!
//! An **image overlap** is a training image whose decoded pixels equal a benchmark image's, or
//! whose perceptual hash lies within [`OverlapOptions::max_distance`] bits of one (default
//! [`PERCEPTUAL_THRESHOLD`]; see [`image_hash`]). A **prompt overlap** is a training prompt whose
//! [`prompt_key`] equals a benchmark prompt's. Each training item is reported once per kind,
//! against its nearest benchmark image (the first in benchmark order on a tie) and the first
//! benchmark item with the same prompt. Benchmark items without an image are compared by prompt
//! only; an image that cannot be decoded, on either side, is an error.

pub mod image_hash;
pub mod prompt_key;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use image_hash::{hash_image, ImageHash, PERCEPTUAL_THRESHOLD};
pub use prompt_key::prompt_key;

use crate::benchmark::{Benchmark, BenchmarkError};
use crate::fileio;
use crate::tools::source::{Entry, LoadError, Loaded};

/// A training image that is a benchmark image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageOverlap {
    /// The training item.
    pub id: String,
    pub benchmark_id: String,
    /// Hamming distance of the perceptual hashes; 0 for identical pixels.
    pub distance: u32,
}

/// A training prompt that is a benchmark prompt after normalisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptOverlap {
    pub id: String,
    pub benchmark_id: String,
}

/// Everything a check found; serialises as `{"image_overlaps": […], "prompt_overlaps": […]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlapReport {
    pub image_overlaps: Vec<ImageOverlap>,
    pub prompt_overlaps: Vec<PromptOverlap>,
}

impl OverlapReport {
    /// True when nothing overlaps.
    pub fn is_empty(&self) -> bool {
        self.image_overlaps.is_empty() && self.prompt_overlaps.is_empty()
    }

    /// The training ids that overlap in any way, sorted, each once.
    pub fn ids(&self) -> BTreeSet<&str> {
        let images = self.image_overlaps.iter().map(|o| o.id.as_str());
        images
            .chain(self.prompt_overlaps.iter().map(|o| o.id.as_str()))
            .collect()
    }

    /// One line per overlap, `image <id> = benchmark <id> (distance d)` or
    /// `prompt <id> = benchmark <id>`, at most `limit` of them, then how many were left out.
    pub fn lines(&self, limit: usize) -> Vec<String> {
        let images = self.image_overlaps.iter().map(|o| {
            format!(
                "image  {} = benchmark {} (distance {})",
                o.id, o.benchmark_id, o.distance
            )
        });
        let prompts = self
            .prompt_overlaps
            .iter()
            .map(|o| format!("prompt {} = benchmark {}", o.id, o.benchmark_id));
        let all: Vec<String> = images.chain(prompts).collect();
        let mut lines: Vec<String> = all.iter().take(limit).cloned().collect();
        if all.len() > limit {
            lines.push(format!("… and {} more", all.len() - limit));
        }
        lines
    }
}

/// How close counts as the same image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlapOptions {
    /// Largest perceptual-hash distance that is an overlap.
    pub max_distance: u32,
}

impl Default for OverlapOptions {
    fn default() -> Self {
        OverlapOptions {
            max_distance: PERCEPTUAL_THRESHOLD,
        }
    }
}

/// A check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OverlapError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Benchmark(#[from] BenchmarkError),
    #[error("id {id}: image {path}: {message}")]
    Image {
        id: String,
        path: PathBuf,
        message: String,
    },
}

/// Checks the training data `training` (traces, ShareGPT lines or pairs, see
/// [`Loaded::open`]) against the benchmark `spec`.
pub fn check(
    training: &Path,
    spec: &str,
    options: &OverlapOptions,
) -> Result<OverlapReport, OverlapError> {
    let loaded = Loaded::open(&training.display().to_string(), None)?;
    let benchmark = Benchmark::open(spec, None)?;
    find_overlaps(&loaded.entries(), &benchmark, options)
}

/// The overlaps of `training` with `benchmark`, in training order.
pub fn find_overlaps(
    training: &[Entry],
    benchmark: &Benchmark,
    options: &OverlapOptions,
) -> Result<OverlapReport, OverlapError> {
    let bench_images: Vec<(&str, &Path)> = benchmark
        .items
        .iter()
        .filter_map(|i| Some((i.id.as_str(), i.image.as_deref()?)))
        .collect();
    let train_images: Vec<(&str, &Path)> = training
        .iter()
        .filter_map(|e| Some((e.id.as_str(), e.image.as_deref()?)))
        .collect();
    let bench_hashes = hash_all(&bench_images)?;
    let train_hashes = hash_all(&train_images)?;
    let image_overlaps = train_images
        .iter()
        .zip(&train_hashes)
        .filter_map(|((id, _), hash)| {
            nearest(hash, &bench_hashes, options.max_distance).map(|(k, distance)| ImageOverlap {
                id: id.to_string(),
                benchmark_id: bench_images[k].0.to_string(),
                distance,
            })
        })
        .collect();
    Ok(OverlapReport {
        image_overlaps,
        prompt_overlaps: prompt_overlaps(training, benchmark),
    })
}

/// The closest of `candidates` within `max_distance` bits: (index, distance), first on a tie.
fn nearest(hash: &ImageHash, candidates: &[ImageHash], max_distance: u32) -> Option<(usize, u32)> {
    candidates
        .iter()
        .enumerate()
        .filter_map(|(k, c)| hash.distance_within(c, max_distance).map(|d| (k, d)))
        .min_by_key(|&(k, d)| (d, k))
}

fn prompt_overlaps(training: &[Entry], benchmark: &Benchmark) -> Vec<PromptOverlap> {
    let mut keys: HashMap<String, &str> = HashMap::new();
    for item in &benchmark.items {
        let key = prompt_key(&item.prompt);
        if !key.is_empty() {
            keys.entry(key).or_insert(&item.id);
        }
    }
    training
        .iter()
        .filter_map(|e| {
            keys.get(&prompt_key(&e.prompt)).map(|b| PromptOverlap {
                id: e.id.clone(),
                benchmark_id: b.to_string(),
            })
        })
        .collect()
}

/// Hashes images on every core; the first image that cannot be decoded is the error.
fn hash_all(images: &[(&str, &Path)]) -> Result<Vec<ImageHash>, OverlapError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = images.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = images
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(id, path)| hash_file(id, path))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(images.len());
        for h in handles {
            out.extend(h.join().expect("hashing an image does not panic")?);
        }
        Ok(out)
    })
}

fn hash_file(id: &str, path: &Path) -> Result<ImageHash, OverlapError> {
    fileio::decode_image(path)
        .map(|img| hash_image(&img))
        .map_err(|message| OverlapError::Image {
            id: id.to_string(),
            path: path.to_path_buf(),
            message,
        })
}
