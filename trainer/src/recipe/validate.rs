//! Semantic rules of a recipe that types alone cannot express (exactly one model source,
//! positive sizes, ratios in range, …). The file system is not consulted here: a recipe can
//! be validated on a machine that does not hold its model or data.

use super::{ModelPart, Objective, Recipe};

/// One broken rule, named by its dotted key.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationError {
    /// Dotted key of the offending value, e.g. `train.batch_size`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The broken rules found so far.
#[derive(Default)]
struct Errors(Vec<ValidationError>);

impl Errors {
    fn fail(&mut self, key: &str, message: String) {
        self.0.push(ValidationError {
            key: key.to_string(),
            message,
        })
    }
}

impl Recipe {
    /// Every broken rule (empty when the recipe is usable), section by section.
    pub fn validate(&self) -> Vec<ValidationError> {
        let mut errors = Errors::default();
        self.check_model(&mut errors);
        self.check_data(&mut errors);
        self.check_optim(&mut errors);
        self.check_train(&mut errors);
        self.check_eval(&mut errors);
        let mut errors = errors.0;
        if let Some(lora) = &self.lora {
            errors.extend(lora.validate(&self.train.freeze));
        }
        errors.extend(self.check_dpo());
        errors
    }

    /// `[dpo]`: only in a DPO run, with sane settings.
    fn check_dpo(&self) -> Vec<ValidationError> {
        match (&self.dpo, self.train.objective) {
            (Some(_), Objective::Sft) => vec![ValidationError {
                key: "dpo".into(),
                message: "[dpo] is set but train.objective is \"sft\"; set train.objective = \"dpo\" or remove [dpo]".into(),
            }],
            (Some(dpo), Objective::Dpo) => dpo.validate(),
            (None, _) => Vec::new(),
        }
    }

    /// `[model]`: exactly one of a path and a preset.
    fn check_model(&self, e: &mut Errors) {
        match (&self.model.path, &self.model.preset) {
            (None, None) => e.fail(
                "model.path",
                "set model.path (an HF folder) or model.preset".into(),
            ),
            (Some(_), Some(_)) => e.fail(
                "model.preset",
                "set only one of model.path and model.preset".into(),
            ),
            (None, Some(p)) if p.trim().is_empty() => {
                e.fail("model.preset", "must not be empty".into())
            }
            _ => {}
        }
    }

    /// `[data]` and `[data.synthetic]`: one source of training data, sane sizes.
    fn check_data(&self, e: &mut Errors) {
        let d = &self.data;
        let s = &d.synthetic;
        if s.enabled {
            for (key, set) in [
                ("data.train", d.train.is_some()),
                ("data.val", d.val.is_some()),
            ] {
                if set {
                    e.fail(key, format!("data.synthetic.enabled is true; remove {key}"));
                }
            }
            if s.settings.train == 0 {
                e.fail("data.synthetic.train", "must be > 0".into());
            }
            if s.settings.image_size < 16 {
                e.fail("data.synthetic.image_size", "must be >= 16 pixels".into());
            }
            for (key, p) in [
                ("data.synthetic.distractor_prob", s.settings.distractor_prob),
                ("data.synthetic.wrap_prob", s.settings.wrap_prob),
            ] {
                if !(0.0..=1.0).contains(&p) {
                    e.fail(key, format!("{p} is not a probability in [0, 1]"));
                }
            }
        } else if d.train.is_none() {
            e.fail(
                "data.train",
                "set data.train (a trace file) or data.synthetic.enabled = true".into(),
            );
        }
        if d.max_length < 16 {
            e.fail(
                "data.max_length",
                format!("{} is too short; must be >= 16", d.max_length),
            );
        }
    }

    /// `[optim]` and `[schedule]`: finite, non-negative rates and AdamW settings in range.
    fn check_optim(&self, e: &mut Errors) {
        let o = &self.optim;
        for (key, lr) in [
            ("optim.lr_vision", o.lr_vision),
            ("optim.lr_connector", o.lr_connector),
            ("optim.lr_text", o.lr_text),
        ] {
            if !(lr.is_finite() && lr >= 0.0) {
                e.fail(key, format!("{lr} is not a finite rate >= 0"));
            }
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            e.fail("optim.weight_decay", "must be finite and >= 0".into());
        }
        if o.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            e.fail(
                "optim.betas",
                format!("{:?}: both must be in [0, 1)", o.betas),
            );
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            e.fail("optim.eps", "must be finite and > 0".into());
        }
        if !(o.grad_clip.is_finite() && o.grad_clip >= 0.0) {
            e.fail(
                "optim.grad_clip",
                "must be finite and >= 0 (0 disables clipping)".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.schedule.min_lr_ratio) {
            e.fail(
                "schedule.min_lr_ratio",
                format!("{} is not in [0, 1]", self.schedule.min_lr_ratio),
            );
        }
    }

