//! Distillation against a scripted teacher on 127.0.0.1: only traces with the gold verdict are
//! kept (the first agreeing sample of each pair), the others go to the rejected file with
//! their reasons, a failing teacher leaves its pairs for the next run, and a rerun — after a
//! half-written line too — asks only what is not done and writes nothing twice.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::{png, Reply, Server};
use safeaware_data::benchmark::Verdict;
use safeaware_data::pairs::{read_pairs, write_pairs, LabelledPair, PairsFile};
use safeaware_data::preferences::{read_preferences, PreferenceAnswer};
use safeaware_data::traces::{read_training_file, TargetStyle};
use safeaware_eval::decoding::DecodingMode;
use safeaware_eval::distill::output::{default_rejected_path, RejectedLine};
use safeaware_eval::distill::parse::RejectReason;
use safeaware_eval::distill::{self, DistillConfig};
use safeaware_eval::progress::ProgressMode;
use safeaware_eval::prompt::{PromptStrategy, TRACE_INSTRUCTION};
use safeaware_eval::source::endpoint::{Endpoint, EndpointConfig};
use serde_json::Value;

const GOLD: [(&str, Verdict); 6] = [
    ("p0", Verdict::Safe),
    ("p1", Verdict::Unsafe),
    ("p2", Verdict::Safe),
    ("p3", Verdict::Unsafe),
    ("p4", Verdict::Safe),
    ("p5", Verdict::Unsafe),
];

/// Six pairs in `dir/pairs/`, images beside them.
fn pairs(dir: &Path) -> PairsFile {
    let folder = dir.join("pairs");
    std::fs::create_dir_all(&folder).unwrap();
    let list: Vec<LabelledPair> = GOLD
        .iter()
        .map(|(id, verdict)| {
            png(&folder, &format!("{id}.png"));
            LabelledPair {
                id: id.to_string(),
                image: format!("{id}.png").into(),
                prompt: format!("sentence {id}"),
                verdict: *verdict,
                subset: None,
                scenario: Some("test".into()),
            }
        })
        .collect();
    let path = folder.join("pairs.jsonl");
    write_pairs(&path, &list).unwrap();
    read_pairs(&path).unwrap()
}

fn trace(verdict: &str) -> String {
    format!(
        "<description>a small picture</description>\n<reasoning>the sentence is judged</reasoning>\n<verdict>{verdict}</verdict>"
    )
}

/// The pair a request asks about (its sentence ends the text) and its seed.
fn asked(body: &Value) -> (String, u64) {
    let text = body["messages"][0]["content"][1]["text"]
        .as_str()
        .unwrap_or("");
    let id = text
        .rsplit("sentence ")
        .next()
        .unwrap_or("")
        .trim_matches('"')
        .to_string();
    (id, body["seed"].as_u64().unwrap_or(u64::MAX))
}

/// A teacher that answers p0/p5 right, p1 right on its second sample only, p2 always wrong,
/// p3 without tags, and fails on p4 unless `p4_works`.
fn teacher(p4_works: bool) -> Server {
    Server::start(move |_, body| {
        let (id, seed) = asked(body);
        match id.as_str() {
            "p0" => Reply::ok(&trace("Yes")),
            "p1" if seed == 11 => Reply::ok(&trace("No, it is unsafe.")),
            "p1" | "p2" => Reply::ok(&trace(if id == "p1" { "Yes" } else { "No" })),
            "p3" => Reply::ok("No, this is unsafe."),
            "p4" if p4_works => Reply::ok(&trace("Yes")),
            "p4" => Reply::status(500),
            _ => Reply::ok(&trace("No")),
        }
    })
}

fn endpoint(server: &Server) -> Endpoint {
    let mut c = EndpointConfig::new(&server.base_url, "teacher-model");
    c.retries = 1;
    c.backoff = Duration::from_millis(5);
    c.timeout = Duration::from_secs(10);
    c.concurrency = 3;
    c.decoding.mode = DecodingMode::Sample;
    c.decoding.temperature = 0.7;
    c.decoding.seed = Some(10);
    Endpoint::new(c).unwrap()
}

