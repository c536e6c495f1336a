//! A DPO run's data: preference files (`data.train`, `data.val`, or the synthetic world's
//! `*-preferences.jsonl`), each pair encoded as SFT encodes a trace — the chosen and the
//! rejected answer rendered in the recipe's style, each with the pair's prompt and image — into
//! one [`Example`] holding the chosen answer with the rejected one beside it. The image's
//! pixels are kept once per pair.
//!
//! A trace file given to a DPO run, or a preference file given to an SFT run, is refused with
//! a message saying which objective each needs.

use std::path::Path;

use anyhow::{bail, Context, Result};
use safeaware_data::preferences::{read_preferences, PreferencePair};
use safeaware_data::processor::{Message, Processor};
use safeaware_data::tools::source::Input;
use safeaware_data::traces::TargetStyle;

use crate::recipe::Objective;
use crate::train_data::{EncodedSet, Example, RejectedAnswer};

/// Fails unless `path` holds what a run with `objective` trains on: preference pairs for DPO,
/// traces for SFT. Only the first record is looked at; the reader checks the rest.
pub fn check_file_kind(path: &Path, objective: Objective) -> Result<()> {
    let preferences = matches!(
        Input::classify(&path.display().to_string()),
        Input::Preferences(_)
    );
    match (objective, preferences) {
        (Objective::Sft, true) => bail!(
            "{} holds preference pairs (`chosen`/`rejected`): train on it with \
             train.objective = \"dpo\", or give this SFT run a trace file",
            path.display()
        ),
        (Objective::Dpo, false) => bail!(
            "{} holds no preference pairs: a train.objective = \"dpo\" run trains on \
             {{\"id\", \"image\", \"prompt\", \"chosen\", \"rejected\"}} lines (`safeaware data \
             synth --preferences` writes some); give it a preference file",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// Reads and encodes every pair of the preference file `path` in `style`; a pair whose longer
/// side exceeds `max_length` tokens is skipped, named, and counted.
pub fn encode_preferences(
    path: &Path,
    processor: &Processor,
    style: TargetStyle,
    max_length: usize,
) -> Result<EncodedSet> {
    let file = read_preferences(path)?;
    let mut examples = Vec::with_capacity(file.pairs.len());
    let mut rejected = 0;
    for (line, pair) in &file.pairs {
        let at = || format!("{}:{line}: pair `{}`", path.display(), pair.id);
        let example = encode_pair(pair, &file.dir, processor, style).with_context(at)?;
        let len = example
            .input_ids
            .len()
            .max(example.rejected.as_ref().map_or(0, |r| r.input_ids.len()));
        if len > max_length {
            eprintln!(
                "{}: {len} tokens, over data.max_length = {max_length}: skipped",
                at()
            );
            rejected += 1;
            continue;
        }
        examples.push(example);
    }
    if examples.is_empty() {
        bail!(
            "{}: no usable preference pairs ({rejected} rejected as too long)",
            path.display()
        );
    }
    Ok(EncodedSet { examples, rejected })
}

/// One pair: both conversations encoded, the chosen one's pixels kept for both.
fn encode_pair(
    pair: &PreferencePair,
    dir: &Path,
    processor: &Processor,
    style: TargetStyle,
) -> Result<Example> {
    let [chosen, rejected] = pair
        .conversations(style, dir)
        .map(|c| Message::from_conversation(&c).and_then(|m| processor.encode_training(&m)));
    let (chosen, rejected) = (chosen?, rejected?);
    let [tiles, c, h, w] = chosen.pixel_shape;
    Ok(Example {
        id: pair.id.clone(),
        labels: chosen.labels.unwrap_or_default(),
        input_ids: chosen.input_ids,
        pixels: chosen.pixel_values,
        tiles,
        tile_shape: [c, h, w],
        grid_thw: chosen.image_grid_thw,
        rejected: Some(RejectedAnswer {
            input_ids: rejected.input_ids,
            labels: rejected.labels.unwrap_or_default(),
        }),
    })
}
