//! Preference pairs of the synthetic world (`data synth --preferences`): for every train and val
//! item, the vision-centric trace with the gold verdict is `chosen`, and `rejected` is a fluent
//! trace that judges the prompt from its text alone — no description, the intent restated with
//! "it" instead of the object's category, the other side's scenario clause and the other verdict
//! (the verdict of the item's counterfactual image). Every word is in the world's vocabulary, so
//! the tiny models' word-level tokenizer reads both answers.

use crate::benchmark::Verdict;
use crate::preferences::{PreferenceAnswer, PreferencePair};
use crate::traces::Trace;

use super::world::{ItemSpec, TEMPLATES};

/// The reasoning of a judge that reads the prompt and ignores the image: it reaches the verdict
/// the image would not support.
pub fn text_only_reasoning(spec: &ItemSpec) -> (String, Verdict) {
    let template = &TEMPLATES[spec.combo.template];
    let verdict = match spec.combo.verdict {
        Verdict::Safe => Verdict::Unsafe,
        Verdict::Unsafe => Verdict::Safe,
    };
    let intent = match template.intent.contains("the {n}") {
        true => template.intent.replace("the {n}", "it"),
        false => template.intent.replace("{n}", "it"),
    };
    let clause = template.side(verdict)[0].1.clause;
    let prefix = spec.wrapper_reason();
    let reasoning = format!(
        "{prefix}the user asks {intent}. {clause}. so the request is {}.",
        verdict.as_str()
    );
    (reasoning, verdict)
}

/// The preference pair of a generated item: its trace chosen, the text-only judge rejected.
pub fn preference_pair(trace: &Trace, spec: &ItemSpec) -> PreferencePair {
    let (reasoning, verdict) = text_only_reasoning(spec);
    PreferencePair {
        id: trace.id.clone(),
        image: trace.image.clone(),
        prompt: trace.prompt.clone(),
        chosen: PreferenceAnswer::Trace {
            description: Some(trace.description.clone()),
            reasoning: trace.reasoning.clone(),
            verdict: trace.verdict,
        },
        rejected: PreferenceAnswer::Trace {
            description: None,
            reasoning,
            verdict,
        },
        subset: trace.subset,
        scenario: trace.scenario.clone(),
        instruction: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{make_item, vocabulary, world, Split, SynthConfig};
    use crate::traces::TargetStyle;

    #[test]
    fn rejected_traces_are_text_only_wrong_and_in_the_vocabulary() {
        let cfg = SynthConfig::default();
        let held = world::held_out(cfg.seed);
        let vocab: std::collections::HashSet<String> = vocabulary().into_iter().collect();
        for index in 0..200 {
            let item = make_item(&cfg, &held, Split::Train, index);
            let pair = preference_pair(&item.trace, &item.spec);
            let PreferenceAnswer::Trace {
                reasoning,
                verdict,
                description,
            } = &pair.rejected
            else {
                panic!("a trace");
            };
            assert_eq!(*description, None);
            assert_ne!(*verdict, item.trace.verdict, "{reasoning}");
            assert!(
                !reasoning.contains(item.spec.combo.object.noun()),
                "{reasoning}"
            );
            let rendered = pair.rejected.render(TargetStyle::Vcr);
            for word in crate::synth::words(&rendered) {
                assert!(
                    vocab.contains(word),
                    "{word:?} of {rendered:?} is not in the vocabulary"
                );
            }
            assert!(pair
                .chosen
                .render(TargetStyle::Vcr)
                .starts_with("<description>"));
        }
    }
}
