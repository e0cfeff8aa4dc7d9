//! An Anthropic Messages request, checked and translated into the hub's form (an OpenAI chat
//! body) in one pass, strings borrowed from the client's body.
//!
//! Validation is Anthropic's where a client can notice it (`max_tokens` required, known
//! roles and content block types, the fields each block needs, blocks only where the API
//! takes them); everything else (`cache_control`, `context_management`, betas' fields) is
//! left alone, for a pass-through keeps it and a translation has no place for it. What each
//! translation drops or approximates is listed in `docs/anthropic.md`.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::request::InvalidRequest;

/// OpenAI accepts at most four stop sequences.
const MAX_STOP_SEQUENCES: usize = 4;

/// A Messages request in the hub's form, and what the answer's translation needs.
#[derive(Debug, Clone)]
pub struct Translated {
    /// The OpenAI chat body; `max_tokens` is its last member.
    pub hub: Vec<u8>,
    /// Where the value of `max_tokens` starts in `hub`, and the value.
    pub max_tokens: (usize, u64),
    /// Byte range of the `model` value in the client's body (quotes included).
    pub model_span: Option<Range<usize>>,
    /// The requested model, `auto` when the client named none.
    pub model: String,
    pub stream: bool,
    /// The client asked for extended thinking: reasoning an upstream returns is answered as
    /// thinking blocks.
    pub thinking: bool,
}

/// A string, or a list of content blocks.
#[derive(Debug)]
enum Blocks<'a> {
    Text(Cow<'a, str>),
    List(Vec<Block<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Blocks<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Blocks<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of content blocks")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Blocks::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Blocks::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Blocks::Text(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(b) = seq.next_element()? {
                    blocks.push(b);
                }
                Ok(Blocks::List(blocks))
            }
        }
        d.deserialize_any(V)
    }
}

/// One content block, every type's fields side by side (decoding a flat struct is much
/// cheaper than a tagged enum's buffering); [`Kind`] says which apply.
#[derive(Debug, Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    source: Option<Source<'a>>,
    #[serde(default, borrow)]
    title: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_use_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<Blocks<'a>>,
    #[serde(default)]
    is_error: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Source<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    media_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    data: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    url: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    file_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<Blocks<'a>>,
}

/// What a block is, as far as the hub is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Image,
    Document,
    ToolUse,
    ToolResult,
    Thinking,
    /// A type the Messages API knows that the hub has no place for (server tools and their
    /// results, search results, container uploads, MCP blocks): passed through, not translated.
    Untranslated,
}

impl Kind {
    fn of(name: &str) -> Option<Kind> {
        Some(match name {
            "text" => Kind::Text,
            "image" => Kind::Image,
            "document" => Kind::Document,
            "tool_use" => Kind::ToolUse,
            "tool_result" => Kind::ToolResult,
            "thinking" | "redacted_thinking" => Kind::Thinking,
            "server_tool_use"
            | "web_search_tool_result"
            | "web_fetch_tool_result"
            | "code_execution_tool_result"
            | "bash_code_execution_tool_result"
            | "text_editor_code_execution_tool_result"
            | "tool_search_tool_result"
            | "search_result"
            | "container_upload"
            | "mcp_tool_use"
            | "mcp_tool_result" => Kind::Untranslated,
            _ => return None,
        })
    }
}

#[derive(Debug, Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow)]
    content: Blocks<'a>,
}

#[derive(Debug, Deserialize)]
struct Tool<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    input_schema: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct ToolChoice<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default)]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Metadata<'a> {
    #[serde(default, borrow)]
    user_id: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct Thinking<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
struct Wire<'a> {
    #[serde(default, borrow)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default, borrow)]
    messages: Option<Vec<Message<'a>>>,
    #[serde(default, borrow)]
    system: Option<Blocks<'a>>,
    #[serde(default, borrow)]
    stop_sequences: Option<Vec<Cow<'a, str>>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    #[allow(dead_code)]
    top_k: Option<u64>,
    #[serde(default, borrow)]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(default, borrow)]
    tool_choice: Option<ToolChoice<'a>>,
    #[serde(default, borrow)]
    metadata: Option<Metadata<'a>>,
    #[serde(default, borrow)]
    thinking: Option<Thinking<'a>>,
}

