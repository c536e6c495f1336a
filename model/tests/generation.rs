//! KV-cached decoding and generation on small random models: incremental decoding reproduces a
//! full forward pass, left-padded batches behave like their rows run alone, the step API drives
//! a custom loop, sampling is seeded, stop conditions end rows, a [`Generation`] taken a step at
//! a time equals `generate`, and inputs beyond the context are errors, not allocations.

mod common;

use burn::tensor::{s, Int, Tensor, TensorData};
use common::{max_abs_diff, tiny_config, tiny_pixels, values, Cpu, Device};
use safeaware_model::generation::Generation;
use safeaware_model::sampling::argmax;
use safeaware_model::{
    left_pad, FinishReason, GenerationConfig, Idefics3, Idefics3Config, ModelError, TokenSampling,
    VisionLanguageModel, VlmInput,
};

const IMG: u32 = 60;

fn prompt(text_before: &[u32], text_after: &[u32]) -> Vec<u32> {
    [text_before, &[IMG; 4], text_after].concat()
}

fn ids_tensor(rows: &[Vec<u32>], device: &Device) -> Tensor<Cpu, 2, Int> {
    let seq = rows[0].len();
    let flat: Vec<i64> = rows.iter().flatten().map(|&t| t as i64).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), seq]), device)
}

fn greedy(max_new_tokens: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens,
        eos_token_ids: Vec::new(),
        sampling: TokenSampling::Greedy,
    }
}

#[test]
fn incremental_decoding_matches_the_full_forward_pass() {
    let device = Device::default();
    for tied in [true, false] {
        let model = Idefics3::<Cpu>::init_random(&tiny_config(tied), 21, &device);
        let tokens = prompt(&[1, 5, 6], &[7, 8, 9, 10, 11, 12]);
        let pixels = tiny_pixels(1, 4, &device);
        let full = model
            .forward(&VlmInput::new(
                ids_tensor(std::slice::from_ref(&tokens), &device),
                Some(pixels.clone()),
            ))
            .unwrap();
        let [_, seq, vocab] = full.dims();
        let prefix = 8; // includes the image
        let (first, mut cache) = model
            .prefill(&VlmInput::new(
                ids_tensor(&[tokens[..prefix].to_vec()], &device),
                Some(pixels),
            ))
            .unwrap();
        let expected = |t: usize| values(full.clone().slice(s![.., t..t + 1, ..]).reshape([vocab]));
        let mut worst = max_abs_diff(&values(first), &expected(prefix - 1));
        for (t, &token) in tokens.iter().enumerate().skip(prefix) {
            let step = model.decode_step(&[token], &mut cache).unwrap();
            worst = worst.max(max_abs_diff(&values(step), &expected(t)));
        }
        assert_eq!(cache.seq_len(), seq);
        assert!(worst < 1e-4, "tied={tied}: max |diff| {worst}");
    }
}

#[test]
fn left_padded_batches_match_rows_run_alone() {
    let device = Device::default();
    let model = Idefics3::<Cpu>::init_random(&tiny_config(false), 22, &device);
    let rows = [
        prompt(&[1, 5], &[7]),
        prompt(&[1, 5, 6, 30, 31], &[7, 8, 9]),
    ];
    let pixels = tiny_pixels(2, 9, &device);
    let (ids, mask) = left_pad::<Cpu>(&rows, 0, &device);
    let batch = VlmInput {
        input_ids: ids,
        attention_mask: Some(mask),
        pixel_values: Some(pixels.clone()),
        image_grid_thw: None,
    };
    let together = model.generate(&batch, &greedy(6), |_, _| false).unwrap();
    let (batch_logits, _) = model.prefill(&batch).unwrap();
    let batch_logits = values(batch_logits);
    let vocab = model.config().text.vocab_size;
    for (row, tokens) in rows.iter().enumerate() {
        let tile = pixels.clone().slice(s![row..row + 1, .., .., ..]);
        let alone_input = VlmInput::new(
            ids_tensor(std::slice::from_ref(tokens), &device),
            Some(tile),
        );
        let alone = model
            .generate(&alone_input, &greedy(6), |_, _| false)
            .unwrap();
        assert_eq!(together[row], alone[0], "row {row}");
        let (alone_logits, _) = model.prefill(&alone_input).unwrap();
        let diff = max_abs_diff(
            &batch_logits[row * vocab..(row + 1) * vocab],
            &values(alone_logits),
        );
        assert!(diff < 1e-4, "row {row}: {diff}");
    }
    assert!(together
        .iter()
        .all(|g| g.tokens.len() == 6 && g.finish == FinishReason::Length));
}

