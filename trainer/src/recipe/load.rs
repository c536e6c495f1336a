//! Reading a recipe file, applying `--set` overrides and reporting errors with their line.
//!
//! The file is type-checked on its own first, so its errors point at `file:line:column`;
//! each override is then applied to the parsed table and type-checked in turn, so a bad
//! override is reported by its `--set` text. Semantic rules come last, located by key.

use super::Recipe;
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// A validated recipe together with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedRecipe {
    /// The resolved recipe (defaults filled, overrides applied).
    pub recipe: Recipe,
    /// The recipe file.
    pub path: PathBuf,
    /// The `--set` overrides, as given.
    pub overrides: Vec<String>,
}

impl LoadedRecipe {
    /// The run folder (see [`Recipe::run_dir`]).
    pub fn run_dir(&self) -> PathBuf {
        self.recipe.run_dir(&self.path)
    }
}

/// Reads `path`, applies `overrides` and checks every rule; all problems are reported at once.
pub fn load_recipe(path: &Path, overrides: &[String]) -> Result<LoadedRecipe> {
    let text =
        fs::read_to_string(path).with_context(|| format!("reading recipe {}", path.display()))?;
    let origin = path.display().to_string();
    let mut recipe = parse_recipe(&text, &origin)?;
    if !overrides.is_empty() {
        // Cannot fail: the same text just parsed as a recipe.
        let mut table: toml::Table =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!(located(&origin, &text, &e)))?;
        for spec in overrides {
            apply_override(&mut table, spec)?;
            recipe = table.clone().try_into().map_err(|e: toml::de::Error| {
                let raw = spec.split_once('=').map_or("", |(_, v)| v.trim());
                let hint = if toml_value(raw).is_none() {
                    " (the value is not TOML, so it was read as a string; arrays are written like '[\"vision\"]')"
                } else {
                    ""
                };
                anyhow::anyhow!("--set {spec}: {}{hint}", e.message().trim_end())
            })?;
        }
    }
    let errors = recipe.validate();
    if !errors.is_empty() {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| {
                let overridden = overrides
                    .iter()
                    .any(|o| o.split('=').next() == Some(e.key.as_str()));
                match locate_key(&text, &e.key) {
                    _ if overridden => format!("{origin} (--set {}): {}", e.key, e.message),
                    Some(line) => format!("{origin}:{line}: {}: {}", e.key, e.message),
                    None => format!("{origin}: {}: {}", e.key, e.message),
                }
            })
            .collect();
        bail!("invalid recipe:\n{}", lines.join("\n"));
    }
    Ok(LoadedRecipe {
        recipe,
        path: path.to_path_buf(),
        overrides: overrides.to_vec(),
    })
}

/// Parses recipe text; syntax errors, unknown keys and wrong types name `origin:line:column`.
pub fn parse_recipe(text: &str, origin: &str) -> Result<Recipe> {
    toml::from_str(text).map_err(|e| anyhow::anyhow!(located(origin, text, &e)))
}

