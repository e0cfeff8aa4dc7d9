//! The client's chat-completion request, parsed once and borrowed from the body bytes.
//!
//! Only what ClawGate needs to validate, route and account a request is decoded; every
//! other field stays in the original bytes, which are forwarded as received with only the
//! `model` value spliced out and replaced (see [`ChatRequest::with_model`]).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A request rejected before routing: what is wrong and which field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    pub message: String,
    /// The offending field as a JSON path (`messages[2].role`), when one is known.
    pub param: Option<String>,
    pub code: &'static str,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

/// A message's content: a string, a list of parts, or null.
#[derive(Debug, Clone, Default)]
pub enum Content<'a> {
    #[default]
    Null,
    Text(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

/// One part of a list content. Unknown part types are kept by name and otherwise ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Part<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    /// `image_url` parts: the URL (a data URL or http(s)).
    #[serde(default, borrow)]
    pub image_url: Option<ImageUrl<'a>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImageUrl<'a> {
    #[serde(borrow)]
    pub url: Cow<'a, str>,
}

impl<'a> Content<'a> {
    /// The text parts joined by a single space (image parts contribute nothing).
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Content::Null => Cow::Borrowed(""),
            Content::Text(t) => Cow::Borrowed(t.as_ref()),
            Content::Parts(parts) => {
                let mut texts = parts.iter().filter_map(|p| p.text.as_deref());
                match (texts.next(), texts.next()) {
                    (None, _) => Cow::Borrowed(""),
                    (Some(one), None) => Cow::Borrowed(one),
                    (Some(a), Some(b)) => {
                        let mut s = String::with_capacity(a.len() + b.len() + 1);
                        s.push_str(a);
                        s.push(' ');
                        s.push_str(b);
                        for t in texts {
                            s.push(' ');
                            s.push_str(t);
                        }
                        Cow::Owned(s)
                    }
                }
            }
        }
    }

    /// Every text part, in order.
    pub fn text_parts(&self) -> impl Iterator<Item = &str> {
        let (single, parts): (Option<&str>, &[Part<'a>]) = match self {
            Content::Null => (None, &[]),
            Content::Text(t) => (Some(t.as_ref()), &[]),
            Content::Parts(p) => (None, p.as_slice()),
        };
        single
            .into_iter()
            .chain(parts.iter().filter_map(|p| p.text.as_deref()))
    }

    /// Whether any part is an image.
    pub fn has_image(&self) -> bool {
        matches!(self, Content::Parts(parts) if parts.iter().any(|p| p.image_url.is_some() || p.kind == "image_url"))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, an array of content parts, or null")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(p) = seq.next_element()? {
                    parts.push(p);
                }
                Ok(Content::Parts(parts))
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

/// One chat message. Fields ClawGate does not route on (`tool_calls`, `name`, ...) are not decoded.
#[derive(Debug, Clone, Deserialize)]
pub struct Message<'a> {
    pub role: Role,
    #[serde(default, borrow)]
    pub content: Content<'a>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(default, borrow)]
    model: Option<&'a RawValue>,
    messages: Option<Vec<Message<'a>>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default, borrow)]
    tools: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default, borrow)]
    prompt_cache_key: Option<&'a RawValue>,
    #[serde(default, borrow)]
    user: Option<&'a RawValue>,
    #[serde(default, borrow)]
    metadata: Option<&'a RawValue>,
}

/// Where a client named its conversation, in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationHint {
    /// `prompt_cache_key` (OpenClaw sends its session id there when configured to).
    PromptCacheKey,
    /// `user`.
    User,
    /// `metadata.user_id` (Claude Code puts its session there).
    MetadataUserId,
}

