//! The table of bad-input and fault cases. Each runs the binary in a fresh folder prepared by
//! `fixtures::prepare` and its own `setup`, then asserts the exit status, that stderr names what
//! it must (file, line, field, flag), that no pre-existing file changed, and that a failing
//! case created nothing but the outputs it is allowed to write.

use std::fs;
use std::io::Write;
use std::path::Path;

use safeaware_common::output_dir::{OutputDir, LOCK_FILE};

use crate::fixtures::{copy_run, prepare, run_in, snapshot, without_manifest, TRAIN};

/// One case (also the cases of the other modules of the suite, e.g. `outputs.rs`).
pub(crate) struct Case {
    pub(crate) name: &'static str,
    /// Changes the prepared folder (bad files, foreign folders…).
    pub(crate) setup: fn(&Path),
    pub(crate) args: &'static [&'static str],
    /// Expected exit status.
    pub(crate) code: i32,
    /// Texts stderr must contain.
    pub(crate) says: &'static [&'static str],
    /// Paths (relative) a failing case may create, e.g. the outputs an eval writes before it
    /// reports its failure.
    pub(crate) writes: &'static [&'static str],
    /// A folder the test holds locked while the case runs.
    pub(crate) locked: Option<&'static str>,
    /// Whether the case needs the one-step model in `model/`.
    pub(crate) model: bool,
}

pub(crate) const BASE: Case = Case {
    name: "",
    setup: |_| {},
    args: &[],
    code: 1,
    says: &[],
    writes: &[],
    locked: None,
    model: false,
};

pub(crate) fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn append(dir: &Path, rel: &str, line: &str) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(dir.join(rel))
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

fn truncate(dir: &Path, rel: &str, keep: u64) {
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dir.join(rel))
        .unwrap();
    f.set_len(keep).unwrap();
}

/// Replaces `from` by `to` in a text file.
fn edit(dir: &Path, rel: &str, from: &str, to: &str) {
    let text = fs::read_to_string(dir.join(rel)).unwrap();
    assert!(text.contains(from), "{rel} lacks {from:?}");
    fs::write(dir.join(rel), text.replacen(from, to, 1)).unwrap();
}

/// A JPEG of the world's first training image, cut to a third.
fn truncated_jpeg(dir: &Path, rel: &str) {
    let img = image::open(dir.join("world/images/train-00000.png")).unwrap();
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    write(dir, rel, &bytes[..bytes.len() / 3]);
}

