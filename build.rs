//! Embeds the parity fixtures (`model/tests/fixtures/parity/*/`) in the binary, so that
//! `safeaware doctor` checks a device against HF transformers wherever the binary runs, with no
//! checkout beside it. Writes `$OUT_DIR/shipped_fixtures.rs`: one `(name, files)` entry per
//! fixture, each file as `(path inside the fixture, include_bytes!(...))`.

use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    // The folder of this run, not the one the build script was compiled in: a build script is
    // reused across checkouts that share a target folder.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("model/tests/fixtures/parity");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut fixtures: Vec<PathBuf> = fs::read_dir(&root)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    fixtures.retain(|p| p.join("expected.safetensors").is_file());
    fixtures.sort();
    let mut code = String::from(
        "/// Parity fixtures shipped in the binary.\npub static SHIPPED: &[ShippedFixture] = &[\n",
    );
    for fixture in &fixtures {
        println!("cargo:rerun-if-changed={}", fixture.display());
        let name = fixture.file_name().unwrap().to_string_lossy();
        code.push_str(&format!("    ({name:?}, &[\n"));
        for file in files_under(fixture) {
            let relative = file
                .strip_prefix(fixture)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let absolute = fs::canonicalize(&file).unwrap();
            println!("cargo:rerun-if-changed={}", absolute.display());
            code.push_str(&format!(
                "        ({relative:?}, include_bytes!({:?})),\n",
                absolute.display().to_string()
            ));
        }
        code.push_str("    ]),\n");
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("shipped_fixtures.rs");
    fs::write(out, code).unwrap();
}

/// Every file below `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}
