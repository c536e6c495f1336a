//! Outputs and exit status of the commands added after the first robustness pass (`data import`,
//! `data distill`, `export`, `experiment run`, `plan`, `eval compare`, `doctor`): no output
//! replaced unasked, none equal to an input, image paths of imports kept inside their folder,
//! a second process on an output refused at once naming the first's pid, and a run whose every
//! item failed exiting non-zero with the causes. The table cases run through `cases::check`
//! (exit status, message, no file changed, nothing created); the others assert the same by hand.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use safeaware_common::output_file::OutputFile;
use serde_json::Value;

use crate::cases::{check_all, disjoint_runs, write, Case, BASE};
use crate::fixtures::{ok_in, prepare, run_in, snapshot};

/// A dead endpoint: nothing listens on port 9 (discard) on the test machines.
const DEAD: &str = "http://127.0.0.1:9/v1";

/// A pairs file of two of the world's training images.
fn pairs(dir: &Path) {
    let line = |id: &str, n: usize, verdict: &str| {
        format!(
            "{{\"id\": \"{id}\", \"image\": \"world/images/train-0000{n}.png\", \"prompt\": \"q{n}\", \"verdict\": \"{verdict}\"}}\n"
        )
    };
    let text = line("p0", 0, "safe") + &line("p1", 1, "unsafe");
    write(dir, "pairs.jsonl", text.as_bytes());
}

/// An experiment over recorded responses (`rec`) and, when `dead`, an endpoint that is not
/// there (`dead`, baseline `rec`), on the world's benchmark.
fn experiment(dir: &Path, extra: &str) {
    let text = format!(
        "title = \"t\"\n[eval]\nretries = 0\ntimeout_s = 5.0\n\
         [models.rec]\nresponses = \"responses.jsonl\"\n\
         [benchmarks.b]\nspec = \"jsonl:world/benchmark.jsonl\"\n\
         [[arms]]\nname = \"rec\"\nmodel = \"rec\"\n{extra}"
    );
    write(dir, "experiment.toml", text.as_bytes());
}

const DEAD_ARM: &str = "[models.dead]\nendpoint = \"http://127.0.0.1:9/v1\"\n\
    endpoint_model = \"m\"\n[[arms]]\nname = \"dead\"\nmodel = \"dead\"\nbaseline = \"rec\"\n";

const EXPERIMENT: &[&str] = &["experiment", "run", "experiment.toml", "--out", "out"];

/// A PEFT adapter folder (its config only) whose base is `model/`.
fn adapter(dir: &Path) {
    write(
        dir,
        "adapter/adapter_config.json",
        br#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"],
            "base_model_name_or_path": "model"}"#,
    );
}

