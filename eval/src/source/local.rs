//! The local-model answer source (`--model`, `--checkpoint`, and evaluation inside a training
//! run): each benchmark question becomes a [`Prompt`] for the [`LocalGenerator`], the same
//! generation code `safeaware serve` answers with.

use burn::tensor::backend::Backend;
use safeaware_data::processor::{ImageSource, Message as PMessage, Part, Processor};
use safeaware_model::VisionLanguageModel;

pub use super::generator::LocalSettings;
use super::generator::{LocalGenerator, Prompt};
use super::{Answer, AnswerRequest, AnswerSource, SourceError, SourceInfo};
use crate::prompt::{Conversation, Role};

/// Answers with a model held in memory.
pub struct LocalModelSource<'a, B: Backend, M: VisionLanguageModel<B>> {
    generator: LocalGenerator<'a, B, M>,
    name: String,
    settings: LocalSettings,
}

impl<'a, B: Backend, M: VisionLanguageModel<B>> LocalModelSource<'a, B, M> {
    /// A source answering with `model`; `name` is what results record (a folder, a run).
    pub fn new(
        model: &'a M,
        processor: &'a Processor,
        name: impl Into<String>,
        settings: LocalSettings,
    ) -> Self {
        LocalModelSource {
            generator: LocalGenerator::new(model, processor),
            name: name.into(),
            settings,
        }
    }

    /// The processor's messages for a conversation about `image`: the image goes before the
    /// text of each user turn that carries it.
    pub fn messages(conversation: &Conversation, image: &ImageSource) -> Vec<PMessage> {
        let mut out = Vec::new();
        if let Some(system) = &conversation.system {
            out.push(PMessage::system(system.clone()));
        }
        for m in &conversation.messages {
            match m.role {
                Role::User => {
                    let mut parts = Vec::new();
                    if m.image {
                        parts.push(Part::Image(image.clone()));
                    }
                    parts.push(Part::text(m.text.clone()));
                    out.push(PMessage::user(parts));
                }
                Role::Assistant => out.push(PMessage::assistant(m.text.clone())),
            }
        }
        out
    }

    /// Generates for the requests that have an image; one result per request, in order.
    fn generate(&self, requests: &[&AnswerRequest<'_>]) -> Vec<Result<Answer, SourceError>> {
        let mut results: Vec<Result<Answer, SourceError>> = Vec::with_capacity(requests.len());
        let mut prompts = Vec::new();
        let mut slots = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            let Some(path) = &request.item.image else {
                results.push(Err(SourceError::MissingImage));
                continue;
            };
            let image = ImageSource::Path(path.clone());
            prompts.push(Prompt {
                id: request.item.id.clone(),
                messages: Self::messages(request.conversation, &image),
                image_name: path.display().to_string(),
            });
            results.push(Err(SourceError::Other("not generated".into())));
            slots.push(i);
        }
        let generated = self.generator.generate(&prompts, &self.settings);
        for (slot, g) in slots.into_iter().zip(generated) {
            results[slot] = g.map(|g| Answer::Text(g.text));
        }
        results
    }
}

impl<B: Backend, M: VisionLanguageModel<B>> AnswerSource for LocalModelSource<'_, B, M> {
    fn info(&self) -> SourceInfo {
        let mut details = std::collections::BTreeMap::new();
        details.insert("max_new_tokens".into(), self.settings.max_new_tokens.into());
        details.insert("batch_size".into(), self.settings.batch_size.into());
        SourceInfo {
            kind: "model".into(),
            name: self.name.clone(),
            details,
            counts: Default::default(),
        }
    }

    fn batch_size(&self) -> usize {
        self.settings.batch_size.max(1)
    }

    fn answer(&self, request: &AnswerRequest<'_>) -> Result<Answer, SourceError> {
        self.generate(&[request])
            .pop()
            .unwrap_or(Err(SourceError::Other("no answer".into())))
    }

    fn answer_batch(&self, requests: &[AnswerRequest<'_>]) -> Vec<Result<Answer, SourceError>> {
        let refs: Vec<&AnswerRequest<'_>> = requests.iter().collect();
        self.generate(&refs)
    }
}
