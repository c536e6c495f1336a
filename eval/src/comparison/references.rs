//! Reference rows: numbers quoted from elsewhere (the paper's tables), shown beside the measured
//! arms and always marked as quoted, never as measured. A TOML file:
//!
//! ```toml
//! source = "Paper, Table 1 (accuracy %, the authors' scoring rule, the real MMSafeAware)"
//! [[rows]]
//! name = "GPT-4V"
//! typical = 63.9
//! attack = 68.4
//! over_safety = 41.1
//! total = 57.8
//! ```
//!
//! Values are percentages as printed in the source; any column may be left out.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::EvalError;

/// A file of quoted rows and where they come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct References {
    /// The citation: paper, table, and what the numbers measure.
    pub source: String,
    /// A remark shown under the rows (e.g. that the benchmark differs from the measured one).
    #[serde(default)]
    pub note: Option<String>,
    pub rows: Vec<Reference>,
    /// The file it was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

/// One quoted row, in percent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub name: String,
    #[serde(default)]
    pub typical: Option<f64>,
    #[serde(default)]
    pub attack: Option<f64>,
    #[serde(default)]
    pub over_safety: Option<f64>,
    #[serde(default)]
    pub total: Option<f64>,
    #[serde(default, rename = "unsafe")]
    pub unsafe_: Option<f64>,
}

impl Reference {
    /// The quoted values in column order: Typical, Attack, Over-Safe, Unsafe, Total.
    pub fn values(&self) -> [Option<f64>; 5] {
        [
            self.typical,
            self.attack,
            self.over_safety,
            self.unsafe_,
            self.total,
        ]
    }
}

impl References {
    /// Reads and checks a references file: every value a percentage in [0, 100].
    pub fn load(path: &Path) -> Result<References, EvalError> {
        let text = std::fs::read_to_string(path).map_err(EvalError::io(path))?;
        let bad = |message: String| EvalError::Json {
            path: path.to_path_buf(),
            message,
        };
        let mut refs: References = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        for r in &refs.rows {
            if let Some(v) = r
                .values()
                .into_iter()
                .flatten()
                .find(|v| !(0.0..=100.0).contains(v))
            {
                return Err(bad(format!(
                    "row `{}`: {v} is not a percentage in [0, 100]",
                    r.name
                )));
            }
        }
        refs.path = path.to_path_buf();
        Ok(refs)
    }
}
