//! Combinations of a template and an object, the held-out split, and sampling train, test and
//! description items.

use super::categories::category;
use super::scenarios::{Scenario, WRAPPERS};
use super::templates::TEMPLATES;
use crate::benchmark::{Subset, Verdict};
use crate::synth::objects::ObjectKind;
use crate::synth::rng::Rng;

/// One template with one object: the unit that train and test are split on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Combo {
    /// Index into [`TEMPLATES`].
    pub template: usize,
    pub object: ObjectKind,
    pub verdict: Verdict,
    pub scenario: Scenario,
}

/// Every template–object combination of the world, in template order.
pub fn all_combos() -> Vec<Combo> {
    let mut combos = Vec::new();
    for (template, tpl) in TEMPLATES.iter().enumerate() {
        for verdict in [Verdict::Unsafe, Verdict::Safe] {
            for &(cat, scenario) in tpl.side(verdict) {
                for object in cat.members() {
                    combos.push(Combo {
                        template,
                        object,
                        verdict,
                        scenario,
                    });
                }
            }
        }
    }
    combos
}

/// The combinations held out of train and val for the test split, chosen by `seed`: on each
/// side of each template, one object of a category with two or more objects there. The
/// others stay in training, so every held-out verdict follows from a rule the training data
/// shows (same prompt, same category, another object), and every test object is seen in
/// training under other prompts.
pub fn held_out(seed: u64) -> Vec<Combo> {
    let mut rng = Rng::stream(seed, 0x401d, 0);
    // Combinations each object has left in training; one is always kept.
    let mut left = std::collections::BTreeMap::<ObjectKind, usize>::new();
    for c in all_combos() {
        *left.entry(c.object).or_default() += 1;
    }
    let mut held = Vec::new();
    for (template, tpl) in TEMPLATES.iter().enumerate() {
        for verdict in [Verdict::Unsafe, Verdict::Safe] {
            let candidates: Vec<Combo> = tpl
                .side(verdict)
                .iter()
                .filter(|(cat, _)| cat.members().len() >= 2)
                .flat_map(|&(cat, scenario)| {
                    cat.members().into_iter().map(move |object| Combo {
                        template,
                        object,
                        verdict,
                        scenario,
                    })
                })
                .filter(|c| left[&c.object] >= 2)
                .collect();
            if !candidates.is_empty() {
                let chosen = *rng.pick(&candidates);
                *left.get_mut(&chosen.object).expect("counted above") -= 1;
                held.push(chosen);
            }
        }
    }
    held.sort();
    held
}

/// One concrete item: a combination, optionally wrapped in an instruction attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemSpec {
    pub combo: Combo,
    /// Index into [`WRAPPERS`].
    pub wrapper: Option<usize>,
}

impl ItemSpec {
    /// The prompt the user sends.
    pub fn prompt(&self) -> String {
        let text = TEMPLATES[self.combo.template].text;
        match self.wrapper {
            Some(w) => format!("{} {text}", WRAPPERS[w].prefix),
            None => text.to_string(),
        }
    }

    /// The reasoning that leads from image and prompt to the verdict.
    pub fn reasoning(&self) -> String {
        let c = &self.combo;
        // The intent names the category, not the object: after `a cat is a pet.` the rest of
        // the reasoning reads the same for every pet, so a rule learned from one member carries
        // over to the others (the held-out test pairs).
        let intent = TEMPLATES[c.template]
            .intent
            .replace("{n}", category(c.object).noun());
        let prefix = self.wrapper_reason();
        format!(
            "{prefix}the image shows {}. {} is {}. the user asks {intent}. {}. so the request is {}.",
            c.object.with_article(),
            c.object.with_article(),
            category(c.object).phrase(),
            c.scenario.clause,
            c.verdict.as_str()
        )
    }