    /// `[train]`: devices, a length, positive sizes, something to train, data for evaluations.
    fn check_train(&self, e: &mut Errors) {
        let t = &self.train;
        if let Err(err) = t.workers() {
            e.fail("train.devices", format!("{err:#}"));
        }
        if t.max_steps == Some(0) {
            e.fail("train.max_steps", "must be > 0".into());
        }
        if t.max_steps.is_none() && t.epochs == 0 {
            e.fail(
                "train.epochs",
                "must be > 0 (or set train.max_steps)".into(),
            );
        }
        for (key, v) in [
            ("train.batch_size", t.batch_size),
            ("train.grad_accum", t.grad_accum),
        ] {
            if v == 0 {
                e.fail(key, "must be > 0".into());
            }
        }
        if t.log_every == 0 {
            e.fail("train.log_every", "must be > 0".into());
        }
        if ModelPart::ALL.iter().all(|p| t.freeze.contains(p)) {
            e.fail(
                "train.freeze",
                "freezes every part; nothing would be trained".into(),
            );
        } else if ModelPart::ALL
            .iter()
            .all(|&p| !t.trains(p) || self.optim.lr(p) == 0.0)
        {
            e.fail(
                "optim.lr_text",
                "every trained part has a learning rate of 0".into(),
            );
        }
        let (d, s) = (&self.data, &self.data.synthetic);
        let has_val = d.val.is_some() || (s.enabled && s.settings.val > 0);
        if t.eval_every > 0 && !has_val && self.eval.benchmark.is_none() {
            e.fail(
                "train.eval_every",
                "needs data.val, data.synthetic.val > 0 or eval.benchmark".into(),
            );
        }
    }

    /// `[eval]`: positive sizes, a non-empty benchmark when one is named.
    fn check_eval(&self, e: &mut Errors) {
        let ev = &self.eval;
        if ev.max_new_tokens == 0 {
            e.fail("eval.max_new_tokens", "must be > 0".into());
        }
        if ev.batch_size == 0 {
            e.fail("eval.batch_size", "must be > 0".into());
        }
        if ev.limit == Some(0) {
            e.fail(
                "eval.limit",
                "must be > 0 (remove it to use every item)".into(),
            );
        }
        if matches!(&ev.benchmark, Some(b) if b.trim().is_empty()) {
            e.fail(
                "eval.benchmark",
                "must not be empty (remove it to skip benchmark evaluation)".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic_tiny() -> Recipe {
        let mut r = Recipe::default();
        r.model.preset = Some("tiny".into());
        r.data.synthetic.enabled = true;
        r
    }

    fn keys(r: &Recipe) -> Vec<String> {
        r.validate().into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn minimal_synthetic_recipe_is_valid() {
        assert_eq!(synthetic_tiny().validate(), vec![]);
    }

    #[test]
    fn default_recipe_lacks_model_and_data() {
        assert_eq!(keys(&Recipe::default()), ["model.path", "data.train"]);
    }

    #[test]
    fn conflicting_sources_are_rejected() {
        let mut r = synthetic_tiny();
        r.model.path = Some("m".into());
        r.data.train = Some("t.jsonl".into());
        assert_eq!(keys(&r), ["model.preset", "data.train"]);
    }

    #[test]
    fn ranges_are_checked() {
        let mut r = synthetic_tiny();
        r.optim.betas = [0.9, 1.0];
        r.optim.lr_vision = f64::NAN;
        r.train.max_steps = Some(0);
        r.train.freeze = vec![ModelPart::Vision, ModelPart::Connector, ModelPart::Text];
        r.train.eval_every = 5;
        r.data.synthetic.settings.val = 0;
        assert_eq!(
            keys(&r),
            [
                "optim.lr_vision",
                "optim.betas",
                "train.max_steps",
                "train.freeze",
                "train.eval_every"
            ]
        );
    }

    #[test]
    fn dpo_section_needs_the_dpo_objective() {
        let mut r = synthetic_tiny();
        r.dpo = Some(Default::default());
        assert_eq!(keys(&r), ["dpo"]);
        r.train.objective = Objective::Dpo;
        assert_eq!(keys(&r), Vec::<String>::new());
        r.dpo.as_mut().unwrap().beta = -0.5;
        assert_eq!(keys(&r), ["dpo.beta"]);
        r.dpo = None;
        assert_eq!(r.dpo_settings(), Some(Default::default()));
    }

    #[test]
    fn all_trained_parts_at_zero_lr_is_rejected() {
        let mut r = synthetic_tiny();
        r.train.freeze = vec![ModelPart::Vision, ModelPart::Connector];
        r.optim.lr_text = 0.0;
        assert_eq!(keys(&r), ["optim.lr_text"]);
        r.optim.lr_text = 1e-4;
        r.optim.lr_vision = 0.0;
        assert_eq!(
            keys(&r),
            Vec::<String>::new(),
            "a frozen part's rate does not matter"
        );
    }
}
