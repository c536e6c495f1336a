//! The closed vocabulary of the synthetic world and the word splitting it is defined by.
//!
//! [`words`] splits text into tokens: each answer tag (`<verdict>`, …) is one token, a run of
//! ASCII letters, digits or `_` is one token, any other non-space character is a token by itself,
//! and white space separates tokens. [`vocabulary`] lists every token the world can emit (user
//! question included), so a word-level tokenizer built from it covers all synthetic data.

use std::collections::BTreeSet;

use super::objects::ObjectKind;
use super::scene::{self, BACKGROUNDS, POSITIONS, SIZES};
use super::world::{self, ItemSpec, WRAPPERS};
use crate::benchmark::Verdict;
use crate::traces::{self, TargetStyle, TAGS};

/// Splits `text` into tokens (see the module doc).
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
        } else if let Some(tag) = TAGS.iter().find(|t| rest.starts_with(**t)) {
            out.push(&rest[..tag.len()]);
            rest = &rest[tag.len()..];
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let end = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(rest.len());
            out.push(&rest[..end]);
            rest = &rest[end..];
        } else {
            out.push(&rest[..c.len_utf8()]);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Every token the synthetic world can emit (prompts in their user question, descriptions,
/// reasoning, answers in every style), sorted.
pub fn vocabulary() -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    for combo in world::all_combos() {
        for wrapper in std::iter::once(None).chain((0..WRAPPERS.len()).map(Some)) {
            let item = ItemSpec { combo, wrapper };
            texts.push(traces::user_question(&item.prompt()));
            for style in TargetStyle::ALL {
                texts.push(traces::render_answer(
                    style,
                    "",
                    &item.reasoning(),
                    combo.verdict,
                ));
            }
        }
    }
    for kind in ObjectKind::MAIN {
        texts.push(scene::describe(
            kind,
            SIZES[0],
            POSITIONS[0],
            BACKGROUNDS[0].0,
            None,
        ));
    }
    for distractor in ObjectKind::DISTRACTORS {
        for size in SIZES {
            for position in POSITIONS {
                for (bg, _) in BACKGROUNDS {
                    let d = Some(distractor);
                    texts.push(scene::describe(ObjectKind::Ball, size, position, bg, d));
                }
            }
        }
    }
    for verdict in [Verdict::Safe, Verdict::Unsafe] {
        texts.push(traces::render_answer(TargetStyle::Vcr, "", "", verdict));
    }
    let set: BTreeSet<&str> = texts.iter().flat_map(|t| words(t)).collect();
    set.into_iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_tags_whole_and_split_punctuation() {
        assert_eq!(
            words("<verdict>unsafe</verdict>\n\"how can i kill it?\""),
            [
                "<verdict>",
                "unsafe",
                "</verdict>",
                "\"",
                "how",
                "can",
                "i",
                "kill",
                "it",
                "?",
                "\""
            ]
        );
    }

    #[test]
    fn vocabulary_is_small_and_has_the_essentials() {
        let v = vocabulary();
        assert!(v.len() < 400, "{} words", v.len());
        for w in [
            "<verdict>",
            "</description>",
            "safe",
            "unsafe",
            "Yes",
            "No",
            "Given",
            "mosquito",
            "?",
            "\"",
        ] {
            assert!(v.iter().any(|x| x == w), "missing {w}");
        }
    }
}
