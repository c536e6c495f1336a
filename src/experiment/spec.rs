//! The experiment file (`experiments/*.toml`): named model sources, named benchmarks, and the
//! arms — a model × a prompt × a decoding, each naming its baseline arm — with `--set`
//! overrides (`models.base.path=…`, `eval.max_tokens=64`, `arms.<name>.prompt=…`). Every
//! problem is reported with the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safeaware_eval::ablation::ImageAblation;
use safeaware_eval::decoding::DecodingMode;
use safeaware_eval::prompt::PromptStrategy;
use safeaware_runtime::device::DeviceSpec;
use safeaware_trainer::recipe::apply_override;
use serde::Deserialize;

/// A whole experiment file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// The comparison's title.
    pub title: String,
    /// Default output folder (`--out` wins; else `runs/<file stem>`).
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// A file of quoted reference rows shown beside the measured arms.
    #[serde(default)]
    pub references: Option<PathBuf>,
    /// Image ablation of every arm that can be asked again (`blank` or `counterfactual`).
    #[serde(default)]
    pub image_ablation: Option<String>,
    /// Device for training and local generation.
    #[serde(default)]
    pub device: DeviceSpec,
    #[serde(default)]
    pub eval: EvalSettings,
    /// Model sources by name.
    pub models: BTreeMap<String, ModelSource>,
    /// Benchmarks by name; every arm is evaluated on each.
    pub benchmarks: BTreeMap<String, BenchmarkSource>,
    /// The arms, in the order of the comparison.
    pub arms: Vec<Arm>,
}

/// How every arm is asked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSettings {
    /// Most new tokens per answer.
    pub max_tokens: usize,
    /// Prompts generated together (local models).
    pub batch_size: usize,
    /// Requests in flight at once (endpoints).
    pub concurrency: usize,
    /// Seconds one request may take (endpoints).
    pub timeout_s: f64,
    /// Retries of a failed request (endpoints).
    pub retries: u32,
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            max_tokens: 128,
            batch_size: 16,
            concurrency: 4,
            timeout_s: 120.0,
            retries: 3,
        }
    }
}

/// Where a model's answers come from: exactly one of a recipe to train, a model folder, an
/// endpoint or a responses file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    /// A recipe, trained (or reused) in `<out>/runs/`.
    #[serde(default)]
    pub recipe: Option<PathBuf>,
    /// `--set` overrides of the recipe.
    #[serde(default)]
    pub set: Vec<String>,
    /// Another recipe model of this experiment whose final folder is this recipe's
    /// `model.path` (it is trained first): e.g. DPO continuing from the SFT model.
    #[serde(default)]
    pub from: Option<String>,
    /// An HF model folder or a training checkpoint.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// An OpenAI-compatible base URL (with `endpoint_model`).
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub endpoint_model: Option<String>,
    /// A JSONL file of recorded responses.
    #[serde(default)]
    pub responses: Option<PathBuf>,
}

/// A benchmark: a spec (`mmsafeaware:<dir>`, `jsonl:<file>`) or the held-out benchmark of a
/// recipe's synthetic data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkSource {
    #[serde(default)]
    pub spec: Option<String>,
    /// The recipe whose synthetic world's test split is the benchmark.
    #[serde(default)]
    pub recipe: Option<PathBuf>,
    /// `--set` overrides of that recipe (e.g. `data.synthetic.test=50`).
    #[serde(default)]
    pub set: Vec<String>,
    /// Per-item annotations (scenarios) to apply.
    #[serde(default)]
    pub annotations: Option<PathBuf>,
    /// Only the first N items.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One arm.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    pub name: String,
    /// A key of `models`.
    pub model: String,
    /// paper, image-first, describe-first, safety-system or a template file.
    #[serde(default = "paper")]
    pub prompt: String,
    #[serde(default)]
    pub decoding: DecodingMode,
    /// The arm this one is compared with (none: a baseline).
    #[serde(default)]
    pub baseline: Option<String>,
    /// Overrides the experiment's `image_ablation`; `none` turns it off.
    #[serde(default)]
    pub image_ablation: Option<String>,
}

