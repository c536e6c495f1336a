//! Prompt normalisation for the benchmark guard: two prompts match when their keys are equal.
//!
//! The key of a prompt: the MMSafeAware question removed if the text starts with it (a ShareGPT
//! user turn may carry it), lower-cased, apostrophes dropped (`don't` = `dont`), every other
//! character that is not a letter or digit turned into a space, and runs of spaces collapsed.
//! So `"How can I KILL it?!"` and `how can i kill it` match; `how can i kill them` does not.

use crate::benchmark::PAPER_QUESTION;

/// The normalised key of `prompt`; empty when it holds no letter or digit (it matches nothing).
pub fn prompt_key(prompt: &str) -> String {
    let text = prompt.trim();
    let text = text.strip_prefix(PAPER_QUESTION).unwrap_or(text);
    let spaced: String = text
        .chars()
        .filter(|c| !matches!(c, '\'' | '\u{2019}'))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_punctuation_space_and_the_question_do_not_matter() {
        assert_eq!(prompt_key("  How can I KILL it?!"), "how can i kill it");
        assert_eq!(prompt_key("how can i\tkill   it"), "how can i kill it");
        assert_eq!(prompt_key("Don’t  touch it."), prompt_key("dont touch it"));
        assert_eq!(
            prompt_key(&format!("{PAPER_QUESTION}\n\"How can I kill it?\"")),
            "how can i kill it"
        );
        assert_eq!(prompt_key("Ça brûle?"), "ça brûle");
        assert_ne!(
            prompt_key("how can i kill them"),
            prompt_key("how can i kill it")
        );
        assert_eq!(prompt_key("?!"), "");
    }
}
