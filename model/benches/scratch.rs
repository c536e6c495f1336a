use std::time::Instant;
use burn::backend::{Flex, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use burn::nn::LinearConfig;

fn time<F: FnMut()>(label: &str, n: usize, mut f: F) { f(); let s = Instant::now(); for _ in 0..n { f(); } println!("{label}: {:.1} ms", s.elapsed().as_secs_f64()*1e3/n as f64); }

fn t<B: Backend>(name: &str) {
    let d = B::Device::default();
    let x = Tensor::<B, 3>::random([2, 1024, 768], Distribution::Normal(0.0, 1.0), &d);
    let lin = LinearConfig::new(768, 768).init::<B>(&d);
    let fc1 = LinearConfig::new(768, 3072).init::<B>(&d);
    time(&format!("{name} linear 768x768"), 5, || { let _ = lin.forward(x.clone()).into_data(); });
    time(&format!("{name} linear 768x3072"), 5, || { let _ = fc1.forward(x.clone()).into_data(); });
    let h = fc1.forward(x.clone());
    time(&format!("{name} gelu_tanh 6M"), 3, || { let _ = safeaware_model::vision_transformer::gelu_tanh(h.clone()).into_data(); });
    let q = safeaware_model::attention::split_heads(lin.forward(x.clone()), 12, 64);
    time(&format!("{name} sdpa (split views)"), 3, || { let _ = safeaware_model::attention::scaled_dot_product(q.clone(), q.clone(), q.clone(), &safeaware_model::attention::AttentionMask::Bidirectional).into_data(); });
    time(&format!("{name} merge_heads"), 3, || { let _ = safeaware_model::attention::merge_heads(q.clone()).into_data(); });
    let ln = burn::nn::LayerNormConfig::new(768).init::<B>(&d);
    time(&format!("{name} layernorm"), 5, || { let _ = ln.forward(x.clone()).into_data(); });
    let px = Tensor::<B, 4>::random([2, 3, 512, 512], Distribution::Normal(0.0, 1.0), &d);
    time(&format!("{name} patchify"), 3, || { let _ = px.clone().reshape([2,3,32,16,32,16]).permute([0,2,4,1,3,5]).reshape([2,1024,768]).into_data(); });
    let qt = Tensor::<B, 4>::random([2, 256, 9, 64], Distribution::Normal(0.0, 1.0), &d).swap_dims(1,2);
    let rope = safeaware_model::rope::Rope::new(64, 1e5);
    let pos: Vec<i64> = (0..2).flat_map(|_| 0..256i64).collect();
    let (c, s) = rope.tables::<B>(&pos, 2, 256, &d);
    time(&format!("{name} rope q"), 5, || { let _ = safeaware_model::rope::apply_rotary(qt.clone(), &c, &s).into_data(); });
}
fn main() { t::<Flex>("flex"); t::<NdArray>("ndarray"); }
