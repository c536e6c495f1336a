//! The data a run trains and validates on: trace files (or the synthetic world, generated once
//! into a cache), encoded by the model's processor into token ids, labels and pixel tiles.
//!
//! Samples longer than `data.max_length` are never cut (a cut could split an image span or
//! drop the verdict): they are rejected, each named with its id and length, and counted.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safeaware_data::benchmark::{BenchmarkItem, Subset, Verdict};
use safeaware_data::processor::{Message, Processor};
use safeaware_data::synth::{self, SynthConfig};
use safeaware_data::traces::{read_training_file, TargetStyle, TrainingFile};

use crate::recipe::{Objective, Recipe};
use safeaware_common::fnv::fnv1a64_hex;

/// One encoded training sample.
#[derive(Debug, Clone)]
pub struct Example {
    pub id: String,
    pub input_ids: Vec<u32>,
    pub labels: Vec<i64>,
    /// Tiles `[tiles, 3, H, W]`, flattened.
    pub pixels: Vec<f32>,
    pub tiles: usize,
    /// `[3, H, W]` of one tile.
    pub tile_shape: [usize; 3],
    /// Qwen2-VL's `image_grid_thw` row per image (empty for the other families).
    pub grid_thw: Vec<[usize; 3]>,
    /// A preference pair's rejected answer (DPO); the example's own ids and labels are then
    /// the chosen answer, and both share its image.
    pub rejected: Option<RejectedAnswer>,
}

/// The rejected side of a preference pair: the same prompt and image, another answer.
#[derive(Debug, Clone)]
pub struct RejectedAnswer {
    pub input_ids: Vec<u32>,
    pub labels: Vec<i64>,
}

impl Example {
    /// Tokens whose label is a target.
    pub fn target_tokens(&self) -> usize {
        self.labels.iter().filter(|&&l| l >= 0).count()
    }

    /// The rejected answer of a preference pair as an example of its own (the pair's image).
    pub fn rejected_example(&self) -> Option<Example> {
        let rejected = self.rejected.as_ref()?;
        Some(Example {
            id: self.id.clone(),
            input_ids: rejected.input_ids.clone(),
            labels: rejected.labels.clone(),
            pixels: self.pixels.clone(),
            tiles: self.tiles,
            tile_shape: self.tile_shape,
            grid_thw: self.grid_thw.clone(),
            rejected: None,
        })
    }
}

/// Where a run's trace files are.
#[derive(Debug, Clone)]
pub struct DataFiles {
    pub train: PathBuf,
    pub val: Option<PathBuf>,
    /// The held-out benchmark (`jsonl:` form) for the final evaluation, when the data has one.
    pub benchmark: Option<PathBuf>,
}

/// Resolves the recipe's data: trace files as given, or the synthetic world generated (once,
/// atomically) into `cache_root/synth-<hash of its settings>/` — its preference pairs
/// (`train-preferences.jsonl`, `val-preferences.jsonl`) for a DPO run.
pub fn resolve_files(recipe: &Recipe, cache_root: &Path) -> Result<DataFiles> {
    let data = &recipe.data;
    if data.synthetic.enabled {
        let dpo = recipe.train.objective == Objective::Dpo;
        let cfg = SynthConfig {
            preferences: data.synthetic.settings.preferences || dpo,
            ..data.synthetic.settings.clone()
        };
        let dir = ensure_synthetic(&cfg, cache_root)?;
        let split = |name: &str| match dpo {
            true => dir.join(format!("{name}-preferences.jsonl")),
            false => dir.join(format!("{name}.jsonl")),
        };
        return Ok(DataFiles {
            train: split("train"),
            val: (cfg.val > 0).then(|| split("val")),
            benchmark: Some(dir.join("benchmark.jsonl")),
        });
    }
    let Some(train) = data.train.clone() else {
        bail!("the recipe names no training data: set data.train or data.synthetic.enabled = true");
    };
    Ok(DataFiles {
        train,
        val: data.val.clone(),
        benchmark: None,
    })
}

/// Generates the synthetic data set for `cfg` unless the cache already holds it.
fn ensure_synthetic(cfg: &SynthConfig, cache_root: &Path) -> Result<PathBuf> {
    // The key covers the settings and what the generator makes of them (its first item of each
    // split and the first test item's counterfactual), so a changed world is regenerated rather
    // than read from a stale cache.
    let mut key = serde_json::to_string(cfg).context("serialising synth settings")?;
    let held = synth::world::held_out(cfg.seed);
    for split in synth::Split::ALL {
        let item = synth::make_item(cfg, &held, split, 0);
        key.push_str(&serde_json::to_string(&item.trace).context("serialising a synth trace")?);
        key.push_str(&fnv1a64_hex(item.image.as_raw()));
        if split == synth::Split::Test {
            let (_, image) = synth::counterfactual::make_counterfactual(cfg, &item.spec, 0);
            key.push_str(&fnv1a64_hex(image.as_raw()));
        }
    }
    let dir = cache_root.join(format!("synth-{}", fnv1a64_hex(key.as_bytes())));
    if dir.join("benchmark.jsonl").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(cache_root)
        .with_context(|| format!("creating {}", cache_root.display()))?;
    let tmp = cache_root.join(format!(".tmp-synth-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    eprintln!(
        "generating the synthetic safety world into {}",
        dir.display()
    );
    synth::generate(&tmp, cfg)
        .with_context(|| format!("generating synthetic data in {}", tmp.display()))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing stale {}", dir.display()))?;
    }
    std::fs::rename(&tmp, &dir)
        .with_context(|| format!("moving synthetic data to {}", dir.display()))?;
    Ok(dir)
}