#[test]
fn the_step_api_reproduces_generate_and_runs_branches_side_by_side() {
    let device = Device::default();
    let model = Idefics3::<Cpu>::init_random(&tiny_config(true), 23, &device);
    let ids = ids_tensor(&[prompt(&[1, 2, 3], &[4])], &device);
    let clean = VlmInput::new(ids.clone(), Some(tiny_pixels(1, 1, &device)));
    let noised = VlmInput::new(ids, Some(tiny_pixels(1, 2, &device)));
    let expected = model.generate(&clean, &greedy(5), |_, _| false).unwrap()[0]
        .tokens
        .clone();

    // Two branches advanced in lock step, as visual contrastive decoding does; with weight 0 on
    // the noised branch the combination is the clean logits, so greedy must agree with generate.
    let (mut clean_logits, mut clean_cache) = model.prefill(&clean).unwrap();
    let (mut noised_logits, mut noised_cache) = model.prefill(&noised).unwrap();
    assert!(
        max_abs_diff(
            &values(clean_logits.clone()),
            &values(noised_logits.clone())
        ) > 0.0
    );
    let mut produced = Vec::new();
    for _ in 0..5 {
        let combined = values(clean_logits.clone() * 1.0 + noised_logits.clone() * 0.0);
        let token = argmax(&combined);
        produced.push(token);
        clean_logits = model.decode_step(&[token], &mut clean_cache).unwrap();
        noised_logits = model.decode_step(&[token], &mut noised_cache).unwrap();
    }
    assert_eq!(produced, expected);
}

#[test]
fn sampling_is_seeded_and_stop_conditions_end_rows() {
    let device = Device::default();
    let model = Idefics3::<Cpu>::init_random(&tiny_config(false), 24, &device);
    let input = VlmInput::new(
        ids_tensor(&[prompt(&[1, 2], &[3])], &device),
        Some(tiny_pixels(1, 3, &device)),
    );
    let sample = |seed| {
        let config = GenerationConfig {
            max_new_tokens: 12,
            eos_token_ids: Vec::new(),
            sampling: TokenSampling::Sample {
                temperature: 1.5,
                top_p: 0.95,
                seed,
            },
        };
        model.generate(&input, &config, |_, _| false).unwrap()[0]
            .tokens
            .clone()
    };
    assert_eq!(sample(1), sample(1));
    assert_ne!(sample(1), sample(2));

    let stopped = model
        .generate(&input, &greedy(10), |row, tokens| {
            row == 0 && tokens.len() == 3
        })
        .unwrap();
    assert_eq!(
        (stopped[0].tokens.len(), stopped[0].finish),
        (3, FinishReason::Stop)
    );

    let first = model.generate(&input, &greedy(1), |_, _| false).unwrap()[0].tokens[0];
    let eos = GenerationConfig {
        eos_token_ids: vec![first],
        ..greedy(10)
    };
    let ended = model.generate(&input, &eos, |_, _| false).unwrap();
    assert_eq!(
        (ended[0].tokens.len(), ended[0].finish),
        (0, FinishReason::Eos)
    );
}