/// The first training line with `field` replaced by `value` (raw JSON), appended as a new
/// line with id `bad`.
fn bad_trace(dir: &Path, field: &str, value: &str) {
    let text = fs::read_to_string(dir.join("world/train.jsonl")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    v["id"] = "bad".into();
    v[field] = serde_json::from_str(value).unwrap();
    append(dir, "world/train.jsonl", &v.to_string());
}

/// A benchmark line like the first with `field` set to `value` (raw JSON), appended.
fn bad_item(dir: &Path, field: &str, value: &str) {
    let text = fs::read_to_string(dir.join("world/benchmark.jsonl")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    v["id"] = "bad".into();
    v[field] = serde_json::from_str(value).unwrap();
    append(dir, "world/benchmark.jsonl", &v.to_string());
}

/// The model's weights with one value made NaN (the tensor data starts after the header).
fn nan_weights(dir: &Path) {
    let path = dir.join("model/model.safetensors");
    let mut bytes = fs::read(&path).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + header..8 + header + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    fs::write(path, bytes).unwrap();
}

/// Two eval runs of different benchmarks, in `a/` and `b/`.
pub(crate) fn disjoint_runs(dir: &Path) {
    let eval = |out: &str, bench: &str, responses: &str| {
        let args = [
            "eval",
            "--benchmark",
            bench,
            "--responses",
            responses,
            "--out",
            out,
        ];
        crate::fixtures::ok_in(dir, &[&args[..], &["--progress", "quiet"]].concat());
    };
    eval("a", "jsonl:world/benchmark.jsonl", "responses.jsonl");
    let other = "{\"id\": \"x1\", \"prompt\": \"p\", \"gold\": \"safe\"}\n";
    write(dir, "other.jsonl", other.as_bytes());
    write(
        dir,
        "other-responses.jsonl",
        b"{\"id\": \"x1\", \"response\": \"Yes\"}\n",
    );
    eval("b", "jsonl:other.jsonl", "other-responses.jsonl");
}

const VALIDATE_TRAIN: &[&str] = &["data", "validate", "world/train.jsonl"];
const VALIDATE_BENCH: &[&str] = &["data", "validate", "jsonl:world/benchmark.jsonl"];
const EVAL_RESPONSES: &[&str] = &[
    "eval",
    "--benchmark",
    "jsonl:world/benchmark.jsonl",
    "--responses",
    "responses.jsonl",
    "--out",
    "out",
    "--progress",
    "quiet",
];
pub(crate) const EVAL_MODEL: &[&str] = &[
    "eval",
    "--benchmark",
    "jsonl:world/benchmark.jsonl",
    "--model",
    "model",
    "--out",
    "out",
    "--progress",
    "quiet",
    "--max-tokens",
    "2",
    "--batch-size",
    "4",
];
pub(crate) const OUT_FILES: &[&str] = &["out"];

fn cases() -> Vec<Case> {
    vec![
        // --- data validate: training traces --------------------------------------------
        Case {
            name: "trace line not JSON",
            setup: |d| append(d, "world/train.jsonl", "{oops"),
            args: VALIDATE_TRAIN,
            says: &["train.jsonl:7", "invalid JSON"],
            ..BASE
        },
        Case {
            name: "trace id null",
            setup: |d| bad_trace(d, "id", "null"),
            args: VALIDATE_TRAIN,
            says: &["train.jsonl:7"],
            ..BASE
        },
        Case {
            name: "trace id an object",
            setup: |d| {
                append(
                    d,
                    "world/train.jsonl",
                    r#"{"id": {"a": 1}, "image": "x.png", "prompt": "p", "description": "d"}"#,
                )
            },
            args: VALIDATE_TRAIN,
            says: &["train.jsonl:7", "an id (a whole number or a string)"],
            ..BASE
        },
        Case {
            name: "trace image missing",
            setup: |d| bad_trace(d, "image", "\"images/nope.png\""),
            args: VALIDATE_TRAIN,
            says: &["train.jsonl:7", "nope.png", "does not exist"],
            ..BASE
        },
        Case {
            name: "trace image truncated JPEG",
            setup: |d| {
                truncated_jpeg(d, "world/images/cut.jpg");
                bad_trace(d, "image", "\"images/cut.jpg\"")
            },
            args: VALIDATE_TRAIN,
            says: &["train.jsonl:7", "cut.jpg", "truncated"],
            ..BASE
        },
        Case {
            name: "trace image truncated PNG",
            setup: |d| truncate(d, "world/images/train-00002.png", 300),
            args: VALIDATE_TRAIN,
            says: &["train.jsonl:3", "train-00002.png", "truncated"],
            ..BASE
        },
        Case {
            name: "trace image not an image",
            setup: |d| write(d, "world/images/train-00001.png", b"hello"),
            args: VALIDATE_TRAIN,
            says: &["train.jsonl:2", "train-00001.png", "unknown image format"],
            ..BASE
        },
        Case {
            name: "trace image path escapes the data folder",
            setup: |d| bad_trace(d, "image", "\"../../etc/passwd\""),
            args: VALIDATE_TRAIN,
            says: &["train.jsonl:7", "leaves the data folder"],
            ..BASE
        },
        Case {
            name: "trace id repeated",
            setup: |d| bad_trace(d, "id", "\"train-00001\""),
            args: VALIDATE_TRAIN,
            says: &["train.jsonl:7", "repeats line 2"],
            ..BASE
        },
        Case {
            name: "trace file not UTF-8",
            setup: |d| {
                let mut f = fs::OpenOptions::new()
                    .append(true)
                    .open(d.join("world/train.jsonl"))
                    .unwrap();
                f.write_all(b"{\"id\": \"\xff\"}\n").unwrap();
            },
            args: VALIDATE_TRAIN,
            says: &["train.jsonl", "line 7 is not valid UTF-8"],
            ..BASE
        },
        Case {
            name: "trace file empty",
            setup: |d| write(d, "world/train.jsonl", b"\n\n"),
            args: VALIDATE_TRAIN,
            says: &["train.jsonl"],
            ..BASE
        },
        Case {
            name: "trace file with a BOM is read",
            setup: |d| {
                let text = fs::read(d.join("world/train.jsonl")).unwrap();
                write(
                    d,
                    "world/train.jsonl",
                    &[b"\xEF\xBB\xBF".as_slice(), &text].concat(),
                )
            },
            args: VALIDATE_TRAIN,
            code: 0,
            ..BASE
        },
        Case {
            name: "trace file with CRLF is read",
            setup: |d| {
                let text = fs::read_to_string(d.join("world/train.jsonl")).unwrap();
                write(
                    d,
                    "world/train.jsonl",
                    text.replace('\n', "\r\n").as_bytes(),
                )
            },
            args: VALIDATE_TRAIN,
            code: 0,
            ..BASE
        },
        Case {
            name: "trace verdict unknown",
            setup: |d| bad_trace(d, "verdict", "\"maybe\""),
            args: VALIDATE_TRAIN,
            says: &["train.jsonl:7", "verdict"],
            ..BASE
        },
        Case {
            name: "validate a missing file",
            args: &["data", "validate", "world/none.jsonl"],
            says: &["none.jsonl"],
            ..BASE
        },
        // --- data validate: benchmarks ---------------------------------------------------
        Case {
            name: "benchmark gold unknown",
            setup: |d| bad_item(d, "gold", "\"perhaps\""),
            args: VALIDATE_BENCH,
            says: &["benchmark.jsonl:9", "gold"],
            ..BASE
        },
        Case {
            name: "benchmark id repeated",
            setup: |d| bad_item(d, "id", "\"test-00001\""),
            args: VALIDATE_BENCH,
            says: &["benchmark.jsonl:9", "repeats line 2"],
            ..BASE
        },
        Case {
            name: "benchmark id null",
            setup: |d| bad_item(d, "id", "null"),
            args: VALIDATE_BENCH,
            says: &["benchmark.jsonl:9", "an id"],
            ..BASE
        },
        Case {
            name: "benchmark image escapes",
            setup: |d| bad_item(d, "image", "\"../../../etc/passwd\""),
            args: VALIDATE_BENCH,
            says: &["benchmark.jsonl:9", "leaves the data folder"],
            ..BASE
        },
        Case {
            name: "benchmark image truncated",
            setup: |d| {
                truncated_jpeg(d, "world/images/cut.jpg");
                bad_item(d, "image", "\"images/cut.jpg\"")
            },
            args: VALIDATE_BENCH,
            says: &["cut.jpg", "truncated"],
            ..BASE
        },
        Case {
            name: "benchmark prompt empty",
            setup: |d| bad_item(d, "prompt", "\"  \""),
            args: VALIDATE_BENCH,
            says: &["benchmark.jsonl:9", "prompt"],
            ..BASE
        },
        Case {
            name: "mmsafeaware prompt.txt garbled",
            setup: |d| write(d, "mm/prompt.txt", b"1\nonly one line\n"),
            args: &["data", "validate", "mmsafeaware:mm"],
            says: &["prompt.txt"],
            ..BASE
        },
        Case {
            name: "mmsafeaware prompt.txt missing",
            setup: |d| fs::create_dir_all(d.join("mm/images")).unwrap(),
            args: &["data", "validate", "mmsafeaware:mm"],
            says: &["prompt.txt"],
            ..BASE
        },
        Case {
            name: "mmsafeaware prompt.txt not UTF-8",
            setup: |d| write(d, "mm/prompt.txt", b"1\nGiven the image\n\"\xfe\"\n"),
            args: &["data", "validate", "mmsafeaware:mm"],
            says: &["prompt.txt", "line 3 is not valid UTF-8"],
            ..BASE
        },
        Case {
            name: "annotations line bad",
            setup: |d| {
                write(
                    d,
                    "ann.jsonl",
                    b"{\"id\": \"test-00000\", \"subset\": \"weird\"}\n",
                )
            },
            args: &[
                "data",
                "validate",
                "jsonl:world/benchmark.jsonl",
                "--annotations",
                "ann.jsonl",
            ],
            says: &["ann.jsonl:1"],
            ..BASE
        },
        // --- data synth --------------------------------------------------------------------
        Case {
            name: "synth into a foreign folder",
            setup: |d| write(d, "mine/train.jsonl", b"my own data\n"),
            args: &[
                "data", "synth", "--out", "mine", "--train", "2", "--test", "2",
            ],
            says: &["mine", "not made by safeaware", "--overwrite"],
            ..BASE
        },
        Case {
            name: "synth over a file",
            setup: |d| write(d, "afile", b"keep me"),
            args: &[
                "data", "synth", "--out", "afile", "--train", "2", "--test", "2",
            ],
            says: &["afile"],
            ..BASE
        },
        Case {
            name: "synth with no training items",
            args: &[
                "data",
                "synth",
                "--out",
                "new/world",
                "--train",
                "0",
                "--test",
                "2",
            ],
            says: &["train"],
            ..BASE
        },
        Case {
            name: "synth with a bad image size",
            args: &[
                "data",
                "synth",
                "--out",
                "new",
                "--image-size",
                "5",
                "--train",
                "2",
                "--test",
                "2",
            ],
            says: &["image size 5"],
            ..BASE
        },
        Case {
            name: "synth --overwrite keeps other files",
            setup: |d| write(d, "mine/notes.txt", b"mine"),
            args: &[
                "data",
                "synth",
                "--out",
                "mine",
                "--train",
                "2",
                "--val",
                "1",
                "--test",
                "2",
                "--overwrite",
            ],
            code: 0,
            ..BASE
        },
        // --- eval: exit status and inputs -----------------------------------------------
        Case {
            name: "eval of an empty responses file",
            setup: |d| write(d, "responses.jsonl", b""),
            args: EVAL_RESPONSES,
            says: &["nothing was scored", "no response"],
            writes: OUT_FILES,
            ..BASE
        },
        Case {
            name: "eval with a broken responses line",
            setup: |d| {
                let text = fs::read_to_string(d.join("responses.jsonl")).unwrap();
                let mut lines: Vec<&str> = text.lines().collect();
                lines[2] = "{\"id\": \"test-00002\", \"response\": 5}";
                write(d, "responses.jsonl", (lines.join("\n") + "\n").as_bytes())
            },
            args: EVAL_RESPONSES,
            says: &["1 of 8 item(s) failed", "responses file"],
            writes: OUT_FILES,
            ..BASE
        },
        Case {
            name: "eval failures within --max-error-rate",
            setup: |d| {
                edit(
                    d,
                    "responses.jsonl",
                    "\"response\": \"No, it is not safe.\"",
                    "\"response\": 5",
                )
            },
            args: &[
                "eval",
                "--benchmark",
                "jsonl:world/benchmark.jsonl",
                "--responses",
                "responses.jsonl",
                "--out",
                "out",
                "--progress",
                "quiet",
                "--max-error-rate",
                "0.2",
            ],
            code: 0,
            ..BASE
        },
        Case {
            name: "eval --max-error-rate out of range",
            args: &[
                "eval",
                "--benchmark",
                "jsonl:world/benchmark.jsonl",
                "--responses",
                "responses.jsonl",
                "--out",
                "out",
                "--max-error-rate",
                "2",
            ],
            says: &["--max-error-rate"],
            ..BASE
        },
        Case {
            name: "eval responses with a null id",
            setup: |d| append(d, "responses.jsonl", "{\"id\": null, \"response\": \"No\"}"),
            args: EVAL_RESPONSES,
            code: 0,
            says: &["responses.jsonl:9", "no usable `id`"],
            ..BASE
        },
        Case {
            name: "eval responses not UTF-8",
            setup: |d| {
                let mut f = fs::OpenOptions::new()
                    .append(true)
                    .open(d.join("responses.jsonl"))
                    .unwrap();
                f.write_all(b"{\"id\": \"x\", \"response\": \"\xff\"}\n")
                    .unwrap();
            },
            args: EVAL_RESPONSES,
            says: &["responses.jsonl", "line 9 is not valid UTF-8"],
            ..BASE
        },
        Case {
            name: "eval responses with a BOM",
            setup: |d| {
                let text = fs::read(d.join("responses.jsonl")).unwrap();
                write(
                    d,
                    "responses.jsonl",
                    &[b"\xEF\xBB\xBF".as_slice(), &text].concat(),
                )
            },
            args: EVAL_RESPONSES,
            code: 0,
            ..BASE
        },
        Case {
            name: "eval into a foreign folder",
            setup: |d| write(d, "out/samples.jsonl", b"someone else's\n"),
            args: EVAL_RESPONSES,
            says: &["out", "not made by safeaware", "--overwrite"],
            ..BASE
        },
        Case {
            name: "eval into a folder another process holds",
            setup: |d| fs::create_dir_all(d.join("out")).unwrap(),
            args: EVAL_RESPONSES,
            says: &["in use by another safeaware process"],
            locked: Some("out"),
            ..BASE
        },
        Case {
            name: "eval of a missing benchmark",
            args: &[
                "eval",
                "--benchmark",
                "jsonl:world/none.jsonl",
                "--responses",
                "responses.jsonl",
                "--out",
                "out",
            ],
            says: &["none.jsonl"],
            ..BASE
        },
        Case {
            name: "eval of a benchmark with a bad line",
            setup: |d| append(d, "world/benchmark.jsonl", "[1, 2]"),
            args: EVAL_RESPONSES,
            says: &["benchmark.jsonl:9"],
            ..BASE
        },
        Case {
            name: "eval prompt template without {prompt}",
            setup: |d| write(d, "t.txt", b"Is it safe?"),
            args: &[
                "eval",
                "--benchmark",
                "jsonl:world/benchmark.jsonl",
                "--responses",
                "responses.jsonl",
                "--out",
                "out",
                "--prompt",
                "t.txt",
            ],
            says: &["t.txt", "{prompt}"],
            ..BASE
        },
        Case {
            name: "eval prompt template not UTF-8",
            setup: |d| write(d, "t.txt", b"{prompt}\n\xff\n"),
            args: &[
                "eval",
                "--benchmark",
                "jsonl:world/benchmark.jsonl",
                "--responses",
                "responses.jsonl",
                "--out",
                "out",
                "--prompt",
                "t.txt",
            ],
            says: &["t.txt", "line 2 is not valid UTF-8"],
            ..BASE
        },
        Case {
            name: "eval --batch-size 0",
            args: &[
                "eval",
                "--benchmark",
                "jsonl:world/benchmark.jsonl",
                "--model",
                "model",
                "--out",
                "out",
                "--batch-size",
                "0",
            ],
            code: 2,
            says: &["--batch-size"],
            ..BASE
        },
        Case {
            name: "eval of a model with NaN weights",
            setup: |d| {
                nan_weights(d);
                without_manifest(d)
            },
            args: EVAL_MODEL,
            says: &["model.safetensors", "non-finite"],
            model: true,
            ..BASE
        },
        Case {
            name: "eval of a model with truncated weights",
            setup: |d| truncate(d, "model/model.safetensors", 5000),
            args: EVAL_MODEL,
            says: &["model.safetensors", "truncated"],
            model: true,
            ..BASE
        },
        Case {
            name: "eval of a model without config.json",
            setup: |d| fs::remove_file(d.join("model/config.json")).unwrap(),
            args: EVAL_MODEL,
            says: &["config.json"],
            model: true,
            ..BASE
        },
        Case {
            name: "eval counts a truncated image as a failed item",
            setup: |d| truncated_jpeg(d, "world/images/test-00003.png"),
            args: EVAL_MODEL,
            says: &["1 of 8 item(s) failed", "image: truncated"],
            writes: OUT_FILES,
            model: true,
            ..BASE
        },
        Case {
            name: "eval skips an item the benchmark has no image for",
            setup: |d| fs::remove_file(d.join("world/images/test-00004.png")).unwrap(),
            args: EVAL_MODEL,
            code: 0,
            model: true,
            ..BASE
        },
        Case {
            name: "eval of an endpoint that is not there",
            args: &[
                "eval",
                "--benchmark",
                "jsonl:world/benchmark.jsonl",
                "--endpoint",
                "http://127.0.0.1:9/v1",
                "--endpoint-model",
                "m",
                "--out",
                "out",
                "--progress",
                "quiet",
                "--retries",
                "0",
                "--timeout",
                "5",
            ],
            says: &["nothing was scored", "8 item(s): endpoint"],
            writes: OUT_FILES,
            ..BASE
        },
        // --- eval compare -------------------------------------------------------------------
        Case {
            name: "compare runs of different benchmarks",
            setup: disjoint_runs,
            args: &["eval", "compare", "a/results.json", "b/results.json"],
            says: &["different benchmarks", "--allow-different"],
            ..BASE
        },
        Case {
            name: "compare a missing run",
            args: &["eval", "compare", "nope/results.json"],
            says: &["nope/results.json"],
            ..BASE
        },
        Case {
            name: "compare a results.json that is not JSON",
            setup: |d| write(d, "r/results.json", b"{"),
            args: &["eval", "compare", "r/results.json"],
            says: &["r/results.json"],
            ..BASE
        },
        // --- inspect ------------------------------------------------------------------------
        Case {
            name: "inspect truncated weights",
            setup: |d| truncate(d, "model/model.safetensors", 100_000),
            args: &["inspect", "model"],
            says: &["model.safetensors", "truncated"],
            model: true,
            ..BASE
        },
        Case {
            name: "inspect weights of another model",
            setup: |d| {
                without_manifest(d);
                edit(
                    d,
                    "model/config.json",
                    "\"num_hidden_layers\": 4",
                    "\"num_hidden_layers\": 3",
                )
            },
            args: &["inspect", "model"],
            says: &["config.json", "another model"],
            model: true,
            ..BASE
        },
        Case {
            name: "inspect a garbage safetensors header",
            setup: |d| {
                without_manifest(d);
                write(
                    d,
                    "model/model.safetensors",
                    b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!",
                )
            },
            args: &["inspect", "model"],
            says: &["model.safetensors", "not JSON"],
            model: true,
            ..BASE
        },
        Case {
            name: "inspect a config.json that is not JSON",
            setup: |d| {
                without_manifest(d);
                write(d, "model/config.json", b"{\"model_type\": ")
            },
            args: &["inspect", "model"],
            says: &["config.json"],
            model: true,
            ..BASE
        },
        Case {
            name: "inspect a missing folder",
            args: &["inspect", "nothing"],
            says: &["nothing/config.json"],
            ..BASE
        },
        // --- train: setup ------------------------------------------------------------------
        Case {
            name: "train --stop-at-step 0",
            args: &[
                "train",
                "--recipe",
                "recipe.toml",
                "--out",
                "run",
                "--stop-at-step",
                "0",
            ],
            code: 2,
            says: &["--stop-at-step"],
            ..BASE
        },
        Case {
            name: "train --stop-at-step past the end",
            args: &[
                "train",
                "--recipe",
                "recipe.toml",
                "--out",
                "run",
                "--stop-at-step",
                "9",
            ],
            says: &["--stop-at-step 9 is impossible", "ends at step 2"],
            ..BASE
        },
        Case {
            name: "train batch larger than the data",
            args: &[
                "train",
                "--recipe",
                "recipe.toml",
                "--out",
                "run",
                "--set",
                "train.batch_size=64",
            ],
            says: &["train.batch_size is 64", "train.jsonl"],
            ..BASE
        },
        Case {
            name: "train batch size 0",
            args: &[
                "train",
                "--recipe",
                "recipe.toml",
                "--out",
                "run",
                "--set",
                "train.batch_size=0",
            ],
            says: &["train.batch_size", "must be > 0"],
            ..BASE
        },
        Case {
            name: "train on repeated ids",
            setup: |d| bad_trace(d, "id", "\"train-00003\""),
            args: TRAIN,
            says: &["train.jsonl:7", "repeats line 4"],
            ..BASE
        },
        Case {
            name: "train on a null id",
            setup: |d| bad_trace(d, "id", "null"),
            args: TRAIN,
            says: &["train.jsonl:7", "an id"],
            ..BASE
        },
        Case {
            name: "train on an image outside the data folder",
            setup: |d| bad_trace(d, "image", "\"../secret.png\""),
            args: TRAIN,
            says: &["train.jsonl:7", "leaves the data folder"],
            ..BASE
        },
        Case {
            name: "train on a truncated image",
            setup: |d| truncated_jpeg(d, "world/images/train-00001.png"),
            args: TRAIN,
            says: &["train-00001.png", "truncated"],
            ..BASE
        },
        Case {
            name: "train into a foreign folder",
            setup: |d| write(d, "run/metrics.jsonl", b"{\"step\": 1}\n"),
            args: TRAIN,
            says: &["run", "not made by safeaware", "--overwrite"],
            ..BASE
        },
        Case {
            name: "train from a model with NaN weights",
            setup: |d| {
                nan_weights(d);
                edit(d, "recipe.toml", "preset = \"tiny\"", "path = \"model\"")
            },
            args: TRAIN,
            says: &["model.safetensors", "non-finite"],
            model: true,
            ..BASE
        },
        Case {
            name: "recipe not TOML",
            setup: |d| write(d, "recipe.toml", b"[train\nmax_steps = 2\n"),
            args: TRAIN,
            says: &["recipe.toml:1"],
            ..BASE
        },
        Case {
            name: "recipe with an unknown key",
            setup: |d| edit(d, "recipe.toml", "max_steps", "max_stepz = 1\nmax_steps"),
            args: TRAIN,
            says: &["recipe.toml", "max_stepz"],
            ..BASE
        },
        Case {
            name: "recipe not UTF-8",
            setup: |d| write(d, "recipe.toml", b"[model]\npreset = \"\xff\"\n"),
            args: TRAIN,
            says: &["recipe.toml"],
            ..BASE
        },
        Case {
            name: "recipe --set of an unknown key",
            args: &[
                "train",
                "--recipe",
                "recipe.toml",
                "--out",
                "run",
                "--set",
                "train.nope=1",
            ],
            says: &["train.nope"],
            ..BASE
        },
        // --- train: resume -----------------------------------------------------------------
        Case {
            name: "resume a run another process holds",
            setup: |d| copy_run(&d.join("run")),
            args: &["train", "--resume", "run", "--no-eval"],
            says: &["in use by another safeaware process"],
            locked: Some("run"),
            ..BASE
        },
        Case {
            name: "resume a folder that is not a run",
            setup: |d| write(d, "run/notes.txt", b"x"),
            args: &["train", "--resume", "run"],
            says: &["run", "not a run folder"],
            ..BASE
        },
        Case {
            name: "resume when no checkpoint verifies",
            setup: |d| {
                copy_run(&d.join("run"));
                truncate(d, "run/checkpoints/step_1/model.safetensors", 10);
                truncate(d, "run/checkpoints/step_2/trainer_state/optimizer.mpk", 10)
            },
            args: &[
                "train",
                "--resume",
                "run",
                "--no-eval",
                "--set",
                "train.max_steps=3",
            ],
            says: &[
                "step_2/trainer_state/optimizer.mpk is truncated",
                "step_1/model.safetensors is truncated",
                "no checkpoint in it verifies",
            ],
            ..BASE
        },
        Case {
            name: "resume with corrupt optimiser state and no manifest",
            setup: |d| {
                copy_run(&d.join("run"));
                for s in [1, 2] {
                    fs::remove_file(d.join(format!("run/checkpoints/step_{s}/manifest.json")))
                        .unwrap();
                }
                write(
                    d,
                    "run/checkpoints/step_2/trainer_state/optimizer.mpk",
                    b"\x92\x01garbage",
                )
            },
            args: &[
                "train",
                "--resume",
                "run",
                "--no-eval",
                "--set",
                "train.max_steps=3",
            ],
            says: &["optimizer.mpk is corrupt or truncated"],
            ..BASE
        },
    ]
}

#[test]
fn bad_inputs_and_faults_fail_clearly_and_change_nothing() {
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    check_all(&cases);
}

/// Runs every case; fails with what went wrong in each case that did.
pub(crate) fn check_all(cases: &[Case]) {
    let failures: Vec<String> = cases.iter().filter_map(|c| check(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Runs one case; `Err` says what went wrong.
pub(crate) fn check(case: &Case) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    prepare(dir, case.model);
    (case.setup)(dir);
    let lock = case.locked.map(|l| OutputDir::lock(&dir.join(l)).unwrap());
    let before = snapshot(dir);
    let out = run_in(dir, case.args);
    drop(lock);
    // Reports (`data validate`) go to stdout, errors to stderr: both are what the user reads.
    let stderr = crate::common::text(&out);
    let fail = |why: String| Err(format!("[{}] {why}\n--- stderr:\n{stderr}", case.name));
    if out.status.code() != Some(case.code) {
        return fail(format!(
            "exit status {:?}, expected {}",
            out.status.code(),
            case.code
        ));
    }
    if stderr.contains("panicked") {
        return fail("it panicked".into());
    }
    let mut needles: Vec<String> = case.says.iter().map(|s| s.to_string()).collect();
    if case.locked.is_some() {
        needles.push(format!("pid {}", std::process::id()));
    }
    if let Some(missing) = needles.iter().find(|n| !stderr.contains(n.as_str())) {
        return fail(format!("stderr does not say {missing:?}"));
    }
    let after = snapshot(dir);
    // The lock file holds the pid of the last process that locked the folder: bookkeeping.
    let is_lock = |p: &Path| p.file_name() == Some(std::ffi::OsStr::new(LOCK_FILE));
    for (path, content) in before.iter().filter(|(p, _)| !is_lock(p)) {
        if after.get(path) != Some(content) {
            return fail(format!("{} changed or disappeared", path.display()));
        }
    }
    if case.code != 0 {
        let allowed = |p: &Path| case.writes.iter().any(|w| p.starts_with(w));
        if let Some(new) = after
            .keys()
            .find(|p| !before.contains_key(*p) && !allowed(p))
        {
            return fail(format!("a failed run created {}", new.display()));
        }
    }
    Ok(())
}

/// The real release lacks 77 images (ids 2301–2370 and seven too large to copy): a local model
/// skips them, and an evaluation with no other problem exits 0. The first 20 ids include id 18.
#[test]
fn an_eval_of_the_release_skips_the_items_it_has_no_image_for_and_succeeds() {
    let release = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/mmsafeaware/data");
    assert!(
        release.join("prompt.txt").is_file(),
        "the MMSafeAware release is expected at {} (see shared/mmsafeaware/README.md)",
        release.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    prepare(tmp.path(), true);
    let spec = format!("mmsafeaware:{}", release.display());
    let args = [
        "eval",
        "--benchmark",
        &spec,
        "--model",
        "model",
        "--out",
        "out",
        "--limit",
        "20",
    ];
    let out = run_in(
        tmp.path(),
        &[&args[..], &["--progress", "quiet", "--max-tokens", "2"]].concat(),
    );
    assert!(out.status.success(), "{}", crate::common::text(&out));
    let results: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.path().join("out/results.json")).unwrap()).unwrap();
    let counts = &results["counts"];
    assert_eq!(
        (counts["scored"].as_u64(), counts["skipped"].as_u64()),
        (Some(19), Some(1))
    );
    assert_eq!(
        (counts["errors"].as_u64(), results["complete"].as_bool()),
        (Some(0), Some(true))
    );
}