fn paper() -> String {
    "paper".into()
}

impl Arm {
    /// The image ablation this arm runs.
    pub fn ablation(&self, default: Option<&str>) -> Result<Option<ImageAblation>> {
        match self.image_ablation.as_deref().or(default) {
            None | Some("none") => Ok(None),
            Some(kind) => Ok(Some(kind.parse().map_err(anyhow::Error::msg)?)),
        }
    }
}

/// What a model source is, once checked.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind<'a> {
    Recipe(&'a Path, &'a [String]),
    Folder(&'a Path),
    Endpoint(&'a str, &'a str),
    Responses(&'a Path),
}

impl ModelSource {
    /// The one source this names; `name` is for the error.
    pub fn kind(&self, name: &str) -> Result<SourceKind<'_>> {
        let mut kinds = Vec::new();
        if let Some(r) = &self.recipe {
            kinds.push(SourceKind::Recipe(r, &self.set));
        }
        if let Some(p) = self.path.as_deref().filter(|p| !p.as_os_str().is_empty()) {
            kinds.push(SourceKind::Folder(p));
        }
        if let Some(url) = self.endpoint.as_deref().filter(|u| !u.is_empty()) {
            let Some(model) = self.endpoint_model.as_deref().filter(|m| !m.is_empty()) else {
                bail!("models.{name}: `endpoint` needs `endpoint_model` (the model name to send)");
            };
            kinds.push(SourceKind::Endpoint(url, model));
        }
        if let Some(r) = &self.responses {
            kinds.push(SourceKind::Responses(r));
        }
        match kinds.len() {
            1 => Ok(kinds.remove(0)),
            0 => bail!(
                "models.{name} names no model: give one with --set models.{name}.path=<HF folder> \
                 or --set models.{name}.endpoint=<url> --set models.{name}.endpoint_model=<name>"
            ),
            _ => bail!(
                "models.{name} names several sources; give exactly one of recipe, path, endpoint \
                 or responses"
            ),
        }
    }
}

/// Reads `path`, applies `overrides` and checks the arms; errors name the file and key.
pub fn load(path: &Path, overrides: &[String]) -> Result<Experiment> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {origin}"))?;
    // Parsed as it stands first, so an error in the file points at its line.
    toml::from_str::<Experiment>(&text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    for spec in overrides {
        apply(&mut table, spec)?;
    }
    let experiment: Experiment = table
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("{origin} with --set: {}", e.message()))?;
    experiment
        .check()
        .with_context(|| format!("invalid experiment {origin}"))?;
    Ok(experiment)
}

/// Applies one `--set`: `arms.<name>.<key>=<value>` sets a key of the arm of that name, any
/// other key goes through the recipe override rules.
fn apply(table: &mut toml::Table, spec: &str) -> Result<()> {
    let Some(rest) = spec.strip_prefix("arms.") else {
        return apply_override(table, spec);
    };
    let Some((path, value)) = rest.split_once('=') else {
        bail!("--set {spec}: expected KEY=VALUE");
    };
    let Some((arm, key)) = path.trim().rsplit_once('.') else {
        bail!("--set {spec}: expected arms.<arm name>.<key>=<value>");
    };
    let arms = table.get_mut("arms").and_then(toml::Value::as_array_mut);
    let found = arms.and_then(|arms| {
        arms.iter_mut()
            .filter_map(toml::Value::as_table_mut)
            .find(|t| t.get("name").and_then(toml::Value::as_str) == Some(arm))
    });
    let Some(found) = found else {
        bail!("--set {spec}: no arm is named `{arm}`");
    };
    apply_override(found, &format!("{key}={value}"))
}

