//! The memory-efficient attention op on the CPU backend under autodiff (both checkpoint
//! strategies) against Burn's unfused formulation, `grouped_query_attention`, which the fused
//! CPU kernel does not touch: output and the gradients of q, k and v (the model's masks take no
//! gradient) for every mask form, GQA, odd lengths and a folded length past one block
//! (`support/attention_cases.rs`). Tolerance: 2e-5 absolute and relative in f32 (the op sums in
//! another order); 3e-2 under bf16 autocast, where both round the products' operands to bf16
//! but at different points. Then fully masked rows (zero output and zero gradients), and
//! inference, which keeps Burn's attention.

#[path = "support/attention_cases.rs"]
mod attention_cases;

use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{FloatDType, Tensor, TensorData};
use safeaware_model::attention::AttentionMask;
use safeaware_model::memory_efficient_attention;
use safeaware_model::precision::autocast;

type Ad = Autodiff<Flex>;

#[test]
fn matches_burns_attention_on_every_mask_form_and_shape() {
    for case in attention_cases::SMALL {
        attention_cases::check::<Ad>(case, 2e-5, &Default::default());
    }
    attention_cases::check::<Autodiff<Flex, BalancedCheckpointing>>(
        attention_cases::SMALL[0],
        2e-5,
        &Default::default(),
    );
}

#[test]
fn matches_burns_mixed_precision_attention_under_bf16_autocast() {
    autocast(Some(FloatDType::BF16), || {
        for case in [attention_cases::SMALL[0], attention_cases::SMALL[3]] {
            attention_cases::check::<Ad>(case, 3e-2, &Default::default());
        }
    });
}

/// A query that sees no key (a bias of −∞ on its whole row) gets a zero output and passes no
/// gradient to anything, while the other rows still do.
#[test]
fn fully_masked_rows_give_zero_output_and_zero_gradients() {
    let device = Default::default();
    let (seq, dim) = (3, 4);
    let leaf = |seed: f32| {
        let values: Vec<f32> = (0..seq * dim).map(|i| (i as f32 * seed).sin()).collect();
        Tensor::<Ad, 4>::from_data(TensorData::new(values, [1, 1, seq, dim]), &device)
            .require_grad()
    };
    let (q, k, v) = (leaf(0.7), leaf(1.3), leaf(2.1));
    // Query 0 sees nothing; queries 1 and 2 see the keys before them.
    let bias: Vec<f32> = (0..seq * seq)
        .map(|i| {
            if i / seq == 0 || i % seq >= i / seq {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let mask = AttentionMask::Bias(Tensor::from_data(
        TensorData::new(bias, [1, 1, seq, seq]),
        &device,
    ));
    let output = memory_efficient_attention::attention(&q, &k, &v, &mask).expect("the op applies");
    let grads = output.clone().sum().backward();
    let rows = |t: Tensor<_, 4>| t.into_data().to_vec::<f32>().unwrap();
    let output = rows(output.inner());
    assert!(output[..dim].iter().all(|&x| x == 0.0), "row 0: {output:?}");
    assert!(output[dim..].iter().any(|&x| x != 0.0));
    let dq = rows(q.grad(&grads).unwrap());
    assert!(dq.iter().all(|x| x.is_finite()), "{dq:?}");
    assert!(dq[..dim].iter().all(|&x| x == 0.0), "dq of row 0: {dq:?}");
    // Key 2 is seen by no query: zero gradient; key 0 by queries 1 and 2.
    let dv = rows(v.grad(&grads).unwrap());
    assert!(
        dv[2 * dim..].iter().all(|&x| x == 0.0),
        "dv of key 2: {dv:?}"
    );
    assert!(dv[..dim].iter().all(|&x| x != 0.0), "dv of key 0: {dv:?}");
}

/// Without autodiff (inference) the op does not run: Burn's attention (a flash kernel on GPU
/// backends) does.
#[test]
fn inference_keeps_burns_attention() {
    let q = Tensor::<Flex, 4>::zeros([1, 2, 3, 4], &Default::default());
    let mask = AttentionMask::Causal;
    assert!(memory_efficient_attention::attention(&q, &q, &q, &mask).is_none());
}
