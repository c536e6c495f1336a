//! The resolved recipe of a run: its full TOML form, the fingerprint that decides whether a
//! run may be resumed with it, its run folder, and `<run>/recipe.resolved.toml`.

use std::path::{Path, PathBuf};

use super::{EvalSection, Recipe, TrainSection};
use safeaware_common::fnv::fnv1a64_hex;

/// File name of the resolved recipe inside a run folder.
pub const RESOLVED_RECIPE_FILE: &str = "recipe.resolved.toml";

impl Recipe {
    /// The recipe as TOML, every key present (unset optional keys are omitted).
    pub fn to_toml(&self) -> String {
        // Serialising plain structs of numbers, strings and arrays cannot fail.
        toml::to_string(self).unwrap_or_else(|e| format!("# unserialisable recipe: {e}\n"))
    }

    /// Hash of everything that determines the training trajectory. Logging, checkpointing,
    /// evaluation cadence, device, activation checkpointing and output folder are excluded, so a run may be resumed
    /// with those changed; anything else changed makes resuming refuse.
    pub fn fingerprint(&self) -> String {
        let mut core = self.clone();
        let defaults = TrainSection::default();
        core.train.device = defaults.device;
        core.train.devices = Vec::new();
        core.train.checkpoint_every = defaults.checkpoint_every;
        core.train.keep_last = defaults.keep_last;
        core.train.eval_every = defaults.eval_every;
        core.train.log_every = defaults.log_every;
        // The length of a run may be extended on resume.
        core.train.max_steps = None;
        core.train.epochs = defaults.epochs;
        core.train.output_dir = None;
        core.eval = EvalSection::default();
        // What is allowed, not what is trained.
        core.data.allow_overlap = false;
        // How memory is traded for compute, not what is computed (the same losses and weights).
        core.train.activation_checkpointing = false;
        fnv1a64_hex(core.to_toml().as_bytes())
    }

    /// The run folder: `train.output_dir`, else `checkpoints/<recipe file stem>`.
    pub fn run_dir(&self, recipe_path: &Path) -> PathBuf {
        self.train
            .output_dir
            .clone()
            .unwrap_or_else(|| default_run_dir(recipe_path))
    }

    /// Writes the resolved recipe to `<run>/recipe.resolved.toml` atomically, with a header
    /// comment naming its source and overrides. Returns the file's path.
    pub fn save_resolved(
        &self,
        run_dir: &Path,
        source: &Path,
        overrides: &[String],
    ) -> anyhow::Result<PathBuf> {
        let path = run_dir.join(RESOLVED_RECIPE_FILE);
        let mut text = format!("# Resolved from {}", source.display());
        for o in overrides {
            text.push_str(&format!(" --set {o}"));
        }
        text.push_str(&format!("\n# Fingerprint {}\n\n", self.fingerprint()));
        text.push_str(&self.to_toml());
        crate::fsutil::atomic_write(&path, text.as_bytes())?;
        Ok(path)
    }
}

/// `checkpoints/<stem of recipe_path>`.
pub fn default_run_dir(recipe_path: &Path) -> PathBuf {
    let stem = recipe_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    PathBuf::from("checkpoints").join(stem.unwrap_or_else(|| "run".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{ModelPart, TargetStyle};
    use safeaware_runtime::device::DeviceSpec;

    #[test]
    fn fingerprint_ignores_cadence_but_not_training() {
        let base = Recipe::default();
        let mut cadence = base.clone();
        cadence.train.log_every = 1;
        cadence.train.device = DeviceSpec::Cuda(0);
        cadence.eval.max_new_tokens = 3;
        cadence.data.allow_overlap = true;
        cadence.train.activation_checkpointing = true;
        assert_eq!(base.fingerprint(), cadence.fingerprint());
        let mut lr = base.clone();
        lr.optim.lr_text = 3e-4;
        assert_ne!(base.fingerprint(), lr.fingerprint());
        let mut seed = base.clone();
        seed.train.seed = 1;
        assert_ne!(base.fingerprint(), seed.fingerprint());
    }

    #[test]
    fn resolved_recipe_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recipe::default();
        r.model.preset = Some("tiny".into());
        r.train.freeze = vec![ModelPart::Vision];
        r.data.style = TargetStyle::Cot;
        let path = r
            .save_resolved(
                dir.path(),
                Path::new("recipes/x.toml"),
                &["train.seed=3".into()],
            )
            .unwrap();
        assert_eq!(path, dir.path().join(RESOLVED_RECIPE_FILE));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# Resolved from recipes/x.toml --set train.seed=3\n# Fingerprint "),
            "{text}"
        );
        assert_eq!(toml::from_str::<Recipe>(&text).unwrap(), r);
    }

    #[test]
    fn run_dir_defaults_to_recipe_stem() {
        let r = Recipe::default();
        assert_eq!(
            r.run_dir(Path::new("recipes/quickstart.toml")),
            Path::new("checkpoints/quickstart")
        );
        let mut o = r.clone();
        o.train.output_dir = Some("runs/x".into());
        assert_eq!(
            o.run_dir(Path::new("recipes/quickstart.toml")),
            Path::new("runs/x")
        );
    }
}
