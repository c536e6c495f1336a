//! Counterfactual images: the same prompt with another object, one of a category the template
//! puts on the other side, so the gold verdict flips. `eval --image-ablation counterfactual`
//! asks them: a model that judges from the words alone keeps its verdict, one that looks at the
//! image changes it.

use image::RgbImage;

use super::rng::Rng;
use super::world::{Combo, ItemSpec, TEMPLATES};
use super::{scene, SynthConfig};
use crate::benchmark::Verdict;

/// Stream of the counterfactual draws (the splits use 1..=3, description-only items 4).
const STREAM: u64 = 5;

/// The counterfactual of test item `index` whose spec is `spec`: the same template and wrapper
/// with an object of the opposite verdict, drawn and rendered deterministically in `cfg.seed`
/// and `index` (the items' own draws are untouched).
pub fn make_counterfactual(
    cfg: &SynthConfig,
    spec: &ItemSpec,
    index: usize,
) -> (ItemSpec, RgbImage) {
    let mut rng = Rng::stream(cfg.seed, STREAM, index as u64);
    let template = spec.combo.template;
    let verdict = match spec.combo.verdict {
        Verdict::Safe => Verdict::Unsafe,
        Verdict::Unsafe => Verdict::Safe,
    };
    // Every template has both sides and every category has members (world.rs tests).
    let options: Vec<Combo> = TEMPLATES[template]
        .side(verdict)
        .iter()
        .flat_map(|&(category, scenario)| {
            category.members().into_iter().map(move |object| Combo {
                template,
                object,
                verdict,
                scenario,
            })
        })
        .collect();
    let combo = *rng.pick(&options);
    let scene = scene::render(combo.object, cfg.image_size, cfg.distractor_prob, &mut rng);
    let flipped = ItemSpec {
        combo,
        wrapper: spec.wrapper,
    };
    (flipped, scene.image)
}

#[cfg(test)]
mod tests {
    use super::super::{make_item, world, Split};
    use super::*;

    #[test]
    fn a_counterfactual_keeps_the_prompt_and_flips_the_verdict_deterministically() {
        let cfg = SynthConfig::default();
        let held = world::held_out(cfg.seed);
        for index in 0..60 {
            let item = make_item(&cfg, &held, Split::Test, index);
            let (cf, image) = make_counterfactual(&cfg, &item.spec, index);
            assert_eq!(cf.prompt(), item.spec.prompt());
            assert_ne!(cf.combo.verdict, item.spec.combo.verdict);
            assert_ne!(cf.combo.object, item.spec.combo.object);
            assert_eq!(image.dimensions(), (cfg.image_size, cfg.image_size));
            let (again, image_again) = make_counterfactual(&cfg, &item.spec, index);
            assert_eq!((again, image_again), (cf, image));
        }
    }
}
