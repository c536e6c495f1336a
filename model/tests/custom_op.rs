//! `custom_op::run` with toy ops whose gradients Burn's autodiff also computes: `x²` and
//! `x · y` (written with Burn tensor ops on the inner backend), values and gradients against
//! the same expression on Burn's ops, on `Autodiff<Flex>` with both checkpoint strategies and
//! on plain `Flex`. Tolerance: 1e-6 absolute (the same f32 operations in the same order).
//! An autodiff backend the module does not know (NdArray) gets `None`.

use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::backend::{Autodiff, Flex, NdArray};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor, TensorPrimitive, Tolerance};
use safeaware_model::custom_op::{self, CustomOp};

fn tensor<X: Backend>(p: X::FloatTensorPrimitive) -> Tensor<X, 2> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

fn primitive<X: Backend>(t: Tensor<X, 2>) -> X::FloatTensorPrimitive {
    t.into_primitive().tensor()
}

/// `x²`; its backward reads the saved input.
#[derive(Clone, Debug)]
struct Square;

impl CustomOp<1> for Square {
    type Saved<X: Backend> = ();

    fn forward<X: Backend>(
        &self,
        [x]: &[X::FloatTensorPrimitive; 1],
    ) -> (X::FloatTensorPrimitive, ()) {
        let x = tensor::<X>(x.clone());
        (primitive(x.clone() * x), ())
    }

    fn backward<X: Backend>(
        &self,
        [x]: &[X::FloatTensorPrimitive; 1],
        _saved: &(),
        grad: X::FloatTensorPrimitive,
        wanted: [bool; 1],
    ) -> [Option<X::FloatTensorPrimitive>; 1] {
        let grad = tensor::<X>(x.clone()) * tensor::<X>(grad) * 2.0;
        [wanted[0].then(|| primitive(grad))]
    }
}

/// `x · y`; saves `y` (on the inner backend) to show a `Saved` state.
#[derive(Clone, Debug)]
struct Product;

impl CustomOp<2> for Product {
    type Saved<X: Backend> = X::FloatTensorPrimitive;

    fn forward<X: Backend>(
        &self,
        [x, y]: &[X::FloatTensorPrimitive; 2],
    ) -> (X::FloatTensorPrimitive, X::FloatTensorPrimitive) {
        (
            primitive(tensor::<X>(x.clone()) * tensor::<X>(y.clone())),
            y.clone(),
        )
    }

    fn backward<X: Backend>(
        &self,
        [x, _]: &[X::FloatTensorPrimitive; 2],
        y: &X::FloatTensorPrimitive,
        grad: X::FloatTensorPrimitive,
        wanted: [bool; 2],
    ) -> [Option<X::FloatTensorPrimitive>; 2] {
        let grad = tensor::<X>(grad);
        [
            wanted[0].then(|| primitive(grad.clone() * tensor::<X>(y.clone()))),
            wanted[1].then(|| primitive(grad * tensor::<X>(x.clone()))),
        ]
    }
}

fn close<B: Backend>(what: &str, got: Tensor<B, 2>, want: Tensor<B, 2>) {
    let tolerance = Tolerance::<f32>::absolute(1e-6);
    let (got, want) = (got.into_data(), want.into_data());
    assert_eq!(got.shape, want.shape, "{what}");
    assert!(
        got.to_vec::<f32>().unwrap().iter().any(|v| *v != 0.0),
        "{what}: all zero"
    );
    got.assert_approx_eq::<f32>(&want, tolerance);
}

fn random<B: Backend>(seed: u64) -> Tensor<B, 2> {
    B::seed(&Default::default(), seed);
    Tensor::random([3, 5], Distribution::Normal(0.0, 1.0), &Default::default())
}

/// Values and gradients of `x² · y` through both ops against Burn's ops; `y` needs no gradient
/// in the second round (the op must not be asked for it).
fn check<B: AutodiffBackend>() {
    for y_grad in [true, false] {
        let x = random::<B>(1).require_grad();
        let y = random::<B>(2);
        let y = if y_grad { y.require_grad() } else { y };
        let op = |x: Tensor<B, 2>, y: Tensor<B, 2>| {
            let square = custom_op::run::<B, _, 1>(Square, [primitive(x)]).expect("known backend");
            tensor::<B>(custom_op::run::<B, _, 2>(Product, [square, primitive(y)]).unwrap())
        };
        let got = op(x.clone(), y.clone());
        let want = x.clone() * x.clone() * y.clone();
        close("value", got.clone(), want.clone());
        let (got, want) = (got.sum().backward(), want.sum().backward());
        let grad = |g: &B::Gradients, t: &Tensor<B, 2>| t.grad(g);
        close(
            "x's gradient",
            grad(&got, &x).unwrap(),
            grad(&want, &x).unwrap(),
        );
        assert_eq!(grad(&got, &y).is_some(), y_grad);
        if y_grad {
            close(
                "y's gradient",
                grad(&got, &y).unwrap(),
                grad(&want, &y).unwrap(),
            );
        }
    }
}

#[test]
fn toy_ops_match_burns_autodiff() {
    check::<Autodiff<Flex>>();
    check::<Autodiff<Flex, BalancedCheckpointing>>();
}

#[test]
fn without_autodiff_the_forward_runs() {
    let x = random::<Flex>(3);
    let got = custom_op::run::<Flex, _, 1>(Square, [primitive(x.clone())]).unwrap();
    close("value", tensor::<Flex>(got), x.clone() * x);
}

#[test]
fn an_unknown_autodiff_backend_gets_none() {
    let x = random::<Autodiff<NdArray>>(4);
    assert!(custom_op::run::<Autodiff<NdArray>, _, 1>(Square, [primitive(x)]).is_none());
}