fn cases() -> Vec<Case> {
    vec![
        // --- data import: confinement, line numbers, overwrites ----------------------------
        Case {
            name: "import csv with an image path leaving its folder",
            setup: |d| {
                write(
                    d,
                    "table.csv",
                    b"image,prompt,label\nworld/images/train-00000.png,p,safe\n../../../etc/passwd,q,unsafe\n",
                )
            },
            args: &["data", "import", "csv", "table.csv", "--out", "pairs.jsonl"],
            says: &[
                "table.csv:3",
                "../../../etc/passwd",
                "leaves the data folder",
            ],
            ..BASE
        },
        Case {
            name: "import jsonl with an image path leaving its folder",
            setup: |d| {
                write(
                    d,
                    "table.jsonl",
                    br#"{"image": "../../../etc/passwd", "prompt": "q", "label": "unsafe"}"#,
                )
            },
            args: &[
                "data",
                "import",
                "jsonl",
                "table.jsonl",
                "--out",
                "pairs.jsonl",
            ],
            says: &["table.jsonl:1", "leaves the data folder"],
            ..BASE
        },
        Case {
            name: "import vlguard with an image path leaving its folder",
            setup: |d| {
                write(
                    d,
                    "train.json",
                    br#"[{"id": "A_1", "image": "../../../etc/passwd", "safe": false,
                         "instr-resp": [{"instruction": "q", "response": "r"}]}]"#,
                )
            },
            args: &[
                "data",
                "import",
                "vlguard",
                "train.json",
                "--images",
                "world/images",
                "--out",
                "pairs.jsonl",
            ],
            says: &["record 1", "leaves the data folder"],
            ..BASE
        },
        Case {
            name: "import csv with CRLF line ends names the right line",
            setup: |d| {
                write(
                    d,
                    "table.csv",
                    b"image,prompt,label\r\nworld/images/train-00000.png,\"two\r\nlines\",safe\r\n\
                      world/images/train-00001.png,p,maybe\r\n",
                )
            },
            args: &["data", "import", "csv", "table.csv", "--out", "pairs.jsonl"],
            says: &["table.csv:4", "maybe"],
            ..BASE
        },
        Case {
            name: "import over an existing file",
            setup: |d| {
                pairs(d);
                write(
                    d,
                    "table.jsonl",
                    br#"{"image": "world/images/train-00000.png", "prompt": "q", "label": "safe"}"#,
                )
            },
            args: &[
                "data",
                "import",
                "jsonl",
                "table.jsonl",
                "--out",
                "pairs.jsonl",
            ],
            says: &["pairs.jsonl already exists", "--overwrite"],
            ..BASE
        },
        Case {
            name: "import onto the file imported, even with --overwrite",
            setup: |d| {
                write(
                    d,
                    "table.jsonl",
                    br#"{"image": "world/images/train-00000.png", "prompt": "q", "label": "safe"}"#,
                )
            },
            args: &[
                "data",
                "import",
                "jsonl",
                "table.jsonl",
                "--out",
                "./table.jsonl",
                "--overwrite",
            ],
            says: &["is the same as the imported file", "table.jsonl"],
            ..BASE
        },
        // --- data distill: outputs and exit status --------------------------------------------
        Case {
            name: "distill onto its pairs file, even with --overwrite",
            setup: pairs,
            args: &[
                "data",
                "distill",
                "--pairs",
                "pairs.jsonl",
                "--teacher",
                DEAD,
                "--teacher-model",
                "m",
                "--out",
                "pairs.jsonl",
                "--overwrite",
            ],
            says: &["--out pairs.jsonl is the same as --pairs"],
            ..BASE
        },
        Case {
            name: "distill with --rejected the same file as --out",
            setup: pairs,
            args: &[
                "data",
                "distill",
                "--pairs",
                "pairs.jsonl",
                "--teacher",
                DEAD,
                "--teacher-model",
                "m",
                "--out",
                "out/traces.jsonl",
                "--rejected",
                "out/../out/traces.jsonl",
            ],
            says: &["--rejected must be another file than --out"],
            ..BASE
        },
        Case {
            name: "distill into a training file it did not write",
            setup: pairs,
            args: &[
                "data",
                "distill",
                "--pairs",
                "pairs.jsonl",
                "--teacher",
                DEAD,
                "--teacher-model",
                "m",
                "--out",
                "world/train.jsonl",
            ],
            says: &[
                "world/train.jsonl already exists and is not distill's output",
                "line 1",
                "--overwrite",
            ],
            ..BASE
        },
        Case {
            name: "distill with a teacher that is not there",
            setup: pairs,
            args: &[
                "data",
                "distill",
                "--pairs",
                "pairs.jsonl",
                "--teacher",
                DEAD,
                "--teacher-model",
                "m",
                "--out",
                "out/traces.jsonl",
                "--retries",
                "0",
                "--temperature",
                "0",
                "--samples",
                "1",
                "--progress",
                "quiet",
            ],
            says: &[
                "nothing was answered by the teacher (2 pair(s) asked)",
                "2 pair(s): endpoint",
            ],
            writes: &["out"],
            ..BASE
        },
        // --- experiment run: inputs, outputs ----------------------------------------------------
        Case {
            name: "experiment into a foreign folder",
            setup: |d| {
                experiment(d, "");
                write(d, "out/notes.txt", b"mine");
            },
            args: EXPERIMENT,
            says: &[
                "out is not empty and was not made by safeaware",
                "--overwrite",
            ],
            ..BASE
        },
        Case {
            name: "experiment --out that is one of its models, even with --overwrite",
            setup: |d| {
                experiment(
                    d,
                    "[models.m]\npath = \"mine\"\n[[arms]]\nname = \"m\"\nmodel = \"m\"\n",
                );
                write(d, "mine/config.json", b"{}");
            },
            args: &[
                "experiment",
                "run",
                "experiment.toml",
                "--out",
                "mine",
                "--overwrite",
            ],
            says: &["--out mine is the same as models.m.path"],
            ..BASE
        },
        Case {
            name: "experiment --out that is its benchmark, even with --overwrite",
            setup: |d| experiment(d, ""),
            args: &[
                "experiment",
                "run",
                "experiment.toml",
                "--out",
                "world/benchmark.jsonl",
                "--overwrite",
            ],
            says: &["--out world/benchmark.jsonl is the same as benchmarks.b.spec"],
            ..BASE
        },
        Case {
            name: "experiment with a missing responses file fails before training",
            setup: |d| {
                let text = "title = \"t\"\n[models.a_trained]\nrecipe = \"recipe.toml\"\n\
                    [models.z_rec]\nresponses = \"nope.jsonl\"\n\
                    [benchmarks.b]\nspec = \"jsonl:world/benchmark.jsonl\"\n\
                    [[arms]]\nname = \"trained\"\nmodel = \"a_trained\"\n\
                    [[arms]]\nname = \"rec\"\nmodel = \"z_rec\"\nbaseline = \"trained\"\n";
                write(d, "experiment.toml", text.as_bytes());
            },
            args: EXPERIMENT,
            says: &["models.z_rec.responses", "nope.jsonl"],
            ..BASE
        },
        Case {
            name: "experiment with a baseline cycle",
            setup: |d| {
                experiment(
                    d,
                    "baseline = \"b\"\n[[arms]]\nname = \"b\"\nmodel = \"rec\"\nbaseline = \"rec\"\n",
                )
            },
            args: EXPERIMENT,
            says: &["cycle: rec → b → rec"],
            ..BASE
        },
        Case {
            name: "experiment with eval.max_tokens = 0",
            setup: |d| experiment(d, ""),
            args: &[
                "experiment",
                "run",
                "experiment.toml",
                "--out",
                "out",
                "--set",
                "eval.max_tokens=0",
            ],
            says: &["eval.max_tokens must be at least 1"],
            ..BASE
        },
        // --- export -------------------------------------------------------------------------
        Case {
            name: "export onto its adapter, even with --overwrite",
            setup: adapter,
            args: &[
                "export",
                "--merge",
                "adapter",
                "--out",
                "adapter",
                "--overwrite",
            ],
            says: &["--out adapter is the same as --merge"],
            model: true,
            ..BASE
        },
        Case {
            name: "export onto its base model",
            setup: adapter,
            args: &["export", "--merge", "adapter", "--out", "model/"],
            says: &["is the same as the base"],
            model: true,
            ..BASE
        },
        Case {
            name: "export into a foreign folder",
            setup: |d| {
                adapter(d);
                write(d, "merged/notes.txt", b"mine");
            },
            args: &["export", "--merge", "adapter", "--out", "merged"],
            says: &["merged is not empty and was not made by safeaware"],
            model: true,
            ..BASE
        },
        // --- plan, eval compare, doctor ----------------------------------------------------
        Case {
            name: "plan of a max_length whose memory overflows 64 bits",
            args: &[
                "plan",
                "--recipe",
                "recipe.toml",
                "--set",
                "data.max_length=1000000000",
            ],
            says: &["data.max_length", "1000000000"],
            ..BASE
        },
        Case {
            name: "compare runs of benchmarks with the same ids",
            setup: |d| {
                fs::copy(d.join("world/benchmark.jsonl"), d.join("world/copy.jsonl")).unwrap();
                for (out, bench) in [("a", "world/benchmark.jsonl"), ("b", "world/copy.jsonl")] {
                    let spec = format!("jsonl:{bench}");
                    let args = [
                        "eval",
                        "--benchmark",
                        &spec,
                        "--responses",
                        "responses.jsonl",
                    ];
                    ok_in(
                        d,
                        &[&args[..], &["--out", out, "--progress", "quiet"]].concat(),
                    );
                }
            },
            args: &["eval", "compare", "a/results.json", "b/results.json"],
            says: &["different benchmarks", "jsonl:world/copy.jsonl"],
            ..BASE
        },
        Case {
            name: "compare --allow-different of runs that share no item",
            setup: disjoint_runs,
            args: &[
                "eval",
                "compare",
                "a/results.json",
                "b/results.json",
                "--allow-different",
            ],
            says: &["share no scored item"],
            ..BASE
        },
        Case {
            name: "compare --out onto a compared run",
            setup: disjoint_runs,
            args: &[
                "eval",
                "compare",
                "a/results.json",
                "--out",
                "a/results.json",
            ],
            says: &["--out a/results.json is the same as the run"],
            ..BASE
        },
        Case {
            name: "compare --out onto the samples of a compared run",
            setup: disjoint_runs,
            args: &[
                "eval",
                "compare",
                "a/results.json",
                "--out",
                "a/samples.jsonl",
            ],
            says: &["--out a/samples.jsonl is the same as the samples of a run"],
            ..BASE
        },
        Case {
            name: "doctor --tolerance -1",
            args: &["doctor", "--tolerance=-1"],
            says: &["--tolerance must be a positive number"],
            ..BASE
        },
    ]
}

