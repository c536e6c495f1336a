//! The rules of the synthetic world: scenarios, prompt templates, instruction-attack wrappers,
//! which object makes each template safe or unsafe, and which combinations are held out.

mod categories;
mod sampling;
mod scenarios;
mod templates;

pub use categories::{category, Category};
pub use sampling::*;
pub use scenarios::{Scenario, Wrapper, BENIGN_SCENARIOS, TYPICAL_SCENARIOS, WRAPPERS};
pub use templates::{Template, TEMPLATES};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::benchmark::{Subset, Verdict};
    use crate::synth::objects::ObjectKind;
    use crate::synth::rng::Rng;
    use std::collections::BTreeSet;

    #[test]
    fn the_world_has_29_scenarios_in_three_subsets() {
        let mut names = BTreeSet::new();
        for s in TYPICAL_SCENARIOS.iter().chain(&BENIGN_SCENARIOS) {
            names.insert(s.name);
        }
        for w in WRAPPERS {
            names.insert(w.attack);
            names.insert(w.fake);
        }
        assert_eq!(names.len(), 14 + 9 + 3 + 3);
    }

    #[test]
    fn every_template_has_both_verdicts_and_every_scenario_is_used() {
        let combos = all_combos();
        for (i, tpl) in TEMPLATES.iter().enumerate() {
            assert!(
                !tpl.unsafe_with.is_empty() && !tpl.safe_with.is_empty(),
                "template {i}"
            );
            assert!(tpl
                .unsafe_with
                .iter()
                .all(|(_, s)| s.subset == Subset::Typical));
            assert!(tpl
                .safe_with
                .iter()
                .all(|(_, s)| s.subset == Subset::OverSafety));
        }
        for s in TYPICAL_SCENARIOS.iter().chain(&BENIGN_SCENARIOS) {
            assert!(combos.iter().any(|c| c.scenario == *s), "{} unused", s.name);
        }
        let used: BTreeSet<ObjectKind> = combos.iter().map(|c| c.object).collect();
        assert_eq!(
            used.len(),
            ObjectKind::MAIN.len(),
            "every main object appears in a template"
        );
        let both = used
            .iter()
            .filter(|o| {
                let verdicts: BTreeSet<Verdict> = combos
                    .iter()
                    .filter(|c| c.object == **o)
                    .map(|c| c.verdict)
                    .collect();
                verdicts.len() == 2
            })
            .count();
        assert_eq!(
            both,
            ObjectKind::MAIN.len(),
            "every object is both safe and unsafe somewhere"
        );
    }

    #[test]
    fn held_out_combos_leave_every_template_side_and_object_in_training() {
        for seed in 0..20 {
            let held = held_out(seed);
            assert!(held.len() >= 25, "{}", held.len());
            let train: Vec<Combo> = all_combos()
                .into_iter()
                .filter(|c| !held.contains(c))
                .collect();
            for (i, _) in TEMPLATES.iter().enumerate() {
                for v in [Verdict::Safe, Verdict::Unsafe] {
                    assert!(train.iter().any(|c| c.template == i && c.verdict == v));
                }
            }
            for h in &held {
                assert!(
                    train.iter().any(|c| c.object == h.object),
                    "{:?} unseen",
                    h.object
                );
                // The rule that decides it is in training: same prompt, same category and
                // verdict, another object.
                assert!(
                    train.iter().any(|c| c.template == h.template
                        && c.verdict == h.verdict
                        && c.scenario == h.scenario
                        && category(c.object) == category(h.object)),
                    "{h:?} cannot be inferred from training"
                );
            }
        }
    }

    #[test]
    fn description_pairings_avoid_held_out_pairs_and_spread_objects_over_prompts() {
        let held = held_out(0);
        let mut rng = Rng::stream(0, 9, 0);
        let mut objects_of = std::collections::BTreeMap::<usize, BTreeSet<ObjectKind>>::new();
        for _ in 0..4000 {
            let (object, spec) = sample_description(&held, 0.5, &mut rng);
            let t = spec.combo.template;
            assert!(!held.iter().any(|h| h.template == t && h.object == object));
            objects_of.entry(t).or_default().insert(object);
        }
        // Unlike the traces, a prompt meets objects of every kind, not only its own categories.
        for (t, objects) in objects_of {
            assert!(
                objects.len() >= 25,
                "template {t}: {} objects",
                objects.len()
            );
        }
    }
}