#[test]
fn image_token_count_must_match_the_tiles() {
    let device = Device::default();
    let model = Idefics3::<Cpu>::init_random(&tiny_config(false), 25, &device);
    let ids = ids_tensor(&[prompt(&[1], &[2])], &device);
    for tiles in [0, 2] {
        let pixels = (tiles > 0).then(|| tiny_pixels(tiles, 1, &device));
        let err = model
            .forward(&VlmInput::new(ids.clone(), pixels))
            .unwrap_err();
        match err {
            ModelError::ImageTokenMismatch {
                image_tokens: 4,
                tiles: t,
                tokens_per_tile: 4,
                ..
            } => assert_eq!(t, tiles),
            other => panic!("unexpected {other:?}"),
        }
    }
    let wrong_size = Tensor::<Cpu, 4>::zeros([1, 3, 8, 8], &device);
    let err = model
        .forward(&VlmInput::new(ids.clone(), Some(wrong_size)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pixel_values"), "{err}");
    let out_of_vocab = ids_tensor(&[vec![1, 64]], &device);
    assert!(matches!(
        model.forward(&VlmInput::new(out_of_vocab, None)),
        Err(ModelError::Input {
            name: "input_ids",
            ..
        })
    ));
}

#[test]
fn generation_taken_a_step_at_a_time_equals_generate() {
    let device = Device::default();
    let model = Idefics3::<Cpu>::init_random(&tiny_config(false), 26, &device);
    let rows = [prompt(&[1, 5], &[7]), prompt(&[1, 5, 6, 30], &[7, 8])];
    let (ids, mask) = left_pad::<Cpu>(&rows, 0, &device);
    let input = VlmInput {
        input_ids: ids,
        attention_mask: Some(mask),
        pixel_values: Some(tiny_pixels(2, 4, &device)),
        image_grid_thw: None,
    };
    let config = greedy(7);
    let whole = model.generate(&input, &config, |_, _| false).unwrap();
    let mut stepped = Generation::start(&model, &input, &config).unwrap();
    let mut steps = 0;
    while !stepped.is_done() {
        stepped.advance(&model, 1, &mut |_, _| false).unwrap();
        steps += 1;
    }
    assert_eq!(steps, 7);
    assert_eq!(stepped.into_sequences(), whole);
}

/// The tiny model with a context of `context` positions.
fn short_context(context: usize) -> Idefics3Config {
    let mut config = tiny_config(false);
    config.text.max_position_embeddings = context;
    config
}

#[test]
fn inputs_beyond_the_context_are_errors_before_any_allocation() {
    let device = Device::default();
    let tokens = prompt(&[1, 5, 6], &[7]); // 8 tokens
    let model = Idefics3::<Cpu>::init_random(&short_context(9), 27, &device);
    assert_eq!(VisionLanguageModel::context_length(&model), 9);
    let input = VlmInput::new(
        ids_tensor(std::slice::from_ref(&tokens), &device),
        Some(tiny_pixels(1, 5, &device)),
    );
    // 8 prompt positions and one decoded token fill the context of 9; a tenth is refused.
    let (_, mut cache) = model.prefill(&input).unwrap();
    model.decode_step(&[3], &mut cache).unwrap();
    let err = model.decode_step(&[3], &mut cache).unwrap_err().to_string();
    assert!(
        err.contains("context of 9 tokens (max_position_embeddings)"),
        "{err}"
    );

    let small = Idefics3::<Cpu>::init_random(&short_context(7), 27, &device);
    let err = small.prefill(&input).unwrap_err().to_string();
    assert!(
        err.contains("8 new position(s) after 0 exceed the model's context of 7"),
        "{err}"
    );
    let err = small.forward(&input).unwrap_err().to_string();
    assert!(err.contains("max_position_embeddings"), "{err}");
    // A prompt of a million tokens: refused by the check, not by an allocation that aborts.
    let long = vec![1u32; 1_000_000];
    let ids = ids_tensor(&[long], &device);
    let err = small
        .prefill(&VlmInput::new(ids, None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("1000000 new position(s)"), "{err}");
}