#[test]
fn outputs_are_never_replaced_unasked_and_failures_exit_non_zero() {
    check_all(&cases());
}

/// `--compare --allow-different` of runs of benchmarks with the same ids pairs them (the user
/// asked for it), and a re-import with `--overwrite` replaces the pairs file.
#[test]
fn the_flags_that_allow_what_is_refused_do_allow_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    prepare(dir, false);
    fs::copy(
        dir.join("world/benchmark.jsonl"),
        dir.join("world/copy.jsonl"),
    )
    .unwrap();
    for (out, spec) in [
        ("a", "jsonl:world/benchmark.jsonl"),
        ("b", "jsonl:world/copy.jsonl"),
    ] {
        let args = [
            "eval",
            "--benchmark",
            spec,
            "--responses",
            "responses.jsonl",
        ];
        ok_in(
            dir,
            &[&args[..], &["--out", out, "--progress", "quiet"]].concat(),
        );
    }
    let compared = ok_in(
        dir,
        &[
            "eval",
            "compare",
            "a/results.json",
            "b/results.json",
            "--allow-different",
        ],
    );
    assert!(compared.contains("McNemar"), "{compared}");

    let table =
        "{\"image\": \"world/images/train-00000.png\", \"prompt\": \"q\", \"label\": \"safe\"}\n";
    write(dir, "table.jsonl", table.as_bytes());
    write(dir, "pairs.jsonl", b"old\n");
    let import = [
        "data",
        "import",
        "jsonl",
        "table.jsonl",
        "--out",
        "pairs.jsonl",
    ];
    ok_in(dir, &[&import[..], &["--overwrite"]].concat());
    let written = fs::read_to_string(dir.join("pairs.jsonl")).unwrap();
    assert!(
        written.contains("\"image\":\"world/images/train-00000.png\""),
        "{written}"
    );
}