fn config(dir: &Path) -> DistillConfig {
    let out = dir.join("out/traces.jsonl");
    DistillConfig {
        rejected: default_rejected_path(&out),
        out,
        prompt: PromptStrategy::Trace,
        samples: 3,
        seed: Some(10),
        teacher: "teacher-model".into(),
        retry_rejected: false,
        overwrite: false,
        preferences: false,
        progress: ProgressMode::Quiet,
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn only_gold_agreeing_traces_are_kept_and_rejections_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = pairs(dir.path());
    let server = teacher(false);
    let config = config(dir.path());
    let summary = distill::run(&pairs, &endpoint(&server), &config).unwrap();
    assert_eq!(
        (summary.kept, summary.teacher_errors),
        (3, 1),
        "{summary:?}"
    );
    assert_eq!(
        summary.rejected,
        [
            (RejectReason::NoDescription, 1),
            (RejectReason::WrongVerdict, 1)
        ]
        .into()
    );

    // The kept traces: gold verdicts, the first agreeing sample, readable in every style.
    let gold: HashMap<&str, Verdict> = GOLD.into_iter().collect();
    let kept = lines(&config.out);
    let mut ids: Vec<(&str, u64)> = kept
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["sample"].as_u64().unwrap()))
        .collect();
    ids.sort();
    assert_eq!(ids, [("p0", 0), ("p1", 1), ("p5", 0)]);
    let file = read_training_file(&config.out).unwrap();
    for t in file.traces() {
        assert_eq!(t.verdict, gold[t.id.as_str()], "{}", t.id);
        assert_eq!(t.description, "a small picture");
        assert_eq!(t.scenario.as_deref(), Some("test"));
        assert!(file.dir.join(&t.image).is_file(), "{}", t.image.display());
        assert!(t
            .answer(TargetStyle::Vcr)
            .starts_with("<description>a small picture"));
        assert!(t.answer(TargetStyle::Cot).starts_with("<reasoning>"));
        assert_eq!(
            t.answer(TargetStyle::Direct),
            if t.verdict == Verdict::Safe {
                "<verdict>Yes</verdict>"
            } else {
                "<verdict>No</verdict>"
            }
        );
    }
    assert!(kept.iter().all(|t| t["teacher"] == "teacher-model"));

    // The rejected pairs, every sample with its reason.
    let rejected: Vec<RejectedLine> = lines(&config.rejected)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let wrong = rejected.iter().find(|r| r.id == "p2").unwrap();
    assert_eq!(
        (wrong.reason, wrong.samples.len()),
        (RejectReason::WrongVerdict, 3)
    );
    assert_eq!(wrong.verdict, Verdict::Safe);
    let untagged = rejected.iter().find(|r| r.id == "p3").unwrap();
    assert_eq!(untagged.samples[0].response, "No, this is unsafe.");
    assert_eq!(untagged.reason, RejectReason::NoDescription);

    // What was asked: the trace prompt with the image, sample k with seed 10 + k.
    let received = server.received.lock().unwrap().clone();
    let first = &received[0].body;
    let text = first["messages"][0]["content"][1]["text"].as_str().unwrap();
    assert!(text.starts_with(TRACE_INSTRUCTION), "{text}");
    let url = first["messages"][0]["content"][0]["image_url"]["url"]
        .as_str()
        .unwrap();
    assert!(url.starts_with("data:image/png;base64,"));
    let mut p1_seeds: Vec<u64> = received
        .iter()
        .map(|r| asked(&r.body))
        .filter(|(id, _)| id == "p1")
        .map(|(_, seed)| seed)
        .collect();
    p1_seeds.sort();
    assert_eq!(p1_seeds, [10, 11], "p1 stops at its first agreeing sample");
}