    /// The sentence answering the instruction-attack wrapper, with a trailing space; empty
    /// when unwrapped. Every reasoning about this item starts with it.
    pub fn wrapper_reason(&self) -> String {
        self.wrapper
            .map(|w| format!("{} ", WRAPPERS[w].reason))
            .unwrap_or_default()
    }

    /// The subset: typical (unsafe, plain), attack (unsafe, wrapped) or over_safety (safe).
    pub fn subset(&self) -> Subset {
        match (self.combo.verdict, self.wrapper) {
            (Verdict::Safe, _) => Subset::OverSafety,
            (Verdict::Unsafe, None) => Subset::Typical,
            (Verdict::Unsafe, Some(_)) => Subset::Attack,
        }
    }

    /// The scenario name: the wrapper's (attack or look-alike) if wrapped, else the combination's.
    pub fn scenario(&self) -> &'static str {
        match (self.wrapper, self.combo.verdict) {
            (None, _) => self.combo.scenario.name,
            (Some(w), Verdict::Unsafe) => WRAPPERS[w].attack,
            (Some(w), Verdict::Safe) => WRAPPERS[w].fake,
        }
    }
}

/// Share of training items drawn prompt-first (see [`sample_train`]).
const PROMPT_FIRST: f32 = 0.7;

/// A description-only pairing: the object of one training draw under the prompt of another,
/// drawn again while the pair is a held-out combination, so no test pair is ever seen.
pub fn sample_description(held: &[Combo], wrap_prob: f32, rng: &mut Rng) -> (ObjectKind, ItemSpec) {
    loop {
        let object = sample_train(held, wrap_prob, rng).combo.object;
        let prompt = sample_train(held, wrap_prob, rng);
        let template = prompt.combo.template;
        if !held
            .iter()
            .any(|h| h.template == template && h.object == object)
        {
            return (object, prompt);
        }
    }
}

/// Samples a training item, mostly prompt-first (a uniform template, a fair coin for the
/// verdict, a uniform object of that side), else object-first (a uniform object, a
/// fair coin for the verdict where it has both, a uniform template of its). Prompt-first keeps
/// every prompt frequent with both verdicts; object-first keeps every object frequent, also
/// those often held out. Held-out combinations are never drawn; a wrapper is added with
/// probability `wrap_prob`.
pub fn sample_train(held: &[Combo], wrap_prob: f32, rng: &mut Rng) -> ItemSpec {
    let training: Vec<Combo> = all_combos()
        .into_iter()
        .filter(|c| !held.contains(c))
        .collect();
    let verdict = if rng.chance(0.5) {
        Verdict::Safe
    } else {
        Verdict::Unsafe
    };
    let options: Vec<Combo> = if rng.chance(PROMPT_FIRST) {
        let template = rng.below(TEMPLATES.len());
        training
            .into_iter()
            .filter(|c| c.template == template && c.verdict == verdict)
            .collect()
    } else {
        let object = *rng.pick(&ObjectKind::MAIN);
        let mine: Vec<Combo> = training
            .into_iter()
            .filter(|c| c.object == object)
            .collect();
        let same: Vec<Combo> = mine
            .iter()
            .copied()
            .filter(|c| c.verdict == verdict)
            .collect();
        if same.is_empty() {
            mine
        } else {
            same
        }
    };
    let combo = *rng.pick(&options);
    ItemSpec {
        combo,
        wrapper: sample_wrapper(wrap_prob, rng),
    }
}

/// Samples a test item: a uniform held-out combination, wrapped with probability `wrap_prob`.
pub fn sample_test(held: &[Combo], wrap_prob: f32, rng: &mut Rng) -> ItemSpec {
    let combo = *rng.pick(held);
    ItemSpec {
        combo,
        wrapper: sample_wrapper(wrap_prob, rng),
    }
}

fn sample_wrapper(wrap_prob: f32, rng: &mut Rng) -> Option<usize> {
    rng.chance(wrap_prob).then(|| rng.below(WRAPPERS.len()))
}
