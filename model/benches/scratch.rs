use std::time::Instant;
use burn::backend::{Flex, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

fn time<F: FnMut()>(label: &str, n: usize, mut f: F) { f(); let s = Instant::now(); for _ in 0..n { f(); } println!("{label}: {:.1} ms", s.elapsed().as_secs_f64()*1e3/n as f64); }

fn t<B: Backend>(name: &str) {
    let d = B::Device::default();
    let x = Tensor::<B, 3>::random([2, 1024, 3072], Distribution::Normal(0.0, 1.0), &d);
    let r = Tensor::<B, 3>::random([2, 1024, 1], Distribution::Normal(0.0, 1.0), &d);
    let g = Tensor::<B, 1>::random([3072], Distribution::Normal(0.0, 1.0), &d);
    time(&format!("{name} bcast mul [..,1]"), 5, || { let _ = (x.clone() * r.clone()).into_data(); });
    time(&format!("{name} bcast div [..,1]"), 5, || { let _ = (x.clone() / r.clone()).into_data(); });
    time(&format!("{name} bcast mul gamma"), 5, || { let _ = (x.clone() * g.clone().unsqueeze::<3>()).into_data(); });
    time(&format!("{name} square+mean_dim"), 5, || { let _ = x.clone().square().mean_dim(2).into_data(); });
    time(&format!("{name} cast f32"), 5, || { let _ = x.clone().cast(burn::tensor::DType::F32).into_data(); });
    time(&format!("{name} sqrt small"), 5, || { let _ = r.clone().sqrt().into_data(); });
    time(&format!("{name} x*x*x"), 3, || { let _ = (x.clone() * x.clone() * x.clone()).into_data(); });
    time(&format!("{name} gelu via sigmoid"), 3, || {
        let inner = (x.clone() * x.clone() * 0.044715 + 1.0) * x.clone() * 1.5957691216057308;
        let _ = (x.clone() * burn::tensor::activation::sigmoid(inner)).into_data(); });
    time(&format!("{name} gelu_approximate"), 3, || { let _ = burn::tensor::activation::gelu_approximate(x.clone()).into_data(); });
    time(&format!("{name} rms manual"), 3, || {
        let inv = (x.clone().square().mean_dim(2) + 1e-5).sqrt().recip();
        let _ = (x.clone() * inv * g.clone().unsqueeze::<3>()).into_data(); });
    time(&format!("{name} swap_dims+reshape"), 3, || { let _ = x.clone().reshape([2,1024,48,64]).swap_dims(1,2).reshape([2*48,1024,64]).into_data(); });
}
fn main() { t::<Flex>("flex"); t::<NdArray>("ndarray"); }
