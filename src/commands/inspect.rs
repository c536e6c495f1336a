//! `safeaware inspect <model-folder>`: describes an HF model folder of any registered family —
//! dimensions, image tokens per tile, parameter counts by part and the on-disk dtype. A folder
//! holding only config.json is enough (counts come from the config; weights are never loaded).
//! A folder with manifest.json (a checkpoint, a run's `final/`) is verified against it first.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::output::outln;

#[derive(clap::Args)]
pub struct InspectArgs {
    /// An HF model folder (config.json, optionally *.safetensors).
    pub folder: PathBuf,
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    outln!("{}", report(&args.folder)?)?;
    Ok(())
}

/// The text `inspect` prints for `folder`.
fn report(folder: &Path) -> anyhow::Result<String> {
    safeaware_trainer::manifest::verify_model_folder(folder)?;
    let summary = safeaware_model::inspect(folder)
        .with_context(|| format!("cannot inspect `{}`", folder.display()))?;
    Ok(format!("{}\n{summary}", folder.display()))
}

#[cfg(test)]
mod tests {
    use super::report;
    use std::path::Path;

    /// The report of the committed config-only SmolVLM-256M fixture shows HF's counts.
    #[test]
    fn reports_hf_counts_for_a_config_only_folder() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("model/tests/fixtures/config_only/smolvlm-256m");
        let counts: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(folder.join("hf_param_counts.json")).unwrap(),
        )
        .unwrap();
        let text = report(&folder).unwrap();
        for part in ["vision", "connector", "text", "lm_head", "total"] {
            let mut counts_section = text.lines().skip_while(|l| !l.starts_with("parameters:"));
            let line = counts_section
                .find(|l| l.trim_start().starts_with(&format!("{part}:")))
                .unwrap();
            let expected = format!(" {}", counts[part].as_u64().unwrap());
            assert!(line.replace(',', "").contains(&expected), "{part}: {line}");
        }
        assert!(text.contains("family:            idefics3"), "{text}");
        assert!(text.contains("tokens per tile:   64"), "{text}");
        assert!(text.contains("none (config only)"), "{text}");
    }

    #[test]
    fn a_missing_folder_is_a_clear_error() {
        let err = format!("{:#}", report(Path::new("/nonexistent/model")).unwrap_err());
        assert!(err.contains("/nonexistent/model/config.json"), "{err}");
    }
}