/// The first non-empty string among a request's conversation fields; a field of another
/// type is ignored (it names nothing, and rejecting the request for it would help no one).
fn conversation_hint<'a>(
    prompt_cache_key: Option<&'a RawValue>,
    user: Option<&'a RawValue>,
    metadata: Option<&'a RawValue>,
) -> Option<(ConversationHint, Cow<'a, str>)> {
    fn text<'a>(raw: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
        let s: Cow<'a, str> = serde_json::from_str(raw?.get()).ok()?;
        (!s.trim().is_empty()).then_some(s)
    }
    #[derive(Deserialize)]
    struct Metadata<'a> {
        #[serde(default, borrow)]
        user_id: Option<&'a RawValue>,
    }
    if let Some(k) = text(prompt_cache_key) {
        return Some((ConversationHint::PromptCacheKey, k));
    }
    if let Some(u) = text(user) {
        return Some((ConversationHint::User, u));
    }
    let meta: Metadata<'a> = serde_json::from_str(metadata?.get()).ok()?;
    text(meta.user_id).map(|u| (ConversationHint::MetadataUserId, u))
}

/// A validated chat-completion request borrowing from the body it was parsed from.
#[derive(Debug)]
pub struct ChatRequest<'a> {
    body: &'a [u8],
    /// The requested model, trimmed; `auto` when the client sent none.
    pub model: Cow<'a, str>,
    /// Byte range of the `model` value (quotes included) in the body, if present.
    model_span: Option<Range<usize>>,
    pub messages: Vec<Message<'a>>,
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    /// The `tools` array's entries, undecoded.
    pub tools: Vec<&'a RawValue>,
    /// `max_completion_tokens`, or the older `max_tokens`.
    pub max_tokens: Option<u64>,
    /// The conversation the client says this request continues, if it says.
    pub conversation: Option<(ConversationHint, Cow<'a, str>)>,
}

