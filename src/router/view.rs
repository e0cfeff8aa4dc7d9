//! The routing view: what the rules may read of a request, whichever client protocol brought
//! it. An ingress fills one from its parsed request without copying (the messages are
//! borrowed), and every routing field is computed from it on demand by
//! [`super::features::Features`].

use std::borrow::Cow;

use http::HeaderMap;

use super::program::TextField;
use crate::request::{ChatRequest, Content, ConversationHint, Message, Role};

/// Text parts that start with one of these are client-internal context, not something a
/// person wrote; they are left out of `user` and `last_user`. OpenClaw sends one such `user`
/// message after the person's own (see tests/fixtures/openclaw/); Claude Code puts
/// `<system-reminder>` blocks before the person's words (see tests/fixtures/claude-code/).
pub const INTERNAL_CONTEXT_MARKERS: &[&str] =
    &["<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>", "<system-reminder>"];

/// A request as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct RouteView<'r> {
    /// The requested model, trimmed; `auto` when the client sent none.
    pub model: &'r str,
    /// The conversation, system and developer messages included, in order.
    pub messages: &'r [Message<'r>],
    /// How many tool definitions the request carries.
    pub tools: usize,
    /// The tool definitions' size in bytes (part of the prompt-size estimate).
    pub tool_bytes: usize,
    /// The client asked for a stream.
    pub stream: bool,
    /// The answer-length limit the client set, if any.
    pub max_tokens: Option<u64>,
    /// The conversation the client named (`prompt_cache_key`, `user`, `metadata.user_id`).
    pub conversation: Option<(ConversationHint, &'r str)>,
    pub headers: &'r HeaderMap,
}

impl<'r> RouteView<'r> {
    /// The view of an OpenAI chat-completions request.
    pub fn chat(req: &'r ChatRequest<'r>, headers: &'r HeaderMap) -> Self {
        RouteView {
            model: req.model.as_ref(),
            messages: &req.messages,
            tools: req.tools.len(),
            tool_bytes: req.tools.iter().map(|t| t.get().len()).sum(),
            stream: req.stream,
            max_tokens: req.max_tokens,
            conversation: req.conversation.as_ref().map(|(h, k)| (*h, k.as_ref())),
            headers,
        }
    }

    /// The text of a field the request carries as it is (model, system, headers). The fields
    /// made from the person's messages (`last_user`, `user`, peeled or not) and those that are
    /// not part of the request (`label`, `lane`, the conversation's previous decision,
    /// envelopes) read `""` here: [`super::features::Features`] computes them.
    pub fn text(&self, field: &TextField) -> Cow<'r, str> {
        match field {
            TextField::Model => Cow::Borrowed(self.model),
            TextField::Label
            | TextField::Lane
            | TextField::PreviousProvider
            | TextField::PreviousRule
            | TextField::Envelope(_)
            | TextField::LastUser
            | TextField::LastUserRaw
            | TextField::User => Cow::Borrowed(""),
            TextField::Header(name) => Cow::Owned(
                self.headers
                    .get(name.as_str())
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned(),
            ),
            TextField::System => join(
                self.messages
                    .iter()
                    .filter(|m| matches!(m.role, Role::System | Role::Developer))
                    .map(|m| m.content.text()),
            ),
        }
    }

    /// The user messages a person wrote (client-internal context messages skipped), as
    /// sent, in order.
    pub fn person_messages(&self) -> impl Iterator<Item = Cow<'r, str>> + '_ {
        self.messages
            .iter()
            .filter(|m| m.role == Role::User)
            .filter_map(person_text)
    }

    /// The text of the first system (or developer) message.
    pub fn first_system(&self) -> Cow<'r, str> {
        self.messages
            .iter()
            .find(|m| matches!(m.role, Role::System | Role::Developer))
            .map(|m| m.content.text())
            .unwrap_or(Cow::Borrowed(""))
    }

    /// Whether the request continues a tool loop: its last message, client-internal context
    /// aside, is a tool's result (the model called a tool and now reads what it returned).
    pub fn continues_tool_loop(&self) -> bool {
        self.messages
            .iter()
            .rev()
            .find(|m| !(m.role == Role::User && person_text(m).is_none()))
            .is_some_and(|m| matches!(m.role, Role::Tool | Role::Function))
    }

    /// Whether some message has an image part.
    pub fn has_image(&self) -> bool {
        self.messages.iter().any(|m| m.content.has_image())
    }

    /// The prompt-size estimate behind `tokens`: the UTF-8 bytes of every message's text
    /// (all roles, joined by newlines) plus those of the tool definitions, divided by 4 and
    /// rounded up, at least 1. Four bytes per token is the usual rule of thumb for English (where a byte is a
    /// character); a CJK character is 3 bytes and about one token, so bytes keep the estimate
    /// close for other scripts too, and cost nothing to count. It is meant for thresholds like
    /// "long context", not for billing.
    pub fn estimate_tokens(&self) -> u64 {
        let mut bytes = self.messages.len().saturating_sub(1);
        for m in self.messages {
            for t in m.content.text_parts() {
                bytes += t.len();
            }
        }
        bytes += self.tool_bytes;
        (bytes.div_ceil(4) as u64).max(1)
    }
}

/// Texts joined by newlines, borrowed when there is only one.
fn join<'r>(mut texts: impl Iterator<Item = Cow<'r, str>>) -> Cow<'r, str> {
    let Some(first) = texts.next() else {
        return Cow::Borrowed("");
    };
    let Some(second) = texts.next() else {
        return first;
    };
    let mut s = String::with_capacity(first.len() + second.len() + 1);
    s.push_str(&first);
    s.push('\n');
    s.push_str(&second);
    for t in texts {
        s.push('\n');
        s.push_str(&t);
    }
    Cow::Owned(s)
}

fn is_internal(text: &str) -> bool {
    let t = text.trim_start();
    INTERNAL_CONTEXT_MARKERS.iter().any(|m| t.starts_with(m))
}

/// What a person wrote in a user message: its text without client-internal context parts, or
/// `None` when the message is only client-internal context.
pub fn person_text<'r>(m: &'r Message<'r>) -> Option<Cow<'r, str>> {
    match &m.content {
        Content::Null => Some(Cow::Borrowed("")),
        Content::Text(t) => (!is_internal(t)).then(|| Cow::Borrowed(t.as_ref())),
        Content::Parts(_) => {
            let mut internal = false;
            let person = m.content.text_parts().filter(|t| {
                let i = is_internal(t);
                internal |= i;
                !i
            });
            let text = join_space(person);
            if internal && text.is_empty() && !m.content.has_image() {
                None
            } else {
                Some(text)
            }
        }
    }
}

fn join_space<'r>(mut texts: impl Iterator<Item = &'r str>) -> Cow<'r, str> {
    let Some(first) = texts.next() else {
        return Cow::Borrowed("");
    };
    let Some(second) = texts.next() else {
        return Cow::Borrowed(first);
    };
    let mut s = format!("{first} {second}");
    for t in texts {
        s.push(' ');
        s.push_str(t);
    }
    Cow::Owned(s)
}

/// A text's size as `last_user_tokens` counts it: UTF-8 bytes divided by 4, rounded up (so
/// "ok" is 1 and an empty text 0).
pub fn text_tokens(text: &str) -> u64 {
    text.len().div_ceil(4) as u64
}