fn invalid(param: impl Into<String>, message: impl fmt::Display) -> InvalidRequest {
    let param = param.into();
    InvalidRequest {
        message: format!("{param}: {message}"),
        param: Some(param),
        code: "invalid_request_error",
    }
}

/// Check a Messages request body and translate it into the hub's form.
pub fn translate(body: &[u8]) -> Result<Translated, InvalidRequest> {
    translate_with(body, true)
}

/// [`translate`] for a prompt that is only counted (`count_tokens`): no `max_tokens` needed.
pub fn translate_prompt(body: &[u8]) -> Result<Translated, InvalidRequest> {
    translate_with(body, false)
}

fn translate_with(body: &[u8], needs_max_tokens: bool) -> Result<Translated, InvalidRequest> {
    let wire = decode(body)?;
    let (model, model_span) = match wire.model {
        None => (String::from("auto"), None),
        Some(raw) => {
            let text: Cow<'_, str> = serde_json::from_str(raw.get())
                .map_err(|_| invalid("model", "Input should be a valid string"))?;
            let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
            let model = text.trim();
            let model = if model.is_empty() { "auto" } else { model };
            (model.to_owned(), Some(start..start + raw.get().len()))
        }
    };
    let max_tokens = match wire.max_tokens {
        None if !needs_max_tokens => 1,
        None => return Err(invalid("max_tokens", "Field required")),
        Some(0) => return Err(invalid("max_tokens", "Input should be greater than 0")),
        Some(n) => n,
    };
    let messages = match wire.messages {
        None => return Err(invalid("messages", "Field required")),
        Some(m) if m.is_empty() => {
            return Err(invalid("messages", "at least one message is required"))
        }
        Some(m) => m,
    };
    let stream = wire.stream.unwrap_or(false);
    let thinking = wire.thinking.as_ref().is_some_and(|t| t.kind != "disabled");

    let mut w = Writer::with_capacity(body.len() + 256);
    w.raw("{\"model\":");
    w.string(&model);
    w.raw(",\"messages\":[");
    if let Some(system) = &wire.system {
        let text = system_text(system, "system")?;
        if !text.is_empty() {
            w.message("system", |w| w.string(&text));
        }
    }
    for (i, m) in messages.iter().enumerate() {
        match m.role.as_ref() {
            "user" => user(&mut w, i, &m.content)?,
            "assistant" => assistant(&mut w, i, &m.content)?,
            // Claude Code sends environment notes as a system message among the others.
            "system" => {
                let text = system_text(&m.content, &format!("messages.{i}.content"))?;
                w.message("system", |w| w.string(&text));
            }
            other => {
                return Err(invalid(
                    format!("messages.{i}.role"),
                    format!("Input should be 'user' or 'assistant', got {other:?}"),
                ))
            }
        }
    }
    w.raw("]");
    if stream {
        // The usage chunk is what the answer's `message_delta` reports.
        w.raw(",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    }
    let tools = tools(&mut w, wire.tools.as_deref().unwrap_or_default())?;
    if let Some(choice) = &wire.tool_choice {
        tool_choice(&mut w, choice, tools)?;
    }
    if let Some(t) = wire.temperature {
        w.raw(",\"temperature\":");
        w.number(t);
    }
    if let Some(p) = wire.top_p {
        w.raw(",\"top_p\":");
        w.number(p);
    }
    let stops: Vec<&str> = wire
        .stop_sequences
        .iter()
        .flatten()
        .map(|s| s.as_ref())
        .filter(|s| !s.is_empty())
        .take(MAX_STOP_SEQUENCES)
        .collect();
    if !stops.is_empty() {
        w.raw(",\"stop\":[");
        for (i, s) in stops.iter().enumerate() {
            w.comma(i);
            w.string(s);
        }
        w.raw("]");
    }
    if let Some(user) = wire
        .metadata
        .as_ref()
        .and_then(|m| m.user_id.as_deref())
        .filter(|u| !u.is_empty())
    {
        w.raw(",\"user\":");
        w.string(user);
    }
    w.raw(",\"max_tokens\":");
    let at = w.out.len();
    w.raw(&max_tokens.to_string());
    w.raw("}");
    Ok(Translated {
        hub: w.out,
        max_tokens: (at, max_tokens),
        model_span,
        model,
        stream,
        thinking,
    })
}

/// Decode the body; a rejected body is decoded again to say where it went wrong.
fn decode(body: &[u8]) -> Result<Wire<'_>, InvalidRequest> {
    let not_json = |e: &dyn fmt::Display| InvalidRequest {
        message: format!("request body is not valid JSON: {e}"),
        param: None,
        code: "invalid_request_error",
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(InvalidRequest {
            message: "request body is empty; send a JSON Messages request".into(),
            param: None,
            code: "invalid_request_error",
        });
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<de::IgnoredAny>(body) {
            Ok(_) => InvalidRequest {
                message: "request body must be a JSON object".into(),
                param: None,
                code: "invalid_request_error",
            },
            Err(e) => not_json(&e),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let first = match Wire::deserialize(&mut de) {
        Ok(wire) => match de.end() {
            Ok(()) => return Ok(wire),
            Err(e) => return Err(not_json(&e)),
        },
        Err(e) => e,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let e = match serde_path_to_error::deserialize::<_, Wire<'_>>(&mut de) {
        Ok(_) => return Err(not_json(&first)),
        Err(e) => e,
    };
    let path = anthropic_path(&e.path().to_string());
    let inner = e.into_inner();
    if matches!(
        inner.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    ) {
        return Err(not_json(&inner));
    }
    Err(match path.as_str() {
        "" | "." => InvalidRequest {
            message: format!("request body is not a valid Messages request: {inner}"),
            param: None,
            code: "invalid_request_error",
        },
        _ => invalid(path, inner),
    })
}

/// `messages[0].content[2].type` as Anthropic writes it: `messages.0.content.2.type`.
fn anthropic_path(path: &str) -> String {
    path.replace('[', ".").replace(']', "")
}

/// The text of a system prompt (string or text blocks), blocks joined by blank lines.
fn system_text<'b>(system: &'b Blocks<'_>, at: &str) -> Result<Cow<'b, str>, InvalidRequest> {
    let blocks = match system {
        Blocks::Text(t) => return Ok(Cow::Borrowed(t.as_ref())),
        Blocks::List(blocks) => blocks,
    };
    let mut texts = Vec::with_capacity(blocks.len());
    for (j, b) in blocks.iter().enumerate() {
        if b.kind != "text" {
            return Err(invalid(
                format!("{at}.{j}.type"),
                format!("Input should be 'text', got {:?}", b.kind),
            ));
        }
        texts.push(required_text(b, &format!("{at}.{j}"))?);
    }
    Ok(match texts.as_slice() {
        [one] => Cow::Borrowed(*one),
        _ => Cow::Owned(texts.join("\n\n")),
    })
}

fn required_text<'b>(b: &'b Block<'_>, at: &str) -> Result<&'b str, InvalidRequest> {
    b.text
        .as_deref()
        .ok_or_else(|| invalid(format!("{at}.text"), "Field required"))
}

fn kind_of(b: &Block<'_>, at: &str) -> Result<Kind, InvalidRequest> {
    Kind::of(&b.kind).ok_or_else(|| {
        invalid(
            format!("{at}.type"),
            format!(
                "unknown content block type {:?}; expected one of text, image, document, tool_use, tool_result, thinking, redacted_thinking",
                b.kind
            ),
        )
    })
}

fn wrong_place(at: &str, kind: &str, role: &str) -> InvalidRequest {
    invalid(
        format!("{at}.type"),
        format!("a {kind} block cannot be part of a {role} message"),
    )
}

/// A user message: its tool results first, as `tool` messages (OpenAI wants them right after
/// the assistant's calls), then the rest as one user message.
fn user(w: &mut Writer, i: usize, content: &Blocks<'_>) -> Result<(), InvalidRequest> {
    let blocks = match content {
        Blocks::Text(t) => {
            w.message("user", |w| w.string(t));
            return Ok(());
        }
        Blocks::List(blocks) => blocks,
    };
    let mut parts = Writer::with_capacity(64);
    let mut n = 0;
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("messages.{i}.content.{j}");
        match kind_of(b, &at)? {
            Kind::Text => parts.text_part(&mut n, required_text(b, &at)?),
            Kind::Image => parts.image_part(&mut n, b, &at)?,
            Kind::Document => parts.document_part(&mut n, b, &at)?,
            Kind::ToolResult => tool_result(w, &mut parts, &mut n, b, &at)?,
            Kind::Untranslated => {}
            Kind::ToolUse | Kind::Thinking => return Err(wrong_place(&at, &b.kind, "user")),
        }
    }
    if n > 0 {
        w.message("user", |w| {
            w.raw("[");
            w.raw_bytes(&parts.out);
            w.raw("]");
        });
    }
    Ok(())
}

/// A `tool_result` block as a `tool` message; its images go to the user message after it.
fn tool_result(
    w: &mut Writer,
    parts: &mut Writer,
    n: &mut usize,
    b: &Block<'_>,
    at: &str,
) -> Result<(), InvalidRequest> {
    let id = b
        .tool_use_id
        .as_deref()
        .ok_or_else(|| invalid(format!("{at}.tool_use_id"), "Field required"))?;
    let mut text = String::new();
    if b.is_error == Some(true) {
        text.push_str("Error: ");
    }
    match &b.content {
        None => {}
        Some(Blocks::Text(t)) => text.push_str(t),
        Some(Blocks::List(blocks)) => {
            let mut first = true;
            for (k, inner) in blocks.iter().enumerate() {
                let at = format!("{at}.content.{k}");
                let piece = match kind_of(inner, &at)? {
                    Kind::Text => required_text(inner, &at)?,
                    Kind::Image => {
                        parts.image_part(n, inner, &at)?;
                        continue;
                    }
                    Kind::Document => {
                        parts.document_part(n, inner, &at)?;
                        continue;
                    }
                    Kind::Untranslated => continue,
                    _ => return Err(wrong_place(&at, &inner.kind, "tool_result")),
                };
                if !first {
                    text.push('\n');
                }
                first = false;
                text.push_str(piece);
            }
        }
    }
    w.message("tool", |w| {
        w.string(&text);
        w.raw(",\"tool_call_id\":");
        w.string(id);
    });
    Ok(())
}

/// An assistant message: its text, and its `tool_use` blocks as `tool_calls`. Thinking is
/// not part of an OpenAI conversation.
fn assistant(w: &mut Writer, i: usize, content: &Blocks<'_>) -> Result<(), InvalidRequest> {
    let blocks = match content {
        Blocks::Text(t) => {
            w.message("assistant", |w| w.string(t));
            return Ok(());
        }
        Blocks::List(blocks) => blocks,
    };
    let mut texts: Vec<&str> = Vec::new();
    let mut calls = Writer::with_capacity(64);
    let mut n_calls = 0;
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("messages.{i}.content.{j}");
        match kind_of(b, &at)? {
            Kind::Text => texts.push(required_text(b, &at)?),
            Kind::ToolUse => {
                let field = |v: Option<&'_ str>, name: &str| {
                    v.map(str::to_owned)
                        .ok_or_else(|| invalid(format!("{at}.{name}"), "Field required"))
                };
                let id = field(b.id.as_deref(), "id")?;
                let name = field(b.name.as_deref(), "name")?;
                let input = b
                    .input
                    .ok_or_else(|| invalid(format!("{at}.input"), "Field required"))?;
                calls.comma(n_calls);
                n_calls += 1;
                calls.raw("{\"id\":");
                calls.string(&id);
                calls.raw(",\"type\":\"function\",\"function\":{\"name\":");
                calls.string(&name);
                calls.raw(",\"arguments\":");
                calls.string(input.get());
                calls.raw("}}");
            }
            Kind::Thinking | Kind::Untranslated | Kind::Image | Kind::Document => {}
            Kind::ToolResult => return Err(wrong_place(&at, &b.kind, "assistant")),
        }
    }
    if texts.is_empty() && n_calls == 0 {
        return Ok(());
    }
    w.message("assistant", |w| {
        match texts.as_slice() {
            [] => w.raw("null"),
            [one] => w.string(one),
            many => w.string(&many.join("\n\n")),
        }
        if n_calls > 0 {
            w.raw(",\"tool_calls\":[");
            w.raw_bytes(&calls.out);
            w.raw("]");
        }
    });
    Ok(())
}

