//! Chat templates: the model folder's Jinja template rendered with minijinja the way HF renders
//! it (`trim_blocks`, `lstrip_blocks`, loop controls, `raise_exception`, Python string methods),
//! or the family's own template when the folder has none. HF's `{% generation %}` block (which
//! only marks assistant text for masks) renders its body unchanged, as here.
//!
//! Messages are passed in HF's processor form: `{"role": "user", "content": [{"type": "image"},
//! {"type": "text", "text": "…"}]}`, together with `add_generation_prompt` and the special-token
//! names (`bos_token`, `eos_token`, …) HF passes.

use minijinja::value::Serde;
use minijinja::{Environment, Error as JinjaError, ErrorKind};
use serde_json::{json, Map, Value};

use super::config::TokenizerConfig;
use super::error::{ProcessorError, Result};
use super::message::{Message, Part, Role};

/// SmolVLM-Instruct's chat template: `<|im_start|>User:<image>…<end_of_utterance>\nAssistant:`.
/// A message whose first part is an image gets `User:`, otherwise `User: `.
pub const SMOLVLM_CHAT_TEMPLATE: &str = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'] is string %}{{': ' + message['content']}}{% else %}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

/// llava-hf's LLaVA-1.5 chat template (chat_template.json of the hub folders):
/// `USER: <image>\n{text} ASSISTANT:`; an answer renders as `{text} `.
pub const LLAVA_CHAT_TEMPLATE: &str = "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";

/// Qwen2-VL-Instruct's chat template (the hub's chat_template.json; Qwen2.5-VL's is the same):
/// ChatML with a default system turn, each image `<|vision_start|><|image_pad|><|vision_end|>`.
pub const QWEN2_VL_CHAT_TEMPLATE: &str = "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

const NAME: &str = "chat_template";

/// A compiled chat template.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    origin: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("source", &self.source)
            .finish()
    }
}

impl ChatTemplate {
    /// Compiles `source`; `origin` (a file name) is quoted in errors.
    pub fn new(source: impl Into<String>, origin: impl Into<String>) -> Result<Self> {
        let (source, origin) = (source.into(), origin.into());
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("default delimiters are valid"),
        );
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<String, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned(NAME, without_generation_tags(&source))
            .map_err(|e| ProcessorError::Template {
                origin: origin.clone(),
                reason: describe(&e),
            })?;
        Ok(ChatTemplate {
            env,
            source,
            origin,
        })
    }

    /// SmolVLM's built-in template.
    pub fn smolvlm() -> Self {
        ChatTemplate::new(SMOLVLM_CHAT_TEMPLATE, "built-in SmolVLM template")
            .expect("built-in template compiles")
    }

    /// LLaVA-1.5's built-in template ([`LLAVA_CHAT_TEMPLATE`]).
    pub fn llava() -> Self {
        ChatTemplate::new(LLAVA_CHAT_TEMPLATE, "built-in LLaVA template")
            .expect("built-in template compiles")
    }

    /// Qwen2-VL's built-in template ([`QWEN2_VL_CHAT_TEMPLATE`]).
    pub fn qwen2_vl() -> Self {
        ChatTemplate::new(QWEN2_VL_CHAT_TEMPLATE, "built-in Qwen2-VL template")
            .expect("built-in template compiles")
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the assistant's
    /// answer starts.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        tokens: &TokenizerConfig,
    ) -> Result<String> {
        let mut ctx = Map::new();
        ctx.insert(
            "messages".into(),
            Value::Array(messages.iter().map(message_json).collect()),
        );
        ctx.insert(
            "add_generation_prompt".into(),
            Value::Bool(add_generation_prompt),
        );
        for (key, value) in [
            ("bos_token", &tokens.bos_token),
            ("eos_token", &tokens.eos_token),
            ("pad_token", &tokens.pad_token),
            ("unk_token", &tokens.unk_token),
        ] {
            if let Some(v) = value {
                ctx.insert(key.into(), Value::from(v.as_str()));
            }
        }
        let template = self
            .env
            .get_template(NAME)
            .expect("template added at construction");
        template
            .render(minijinja::Value::from(Serde(&Value::Object(ctx))))
            .map_err(|e| ProcessorError::Template {
                origin: self.origin.clone(),
                reason: describe(&e),
            })
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn message_json(m: &Message) -> Value {
    let content: Vec<Value> = m
        .content
        .iter()
        .map(|p| match p {
            Part::Text(t) => json!({"type": "text", "text": t}),
            Part::Image(_) => json!({"type": "image"}),
        })
        .collect();
    json!({"role": role_name(m.role), "content": content})
}

/// `source` with HF's `{% generation %}` / `{% endgeneration %}` tags turned into an
/// always-true `if` block (whitespace control kept), which renders the body the same way.
fn without_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let Some(len) = rest[start..].find("%}") else {
            break;
        };
        let tag = &rest[start..start + len + 2];
        let inner = &tag[2..tag.len() - 2];
        let (open, body, close) = split_controls(inner);
        out.push_str(&rest[..start]);
        match body.trim() {
            "generation" => out.push_str(&format!("{{%{open} if true {close}%}}")),
            "endgeneration" => out.push_str(&format!("{{%{open} endif {close}%}}")),
            _ => out.push_str(tag),
        }
        rest = &rest[start + tag.len()..];
    }
    out.push_str(rest);
    out
}

