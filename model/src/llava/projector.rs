//! LLaVA's multimodal projector (`multi_modal_projector`, HF `LlavaMultiModalProjector`): a
//! two-layer MLP from the CLIP features (concatenated over the chosen layers) to the language
//! model's width, `linear_2(act(linear_1(x)))`, biases per `multimodal_projector_bias`.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::activation::Activation;
use crate::linear::Linear;
use crate::llava::config::LlavaConfig;

/// The projector.
#[derive(Module, Debug)]
pub struct MultiModalProjector<B: Backend> {
    /// Vision features → text width.
    pub linear_1: Linear<B>,
    /// Text width → text width.
    pub linear_2: Linear<B>,
    #[module(skip)]
    activation: Activation,
}

impl<B: Backend> MultiModalProjector<B> {
    /// A placeholder projector of `config` (zeros, allocated lazily).
    pub fn new(config: &LlavaConfig, device: &B::Device) -> Self {
        let (input, text) = (config.projector_input_size(), config.text.hidden_size);
        let bias = config.multimodal_projector_bias;
        Self {
            linear_1: Linear::new(input, text, bias, device),
            linear_2: Linear::new(text, text, bias, device),
            activation: config.projector_hidden_act,
        }
    }

    /// `[N, tokens, vision features]` → `[N, tokens, text hidden]`.
    pub fn forward(&self, features: Tensor<B, 3>) -> Tensor<B, 3> {
        let hidden = self.activation.forward(self.linear_1.forward(features));
        self.linear_2.forward(hidden)
    }
}
