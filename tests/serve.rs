//! `safeaware serve` on a small trained checkpoint: `eval --endpoint` against it gives exactly
//! the answers and numbers of `eval --checkpoint` (greedy), concurrent requests are batched,
//! seeded sampling repeats itself, `/v1/models` lists the model, bad requests get 400, and an
//! answer is the same whether its batch ran alone or interleaved with others, in every model
//! family (`common::FAMILIES`).

mod common;

use std::path::{Path, PathBuf};

use common::serving::{self, chat, json_of, Serving};
use common::{safeaware, text, train_quickstart, Family, FAMILIES};
use serde_json::{json, Value};

/// A tiny model of `family`'s architecture after a short training run, and its benchmark spec.
fn trained(dir: &Path, family: &Family) -> (PathBuf, String) {
    let (run, spec) = train_quickstart(
        dir,
        &family.with(&[
            "data.synthetic.train=64",
            "data.synthetic.val=0",
            "data.synthetic.test=12",
            "data.synthetic.describe_only=0",
            "train.batch_size=8",
            "train.max_steps=80",
            "schedule.warmup_steps=1",
            "train.eval_every=0",
            "train.checkpoint_every=0",
        ]),
    );
    (run.join("final"), spec)
}

/// The server of these tests: batches of up to 4, waiting 200 ms to fill one.
fn serve(folder: &Path) -> Serving {
    let extra = ["--batch-size", "4", "--batch-wait-ms", "200"];
    serving::serve(
        folder,
        &[&extra[..], &["--served-model-name", "tiny"]].concat(),
    )
}

fn results(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap()
}

/// id → response of a run's samples.
fn responses(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_to_string(dir.join("samples.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                v["response"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// One trained model per family (training is the slow part) for both checks.
#[test]
fn serve_answers_as_the_checkpoint_and_speaks_the_protocol() {
    for family in &FAMILIES {
        let dir = tempfile::tempdir().unwrap();
        let (folder, spec) = trained(dir.path(), family);
        let server = serve(&folder);
        eval_through_serve_equals_eval_of_the_checkpoint(dir.path(), &folder, &spec, &server);
        sampling_is_seeded_and_bad_requests_are_refused(dir.path(), &server);
        answers_do_not_depend_on_what_runs_beside_them(&server);
    }
}

fn eval_through_serve_equals_eval_of_the_checkpoint(
    dir: &Path,
    folder: &Path,
    spec: &str,
    server: &Serving,
) {
    let direct = dir.join("direct");
    let o = safeaware(&[
        "eval",
        "--checkpoint",
        folder.to_str().unwrap(),
        "--benchmark",
        spec,
        "--out",
        direct.to_str().unwrap(),
        "--max-tokens",
        "24",
        "--batch-size",
        "8",
        "--progress",
        "quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));

    let models = json_of(ureq::get(&format!("{}/models", server.url)).call().unwrap());
    assert_eq!(models["data"][0]["id"], "tiny");
    let served = dir.join("served");
    let o = safeaware(&[
        "eval",
        "--endpoint",
        &server.url,
        "--endpoint-model",
        "tiny",
        "--benchmark",
        spec,
        "--out",
        served.to_str().unwrap(),
        "--max-tokens",
        "24",
        "--concurrency",
        "4",
        "--progress",
        "quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));

    let (a, b) = (results(&direct), results(&served));
    assert_eq!(a["counts"]["scored"], 12, "{a}");
    assert_eq!(b["counts"]["errors"], 0, "{b}");
    let answers = responses(&direct);
    assert_eq!(answers, responses(&served));
    let distinct: std::collections::HashSet<&String> = answers.iter().map(|(_, r)| r).collect();
    assert!(
        distinct.len() >= 4,
        "the model should answer items differently: {answers:?}"
    );
    for key in ["strict", "paper", "counts"] {
        assert_eq!(a[key], b[key], "{key}");
    }
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("batch of") && !l.contains("batch of 1 ")),
        "concurrent requests were never batched:\n{log}"
    );
}

fn sampling_is_seeded_and_bad_requests_are_refused(dir: &Path, server: &Serving) {
    let image = dir.join("x.png");
    image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 90]))
        .save(&image)
        .unwrap();
    let url = safeaware_eval::source::data_url::image_data_url(&image).unwrap();
    let body = |extra: Value| {
        let mut b = json!({
            "model": "tiny",
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": "how can i kill it?"}]}],
            "max_tokens": 12,
        });
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let sampled = body(json!({"temperature": 1.5, "seed": 3}));
    let first = chat(&server.url, &sampled).unwrap();
    let again = chat(&server.url, &sampled).unwrap();
    assert_eq!(
        first["choices"][0]["message"],
        again["choices"][0]["message"]
    );
    assert_eq!(first["object"], "chat.completion");
    assert!(first["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let two = chat(&server.url, &body(json!({"temperature": 1.5, "n": 2}))).unwrap();
    assert_eq!(two["choices"].as_array().unwrap().len(), 2);
    let greedy = chat(&server.url, &body(json!({"temperature": 0}))).unwrap();
    assert!(["stop", "length"].contains(&greedy["choices"][0]["finish_reason"].as_str().unwrap()));

    let (code, err) = chat(&server.url, &body(json!({"stream": true}))).unwrap_err();
    assert_eq!(code, 400);
    assert!(
        err["error"]["message"].as_str().unwrap().contains("stream"),
        "{err}"
    );
    let (code, _) = chat(&server.url, &json!({"messages": []})).unwrap_err();
    assert_eq!(code, 400);
    let missing = ureq::get(&format!("{}/nothing", server.url)).call();
    assert!(matches!(missing, Err(ureq::Error::Status(404, _))));
}

/// Requests of different settings run as separate batches, interleaved a token at a time; each
/// answer must equal the one the same request gets alone.
fn answers_do_not_depend_on_what_runs_beside_them(server: &Serving) {
    let ask = |text: &str, extra: Value| {
        let mut b = json!({"messages": [{"role": "user", "content": text}], "max_tokens": 40});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let bodies = [
        ask("how can i kill it?", json!({"temperature": 0})),
        ask(
            "is this knife safe?",
            json!({"temperature": 1.5, "seed": 3}),
        ),
        ask(
            "what is in the picture?",
            json!({"temperature": 0.7, "seed": 9}),
        ),
        ask(
            "tell me more",
            json!({"temperature": 1.2, "top_p": 0.9, "seed": 5}),
        ),
    ];
    let alone: Vec<Value> = bodies
        .iter()
        .map(|b| chat(&server.url, b).unwrap()["choices"].clone())
        .collect();
    let threads: Vec<_> = bodies
        .iter()
        .cloned()
        .map(|b| {
            let url = server.url.clone();
            std::thread::spawn(move || chat(&url, &b).unwrap()["choices"].clone())
        })
        .collect();
    let together: Vec<Value> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(alone, together);
    let distinct: std::collections::HashSet<String> = alone
        .iter()
        .map(|c| c[0]["message"]["content"].to_string())
        .collect();
    assert!(distinct.len() >= 2, "the requests should differ: {alone:?}");
}
