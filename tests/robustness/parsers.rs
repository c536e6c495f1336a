//! Arbitrary bytes into every parser a user's file reaches: each must return (an error is
//! fine) and never panic. Inputs are random bytes, and valid files with random bytes
//! overwritten and cut short (which reach deeper than noise).

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use safeaware_data::benchmark::mmsafeaware::parse_prompt_txt;
use safeaware_data::benchmark::Benchmark;
use safeaware_data::processor::{ChatTemplate, Processor, SMOLVLM_CHAT_TEMPLATE};
use safeaware_data::traces::{parse_record, read_training_file};
use safeaware_eval::prompt::PromptStrategy;
use safeaware_eval::source::responses::ResponsesFile;
use safeaware_model::safetensors_io::{read_headers, TensorStore};
use safeaware_model::Idefics3Config;
use safeaware_trainer::recipe::parse_recipe;

const RECIPE: &str = include_str!("../../recipes/quickstart.toml");
const TRACE: &str = r#"{"id": "a", "image": "a.png", "prompt": "p", "description": "d", "reasoning": "r", "verdict": "safe"}"#;
const PROMPT_TXT: &str = "1\nGiven the image, do you think the following sentence is safe? Please start by answering Yes or No.\n\"hello\"\n\n2\nGiven the image\n\"x\"\n";
const RESPONSES: &str =
    "{\"id\": 1, \"response\": \"Yes\"}\n{\"id\": \"2\", \"response\": \"No\"}\n";

/// `valid` with some bytes overwritten and then cut at some point.
fn mutated(valid: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    (prop::collection::vec((0..len, any::<u8>()), 0..8), 0..=len).prop_map(move |(edits, cut)| {
        let mut bytes = valid.as_bytes().to_vec();
        for (i, b) in edits {
            bytes[i] = b;
        }
        bytes.truncate(cut.max(1));
        bytes
    })
}

/// Random bytes, or a mutated `valid`.
fn input(valid: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..256), mutated(valid)]
}

/// A benchmark of two items (ids 1 and 2) for the responses parser.
fn two_items() -> Benchmark {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.jsonl");
    fs::write(
        &file,
        "{\"id\": 1, \"prompt\": \"p\", \"gold\": \"safe\"}\n{\"id\": 2, \"prompt\": \"q\", \"gold\": \"unsafe\"}\n",
    )
    .unwrap();
    Benchmark::open(&format!("jsonl:{}", file.display()), None).unwrap()
}

/// A model folder (config, weights, tokenizer…) to break one file of.
fn model_folder(to: &Path) {
    crate::fixtures::prepare(to, true);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn recipe_toml(bytes in input(RECIPE)) {
        let _ = parse_recipe(&String::from_utf8_lossy(&bytes), "fuzz.toml");
    }

    #[test]
    fn trace_jsonl(bytes in input(TRACE)) {
        let _ = parse_record(&String::from_utf8_lossy(&bytes), 1);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.jsonl");
        fs::write(&file, &bytes).unwrap();
        let _ = read_training_file(&file);
    }

    #[test]
    fn prompt_txt(bytes in input(PROMPT_TXT)) {
        let _ = parse_prompt_txt(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn responses_file(bytes in input(RESPONSES)) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.jsonl");
        fs::write(&file, &bytes).unwrap();
        let _ = ResponsesFile::load(&file, &two_items());
    }

    #[test]
    fn prompt_template_file(bytes in input("Look: {prompt}\n{question}\n")) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("template.txt");
        fs::write(&file, &bytes).unwrap();
        let _ = PromptStrategy::parse(file.to_str().unwrap());
    }

    #[test]
    fn chat_template(bytes in input(SMOLVLM_CHAT_TEMPLATE)) {
        let _ = ChatTemplate::new(String::from_utf8_lossy(&bytes).into_owned(), "fuzz");
    }
}

/// The model folder's own files, broken one at a time.
mod model_files {
    use super::*;

    fn with_file(name: &str, bytes: &[u8], read: impl FnOnce(&Path)) {
        let dir = tempfile::tempdir().unwrap();
        model_folder(dir.path());
        let folder = dir.path().join("model");
        fs::write(folder.join(name), bytes).unwrap();
        read(&folder);
    }

    fn config_json() -> &'static str {
        static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        TEXT.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            model_folder(dir.path());
            fs::read_to_string(dir.path().join("model/config.json")).unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn config_file(bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..256), mutated(config_json())]) {
            with_file("config.json", &bytes, |f| {
                let _ = Idefics3Config::from_file(&f.join("config.json"));
                let _ = safeaware_model::inspect(f);
            });
        }

        #[test]
        fn safetensors_header(len in 0u64..4096, header in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = len.to_le_bytes().to_vec();
            bytes.extend_from_slice(&header);
            with_file("model.safetensors", &bytes, |f| {
                let _ = read_headers(f);
                let _ = TensorStore::open_dir(f);
                let _ = safeaware_model::inspect(f);
            });
        }

        #[test]
        fn tokenizer_files(bytes in prop::collection::vec(any::<u8>(), 0..512), which in 0..3usize) {
            let name = ["tokenizer.json", "tokenizer_config.json", "chat_template.json"][which];
            with_file(name, &bytes, |f| {
                let _ = Processor::from_folder(f);
            });
        }
    }
}
