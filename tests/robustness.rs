//! The robustness suite: bad inputs and faults, tried as a user would with the binary.
//!
//! - `cases.rs`: a table of bad-input and fault cases, each run in its own folder; each asserts
//!   the exit status, that the message names the file/line/field, and that nothing already
//!   written changed (a refused start also leaves no new folders behind).
//! - `kill.rs`: `kill -9` at seeded points of training and evaluation, then resume, and the
//!   results are byte-identical to an uninterrupted run; a resume that falls back past a
//!   truncated checkpoint; the lock against a second live process.
//! - `outputs.rs`: the commands added since (`data import`, `data distill`, `export`,
//!   `experiment run`, `plan`, `eval compare`, `doctor`): no output replaced unasked or equal to
//!   an input, import paths confined, a second process on an output refused naming the first's
//!   pid, and runs whose items all failed exiting non-zero with their causes.
//! - `parsers.rs`: arbitrary bytes fed to every parser (recipe TOML, trace JSONL, prompt.txt,
//!   responses, config.json, safetensors header, tokenizer and chat template files): no panic.
//! - `model_limits.rs`: lengths beyond the model's context (`train`, `recipe validate`, an
//!   `eval` item and its rerun) and model folders that no longer match their manifest.json
//!   (`eval`, `inspect`, `export`, `serve`), through the case table's checks.
//! - `serve_limits.rs`: `serve` refusing what it cannot hold (context, body, text, images, `n`,
//!   `max_tokens`) and staying up, a long request not holding up a short one, SIGTERM.
//!
//! Fixtures are tiny: a synthetic world of a few 64x64 images and a one-step model of the
//! `tiny` preset, made once per test binary and copied into each case's folder.

#[path = "robustness/cases.rs"]
mod cases;
mod common;
#[path = "robustness/fixtures.rs"]
mod fixtures;
#[path = "robustness/kill.rs"]
mod kill;
#[path = "robustness/model_limits.rs"]
mod model_limits;
#[path = "robustness/outputs.rs"]
mod outputs;
#[path = "robustness/parsers.rs"]
mod parsers;
#[path = "robustness/serve_limits.rs"]
mod serve_limits;
#[path = "../eval/tests/common/server.rs"]
mod stub_server;