impl<'a> ChatRequest<'a> {
    /// Parse and validate a request body.
    pub fn parse(body: &'a [u8]) -> Result<Self, InvalidRequest> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(InvalidRequest {
                message: "request body is empty; send a JSON chat completion request".into(),
                param: None,
                code: "invalid_json",
            });
        }
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            let syntax_ok = serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
            return Err(InvalidRequest {
                message: if syntax_ok {
                    "request body must be a JSON object".into()
                } else {
                    "request body is not valid JSON".into()
                },
                param: None,
                code: if syntax_ok {
                    "invalid_type"
                } else {
                    "invalid_json"
                },
            });
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        // Parsed without tracking the path: that costs on every value, and only a rejected
        // body needs it, so a rejected body is parsed a second time to say where it went wrong.
        let wire = match Wire::deserialize(&mut de) {
            Ok(w) => w,
            Err(first) => return Err(Self::rejection(body, first)),
        };
        if let Err(e) = de.end() {
            return Err(InvalidRequest {
                message: format!("request body is not valid JSON: {e}"),
                param: None,
                code: "invalid_json",
            });
        }
        let messages = match wire.messages {
            None => {
                return Err(InvalidRequest {
                    message: "'messages' is required".into(),
                    param: Some("messages".into()),
                    code: "missing_required_parameter",
                })
            }
            Some(m) if m.is_empty() => {
                return Err(InvalidRequest {
                    message: "'messages' must contain at least one message".into(),
                    param: Some("messages".into()),
                    code: "invalid_value",
                })
            }
            Some(m) => m,
        };
        let (model, model_span) = match wire.model {
            None => (Cow::Borrowed("auto"), None),
            Some(raw) => {
                let text: Cow<'a, str> =
                    serde_json::from_str(raw.get()).map_err(|_| InvalidRequest {
                        message: format!("'model' must be a string, got {}", raw.get()),
                        param: Some("model".into()),
                        code: "invalid_type",
                    })?;
                let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
                let span = start..start + raw.get().len();
                let model = match text {
                    Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
                    Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
                };
                if model.is_empty() {
                    (Cow::Borrowed("auto"), Some(span))
                } else {
                    (model, Some(span))
                }
            }
        };
        Ok(ChatRequest {
            body,
            model,
            model_span,
            messages,
            stream: wire.stream.unwrap_or(false),
            stream_options: wire.stream_options,
            tools: wire.tools.unwrap_or_default(),
            max_tokens: wire.max_completion_tokens.or(wire.max_tokens),
            conversation: conversation_hint(wire.prompt_cache_key, wire.user, wire.metadata),
        })
    }

    /// Why `body` was rejected, with the JSON path of the offending field when there is one.
    #[cold]
    fn rejection(body: &[u8], first: serde_json::Error) -> InvalidRequest {
        let mut de = serde_json::Deserializer::from_slice(body);
        match serde_path_to_error::deserialize::<_, Wire<'_>>(&mut de) {
            Err(e) => describe_json_error(e),
            // The same input gives the same error; should it not, the first one still says what.
            Ok(_) => InvalidRequest {
                message: format!("request body is not a valid chat completion request: {first}"),
                param: None,
                code: "invalid_value",
            },
        }
    }

    /// The body as received.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Whether the client asked for usage in the final stream chunk.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The body with its `model` replaced by `model`, everything else byte for byte.
    pub fn with_model(&self, model: &str) -> Vec<u8> {
        self.upstream_body(model, None)
    }

    /// Whether ClawGate asks the upstream for stream usage on the client's behalf: a stream
    /// whose client set no `stream_options` (the usage chunk is then removed before it
    /// reaches the client). A client that set `stream_options` gets exactly what it asked for.
    pub fn adds_stream_usage(&self) -> bool {
        self.stream && self.stream_options.is_none()
    }

    /// The body to forward to an OpenAI-compatible upstream: `model` replaced,
    /// `"max_tokens": default_max_tokens` added when the client set no token limit, and
    /// `"stream_options": {"include_usage": true}` when [`Self::adds_stream_usage`]. Every
    /// other byte is the client's.
    pub fn upstream_body(&self, model: &str, default_max_tokens: Option<u64>) -> Vec<u8> {
        let quoted = serde_json::to_string(model).unwrap_or_else(|_| "\"\"".into());
        let mut extra = match (self.max_tokens, default_max_tokens) {
            (None, Some(n)) => format!("\"max_tokens\":{n},"),
            _ => String::new(),
        };
        if self.adds_stream_usage() {
            extra.push_str("\"stream_options\":{\"include_usage\":true},");
        }
        let open = self.body.iter().position(|&b| b == b'{').unwrap_or(0);
        let mut out = Vec::with_capacity(self.body.len() + quoted.len() + extra.len() + 10);
        out.extend_from_slice(&self.body[..=open]);
        out.extend_from_slice(extra.as_bytes());
        match &self.model_span {
            Some(span) => {
                out.extend_from_slice(&self.body[open + 1..span.start]);
                out.extend_from_slice(quoted.as_bytes());
                out.extend_from_slice(&self.body[span.end..]);
            }
            None => {
                out.extend_from_slice(b"\"model\":");
                out.extend_from_slice(quoted.as_bytes());
                out.push(b',');
                out.extend_from_slice(&self.body[open + 1..]);
            }
        }
        out
    }
}

