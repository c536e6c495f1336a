//! `data validate`: checks every line or item of a training file or benchmark and reports each
//! problem with its place (`file:line` or `id …`): malformed JSON or fields, repeated ids,
//! images that are missing or do not decode, and (with a processor) token lengths.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::source::Input;
use crate::benchmark::{jsonl, Benchmark, BenchmarkItem, BenchmarkSpec};
use crate::fileio;
use crate::pairs;
use crate::preferences::{self, PreferencePair};
use crate::processor::{Message, Processor};
use crate::sharegpt::{self, Conversation, Role};
use crate::traces::{self, TargetStyle};

/// One problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `file:line`, `file:line: id …` or `id …`.
    pub place: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Token-length checking: every item is encoded with the model's processor (chat template and
/// image tokens included) and must fit in `max_tokens`.
pub struct TokenCheck<'a> {
    pub processor: &'a Processor,
    pub max_tokens: usize,
    /// The answer style traces are rendered in (the longest, `vcr`, is the safe choice).
    pub style: TargetStyle,
}

/// Validation settings.
#[derive(Default)]
pub struct ValidateOptions<'a> {
    /// Annotations JSONL for benchmarks (see [`Benchmark::open`]).
    pub annotations: Option<&'a Path>,
    /// Report missing benchmark images as warnings instead of problems.
    pub allow_missing_images: bool,
    pub tokens: Option<TokenCheck<'a>>,
}

/// The outcome: items checked, problems (which fail validation) and warnings (which do not).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub source: String,
    pub checked: usize,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
    /// The longest item in tokens, when tokens were counted: `(place, tokens)`.
    pub longest: Option<(String, usize)>,
}

impl Report {
    /// True when there is no problem.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, place: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            place: place.into(),
            message: message.into(),
        });
    }

    fn tokens(&mut self, place: &str, count: usize, max: usize) {
        if count > max {
            self.problem(
                place,
                format!("{count} tokens, more than the limit of {max}"),
            );
        }
        if self.longest.as_ref().is_none_or(|(_, n)| count > *n) {
            self.longest = Some((place.to_string(), count));
        }
    }
}

/// Validates `input` (a training file or benchmark spec, see [`Input::classify`]).
pub fn validate(input: &str, opts: &ValidateOptions) -> Report {
    match Input::classify(input) {
        Input::Traces(path) => validate_training_file(&path, opts),
        Input::Pairs(path) => validate_lines(&path, opts, Kind::Pairs),
        Input::Preferences(path) => validate_lines(&path, opts, Kind::Preferences),
        Input::Benchmark(spec) => validate_benchmark(&spec, opts),
    }
}

/// Validates a training file line by line, going on after each bad line.
pub fn validate_training_file(path: &Path, opts: &ValidateOptions) -> Report {
    validate_lines(path, opts, Kind::Training)
}

/// What kind of line file is checked.
#[derive(Clone, Copy)]
enum Kind {
    Training,
    Pairs,
    Preferences,
}

/// A checked line: a training record, a labelled pair (token-counted as its question) or a
/// preference pair (both answers token-counted).
enum Line {
    Record(traces::Record),
    Pair(pairs::LabelledPair),
    Preference(PreferencePair),
}

impl Line {
    fn id(&self) -> &str {
        match self {
            Line::Record(r) => r.id(),
            Line::Pair(p) => &p.id,
            Line::Preference(p) => &p.id,
        }
    }

    fn images(&self) -> Vec<&Path> {
        match self {
            Line::Record(r) => r.images(),
            Line::Pair(p) => vec![p.image.as_path()],
            Line::Preference(p) => vec![p.image.as_path()],
        }
    }

    /// The conversations to count tokens of, and whether they are training ones (with answers).
    fn conversations(&self, style: TargetStyle, dir: &Path) -> (Vec<Conversation>, bool) {
        match self {
            Line::Record(r) => (vec![r.to_conversation(style, dir)], true),
            Line::Pair(p) => (vec![benchmark_conversation(&p.to_item(dir))], false),
            Line::Preference(p) => (p.conversations(style, dir).to_vec(), true),
        }
    }

    /// Parses a line of a file of `kind`.
    fn parse(kind: Kind, json: &str, line: usize) -> Result<Line, String> {
        match kind {
            Kind::Training => traces::parse_record(json, line).map(Line::Record),
            Kind::Pairs => pairs::parse_pair(json).map(Line::Pair),
            Kind::Preferences => preferences::parse_preference(json).map(Line::Preference),
        }
    }
}

