//! `safeaware plan --recipe R [--set ...] [--memory 80GiB] [--image-size WxH] [--json]`: before
//! launch, the memory a run needs per device (weights, gradients, optimiser state, activations
//! of one micro-batch) and the largest micro-batch that fits `--memory`. Only the model's
//! config.json (and, for Qwen2-VL, its image processor's bounds) is read. The recipe's
//! `train.device(s)` pick the formula: CPU (fitted) or GPU (the custom ops' state). For a family
//! that takes images at their own resolution (Qwen2-VL) the image tokens follow `--image-size`
//! (`safeaware_trainer::plan::image`).

use std::path::PathBuf;

use anyhow::Result;
use safeaware_trainer::plan::image::{plan_grid, ImageSize};
use safeaware_trainer::plan::{plan, Compute, MemoryPlan, Workload};
use safeaware_trainer::recipe::{load_recipe, Recipe};
use safeaware_trainer::recipe_model::model_config;

use crate::output::{out, outln};

/// Arguments of `safeaware plan`.
#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// Recipe TOML file.
    #[arg(long)]
    pub recipe: PathBuf,
    /// Override a recipe key (repeatable), as for `train`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Device memory for the largest micro-batch, e.g. `80GiB`, `24GB`, `512MiB`.
    #[arg(long, value_parser = parse_bytes)]
    pub memory: Option<u64>,
    /// The training images' size, `WIDTHxHEIGHT` or one side, for a family that takes images
    /// at their own resolution (Qwen2-VL; default: the synthetic world's when the recipe trains
    /// on it, else 448 square).
    #[arg(long)]
    pub image_size: Option<ImageSize>,
    /// Print `{"compute": "cpu"|"gpu", "per_device": {...}, "max_micro_batch": n}` (bytes).
    #[arg(long)]
    pub json: bool,
}

/// Runs `safeaware plan`.
pub fn run(args: PlanArgs) -> Result<()> {
    let recipe = load_recipe(&args.recipe, &args.set)?.recipe;
    let (config, max_tiles) = model_config(&recipe)?;
    let image = args
        .image_size
        .unwrap_or_else(|| ImageSize::default_for(&recipe));
    let grid = plan_grid(&recipe, &config, image)?;
    let work = Workload::of_recipe(&recipe, &config, max_tiles, grid);
    let p = plan(&recipe, &config, work, args.memory)?;
    if args.json {
        outln!("{}", serde_json::to_string(&p)?)?;
    } else {
        out!("{}", describe(&p, work, &recipe))?;
        if let Some([rows, columns]) = grid {
            let tokens = config.tokens_per_image_at(grid);
            outln!(
                "each image {}x{} px: {rows}x{columns} patches, {tokens} image tokens",
                image.width,
                image.height
            )?;
        }
    }
    Ok(())
}

fn describe(p: &MemoryPlan, work: Workload, recipe: &Recipe) -> String {
    let gib = |b: u64| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64);
    let m = &p.per_device;
    let checkpointing = match recipe.train.activation_checkpointing {
        true => "; activation checkpointing",
        false => "",
    };
    let compute = match p.compute {
        Compute::Cpu => "CPU",
        Compute::Gpu => "GPU",
    };
    let mut out = format!(
        "per device ({} {compute} device(s); micro-batch of {} rows × {} tokens, {} tile(s) each{checkpointing}):\n",
        recipe.train.devices.len().max(1),
        work.rows,
        work.seq,
        work.tiles
    );
    for (name, bytes) in [
        ("weights", m.weights),
        ("gradients", m.gradients),
        ("optimizer", m.optimizer),
        ("activations", m.activations),
        ("total (peak)", m.total),
    ] {
        out += &format!("  {name:<13} {}\n", gib(bytes));
    }
    if let Some(rows) = p.max_micro_batch {
        out += &format!("largest micro-batch that fits: {rows}\n");
    }
    out
}

/// `80GiB`, `24GB`, `512MiB`, `1e9` → bytes.
fn parse_bytes(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: expected a size such as 80GiB"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit (B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    let bytes = number * scale;
    // 2^64: the first size a u64 cannot hold (a cast would saturate, hiding the mistake).
    if !(0.0..18_446_744_073_709_551_616.0).contains(&bytes) {
        return Err(format!("`{text}`: expected a size from 0 to 16 EiB"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("80GiB"), Ok(80 << 30));
        assert_eq!(parse_bytes("24 GB"), Ok(24_000_000_000));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3TB").is_err());
        assert!(parse_bytes("-1GiB").is_err());
        assert!(parse_bytes("1e30").is_err());
        assert!(parse_bytes("NaN").is_err());
    }
}
