//! `safeaware data encode`: what a model folder's processor makes of one image and one prompt,
//! exactly as HF's `processor(text=…, images=…)` returns it for the user message `[image, text]`
//! rendered with the folder's chat template and the generation prompt. Prints the tokens (the
//! image-token run compressed), the image grid and pixel statistics, as text or JSON; `--out`
//! writes the tensors in HF's names and shapes to a safetensors file (atomically), so they can
//! be compared with Python or fed to another implementation.

use std::path::{Path, PathBuf};

use anyhow::Context;
use safeaware_common::fsio::write_atomic;
use safeaware_data::processor::{Encoded, Family, Message, Part, Processor};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{json, Value};

/// `data encode` flags.
#[derive(clap::Args)]
pub struct EncodeArgs {
    /// A model folder with its processor files (SmolVLM/Idefics3 or LLaVA-1.5).
    #[arg(long)]
    pub model: PathBuf,
    /// The image.
    #[arg(long)]
    pub image: PathBuf,
    /// The user's text, after the image.
    #[arg(long)]
    pub prompt: String,
    /// Write input_ids, attention_mask, pixel_values (and SmolVLM's pixel_attention_mask) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `data encode`.
pub fn run(a: EncodeArgs) -> anyhow::Result<()> {
    let processor = Processor::from_folder(&a.model)
        .with_context(|| format!("loading the processor of {}", a.model.display()))?;
    let messages = [Message::user(vec![
        Part::image(a.image.clone()),
        Part::text(&a.prompt),
    ])];
    let prompt = processor.render(&messages, true)?;
    let encoded = processor
        .encode_prompt(&messages)
        .with_context(|| format!("encoding {} with {}", a.image.display(), a.model.display()))?;
    if let Some(out) = &a.out {
        write_tensors(out, &encoded, processor.family())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let summary = Summary::new(&a.model, &processor, &prompt, &encoded, a.out.as_deref());
    if a.json {
        super::emit(&(serde_json::to_string_pretty(&summary.to_json())? + "\n"))
    } else {
        super::emit(&summary.to_text())
    }
}

/// HF's tensors: `input_ids` and `attention_mask` i64 [1, T]; `pixel_values` f32 [1, N, 3, H, W]
/// (SmolVLM, with `pixel_attention_mask` i64 [1, N, H, W]), [N, 3, H, W] (LLaVA, one frame
/// per image) or [patches, C·T·P·P] (Qwen2-VL, with `image_grid_thw` i64 [images, 3]).
fn write_tensors(path: &Path, encoded: &Encoded, family: Family) -> anyhow::Result<()> {
    let t = encoded.input_ids.len();
    let ids: Vec<u8> = encoded
        .input_ids
        .iter()
        .flat_map(|id| (*id as i64).to_le_bytes())
        .collect();
    let ones = |n: usize| 1i64.to_le_bytes().repeat(n);
    let mask = ones(t);
    let pixels: Vec<u8> = encoded
        .pixel_values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let [n, c, h, w] = encoded.pixel_shape;
    let (pixel_shape, frame_mask) = match family {
        Family::Idefics3 => (vec![1, n, c, h, w], Some(ones(n * h * w))),
        Family::Llava => (vec![n, c, h, w], None),
        Family::Qwen2Vl => (vec![n, c * h * w], None),
    };
    let grid_thw: Vec<u8> = encoded
        .image_grid_thw
        .iter()
        .flatten()
        .flat_map(|x| (*x as i64).to_le_bytes())
        .collect();
    let mut tensors = vec![
        ("input_ids", TensorView::new(Dtype::I64, vec![1, t], &ids)?),
        (
            "attention_mask",
            TensorView::new(Dtype::I64, vec![1, t], &mask)?,
        ),
        (
            "pixel_values",
            TensorView::new(Dtype::F32, pixel_shape, &pixels)?,
        ),
    ];
    if let Some(frame_mask) = &frame_mask {
        let view = TensorView::new(Dtype::I64, vec![1, n, h, w], frame_mask)?;
        tensors.push(("pixel_attention_mask", view));
    }
    if family == Family::Qwen2Vl {
        let images = encoded.image_grid_thw.len();
        let view = TensorView::new(Dtype::I64, vec![images, 3], &grid_thw)?;
        tensors.push(("image_grid_thw", view));
    }
    let bytes = safetensors::tensor::serialize(tensors, &None)?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// One run of equal consecutive image tokens, or a single other token.
struct TokenRun {
    id: u32,
    token: String,
    count: usize,
}

/// What `data encode` prints.
struct Summary {
    model: String,
    family: Family,
    prompt: String,
    runs: Vec<TokenRun>,
    num_tokens: usize,
    grids: Vec<(usize, usize)>,
    pixel_shape: [usize; 4],
    stats: Option<[f64; 4]>,
    out: Option<String>,
}

impl Summary {
    fn new(
        model: &Path,
        processor: &Processor,
        prompt: &str,
        encoded: &Encoded,
        out: Option<&Path>,
    ) -> Summary {
        Summary {
            model: model.display().to_string(),
            family: processor.family(),
            prompt: prompt.to_string(),
            runs: token_runs(processor, &encoded.input_ids),
            num_tokens: encoded.input_ids.len(),
            grids: encoded.grids.iter().map(|g| (g.rows, g.cols)).collect(),
            pixel_shape: encoded.pixel_shape,
            stats: pixel_stats(&encoded.pixel_values),
            out: out.map(|p| p.display().to_string()),
        }
    }

    fn to_text(&self) -> String {
        let mut s = format!(
            "model: {} ({})\nprompt: {:?}\n",
            self.model, self.family, self.prompt
        );
        s.push_str(&format!("tokens: {}\n", self.num_tokens));
        let mut position = 0;
        for run in &self.runs {
            let end = position + run.count - 1;
            let at = if run.count > 1 {
                format!("{position}–{end}")
            } else {
                position.to_string()
            };
            let times = if run.count > 1 {
                format!(" ×{}", run.count)
            } else {
                String::new()
            };
            s.push_str(&format!(
                "  {at:>9}  {:>6}  {:?}{times}\n",
                run.id, run.token
            ));
            position = end + 1;
        }
        for (k, (rows, cols)) in self.grids.iter().enumerate() {
            s.push_str(&format!("image {k}: grid {rows}x{cols}\n"));
        }
        s.push_str(&format!("pixel_values: {:?}", self.pixel_shape));
        if let Some([min, max, mean, std]) = self.stats {
            s.push_str(&format!(
                "  min {min:.4}  max {max:.4}  mean {mean:.4}  std {std:.4}"
            ));
        }
        s.push('\n');
        if let Some(out) = &self.out {
            s.push_str(&format!("wrote {out}\n"));
        }
        s
    }

    fn to_json(&self) -> Value {
        let runs: Vec<Value> = self
            .runs
            .iter()
            .map(|r| json!({"id": r.id, "token": r.token, "count": r.count}))
            .collect();
        let stats = self
            .stats
            .map(|[min, max, mean, std]| json!({"min": min, "max": max, "mean": mean, "std": std}));
        let grids: Vec<Value> = self
            .grids
            .iter()
            .map(|(rows, cols)| json!({"rows": rows, "cols": cols}))
            .collect();
        json!({
            "model": self.model,
            "family": self.family.name(),
            "prompt": self.prompt,
            "num_tokens": self.num_tokens,
            "tokens": runs,
            "grids": grids,
            "pixel_values": {"shape": self.pixel_shape, "stats": stats},
            "out": self.out,
        })
    }
}

/// The ids with their token strings, each run of the image token as one entry.
fn token_runs(processor: &Processor, ids: &[u32]) -> Vec<TokenRun> {
    let image = processor.special_tokens().image;
    let mut runs: Vec<TokenRun> = Vec::new();
    for &id in ids {
        match runs.last_mut() {
            Some(last) if id == image && last.id == image => last.count += 1,
            _ => runs.push(TokenRun {
                id,
                token: processor
                    .tokenizer()
                    .id_to_token(id)
                    .unwrap_or_else(|| format!("<id {id}>")),
                count: 1,
            }),
        }
    }
    runs
}

/// min, max, mean and (population) std of `values`; `None` when empty.
fn pixel_stats(values: &[f32]) -> Option<[f64; 4]> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
    for &v in values {
        let v = v as f64;
        (min, max, sum) = (min.min(v), max.max(v), sum + v);
    }
    let mean = sum / n;
    let var = values
        .iter()
        .map(|v| (*v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    Some([min, max, mean, var.sqrt()])
}