/// Validates a training, pairs or preference file line by line, going on after each bad line.
fn validate_lines(path: &Path, opts: &ValidateOptions, kind: Kind) -> Report {
    let mut report = Report {
        source: path.display().to_string(),
        ..Report::default()
    };
    let text = match crate::fileio::read_text(path) {
        Ok(t) => t,
        Err(e) => {
            report.problem(path.display().to_string(), e.to_string());
            return report;
        }
    };
    let dir = fileio::base_dir(path);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (line, json) in fileio::json_lines(&text) {
        report.checked += 1;
        let place = format!("{}:{line}", path.display());
        let record = match Line::parse(kind, json, line) {
            Ok(r) => r,
            Err(message) => {
                report.problem(place, message);
                continue;
            }
        };
        let place = format!("{place}: id {}", record.id());
        if let Some(first) = seen.insert(record.id().to_string(), line) {
            report.problem(&place, format!("id repeats line {first}"));
        }
        let mut images_ok = true;
        for image in record.images() {
            if let Err(message) = check_image(&dir.join(image)) {
                report.problem(&place, message);
                images_ok = false;
            }
        }
        if let (Some(check), true) = (&opts.tokens, images_ok) {
            let (conversations, training) = record.conversations(check.style, &dir);
            for conversation in &conversations {
                count_tokens(&mut report, &place, check, conversation, training);
            }
        }
    }
    if report.checked == 0 {
        report.problem(path.display().to_string(), "no records");
    }
    report
}

/// Validates a benchmark: loading (every JSONL line is checked, not just the first bad one),
/// then every item's image and token length.
pub fn validate_benchmark(spec: &str, opts: &ValidateOptions) -> Report {
    let mut report = Report {
        source: spec.to_string(),
        ..Report::default()
    };
    if let Ok(BenchmarkSpec::Jsonl(file)) = BenchmarkSpec::parse(spec) {
        if !check_jsonl_lines(&file, &mut report) {
            return report;
        }
    }
    let benchmark = match Benchmark::open(spec, opts.annotations) {
        Ok(b) => b,
        Err(e) => {
            report.problem(spec, e.to_string());
            return report;
        }
    };
    report.checked = benchmark.items.len();
    for item in &benchmark.items {
        let place = format!("id {}", item.id);
        match &item.image {
            None => {
                let message = "image missing".to_string();
                let p = Problem {
                    place: place.clone(),
                    message,
                };
                if opts.allow_missing_images {
                    report.warnings.push(p)
                } else {
                    report.problems.push(p)
                }
            }
            Some(path) => {
                if let Err(message) = check_image(path) {
                    report.problem(&place, message);
                    continue;
                }
            }
        }
        if let Some(check) = &opts.tokens {
            let conversation = benchmark_conversation(item);
            count_tokens(&mut report, &place, check, &conversation, false);
        }
    }
    report
}

/// Checks each line of a JSONL benchmark; false if any is bad (then loading would fail too).
fn check_jsonl_lines(file: &Path, report: &mut Report) -> bool {
    let Ok(text) = crate::fileio::read_text(file) else {
        return true;
    }; // open() reports it
    let dir = fileio::base_dir(file);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let before = report.problems.len();
    for (line, json) in fileio::json_lines(&text) {
        let place = format!("{}:{line}", file.display());
        match jsonl::parse_item(json, &dir) {
            Err(message) => report.problem(place, message),
            Ok(item) => {
                if let Some(first) = seen.insert(item.id.clone(), line) {
                    report.problem(place, format!("id {} repeats line {first}", item.id));
                }
            }
        }
    }
    report.problems.len() == before
}

/// The user turn a model sees for a benchmark item.
fn benchmark_conversation(item: &BenchmarkItem) -> Conversation {
    let question = traces::user_question(&item.prompt);
    let content = match item.image {
        Some(_) => format!("{}\n{question}", sharegpt::IMAGE_PLACEHOLDER),
        None => question,
    };
    Conversation {
        id: item.id.clone(),
        images: item.image.iter().cloned().collect(),
        messages: vec![sharegpt::Message {
            role: Role::User,
            content,
        }],
    }
}

fn count_tokens(
    report: &mut Report,
    place: &str,
    check: &TokenCheck,
    conv: &Conversation,
    training: bool,
) {
    let encoded = Message::from_conversation(conv).and_then(|messages| {
        if training {
            check.processor.encode_training(&messages)
        } else {
            check.processor.encode_prompt(&messages)
        }
    });
    match encoded {
        Ok(e) => report.tokens(place, e.input_ids.len(), check.max_tokens),
        Err(e) => report.problem(place, format!("cannot encode: {e}")),
    }
}

/// Checks that `path` exists and decodes as an image with pixels.
pub fn check_image(path: &Path) -> Result<(), String> {
    if !path.is_file() {
        return Err(format!("image {} does not exist", path.display()));
    }
    match fileio::decode_image(path) {
        Ok(img) if img.width() > 0 && img.height() > 0 => Ok(()),
        Ok(_) => Err(format!("image {} has no pixels", path.display())),
        Err(e) => Err(format!("image {}: {e}", path.display())),
    }
}