/// An arm whose endpoint is not there fails on every item: the experiment writes the
/// comparison with the arm marked failed and no p-value over nothing, prints the causes and
/// exits 1; the arm that worked is in the comparison as usual.
#[test]
fn an_experiment_with_a_failed_arm_marks_it_and_exits_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    prepare(dir, false);
    experiment(dir, DEAD_ARM);
    let out = run_in(dir, EXPERIMENT);
    let log = crate::common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    for needle in [
        "arm dead on b failed: nothing was scored (8 item(s) asked)",
        "8 item(s): endpoint",
        "1 arm evaluation(s) failed (dead on b)",
    ] {
        assert!(log.contains(needle), "no {needle:?} in:\n{log}");
    }
    let json: Value =
        serde_json::from_slice(&fs::read(dir.join("out/comparison.json")).unwrap()).unwrap();
    let arms = json["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 2);
    assert!(arms[0].get("failed").is_none(), "{}", arms[0]);
    assert!(arms[0]["total"].is_f64(), "{}", arms[0]);
    let failed = arms[1]["failed"].as_str().unwrap();
    assert!(failed.starts_with("nothing was scored"), "{failed}");
    assert!(arms[1]["p_value"].is_null(), "{}", arms[1]);
    let md = fs::read_to_string(dir.join("out/comparison.md")).unwrap();
    assert!(md.contains("| dead (FAILED) | rec |"), "{md}");
    assert!(md.contains("– (arm failed)"), "{md}");
    assert!(!md.contains("| dead | rec |"), "{md}");

    // With every failure allowed, the arm that scored nothing still fails the run.
    let again = run_in(dir, &[EXPERIMENT, &["--max-error-rate", "1"]].concat());
    assert_eq!(
        again.status.code(),
        Some(1),
        "{}",
        crate::common::text(&again)
    );
}