impl Experiment {
    /// Cross-references: unique arm names, known models and baselines without a cycle, valid
    /// prompts and ablations, one source per benchmark, eval settings of at least 1.
    fn check(&self) -> Result<()> {
        self.image_ablation_default()?;
        for (key, value) in [
            ("max_tokens", self.eval.max_tokens),
            ("batch_size", self.eval.batch_size),
            ("concurrency", self.eval.concurrency),
        ] {
            if value == 0 {
                bail!("eval.{key} must be at least 1, got 0");
            }
        }
        let timeout = self.eval.timeout_s;
        if !(timeout > 0.0 && timeout.is_finite()) {
            bail!("eval.timeout_s must be a positive number of seconds, got {timeout}");
        }
        for (i, arm) in self.arms.iter().enumerate() {
            let at = format!("arms[{i}] (`{}`)", arm.name);
            check_folder_name(&arm.name).with_context(|| format!("{at}: name"))?;
            if self.arms[..i].iter().any(|a| a.name == arm.name) {
                bail!("{at}: another arm has this name");
            }
            if !self.models.contains_key(&arm.model) {
                bail!("{at}: model `{}` is not in [models]", arm.model);
            }
            if let Some(base) = &arm.baseline {
                if base == &arm.name || !self.arms.iter().any(|a| &a.name == base) {
                    bail!("{at}: baseline `{base}` is not another arm");
                }
            }
            PromptStrategy::parse(&arm.prompt).with_context(|| format!("{at}: prompt"))?;
            arm.ablation(None)
                .with_context(|| format!("{at}: image_ablation"))?;
        }
        if self.arms.is_empty() {
            bail!("no [[arms]]");
        }
        for (name, source) in &self.models {
            self.check_from(name, source)?;
        }
        self.check_baseline_cycles()?;
        for (name, b) in &self.benchmarks {
            check_folder_name(name).with_context(|| format!("benchmarks.{name}"))?;
            if b.spec.is_some() == b.recipe.is_some() {
                bail!("benchmarks.{name}: give exactly one of `spec` or `recipe`");
            }
        }
        if self.benchmarks.is_empty() {
            bail!("no [benchmarks]");
        }
        Ok(())
    }

    /// `from` is only for a recipe model and names another recipe model that has no `from`.
    fn check_from(&self, name: &str, source: &ModelSource) -> Result<()> {
        let Some(from) = &source.from else {
            return Ok(());
        };
        if source.recipe.is_none() {
            bail!("models.{name}.from: only a `recipe` model continues from another");
        }
        match self.models.get(from) {
            Some(base) if from != name && base.recipe.is_some() && base.from.is_none() => Ok(()),
            _ => bail!(
                "models.{name}.from: `{from}` is not another recipe model of [models] (one without `from`)"
            ),
        }
    }

    /// Refuses baselines that lead back to the arm they start from (`a → b → a`).
    fn check_baseline_cycles(&self) -> Result<()> {
        let baseline = |name: &str| {
            self.arms
                .iter()
                .find(|a| a.name == name)
                .and_then(|a| a.baseline.as_deref())
        };
        for arm in &self.arms {
            let mut chain = vec![arm.name.as_str()];
            let mut at = arm.name.as_str();
            while let Some(next) = baseline(at) {
                chain.push(next);
                if next == arm.name {
                    bail!("the baselines of arms form a cycle: {}", chain.join(" → "));
                }
                if chain[..chain.len() - 1].contains(&next) {
                    break;
                }
                at = next;
            }
        }
        Ok(())
    }

    /// The experiment-wide image ablation, checked.
    pub fn image_ablation_default(&self) -> Result<Option<&str>> {
        match self.image_ablation.as_deref() {
            None | Some("none") => Ok(None),
            Some(kind) => {
                kind.parse::<ImageAblation>()
                    .map_err(|e| anyhow::anyhow!("image_ablation: {e}"))?;
                Ok(Some(kind))
            }
        }
    }
}

