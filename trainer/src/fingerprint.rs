//! Fingerprints that must match across processes and builds (recipe and data fingerprints,
//! path-derived parameter ids), with the stable FNV-1a 64 hash of `safeaware_common::fnv`.

use anyhow::{Context, Result};
use std::io::Read;
use std::path::Path;

use safeaware_common::fnv::Fnv64;

/// Fingerprint of the contents of `files` (length-prefixed, in order), as hex. Used to refuse
/// resuming a run on different data.
pub fn fingerprint_files(files: &[&Path]) -> Result<String> {
    let mut h = Fnv64::default();
    let mut buf = vec![0u8; 1 << 16];
    for path in files {
        let mut f =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = f
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        h.update(&len.to_le_bytes());
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(format!("{:016x}", h.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_fingerprint_depends_on_content_and_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"ab").unwrap();
        std::fs::write(&b, b"c").unwrap();
        let ab_c = fingerprint_files(&[&a, &b]).unwrap();
        assert_eq!(ab_c, fingerprint_files(&[&a, &b]).unwrap());
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"bc").unwrap();
        assert_ne!(
            ab_c,
            fingerprint_files(&[&a, &b]).unwrap(),
            "same bytes, other split"
        );
        assert!(fingerprint_files(&[&dir.path().join("missing")]).is_err());
    }
}
