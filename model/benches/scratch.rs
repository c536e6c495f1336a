use std::time::Instant;
use burn::backend::{Flex, NdArray, Autodiff};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use burn::tensor::module::linear;

fn t<B: Backend>(name: &str) {
    let d = B::Device::default();
    let x = Tensor::<B, 3>::random([2, 1024, 768], Distribution::Normal(0.0, 1.0), &d);
    let w_c = Tensor::<B, 2>::random([768, 3072], Distribution::Normal(0.0, 1.0), &d);
    let w_t = Tensor::<B, 2>::random([3072, 768], Distribution::Normal(0.0, 1.0), &d).transpose();
    for (label, w) in [("contig", w_c.clone()), ("transposed", w_t.clone())] {
        let _ = linear(x.clone(), w.clone(), None).into_data();
        let s = Instant::now();
        for _ in 0..5 { let _ = linear(x.clone(), w.clone(), None).into_data(); }
        let ms = s.elapsed().as_secs_f64() * 1e3 / 5.0;
        println!("{name} linear {label}: {ms:.1} ms = {:.1} GFLOP/s", 2.0*2048.0*768.0*3072.0/ms/1e6);
    }
    let q = Tensor::<B, 4>::random([2, 12, 1024, 64], Distribution::Normal(0.0, 1.0), &d);
    let s = Instant::now();
    for _ in 0..3 { let _ = burn::tensor::module::attention(q.clone(), q.clone(), q.clone(), None, None, Default::default()).into_data(); }
    println!("{name} attention: {:.1} ms", s.elapsed().as_secs_f64()*1e3/3.0);
    let s = Instant::now();
    for _ in 0..3 { let sc = q.clone().matmul(q.clone().swap_dims(2,3)); let p = burn::tensor::activation::softmax(sc, 3); let _ = p.matmul(q.clone()).into_data(); }
    println!("{name} attention manual: {:.1} ms", s.elapsed().as_secs_f64()*1e3/3.0);
    let s = Instant::now();
    for _ in 0..3 { let _ = burn::tensor::activation::gelu_approximate(x.clone().repeat_dim(2, 4)).into_data(); }
    println!("{name} gelu_tanh [2,1024,3072]: {:.1} ms", s.elapsed().as_secs_f64()*1e3/3.0);
}
fn main() { t::<Flex>("flex"); t::<NdArray>("ndarray"); t::<Autodiff<Flex>>("ad-flex"); }
