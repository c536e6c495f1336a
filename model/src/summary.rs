//! What `safeaware inspect` reports about an HF model folder: family, dimensions, tokens per
//! image tile, parameter counts by part and the on-disk dtype. Needs only `config.json`; weight
//! files, when present, are read header-only.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use crate::error::Result;
use crate::params::ParamCounts;
use crate::registry::ModelConfig;
use crate::safetensors_io::{read_headers, weight_files};
use crate::weights::CONFIG_FILE;

/// A description of a model folder.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    /// The parsed config (tying resolved against the weights when present).
    pub config: ModelConfig,
    /// Parameter counts by part.
    pub counts: ParamCounts,
    /// Distinct dtypes of the weight files; `None` for a config-only folder.
    pub disk_dtypes: Option<BTreeSet<String>>,
}

/// Describes the model folder `dir`.
pub fn inspect(dir: &Path) -> Result<ModelSummary> {
    let mut config = ModelConfig::from_file(&dir.join(CONFIG_FILE))?;
    let disk_dtypes = match weight_files(dir) {
        Ok(_) => {
            let headers = read_headers(dir)?;
            let untied = ["lm_head.weight", "language_model.lm_head.weight"];
            config.set_tie_word_embeddings(!untied.iter().any(|k| headers.contains_key(*k)));
            check_counts(dir, &headers, &config.param_counts())?;
            Some(headers.values().map(|h| h.dtype.clone()).collect())
        }
        Err(crate::ModelError::NoWeights(_)) => None,
        Err(other) => return Err(other),
    };
    Ok(ModelSummary {
        counts: config.param_counts(),
        config,
        disk_dtypes,
    })
}

/// The weights must hold exactly the parameters config.json describes (weights of another
/// model size, or a config edited after saving, are refused).
fn check_counts(
    dir: &Path,
    headers: &std::collections::BTreeMap<String, crate::safetensors_io::HeaderEntry>,
    counts: &ParamCounts,
) -> Result<()> {
    let on_disk: usize = headers
        .values()
        .map(|h| h.shape.iter().product::<usize>())
        .sum();
    if on_disk != counts.total() {
        return Err(crate::ModelError::Safetensors {
            path: dir.to_path_buf(),
            message: format!(
                "the weights hold {on_disk} parameters but {CONFIG_FILE} describes {}: they belong to another model",
                counts.total()
            ),
        });
    }
    Ok(())
}

impl fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, n) = (&self.config, &self.counts);
        writeln!(f, "family:            {}", c.model_type())?;
        for (label, text) in c.describe() {
            writeln!(f, "{:<19}{text}", format!("{label}:"))?;
        }
        writeln!(f, "parameters:")?;
        writeln!(f, "  vision:          {:>13}", group(n.vision))?;
        writeln!(f, "  connector:       {:>13}", group(n.connector))?;
        writeln!(f, "  text:            {:>13}", group(n.text))?;
        if n.lm_head_tied {
            writeln!(f, "  lm_head:         {:>13} (tied to embed_tokens)", 0)?;
        } else {
            writeln!(f, "  lm_head:         {:>13}", group(n.lm_head))?;
        }
        writeln!(f, "  total:           {:>13}", group(n.total()))?;
        match &self.disk_dtypes {
            Some(dtypes) => write!(
                f,
                "dtype on disk:     {}",
                dtypes.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            None => write!(f, "dtype on disk:     none (config only)"),
        }
    }
}

/// `1234567` → `1,234,567`.
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_thousands() {
        assert_eq!(super::group(0), "0");
        assert_eq!(super::group(999), "999");
        assert_eq!(super::group(1000), "1,000");
        assert_eq!(super::group(256_484_928), "256,484,928");
    }
}
