//! Importers: public or home-made labelled sets turned into a pairs file
//! ([`crate::pairs`]) that `data distill` makes traces of.
//!
//! - [`vlguard`]: VLGuard's `train.json` (one pair per instruction).
//! - [`table`]: a plain CSV or JSONL of `image`, `prompt`, `label`.
//! - [`preference`]: TRL's and SPA-VL's preference layouts into a preference file
//!   ([`crate::preferences`]) for DPO.
//!
//! Each importer resolves images against a folder (a relative path may not leave it, as
//! [`fileio::check_inside`] has every data file), refuses repeated ids and images that do not
//! exist (listing them), and writes the pairs with image paths relative to the output file's
//! folder, atomically.

pub mod preference;
pub mod table;
pub mod vlguard;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::benchmark::Verdict;
use crate::fileio;
use crate::pairs::{write_pairs, LabelledPair};
use crate::traces::TraceError;

/// How many missing images an error lists by name (the count is always complete).
const LIST_LIMIT: usize = 10;

/// An import failed; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A bad record: `place` is `file:line` or `file: record N`.
    #[error("{place}: {message}")]
    Record { place: String, message: String },
    #[error("{path}: no records")]
    Empty { path: PathBuf },
    #[error("{count} image(s) not found under {dir}: {listed}")]
    MissingImages {
        dir: PathBuf,
        count: usize,
        listed: String,
    },
    #[error(transparent)]
    Write(#[from] TraceError),
}

/// One imported pair before its image is checked: the image path is already resolved.
#[derive(Debug, Clone)]
pub struct Imported {
    /// Where it came from, for errors (`file:line`, `file: record N`).
    pub place: String,
    pub pair: LabelledPair,
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Records read from the source.
    pub records: usize,
    pub safe: usize,
    pub unsafe_: usize,
}

impl ImportSummary {
    /// Pairs written.
    pub fn pairs(&self) -> usize {
        self.safe + self.unsafe_
    }
}

/// Checks ids and images of `imported` (resolved against `images`), then writes them to `out`
/// with image paths relative to its folder.
pub fn finish(
    imported: Vec<Imported>,
    records: usize,
    images: &Path,
    out: &Path,
) -> Result<ImportSummary, ImportError> {
    check_records(
        imported
            .iter()
            .map(|i| (i.place.as_str(), i.pair.id.as_str(), i.pair.image.as_path())),
        images,
    )?;
    let out_dir = fileio::base_dir(out);
    let pairs: Vec<LabelledPair> = imported
        .into_iter()
        .map(|i| LabelledPair {
            image: fileio::relative_path(&i.pair.image, &out_dir).into(),
            ..i.pair
        })
        .collect();
    write_pairs(out, &pairs)?;
    let safe = pairs.iter().filter(|p| p.verdict == Verdict::Safe).count();
    Ok(ImportSummary {
        records,
        safe,
        unsafe_: pairs.len() - safe,
    })
}

/// Refuses repeated ids and images that are not files among `(place, id, image)` records (the
/// images resolved against `images`, named in the error).
fn check_records<'a>(
    records: impl Iterator<Item = (&'a str, &'a str, &'a Path)> + Clone,
    images: &Path,
) -> Result<(), ImportError> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (place, id, _) in records.clone() {
        if let Some(first) = seen.insert(id, place) {
            return Err(ImportError::Record {
                place: place.to_string(),
                message: format!("id {id} repeats {first}"),
            });
        }
    }
    let missing: Vec<String> = records
        .filter(|(_, _, image)| !image.is_file())
        .map(|(place, _, image)| format!("{} ({place})", image.display()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut listed = missing[..missing.len().min(LIST_LIMIT)].join(", ");
    if missing.len() > LIST_LIMIT {
        listed.push_str(&format!(" and {} more", missing.len() - LIST_LIMIT));
    }
    Err(ImportError::MissingImages {
        dir: images.to_path_buf(),
        count: missing.len(),
        listed,
    })
}

/// Reads a whole source file (a UTF-8 byte-order mark dropped); the error names it.
fn read_text(path: &Path) -> Result<String, ImportError> {
    fileio::read_text(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })
}