#[test]
fn a_rerun_asks_only_what_is_not_done_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = pairs(dir.path());
    let config = config(dir.path());
    let first = distill::run(&pairs, &endpoint(&teacher(false)), &config).unwrap();
    assert_eq!(first.teacher_errors, 1);
    // A killed writer's half line for p4 is dropped, not read as done.
    let mut text = std::fs::read_to_string(&config.out).unwrap();
    text.push_str("{\"id\": \"p4\", \"image\": \"../pairs/p4.p");
    std::fs::write(&config.out, text).unwrap();

    let server = teacher(true);
    let second = distill::run(&pairs, &endpoint(&server), &config).unwrap();
    assert_eq!(
        (second.already_done, second.kept, second.teacher_errors),
        (5, 1, 0)
    );
    let asked_ids: Vec<String> = server
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|r| asked(&r.body).0)
        .collect();
    assert_eq!(asked_ids, ["p4"]);
    let mut kept: Vec<String> = lines(&config.out)
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    kept.sort();
    assert_eq!(kept, ["p0", "p1", "p4", "p5"]);
    assert_eq!(lines(&config.rejected).len(), 2);

    // Nothing left: a third run asks nothing; --retry-rejected asks the rejected pairs again.
    let idle = teacher(true);
    let third = distill::run(&pairs, &endpoint(&idle), &config).unwrap();
    assert_eq!((third.already_done, idle.count()), (6, 0));
    let retry = DistillConfig {
        retry_rejected: true,
        ..config.clone()
    };
    let again = distill::run(&pairs, &endpoint(&idle), &retry).unwrap();
    assert_eq!(again.already_done, 4);
    assert_eq!(
        lines(&config.rejected).len(),
        2,
        "rejected again, each once"
    );
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = config(dir.path());
    let refused = [
        DistillConfig {
            samples: 0,
            ..base.clone()
        },
        DistillConfig {
            samples: 2,
            seed: None,
            ..base.clone()
        },
        DistillConfig {
            prompt: PromptStrategy::DescribeFirst,
            ..base.clone()
        },
        DistillConfig {
            rejected: base.out.clone(),
            ..base.clone()
        },
        DistillConfig {
            preferences: true,
            samples: 1,
            ..base.clone()
        },
    ];
    for config in refused {
        assert!(config.validate().is_err(), "{config:?}");
    }
    assert!(base.validate().is_ok());
}

#[test]
fn preference_distillation_pairs_a_gold_sample_with_a_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = pairs(dir.path());
    let server = teacher(true);
    let config = DistillConfig {
        preferences: true,
        ..config(dir.path())
    };
    let summary = distill::run(&pairs, &endpoint(&server), &config).unwrap();
    // Only p1 has both a wrong sample (seed 10: "Yes") and a gold one (seed 11).
    assert_eq!(
        (summary.kept, summary.teacher_errors),
        (1, 0),
        "{summary:?}"
    );
    let file = read_preferences(&config.out).unwrap();
    let [(_, pair)] = file.pairs.as_slice() else {
        panic!("one pair: {:?}", file.pairs)
    };
    assert_eq!(
        (pair.id.as_str(), pair.prompt.as_str()),
        ("p1", "sentence p1")
    );
    let verdict = |a: &PreferenceAnswer| match a {
        PreferenceAnswer::Trace { verdict, .. } => *verdict,
        PreferenceAnswer::Text(t) => panic!("a trace, not {t}"),
    };
    assert_eq!(
        (verdict(&pair.chosen), verdict(&pair.rejected)),
        (Verdict::Unsafe, Verdict::Safe)
    );
    assert!(file.dir.join(&pair.image).is_file());
    let kept = &lines(&config.out)[0];
    assert_eq!(
        (
            kept["chosen_sample"].as_u64(),
            kept["rejected_sample"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let reasons: HashMap<String, String> = lines(&config.rejected)
        .iter()
        .map(|l| {
            (
                l["id"].as_str().unwrap().to_string(),
                l["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("p0", "no_wrong_verdict"),
        ("p2", "wrong_verdict"),
        ("p3", "no_description"),
        ("p4", "no_wrong_verdict"),
        ("p5", "no_wrong_verdict"),
    ];
    let expected: HashMap<String, String> = expected
        .iter()
        .map(|(i, r)| (i.to_string(), r.to_string()))
        .collect();
    assert_eq!(reasons, expected);
}
