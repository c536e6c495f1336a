//! `SAFEAWARE_DPO_DUMP=<file>`: a DPO run writes its first global batch, exactly as encoded, to
//! `<file>` (JSON, once: an existing file is left alone), so an independent implementation can
//! score the same pairs and check the first logged step (`tools/dpo_reference.py`). The pairs
//! are in the step's order; floats are written so that they read back exactly.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use crate::fsutil::atomic_write;
use crate::train_data::Example;

/// The environment variable naming the file.
pub const DUMP_ENV: &str = "SAFEAWARE_DPO_DUMP";

/// Writes `window` to the file [`DUMP_ENV`] names, if it names one that does not exist yet.
pub fn dump_if_asked(window: &[Vec<&Example>]) -> Result<()> {
    let Some(path) = std::env::var_os(DUMP_ENV) else {
        return Ok(());
    };
    let path = Path::new(&path);
    if path.exists() {
        return Ok(());
    }
    let pairs: Vec<_> = window.iter().flatten().map(|e| pair_json(e)).collect();
    let text = serde_json::to_string(&json!({ "pairs": pairs }))
        .with_context(|| format!("serialising the batch for {}", path.display()))?;
    atomic_write(path, text.as_bytes())
}

/// One pair: both answers' ids and labels, the image frames and their shape.
fn pair_json(e: &Example) -> serde_json::Value {
    let (rejected_ids, rejected_labels) = match &e.rejected {
        Some(r) => (r.input_ids.clone(), r.labels.clone()),
        None => (Vec::new(), Vec::new()),
    };
    json!({
        "id": e.id,
        "chosen_input_ids": e.input_ids,
        "chosen_labels": e.labels,
        "rejected_input_ids": rejected_ids,
        "rejected_labels": rejected_labels,
        "pixel_values": e.pixels,
        "pixel_shape": [e.tiles, e.tile_shape[0], e.tile_shape[1], e.tile_shape[2]],
        "image_grid_thw": e.grid_thw,
    })
}