/// A block tag's inside split into its whitespace-control marks (`-`/`+`) and the rest.
fn split_controls(inner: &str) -> (&str, &str, &str) {
    let open = if inner.starts_with(['-', '+']) {
        &inner[..1]
    } else {
        ""
    };
    let close = if inner.len() > open.len() && inner.ends_with(['-', '+']) {
        &inner[inner.len() - 1..]
    } else {
        ""
    };
    (open, &inner[open.len()..inner.len() - close.len()], close)
}

/// A minijinja error with its causes and line, on one line.
fn describe(e: &JinjaError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tokens() -> TokenizerConfig {
        TokenizerConfig::smolvlm()
    }

    #[test]
    fn smolvlm_prompt_format() {
        let t = ChatTemplate::smolvlm();
        let msgs = vec![
            Message::system("Be careful."),
            Message::user(vec![
                Part::image(PathBuf::from("x.png")),
                Part::text("Safe?"),
            ]),
        ];
        assert_eq!(
            t.render(&msgs, true, &tokens()).unwrap(),
            "<|im_start|>System: Be careful.<end_of_utterance>\nUser:<image>Safe?<end_of_utterance>\nAssistant:"
        );
        let mut full = msgs.clone();
        full.push(Message::assistant("No."));
        assert!(t
            .render(&full, false, &tokens())
            .unwrap()
            .ends_with("Assistant: No.<end_of_utterance>\n"));
        let text_first = vec![Message::user(vec![
            Part::text("Look: "),
            Part::image(PathBuf::from("x.png")),
        ])];
        assert_eq!(
            t.render(&text_first, false, &tokens()).unwrap(),
            "<|im_start|>User: Look: <image><end_of_utterance>\n"
        );
    }

    #[test]
    fn hf_environment_features() {
        // trim_blocks / lstrip_blocks, special-token variables, Python string methods; the
        // expected text is what jinja2 renders with HF's settings.
        let src = "{% for m in messages %}\n    {% if loop.first %}\n{{ bos_token }}{{ m['content'][0]['text'].strip() }}|\n    {% endif %}\n{% endfor %}";
        let t = ChatTemplate::new(src, "test").unwrap();
        let msgs = [
            Message::user(vec![Part::text("  hi  ")]),
            Message::user(vec![Part::text("x")]),
        ];
        assert_eq!(
            t.render(&msgs, false, &tokens()).unwrap(),
            "<|im_start|>hi|\n"
        );
    }

    #[test]
    fn llava_template_and_generation_tags() {
        let t = ChatTemplate::llava();
        let mut msgs = vec![Message::user(vec![
            Part::image(PathBuf::from("x.png")),
            Part::text("What is this?"),
        ])];
        assert_eq!(
            t.render(&msgs, true, &tokens()).unwrap(),
            "USER: <image>\nWhat is this? ASSISTANT:"
        );
        msgs.push(Message::assistant("A cat."));
        assert_eq!(
            t.render(&msgs, false, &tokens()).unwrap(),
            "USER: <image>\nWhat is this? ASSISTANT: A cat. "
        );
        let t = ChatTemplate::new("a {%- generation -%} b {%- endgeneration %}\nc", "t").unwrap();
        assert_eq!(t.render(&[], false, &tokens()).unwrap(), "abc");
        assert!(t.source().contains("generation"));
    }

    #[test]
    fn errors_name_the_template() {
        let e = ChatTemplate::new("{% for x in %}", "folder/chat_template.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("folder/chat_template.json"), "{e}");
        let t = ChatTemplate::new("{{ raise_exception('only user turns') }}", "t.jinja").unwrap();
        let e = t.render(&[], false, &tokens()).unwrap_err().to_string();
        assert!(
            e.contains("only user turns") && e.contains("t.jinja"),
            "{e}"
        );
    }

    #[test]
    fn qwen2_vl_template_counts_images_with_a_namespace() {
        let t = ChatTemplate::qwen2_vl();
        let msgs = vec![Message::user(vec![
            Part::image(PathBuf::from("x.png")),
            Part::text("Safe?"),
        ])];
        assert_eq!(
            t.render(&msgs, true, &tokens()).unwrap(),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n\
             <|vision_start|><|image_pad|><|vision_end|>Safe?<|im_end|>\n<|im_start|>assistant\n"
        );
        let mut full = msgs;
        full.push(Message::assistant("No."));
        let text = t.render(&full, false, &tokens()).unwrap();
        assert!(
            text.ends_with("<|im_start|>assistant\nNo.<|im_end|>\n"),
            "{text}"
        );
    }
}