/// Arm and benchmark names become folder names: letters, digits, `-`, `_`, `+` and `.`, not
/// starting with a dot.
fn check_folder_name(name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_+.".contains(c);
    if name.is_empty() || name.starts_with('.') || !name.chars().all(allowed) {
        bail!("`{name}` cannot name a folder: use letters, digits, -, _, + and . (not first)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
title = "t"
[models.base]
[models.trained]
recipe = "recipes/quickstart.toml"
[benchmarks.b]
spec = "jsonl:x.jsonl"
[[arms]]
name = "base"
model = "base"
[[arms]]
name = "cot"
model = "base"
prompt = "describe-first"
baseline = "base"
"#;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn overrides_reach_models_eval_settings_and_arms_by_name() {
        let (_d, path) = write(FILE);
        let e = load(
            &path,
            &[
                "models.base.path=/models/m".into(),
                "eval.max_tokens=7".into(),
                "arms.cot.decoding=vcd".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            e.models["base"].kind("base").unwrap(),
            SourceKind::Folder(Path::new("/models/m"))
        );
        assert_eq!(e.eval.max_tokens, 7);
        assert_eq!(e.arms[1].decoding, DecodingMode::Vcd);
        let err = e.models["trained"].kind("x");
        assert!(matches!(err, Ok(SourceKind::Recipe(..))));
        let unset = load(&path, &[]).unwrap();
        let msg = unset.models["base"].kind("base").unwrap_err().to_string();
        assert!(msg.contains("--set models.base.path="), "{msg}");
    }

    #[test]
    fn bad_files_and_overrides_name_what_is_wrong() {
        let (_d, path) = write(&FILE.replace("baseline = \"base\"", "baseline = \"nope\""));
        let msg = format!("{:#}", load(&path, &[]).unwrap_err());
        assert!(
            msg.contains("arms[1] (`cot`)") && msg.contains("nope"),
            "{msg}"
        );
        let (_d, path) = write(&FILE.replace("prompt = ", "promt = "));
        let msg = format!("{:#}", load(&path, &[]).unwrap_err());
        assert!(msg.contains("promt") && msg.contains("line"), "{msg}");
        let (_d, path) = write(FILE);
        let msg = format!(
            "{:#}",
            load(&path, &["arms.zzz.prompt=paper".into()]).unwrap_err()
        );
        assert!(msg.contains("no arm is named `zzz`"), "{msg}");
        let msg = format!(
            "{:#}",
            load(&path, &["image_ablation=dark".into()]).unwrap_err()
        );
        assert!(msg.contains("dark"), "{msg}");
        let msg = format!(
            "{:#}",
            load(&path, &["eval.max_tokens=0".into()]).unwrap_err()
        );
        assert!(msg.contains("eval.max_tokens must be at least 1"), "{msg}");
        for timeout in ["0", "-1", "nan", "inf"] {
            let set = format!("eval.timeout_s={timeout}");
            let msg = format!("{:#}", load(&path, &[set]).unwrap_err());
            assert!(msg.contains("eval.timeout_s must be a positive"), "{msg}");
        }
    }

    #[test]
    fn a_baseline_cycle_is_refused_naming_it() {
        let cycle = FILE.replace(
            "name = \"base\"\nmodel = \"base\"",
            "name = \"base\"\nmodel = \"base\"\nbaseline = \"cot\"",
        );
        assert_ne!(cycle, FILE);
        let (_d, path) = write(&cycle);
        let msg = format!("{:#}", load(&path, &[]).unwrap_err());
        assert!(msg.contains("cycle: base → cot → base"), "{msg}");
    }

    #[test]
    fn from_names_another_recipe_model() {
        let with = |from: &str, on: &str| {
            let text = format!("{FILE}[models.tuned]\nrecipe = \"recipes/quickstart-dpo.toml\"\n")
                .replace(
                    &format!("[models.{on}]\n"),
                    &format!("[models.{on}]\nfrom = \"{from}\"\n"),
                );
            let (_d, path) = write(&text);
            load(&path, &[]).map_err(|e| format!("{e:#}"))
        };
        let ok = with("trained", "tuned").unwrap();
        assert_eq!(ok.models["tuned"].from.as_deref(), Some("trained"));
        let err = with("base", "tuned").unwrap_err();
        assert!(
            err.contains("models.tuned.from: `base` is not another recipe model"),
            "{err}"
        );
        assert!(with("tuned", "tuned").is_err());
        let err = with("trained", "base").unwrap_err();
        assert!(
            err.contains("models.base.from: only a `recipe` model"),
            "{err}"
        );
    }
}
