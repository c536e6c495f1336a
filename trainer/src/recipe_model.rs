//! The model a recipe names, read without its weights — `model.path`'s config.json or the
//! preset's config — and the recipe's check against it: `data.max_length` may not exceed the
//! model's context (`max_position_embeddings`), so a run is refused before anything sized by
//! the length is built. `plan`, `recipe validate` and training share it.

use anyhow::{bail, Context, Result};
use safeaware_model::ModelConfig;

use crate::preset;
use crate::recipe::Recipe;

/// The model config of `recipe` and the most image tiles one example can have.
pub fn model_config(recipe: &Recipe) -> Result<(ModelConfig, usize)> {
    if let Some(path) = &recipe.model.path {
        let config = ModelConfig::from_file(&path.join("config.json"))
            .with_context(|| format!("reading the config of {}", path.display()))?;
        let tiles = config.max_tiles_per_image();
        return Ok((config, tiles));
    }
    let Some(name) = recipe.model.preset.as_deref() else {
        bail!("the recipe sets neither model.path nor model.preset");
    };
    let built = preset::build(name, recipe.data.synthetic.settings.image_size)?;
    Ok((built.config, 1))
}

/// Errors unless `data.max_length` fits the context of the model `config` describes.
pub fn check_max_length(recipe: &Recipe, config: &ModelConfig) -> Result<()> {
    let (max_length, context) = (
        recipe.data.max_length,
        config.text().max_position_embeddings,
    );
    if max_length > context {
        bail!(
            "data.max_length = {max_length} is beyond the model's context of {context} tokens (max_position_embeddings in its config): set data.max_length to at most {context}"
        );
    }
    Ok(())
}

/// [`check_max_length`] against the model the recipe names.
pub fn check_recipe_max_length(recipe: &Recipe) -> Result<()> {
    let (config, _) = model_config(recipe)?;
    check_max_length(recipe, &config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_max_length_beyond_the_context_names_both() {
        let mut recipe = Recipe::default();
        recipe.model.preset = Some("tiny".into());
        let (config, _) = model_config(&recipe).unwrap();
        let context = config.text().max_position_embeddings;
        recipe.data.max_length = context;
        check_max_length(&recipe, &config).unwrap();
        recipe.data.max_length = 1_000_000;
        let err = check_recipe_max_length(&recipe).unwrap_err().to_string();
        assert!(err.contains("data.max_length = 1000000"), "{err}");
        assert!(
            err.contains(&format!("context of {context} tokens")),
            "{err}"
        );
    }
}
