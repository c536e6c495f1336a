//! Flex vs NdArray on the CPU: forward+backward (training) and forward-only (inference) of one
//! vision encoder layer plus one text decoder layer at SmolVLM-256M widths (a 1+1-layer model
//! with a small vocabulary, so the layers dominate). Plain timing loop, not a unit test:
//!
//! ```text
//! cargo bench -p safeaware-model --bench backends [-- ITERS] [flex|ndarray]
//! ```

use std::time::{Duration, Instant};

use burn::backend::{Autodiff, Flex, NdArray};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use safeaware_model::{Idefics3, Idefics3Config, VlmInput, IGNORE_INDEX};
use serde_json::json;

const BATCH: usize = 2;
const TEXT_AFTER: usize = 191;

fn config() -> Idefics3Config {
    Idefics3Config::from_value(json!({
        "model_type": "idefics3", "image_token_id": 3, "scale_factor": 4,
        "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 1,
                          "num_attention_heads": 12, "image_size": 512, "patch_size": 16},
        "text_config": {"vocab_size": 512, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 1,
                        "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "rope_theta": 100000.0}
    }))
    .expect("valid config")
}

/// One tile (64 image tokens) and `TEXT_AFTER` text tokens per row; the text is the target.
fn batch<B: Backend>(
    config: &Idefics3Config,
    device: &B::Device,
) -> (VlmInput<B>, Tensor<B, 2, Int>) {
    let row: Vec<i64> = std::iter::once(1)
        .chain(std::iter::repeat_n(
            config.image_token_id as i64,
            config.tokens_per_tile(),
        ))
        .chain((0..TEXT_AFTER as i64).map(|i| 10 + i % 400))
        .collect();
    let seq = row.len();
    let labels: Vec<i64> = row
        .iter()
        .map(|&t| if t == 3 || t == 1 { IGNORE_INDEX } else { t })
        .collect();
    let ids = Tensor::from_data(TensorData::new(row.repeat(BATCH), [BATCH, seq]), device);
    let labels = Tensor::from_data(TensorData::new(labels.repeat(BATCH), [BATCH, seq]), device);
    let pixels = Tensor::random(
        [BATCH, 3, 512, 512],
        Distribution::Uniform(-1.0, 1.0),
        device,
    );
    (VlmInput::new(ids, Some(pixels)), labels)
}

fn time(iters: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed() / iters as u32
}

fn bench<B: AutodiffBackend>(name: &str, iters: usize) {
    let device = B::Device::default();
    let config = config();
    let model = Idefics3::<B>::init_random(&config, 0, &device);
    let (input, labels) = batch::<B>(&config, &device);
    let train = time(iters, || {
        let loss = model.forward_loss(&input, &labels).expect("forward");
        let grads = loss.mean.backward();
        std::hint::black_box(grads);
    });
    let inner = model.valid();
    let (input, _) = batch::<B::InnerBackend>(&config, &device);
    let infer = time(iters, || {
        let logits = inner.forward(&input).expect("forward");
        std::hint::black_box(logits.into_data());
    });
    println!(
        "{name:8} fwd+bwd {:8.1} ms   fwd only {:8.1} ms",
        train.as_secs_f64() * 1e3,
        infer.as_secs_f64() * 1e3
    );
}

use burn::module::AutodiffModule;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let iters = args.iter().find_map(|a| a.parse().ok()).unwrap_or(5);
    let only = |name: &str| {
        !args.iter().any(|a| a == "flex" || a == "ndarray") || args.iter().any(|a| a == name)
    };
    println!(
        "1 vision layer (768 wide, {BATCH} tiles x 1024 patches) + 1 text layer (576 wide, {BATCH} x {} tokens), mean of {iters}",
        1 + 64 + TEXT_AFTER
    );
    // Alternating rounds, so a machine whose load changes treats both backends alike.
    for _ in 0..2 {
        if only("flex") {
            bench::<Autodiff<Flex>>("flex", iters);
        }
        if only("ndarray") {
            bench::<Autodiff<NdArray>>("ndarray", iters);
        }
    }
}