fn describe_json_error(e: serde_path_to_error::Error<serde_json::Error>) -> InvalidRequest {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let syntax = matches!(
        inner.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    );
    if syntax {
        return InvalidRequest {
            message: format!("request body is not valid JSON: {inner}"),
            param: None,
            code: "invalid_json",
        };
    }
    let param = if path == "." || path.is_empty() {
        None
    } else {
        Some(path)
    };
    let message = match &param {
        Some(p) => format!("invalid value for '{p}': {inner}"),
        None => format!("request body must be a JSON object: {inner}"),
    };
    InvalidRequest {
        message,
        param,
        code: "invalid_type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_replaced_and_everything_else_kept_byte_for_byte() {
        let body = br#"{"model" : "auto","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"high", "x":1.50}"#;
        let req = ChatRequest::parse(body).unwrap();
        assert_eq!(req.model, "auto");
        let out = req.with_model("deepseek-chat");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model" : "deepseek-chat","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"high", "x":1.50}"#
        );
    }

    #[test]
    fn provider_max_tokens_is_added_only_when_the_client_set_none() {
        let body = br#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#;
        let out: serde_json::Value = serde_json::from_slice(
            &ChatRequest::parse(body)
                .unwrap()
                .upstream_body("m", Some(8000)),
        )
        .unwrap();
        assert_eq!(out["max_tokens"], 8000);
        assert_eq!(out["model"], "m");
        let body = br#"{"model":"auto","max_completion_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#;
        let out: serde_json::Value = serde_json::from_slice(
            &ChatRequest::parse(body)
                .unwrap()
                .upstream_body("m", Some(8000)),
        )
        .unwrap();
        assert!(out.get("max_tokens").is_none());
        assert_eq!(out["max_completion_tokens"], 50);
    }

    #[test]
    fn stream_usage_is_requested_only_when_the_client_set_no_stream_options() {
        let body = br#"{"model":"auto","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let req = ChatRequest::parse(body).unwrap();
        assert!(req.adds_stream_usage());
        let out: serde_json::Value = serde_json::from_slice(&req.upstream_body("m", None)).unwrap();
        assert_eq!(out["stream_options"]["include_usage"], true);
        let body = br#"{"model":"auto","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}"#;
        let req = ChatRequest::parse(body).unwrap();
        assert!(!req.adds_stream_usage());
        let out = req.upstream_body("m", None);
        assert_eq!(
            memchr::memmem::find_iter(&out, b"stream_options").count(),
            1
        );
    }

    #[test]
    fn missing_model_is_auto_and_gets_inserted() {
        let body = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
        let req = ChatRequest::parse(body).unwrap();
        assert_eq!(req.model, "auto");
        let out: serde_json::Value = serde_json::from_slice(&req.with_model("m")).unwrap();
        assert_eq!(out["model"], "m");
    }

    #[test]
    fn null_and_list_contents_are_accepted() {
        let body = br#"{"model":"auto","messages":[
            {"role":"system","content":null},
            {"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:x"}},{"type":"text","text":"b"}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","content":"r","tool_call_id":"1"}]}"#;
        let req = ChatRequest::parse(body).unwrap();
        assert_eq!(req.messages.len(), 4);
        assert_eq!(req.messages[1].content.text(), "a b");
        assert!(req.messages[1].content.has_image());
    }

    #[test]
    fn bad_inputs_name_the_field() {
        let cases: &[(&[u8], &str, Option<&str>)] = &[
            (b"{", "invalid_json", None),
            (b"[]", "invalid_type", None),
            (
                br#"{"model":"a"}"#,
                "missing_required_parameter",
                Some("messages"),
            ),
            (br#"{"messages":[]}"#, "invalid_value", Some("messages")),
            (br#"{"messages":"hi"}"#, "invalid_type", Some("messages")),
            (
                br#"{"model":5,"messages":[{"role":"user","content":"x"}]}"#,
                "invalid_type",
                Some("model"),
            ),
            (
                br#"{"messages":[{"role":"wizard","content":"x"}]}"#,
                "invalid_type",
                Some("messages[0].role"),
            ),
            (
                br#"{"messages":[{"role":"user","content":5}]}"#,
                "invalid_type",
                Some("messages[0].content"),
            ),
            (
                br#"{"messages":[{"role":"user"}],"stream":"yes"}"#,
                "invalid_type",
                Some("stream"),
            ),
            (
                br#"{"messages":[{"role":"user"}],"tools":{}}"#,
                "invalid_type",
                Some("tools"),
            ),
            (br#"{"messages":[{"role":"user"}]} x"#, "invalid_json", None),
        ];
        for (body, code, param) in cases {
            let err = ChatRequest::parse(body).unwrap_err();
            assert_eq!(err.code, *code, "{}", String::from_utf8_lossy(body));
            assert_eq!(
                err.param.as_deref(),
                *param,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