/// Two experiments on one `--out`: the second fails at once, naming the first's pid, and
/// leaves the first's folder as it was.
#[test]
fn a_second_experiment_on_the_same_folder_fails_at_once_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    prepare(dir, false);
    let teacher = crate::stub_server::Server::start(|_, _| crate::stub_server::Reply {
        delay: Duration::from_millis(1500),
        ..crate::stub_server::Reply::ok("No")
    });
    let slow = format!(
        "[models.slow]\nendpoint = \"{}\"\nendpoint_model = \"m\"\n\
         [[arms]]\nname = \"slow\"\nmodel = \"slow\"\nbaseline = \"rec\"\n",
        teacher.base_url
    );
    experiment(dir, &slow);
    let mut first = Command::new(env!("CARGO_BIN_EXE_safeaware"))
        .args(EXPERIMENT)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while teacher.count() == 0 {
        assert!(start.elapsed() < Duration::from_secs(120), "never asked");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = snapshot(&dir.join("out/evals/b/rec"));
    let second = run_in(dir, EXPERIMENT);
    let log = crate::common::text(&second);
    let still_running = first.try_wait().unwrap().is_none();
    let _ = first.kill();
    first.wait().unwrap();
    assert!(
        still_running,
        "the first experiment ended too soon to test the lock"
    );
    assert_eq!(second.status.code(), Some(1), "{log}");
    assert!(log.contains(&format!("pid {}", first.id())), "{log}");
    assert!(
        log.contains("is in use by another safeaware process"),
        "{log}"
    );
    assert_eq!(snapshot(&dir.join("out/evals/b/rec")), before);
}

/// A distillation whose `--out` another process holds fails at once, naming that pid, and
/// writes nothing.
#[test]
fn a_distillation_into_a_file_another_process_holds_fails_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    prepare(dir, false);
    pairs(dir);
    let held = OutputFile::lock(&dir.join("out/traces.jsonl")).unwrap();
    let before = snapshot(dir);
    let out = run_in(
        dir,
        &[
            "data",
            "distill",
            "--pairs",
            "pairs.jsonl",
            "--teacher",
            DEAD,
            "--teacher-model",
            "m",
            "--out",
            "out/traces.jsonl",
        ],
    );
    drop(held);
    let log = crate::common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "traces.jsonl is in use by another safeaware process (pid {})",
            std::process::id()
        )),
        "{log}"
    );
    // The lock file holds the pid of whoever locked last: bookkeeping, not output.
    let is_lock = |p: &Path| p.to_string_lossy().ends_with(".lock");
    let after = snapshot(dir);
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, c)| !is_lock(p) && before.get(*p) != Some(*c))
        .map(|(p, _)| p.clone())
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
}