/// Encoded samples of one file, and what was rejected.
pub struct EncodedSet {
    pub examples: Vec<Example>,
    pub rejected: usize,
}

/// Reads and encodes every record of `path` in `style`.
pub fn encode_file(
    path: &Path,
    processor: &Processor,
    style: TargetStyle,
    max_length: usize,
) -> Result<EncodedSet> {
    let file = read_training_file(path)?;
    let mut examples = Vec::with_capacity(file.records.len());
    let mut rejected = 0;
    for ((line, record), conversation) in file.records.iter().zip(file.conversations(style)) {
        if !record.trains_in(style) {
            continue;
        }
        let messages = Message::from_conversation(&conversation)
            .with_context(|| format!("{}:{line}: record `{}`", path.display(), record.id()))?;
        let encoded = if record.open_answer() {
            processor.encode_training_open(&messages)
        } else {
            processor.encode_training(&messages)
        };
        let encoded = encoded.with_context(|| {
            format!(
                "{}:{line}: encoding record `{}`",
                path.display(),
                record.id()
            )
        })?;
        let len = encoded.input_ids.len();
        if len > max_length {
            eprintln!(
                "{}:{line}: sample `{}` has {len} tokens, over data.max_length = {max_length}: skipped",
                path.display(),
                record.id()
            );
            rejected += 1;
            continue;
        }
        let [tiles, c, h, w] = encoded.pixel_shape;
        examples.push(Example {
            id: record.id().to_string(),
            labels: encoded.labels.unwrap_or_default(),
            input_ids: encoded.input_ids,
            pixels: encoded.pixel_values,
            tiles,
            tile_shape: [c, h, w],
            grid_thw: encoded.image_grid_thw,
            rejected: None,
        });
    }
    if examples.is_empty() {
        bail!(
            "{}: no usable training samples ({rejected} rejected as too long)",
            path.display()
        );
    }
    Ok(EncodedSet { examples, rejected })
}

/// The native traces of a file as benchmark items (gold = the trace verdict), for
/// generation-based validation. Traces without a subset count as typical (unsafe) or
/// over-safety (safe).
pub fn traces_as_benchmark(path: &Path) -> Result<Vec<BenchmarkItem>> {
    let file: TrainingFile = read_training_file(path)?;
    Ok(file
        .traces()
        .map(|t| BenchmarkItem {
            id: t.id.clone(),
            image: Some(file.dir.join(&t.image)),
            prompt: t.prompt.clone(),
            gold: t.verdict,
            subset: t.subset.unwrap_or(match t.verdict {
                Verdict::Safe => Subset::OverSafety,
                Verdict::Unsafe => Subset::Typical,
            }),
            scenario: t.scenario.clone(),
            counterfactual: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset;
    use safeaware_data::processor::IGNORE_INDEX;
    use safeaware_data::synth::world::held_out;
    use safeaware_data::traces::write_lines;
    use safeaware_data::traces::DESCRIPTION_CLOSE;

    /// One full trace and one description-only item from the synthetic world, in a temp folder.
    fn tiny_file(dir: &Path) -> PathBuf {
        let cfg = SynthConfig::default();
        let held = held_out(cfg.seed);
        let item = synth::make_item(&cfg, &held, synth::Split::Train, 0);
        let (description, image) = synth::make_description(&cfg, &held, 0);
        std::fs::create_dir_all(dir.join("images")).unwrap();
        item.image.save(dir.join(&item.trace.image)).unwrap();
        image.save(dir.join(&description.image)).unwrap();
        let path = dir.join("train.jsonl");
        write_lines(&path, &[item.trace], &[description]).unwrap();
        path
    }

    #[test]
    fn description_only_items_learn_the_description_and_no_end_of_turn() {
        let dir = tempfile::tempdir().unwrap();
        let path = tiny_file(dir.path());
        let processor = preset::build("tiny", 64).unwrap().processor;
        let set = encode_file(&path, &processor, TargetStyle::Vcr, 384).unwrap();
        assert_eq!(set.examples.len(), 2);
        let close = processor
            .tokenizer()
            .token_to_id(DESCRIPTION_CLOSE)
            .unwrap();
        let eou = processor
            .tokenizer()
            .token_to_id(safeaware_data::processor::END_OF_UTTERANCE)
            .unwrap() as i64;
        let [full, open] = [&set.examples[0], &set.examples[1]];
        // The full trace learns its end of turn; the description-only one stops at its tag.
        assert!(full.labels.contains(&eou));
        let end = open.input_ids.iter().rposition(|&t| t == close).unwrap();
        assert_eq!(open.labels[end], close as i64);
        assert!(open.labels[end + 1..].iter().all(|&l| l == IGNORE_INDEX));
        assert!(open.input_ids[end + 1..].iter().any(|&t| t as i64 == eou));
        let learned = open.labels.iter().filter(|&&l| l >= 0).count();
        assert!(learned > 5, "{learned} description tokens learned");
        // In the direct style the description-only item has no target and is skipped.
        let direct = encode_file(&path, &processor, TargetStyle::Direct, 384).unwrap();
        assert_eq!(direct.examples.len(), 1);
        assert_eq!(direct.examples[0].id, "train-00000");
    }
}