/// Sets `key=value` in `table`, creating intermediate tables. The value is parsed as a TOML
/// value, or taken as a plain string when it is not valid TOML.
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<()> {
    let Some((key, raw)) = spec.split_once('=') else {
        bail!("--set {spec}: expected KEY=VALUE, e.g. --set train.max_steps=10");
    };
    let key = key.trim();
    let segments: Vec<&str> = key.split('.').map(str::trim).collect();
    if segments.iter().any(|s| s.is_empty()) {
        bail!("--set {spec}: bad key {key:?}; expected dotted names such as train.seed");
    }
    let value = parse_value(raw.trim());
    let (last, parents) = segments
        .split_last()
        .expect("split yields at least one segment");
    let mut current = table;
    for (i, seg) in parents.iter().enumerate() {
        let entry = current
            .entry(seg.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            other => bail!(
                "--set {spec}: `{}` is a value of type {}, not a table",
                segments[..=i].join("."),
                other.type_str()
            ),
        };
    }
    current.insert(last.to_string(), value);
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    toml_value(raw).unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// `raw` as a TOML value, if it is one.
fn toml_value(raw: &str) -> Option<toml::Value> {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
}

/// `origin:line:column: message` plus the offending line, from a TOML error's span.
fn located(origin: &str, text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end();
    let Some(span) = err.span() else {
        return format!("{origin}: {message}");
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_no = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let line_text = text[line_start..].lines().next().unwrap_or("");
    format!("{origin}:{line_no}:{column}: {message}\n    {line_no} | {line_text}")
}

/// 1-based line where the dotted `key` is assigned in `text`, if it is written there as
/// `name = ...` under its `[section]` header (or with the full dotted name at top level).
fn locate_key(text: &str, key: &str) -> Option<usize> {
    let (section, name) = key.rsplit_once('.').unwrap_or(("", key));
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = header.trim().to_string();
            continue;
        }
        let Some((lhs, _)) = line.split_once('=') else {
            continue;
        };
        let lhs: String = lhs.split('.').map(str::trim).collect::<Vec<_>>().join(".");
        let full = if current.is_empty() {
            lhs.clone()
        } else {
            format!("{current}.{lhs}")
        };
        if (current == section && lhs == name) || full == key {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{ModelPart, TargetStyle};
    use safeaware_runtime::device::DeviceSpec;

    #[test]
    fn missing_sections_and_keys_take_defaults() {
        let r = parse_recipe("[train]\nseed = 7\n", "t.toml").unwrap();
        assert_eq!(r.train.seed, 7);
        assert_eq!(r.train.batch_size, 8);
        assert_eq!(r.data.style, TargetStyle::Vcr);
        assert_eq!(r.optim.betas, [0.9, 0.999]);
    }

    #[test]
    fn unknown_key_error_names_line_and_key() {
        let text = "[model]\npreset = \"tiny\"\n\n[train]\nseed = 1\nbatchsize = 4\n";
        let err = parse_recipe(text, "r.toml").unwrap_err().to_string();
        assert!(err.starts_with("r.toml:6:1:"), "{err}");
        assert!(err.contains("batchsize"), "{err}");
    }

    #[test]
    fn wrong_type_error_names_line() {
        let text = "[train]\nseed = 1\nbatch_size = \"big\"\n";
        let err = parse_recipe(text, "r.toml").unwrap_err().to_string();
        assert!(err.starts_with("r.toml:3:"), "{err}");
        assert!(err.contains("batch_size = \"big\""), "{err}");
        let bad_enum = parse_recipe("[data]\nstyle = \"essay\"\n", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(bad_enum.starts_with("r.toml:2:"), "{bad_enum}");
        let bad_device = parse_recipe("[train]\ndevice = \"tpu\"\n", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(bad_device.contains("unknown device"), "{bad_device}");
    }

    #[test]
    fn overrides_parse_toml_values_or_fall_back_to_strings() {
        let mut t = toml::Table::new();
        apply_override(&mut t, "train.max_steps=10").unwrap();
        apply_override(&mut t, "optim.lr_text=3e-4").unwrap();
        apply_override(&mut t, "model.path=/models/smol vlm").unwrap();
        apply_override(&mut t, "train.freeze=[\"vision\", \"connector\"]").unwrap();
        apply_override(&mut t, "data.synthetic.enabled=true").unwrap();
        apply_override(&mut t, "train.device=cuda:1").unwrap();
        let r: Recipe = t.try_into().unwrap();
        assert_eq!(r.train.max_steps, Some(10));
        assert_eq!(r.optim.lr_text, 3e-4);
        assert_eq!(r.model.path.as_deref(), Some(Path::new("/models/smol vlm")));
        assert_eq!(
            r.train.freeze,
            vec![ModelPart::Vision, ModelPart::Connector]
        );
        assert!(r.data.synthetic.enabled);
        assert_eq!(r.train.device, DeviceSpec::Cuda(1));
    }

    #[test]
    fn malformed_overrides_are_errors() {
        let mut t = toml::Table::new();
        assert!(apply_override(&mut t, "train.seed").is_err());
        assert!(apply_override(&mut t, "train..seed=1").is_err());
        apply_override(&mut t, "train.seed=1").unwrap();
        let err = apply_override(&mut t, "train.seed.x=1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`train.seed` is a value of type integer"),
            "{err}"
        );
    }

    fn write_recipe(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("r.toml");
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn load_applies_and_type_checks_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_recipe(
            dir.path(),
            "[model]\npreset = \"tiny\"\n[data.synthetic]\nenabled = true\n",
        );
        let loaded = load_recipe(&path, &["train.batch_size=3".into()]).unwrap();
        assert_eq!(loaded.recipe.train.batch_size, 3);
        assert_eq!(loaded.run_dir(), Path::new("checkpoints/r"));
        let err = load_recipe(&path, &["train.batch_size=abc".into()])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--set train.batch_size=abc:"), "{err}");
        let err = load_recipe(&path, &["train.nope=1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
        let err = load_recipe(&path, &["train.freeze=vision".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("read as a string"), "{err}");
        let err = load_recipe(&path, &["train.seed=1.5".into()])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("read as a string"), "{err}");
    }

    #[test]
    fn activation_checkpointing_is_a_bool_key_of_train() {
        let dir = tempfile::tempdir().unwrap();
        let base = "[model]\npreset = \"tiny\"\n[data.synthetic]\nenabled = true\n";
        let path = write_recipe(dir.path(), base);
        assert!(
            !load_recipe(&path, &[])
                .unwrap()
                .recipe
                .train
                .activation_checkpointing
        );
        let on = load_recipe(&path, &["train.activation_checkpointing=true".into()]).unwrap();
        assert!(on.recipe.train.activation_checkpointing);
        let err = load_recipe(&path, &["train.activation_checkpointing=yes".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--set train.activation_checkpointing=yes:")
                && err.contains("expected a boolean"),
            "{err}"
        );
        let text = format!("{base}[train]\nactivation_checkpointing = 1\n");
        let err = parse_recipe(&text, "r.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("r.toml:6:") && err.contains("activation_checkpointing = 1"),
            "{err}"
        );
        let text = format!("{base}[train]\nactivation_checkpointing = true\n");
        let recipe = parse_recipe(&text, "r.toml").unwrap();
        assert!(recipe.train.activation_checkpointing);
        assert_eq!(parse_recipe(&recipe.to_toml(), "resolved").unwrap(), recipe);
    }

    #[test]
    fn semantic_errors_are_located_and_all_reported() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[model]\npreset = \"tiny\"\n[data.synthetic]\nenabled = true\n[train]\nbatch_size = 0\n\n[schedule]\nmin_lr_ratio = 2.0\n";
        let path = write_recipe(dir.path(), text);
        let err = load_recipe(&path, &[]).unwrap_err().to_string();
        assert!(err.contains("r.toml:6: train.batch_size"), "{err}");
        assert!(err.contains("r.toml:9: schedule.min_lr_ratio"), "{err}");
        let err = load_recipe(&path, &["train.batch_size=0".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("(--set train.batch_size)"), "{err}");
    }

    #[test]
    fn locate_key_handles_sections_and_dotted_names() {
        let text = "[data]\nsynthetic.seed = 3\n[train]\n  seed = 1\n";
        assert_eq!(locate_key(text, "train.seed"), Some(4));
        assert_eq!(locate_key(text, "data.synthetic.seed"), Some(2));
        assert_eq!(locate_key(text, "train.batch_size"), None);
    }
}