/// The client tools as OpenAI function tools; Anthropic's server tools (`web_search_…`,
/// `bash_…`, …) run at Anthropic and have no translation. Returns how many were written.
fn tools(w: &mut Writer, tools: &[Tool<'_>]) -> Result<usize, InvalidRequest> {
    let mut n = 0;
    for (i, t) in tools.iter().enumerate() {
        let at = format!("tools.{i}");
        let name = t
            .name
            .as_deref()
            .ok_or_else(|| invalid(format!("{at}.name"), "Field required"))?;
        if !matches!(t.kind.as_deref(), None | Some("custom")) {
            continue;
        }
        let schema = t
            .input_schema
            .ok_or_else(|| invalid(format!("{at}.input_schema"), "Field required"))?;
        w.raw(if n == 0 { ",\"tools\":[" } else { "," });
        n += 1;
        w.raw("{\"type\":\"function\",\"function\":{\"name\":");
        w.string(name);
        if let Some(d) = t.description.as_deref().filter(|d| !d.is_empty()) {
            w.raw(",\"description\":");
            w.string(d);
        }
        w.raw(",\"parameters\":");
        w.raw(schema.get());
        w.raw("}}");
    }
    if n > 0 {
        w.raw("]");
    }
    Ok(n)
}

fn tool_choice(w: &mut Writer, c: &ToolChoice<'_>, tools: usize) -> Result<(), InvalidRequest> {
    let choice = match c.kind.as_ref() {
        "auto" => "\"auto\"".to_owned(),
        "any" => "\"required\"".to_owned(),
        "none" => "\"none\"".to_owned(),
        "tool" => {
            let name = c
                .name
                .as_deref()
                .ok_or_else(|| invalid("tool_choice.name", "Field required"))?;
            let quoted = serde_json::to_string(name).unwrap_or_default();
            format!("{{\"type\":\"function\",\"function\":{{\"name\":{quoted}}}}}")
        }
        other => {
            return Err(invalid(
                "tool_choice.type",
                format!("Input should be 'auto', 'any', 'tool' or 'none', got {other:?}"),
            ))
        }
    };
    // OpenAI refuses a tool choice without tools.
    if tools == 0 {
        return Ok(());
    }
    w.raw(",\"tool_choice\":");
    w.raw(&choice);
    if c.disable_parallel_tool_use == Some(true) {
        w.raw(",\"parallel_tool_calls\":false");
    }
    Ok(())
}

/// Writes the hub body.
struct Writer {
    out: Vec<u8>,
    /// Messages written so far.
    messages: usize,
}

impl Writer {
    fn with_capacity(n: usize) -> Writer {
        Writer {
            out: Vec::with_capacity(n),
            messages: 0,
        }
    }

    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn raw_bytes(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    fn comma(&mut self, index: usize) {
        if index > 0 {
            self.out.push(b',');
        }
    }

    /// A JSON string.
    fn string(&mut self, s: &str) {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.out, s);
    }

    fn number(&mut self, v: f64) {
        let _ = serde_json::to_writer(&mut self.out, &v);
    }

    /// `{"role":role,"content":…}`, the content (and any field after it) written by `content`.
    fn message(&mut self, role: &str, content: impl FnOnce(&mut Writer)) {
        let n = self.messages;
        self.comma(n);
        self.messages += 1;
        self.raw("{\"role\":\"");
        self.raw(role);
        self.raw("\",\"content\":");
        content(self);
        self.raw("}");
    }

    fn text_part(&mut self, n: &mut usize, text: &str) {
        self.comma(*n);
        *n += 1;
        self.raw("{\"type\":\"text\",\"text\":");
        self.string(text);
        self.raw("}");
    }

    fn image_url_part(&mut self, n: &mut usize, url: &[&str]) {
        self.comma(*n);
        *n += 1;
        self.raw("{\"type\":\"image_url\",\"image_url\":{\"url\":\"");
        for piece in url {
            // Escape as a JSON string's inside (base64 and URLs rarely need it).
            let quoted = serde_json::to_string(piece).unwrap_or_default();
            self.raw(&quoted[1..quoted.len() - 1]);
        }
        self.raw("\"}}");
    }

    /// An image block as an `image_url` part (a data URL for base64 data).
    fn image_part(&mut self, n: &mut usize, b: &Block<'_>, at: &str) -> Result<(), InvalidRequest> {
        let source = b
            .source
            .as_ref()
            .ok_or_else(|| invalid(format!("{at}.source"), "Field required"))?;
        match source.kind.as_ref() {
            "base64" => {
                let media = source
                    .media_type
                    .as_deref()
                    .ok_or_else(|| invalid(format!("{at}.source.media_type"), "Field required"))?;
                let data = source
                    .data
                    .as_deref()
                    .ok_or_else(|| invalid(format!("{at}.source.data"), "Field required"))?;
                self.image_url_part(n, &["data:", media, ";base64,", data]);
            }
            "url" => {
                let url = source
                    .url
                    .as_deref()
                    .ok_or_else(|| invalid(format!("{at}.source.url"), "Field required"))?;
                self.image_url_part(n, &[url]);
            }
            "file" => self.text_part(
                n,
                &format!(
                    "[image file {} (Files API) not available to this model]",
                    source.file_id.as_deref().unwrap_or("")
                ),
            ),
            other => {
                return Err(invalid(
                    format!("{at}.source.type"),
                    format!("Input should be 'base64', 'url' or 'file', got {other:?}"),
                ))
            }
        }
        Ok(())
    }

    /// A document block: text as text, a PDF as an OpenAI `file` part, a URL as a note.
    fn document_part(
        &mut self,
        n: &mut usize,
        b: &Block<'_>,
        at: &str,
    ) -> Result<(), InvalidRequest> {
        let source = b
            .source
            .as_ref()
            .ok_or_else(|| invalid(format!("{at}.source"), "Field required"))?;
        let title = b.title.as_deref().filter(|t| !t.is_empty());
        let titled = |text: &str| match title {
            Some(t) => format!("{t}\n\n{text}"),
            None => text.to_owned(),
        };
        match source.kind.as_ref() {
            "text" => {
                let data = source
                    .data
                    .as_deref()
                    .ok_or_else(|| invalid(format!("{at}.source.data"), "Field required"))?;
                self.text_part(n, &titled(data));
            }
            "base64" => {
                let data = source
                    .data
                    .as_deref()
                    .ok_or_else(|| invalid(format!("{at}.source.data"), "Field required"))?;
                let media = source.media_type.as_deref().unwrap_or("application/pdf");
                self.comma(*n);
                *n += 1;
                self.raw("{\"type\":\"file\",\"file\":{\"filename\":");
                self.string(title.unwrap_or("document.pdf"));
                self.raw(",\"file_data\":");
                self.string(&format!("data:{media};base64,{data}"));
                self.raw("}}");
            }
            "content" => {
                if let Some(Blocks::Text(t)) = &source.content {
                    self.text_part(n, &titled(t));
                }
                if let Some(Blocks::List(blocks)) = &source.content {
                    for (k, inner) in blocks.iter().enumerate() {
                        let at = format!("{at}.source.content.{k}");
                        match kind_of(inner, &at)? {
                            Kind::Text => self.text_part(n, required_text(inner, &at)?),
                            Kind::Image => self.image_part(n, inner, &at)?,
                            _ => {}
                        }
                    }
                }
            }
            "url" => {
                let url = source.url.as_deref().unwrap_or("");
                self.text_part(n, &titled(&format!("[document at {url}]")));
            }
            "file" => self.text_part(
                n,
                &format!(
                    "[document file {} (Files API) not available to this model]",
                    source.file_id.as_deref().unwrap_or("")
                ),
            ),
            other => {
                return Err(invalid(
                    format!("{at}.source.type"),
                    format!(
                    "Input should be 'base64', 'text', 'content', 'url' or 'file', got {other:?}"
                ),
                ))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn hub(body: Value) -> Value {
        let t = translate(body.to_string().as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&t.hub).expect("the hub body is JSON");
        crate::request::ChatRequest::parse(&t.hub).expect("the hub body is a chat request");
        v
    }

    fn refused(body: &str) -> InvalidRequest {
        translate(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_plain_request_becomes_a_chat_request() {
        let v = hub(json!({
            "model": "claude-sonnet-4-5", "max_tokens": 100, "system": "Be terse.",
            "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 0.5, "top_p": 0.9, "top_k": 5, "stop_sequences": ["END", "", "a", "b", "c", "d"],
            "metadata": {"user_id": "u-1"}, "stream": true
        }));
        assert_eq!(
            v,
            json!({
                "model": "claude-sonnet-4-5",
                "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
                "stream": true, "stream_options": {"include_usage": true},
                "temperature": 0.5, "top_p": 0.9, "stop": ["END", "a", "b", "c"], "user": "u-1",
                "max_tokens": 100
            })
        );
    }

    #[test]
    fn blocks_tools_and_results_become_their_openai_forms() {
        let v = hub(json!({
            "model": "m", "max_tokens": 10,
            "system": [{"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "B"}],
            "tools": [
                {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true, "content": [{"type": "text", "text": "boom"}]},
                    {"type": "text", "text": "Try again"}
                ]}
            ]
        }));
        assert_eq!(
            v["messages"],
            json!([
                {"role": "system", "content": "A\n\nB"},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
                ]},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "content": "Error: boom", "tool_call_id": "toolu_1"},
                {"role": "user", "content": [{"type": "text", "text": "Try again"}]}
            ])
        );
        assert_eq!(v["tools"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            v["tools"][0]["function"]["parameters"]["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(v["tool_choice"], "required");
        assert_eq!(v["parallel_tool_calls"], false);
    }

    #[test]
    fn the_max_tokens_value_is_the_last_member_where_it_says() {
        let t = translate(
            br#"{"model":"m","max_tokens":128000,"messages":[{"role":"user","content":"x"}]}"#,
        )
        .unwrap();
        let (at, v) = t.max_tokens;
        assert_eq!(v, 128000);
        assert_eq!(&t.hub[at..], b"128000}");
        assert_eq!(t.model_span, Some(9..12));
    }

    #[test]
    fn bad_requests_are_refused_with_anthropics_field_paths() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("{", "not valid JSON"),
            ("[1]", "must be a JSON object"),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
                "max_tokens: Field required",
            ),
            (
                r#"{"model":"m","max_tokens":5}"#,
                "messages: Field required",
            ),
            (
                r#"{"model":"m","max_tokens":5,"messages":[]}"#,
                "messages: at least one",
            ),
            (
                r#"{"model":"m","max_tokens":"5","messages":[]}"#,
                "max_tokens: invalid type",
            ),
            (
                r#"{"model":7,"max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
                "model: Input should be a valid string",
            ),
            (
                r#"{"max_tokens":5,"messages":[{"role":"robot","content":"x"}]}"#,
                "messages.0.role",
            ),
            (
                r#"{"max_tokens":5,"messages":[{"role":"user","content":[{"type":"video"}]}]}"#,
                "messages.0.content.0.type: unknown content block type \"video\"",
            ),
            (
                r#"{"max_tokens":5,"messages":[{"role":"user","content":[{"text":"x"}]}]}"#,
                "messages.0.content.0: missing field `type`",
            ),
            (
                r#"{"max_tokens":5,"messages":[{"role":"user","content":[{"type":"text"}]}]}"#,
                "messages.0.content.0.text: Field required",
            ),
            (
                r#"{"max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":5}]}]}"#,
                "messages.0.content.0.text: invalid type",
            ),
            (
                r#"{"max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"b","input":{}}]}]}"#,
                "cannot be part of a user message",
            ),
            (
                r#"{"max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"a"}]}]}"#,
                "cannot be part of a assistant message",
            ),
            (
                r#"{"max_tokens":5,"messages":[{"role":"user","content":5}]}"#,
                "messages.0.content: invalid type",
            ),
            (
                r#"{"max_tokens":5,"tools":[{"name":"f"}],"messages":[{"role":"user","content":"x"}]}"#,
                "tools.0.input_schema: Field required",
            ),
            (
                r#"{"max_tokens":5,"tool_choice":{"type":"maybe"},"messages":[{"role":"user","content":"x"}]}"#,
                "tool_choice.type",
            ),
        ];
        for (body, want) in cases {
            let e = refused(body);
            assert!(e.message.contains(want), "{body}: {}", e.message);
        }
    }

    #[test]
    fn the_recorded_claude_code_requests_translate() {
        for name in ["tool-turn-1-request.json", "tool-turn-2-tool-result.json"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/claude-code")
                .join(name);
            let recorded: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let v = hub(recorded["body"].clone());
            assert_eq!(v["model"], "claude-opus-5-5");
            assert_eq!(v["max_tokens"], 128000);
            assert_eq!(v["tools"].as_array().map(Vec::len), Some(12));
            assert_eq!(v["messages"][0]["role"], "system");
            let user_turn = &v["messages"][1];
            assert_eq!(user_turn["role"], "user");
            assert!(user_turn["content"][1]["text"]
                .as_str()
                .unwrap()
                .starts_with("Use a tool"));
        }
    }
}
