//! `safeaware recipe validate|show|list`: check a training recipe, print it fully resolved,
//! or list the shipped recipes with the command that runs each.

use anyhow::{Context, Result};
use clap::Subcommand;
use safeaware_trainer::recipe::{load_recipe, LoadedRecipe};
use safeaware_trainer::recipe_model::check_recipe_max_length;
use std::path::{Path, PathBuf};

use crate::output::{out, outln};

/// A recipe file and its overrides.
#[derive(clap::Args, Debug, Clone)]
pub struct RecipeArgs {
    /// Recipe TOML file.
    pub recipe: PathBuf,
    /// Override a key: `--set train.max_steps=10`. The value is parsed as TOML and, if that
    /// fails, taken as a string (`--set model.path=/models/x`). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl RecipeArgs {
    /// Loads, overrides and validates the recipe.
    pub fn load(&self) -> Result<LoadedRecipe> {
        load_recipe(&self.recipe, &self.set)
    }
}

/// Recipe subcommands.
#[derive(Subcommand, Debug)]
pub enum RecipeCommand {
    /// Check a recipe: syntax, unknown keys, types and rules (errors name the line), and
    /// `data.max_length` against the model's context when its config.json is here.
    Validate(RecipeArgs),
    /// Print the fully resolved recipe (defaults filled, overrides applied) as TOML.
    Show(RecipeArgs),
    /// List recipe files in a folder with the first line of each.
    List {
        /// Folder to list.
        #[arg(default_value = "recipes")]
        dir: PathBuf,
    },
}

/// Runs a recipe subcommand.
pub fn run(cmd: RecipeCommand) -> Result<()> {
    match cmd {
        RecipeCommand::Validate(args) => {
            let loaded = args.load()?;
            let missing = missing_paths(&loaded);
            for warning in &missing {
                eprintln!("warning: {warning}");
            }
            // The model's context is known when its config is here (or it is a preset).
            if !missing.iter().any(|m| m.starts_with("model.path")) {
                check_recipe_max_length(&loaded.recipe)?;
            }
            outln!(
                "ok: {} (run folder {})",
                loaded.path.display(),
                loaded.run_dir().display()
            )?;
            Ok(())
        }
        RecipeCommand::Show(args) => {
            let loaded = args.load()?;
            outln!(
                "# Resolved from {}{}",
                loaded.path.display(),
                overrides_suffix(&loaded)
            )?;
            out!("{}", loaded.recipe.to_toml())?;
            Ok(())
        }
        RecipeCommand::List { dir } => list(&dir),
    }
}

fn overrides_suffix(loaded: &LoadedRecipe) -> String {
    loaded
        .overrides
        .iter()
        .map(|o| format!(" --set {o}"))
        .collect()
}

/// Paths named by the recipe that do not exist here (not an error: the recipe may be meant
/// for another machine).
fn missing_paths(loaded: &LoadedRecipe) -> Vec<String> {
    let r = &loaded.recipe;
    [
        ("model.path", &r.model.path),
        ("data.train", &r.data.train),
        ("data.val", &r.data.val),
    ]
    .into_iter()
    .filter_map(|(key, path)| path.as_ref().map(|p| (key, p)))
    .filter(|(_, p)| !p.exists())
    .map(|(key, p)| format!("{key} = {} does not exist here", p.display()))
    .collect()
}

fn list(dir: &Path) -> Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for path in files {
        let first = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| {
                t.lines()
                    .next()
                    .map(|l| l.trim_start_matches('#').trim().to_string())
            })
            .unwrap_or_default();
        outln!("{:<40} {first}", path.display())?;
    }
    Ok(())
}
