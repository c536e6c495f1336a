//! The project keeps functions short: none in `trainer/` or `eval/` may run over
//! [`MAX_LINES`] lines. A function's length is counted from the line of its `fn` to the line of
//! its closing brace, both included, on rustfmt's layout (the closing brace of a body sits alone
//! on a line at the indentation of its `fn`). Declarations without a body count nothing.
//!
//! `cargo test --release --test function_length` lists every function over the limit with its
//! file, line and length.

use std::path::{Path, PathBuf};

/// The most lines a function in `trainer/` or `eval/` may have.
const MAX_LINES: usize = 120;

/// A function found in a source file: where its `fn` line is and how many lines it spans.
#[derive(Debug, PartialEq)]
struct Function {
    line: usize,
    name: String,
    lines: usize,
}

/// The name of the function a line declares, if it declares one (`pub`, `pub(crate)`,
/// `const`, `async`, `unsafe`, `extern "C"` before `fn` allowed).
fn declared_name(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    for qualifier in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
        "extern \"C\" ",
    ] {
        rest = rest.strip_prefix(qualifier).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// Every function with a body in `source`, with its length; an error names a function whose
/// closing brace is not where rustfmt puts it.
fn functions(source: &str) -> Result<Vec<Function>, String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = declared_name(line) else {
            continue;
        };
        // The signature ends at the first line ending in `{` (a body), `;` (none) or `}` (a
        // body on the same line).
        let Some(end) = (i..lines.len()).find(|&j| {
            let l = lines[j].trim_end();
            l.ends_with('{') || l.ends_with(';') || l.ends_with('}')
        }) else {
            return Err(format!("line {}: `fn {name}` has no end", i + 1));
        };
        let last = lines[end].trim_end();
        if last.ends_with(';') {
            continue;
        }
        let lines_spanned = if last.ends_with('}') && !last.ends_with('{') {
            end - i + 1
        } else {
            let indent = line.len() - line.trim_start().len();
            let closing = format!("{}}}", " ".repeat(indent));
            let Some(close) = (end + 1..lines.len()).find(|&k| lines[k].trim_end() == closing)
            else {
                return Err(format!(
                    "line {}: no closing brace of `fn {name}` at its indentation",
                    i + 1
                ));
            };
            close - i + 1
        };
        found.push(Function {
            line: i + 1,
            name: name.to_string(),
            lines: lines_spanned,
        });
    }
    Ok(found)
}

/// The `.rs` files under `dir`, in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn no_function_in_trainer_or_eval_is_over_the_limit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    let mut too_long = Vec::new();
    for crate_dir in ["trainer", "eval"] {
        for file in rust_files(&root.join(crate_dir)) {
            let source = std::fs::read_to_string(&file).unwrap();
            let shown = file.strip_prefix(root).unwrap().display().to_string();
            for f in functions(&source)
                .map_err(|e| format!("{shown}: {e}"))
                .unwrap()
            {
                checked += 1;
                if f.lines > MAX_LINES {
                    too_long.push(format!(
                        "{shown}:{} fn {} ({} lines)",
                        f.line, f.name, f.lines
                    ));
                }
            }
        }
    }
    assert!(checked > 500, "only {checked} functions found");
    assert!(
        too_long.is_empty(),
        "functions over {MAX_LINES} lines:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn lengths_run_from_fn_to_its_closing_brace() {
    let source = "\
/// Doc: fn not_this() {}
pub(crate) fn generic<B>(
    a: u32,
) -> u32
where
    B: Copy,
{
    let x = {
        a
    };
    x
}

trait T {
    fn declared(&self) -> u32;
    fn defaulted(&self) -> u32 {
        7
    }
}

    pub fn one_line() -> u32 { 1 }
";
    assert_eq!(
        functions(source).unwrap(),
        [
            Function {
                line: 2,
                name: "generic".into(),
                lines: 11
            },
            Function {
                line: 16,
                name: "defaulted".into(),
                lines: 3
            },
            Function {
                line: 21,
                name: "one_line".into(),
                lines: 1
            },
        ]
    );
    let unclosed = "fn broken() {\n    1\n  }\n";
    assert!(functions(unclosed).unwrap_err().contains("fn broken"));
}
