//! The client's side of every translation: the OpenAI chat-completion request as a
//! translating backend needs it, and builders for the OpenAI answers it sends back
//! (`chat.completion` bodies, `chat.completion.chunk` SSE events, usage, ids).
//!
//! [`crate::request::ChatRequest`] decodes only what routing needs; a translator needs every
//! field, so [`OpenAiRequest::parse`] decodes the body again, borrowing strings from it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metrics::Usage;
use crate::providers::protocol::{Completion, Events, JSON};
use crate::request::{Content, InvalidRequest, Role};

/// The full OpenAI chat-completion request, borrowed from the body.
#[derive(Debug, Deserialize)]
pub struct OpenAiRequest<'a> {
    #[serde(borrow)]
    pub messages: Vec<OaMessage<'a>>,
    #[serde(default, borrow)]
    pub tools: Option<Vec<OaTool<'a>>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub response_format: Option<Value>,
    #[serde(default, borrow)]
    pub reasoning_effort: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub user: Option<Cow<'a, str>>,
}

/// `stop`: one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    /// The stop sequences, empty ones dropped.
    pub fn sequences(&self) -> Vec<&str> {
        match self {
            Stop::One(s) => vec![s.as_str()],
            Stop::Many(v) => v.iter().map(String::as_str).collect(),
        }
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect()
    }
}

/// One message with every field a translator uses.
#[derive(Debug, Deserialize)]
pub struct OaMessage<'a> {
    pub role: Role,
    #[serde(default, borrow)]
    pub content: Content<'a>,
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<OaToolCall<'a>>>,
    #[serde(default, borrow)]
    pub tool_call_id: Option<Cow<'a, str>>,
    /// The function name of a legacy `function` message (or a participant name).
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
}

/// An assistant's tool call, as replayed by the client.
#[derive(Debug, Deserialize)]
pub struct OaToolCall<'a> {
    #[serde(default, borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub function: OaFunctionCall<'a>,
}

#[derive(Debug, Deserialize)]
pub struct OaFunctionCall<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// JSON text; may be empty.
    #[serde(default, borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

impl OaFunctionCall<'_> {
    /// The arguments as a JSON object. Models sometimes emit invalid or empty arguments and
    /// clients replay them verbatim; failing the whole conversation for that would be worse
    /// than sending `{}`, and a non-object value is wrapped so nothing is lost.
    pub fn arguments_object(&self) -> Value {
        let text = self.arguments.as_deref().unwrap_or("").trim();
        if text.is_empty() {
            return Value::Object(Default::default());
        }
        match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(other) => serde_json::json!({ "value": other }),
            Err(_) => Value::Object(Default::default()),
        }
    }
}

/// A tool definition. Only `function` tools are translated.
#[derive(Debug, Deserialize)]
pub struct OaTool<'a> {
    #[serde(rename = "type", default, borrow)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub function: Option<OaFunction<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct OaFunction<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(default, borrow)]
    pub description: Option<Cow<'a, str>>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// What `tool_choice` asks for, independent of any backend's spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice<'a> {
    Auto,
    None,
    Required,
    Function(&'a str),
}

impl<'a> OaTool<'a> {
    /// The function of a `function` tool (a missing `type` counts as `function`).
    pub fn as_function(&self) -> Option<&OaFunction<'a>> {
        match self.kind.as_deref() {
            None | Some("function") => self.function.as_ref(),
            Some(_) => None,
        }
    }
}

impl<'a> OpenAiRequest<'a> {
    /// Decode the full request. The body was already validated by `ChatRequest::parse`, so an
    /// error here concerns a field only translators read (e.g. a malformed `tool_calls`).
    pub fn parse(body: &'a [u8]) -> Result<Self, InvalidRequest> {
        let mut de = serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            InvalidRequest {
                message: format!("invalid value for '{path}': {inner}"),
                param: Some(path),
                code: "invalid_type",
            }
        })
    }

    /// `max_completion_tokens`, else `max_tokens`.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The function tools, in order.
    pub fn functions(&self) -> impl Iterator<Item = &OaFunction<'a>> {
        self.tools.iter().flatten().filter_map(OaTool::as_function)
    }

    /// `tool_choice`, when given and understood.
    pub fn tool_choice(&self) -> Result<Option<ToolChoice<'_>>, InvalidRequest> {
        let bad = || {
            InvalidRequest {
            message: "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":...}}".into(),
            param: Some("tool_choice".into()),
            code: "invalid_value",
        }
        };
        match &self.tool_choice {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => match s.as_str() {
                "auto" => Ok(Some(ToolChoice::Auto)),
                "none" => Ok(Some(ToolChoice::None)),
                "required" | "any" => Ok(Some(ToolChoice::Required)),
                _ => Err(bad()),
            },
            Some(Value::Object(o)) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .map(|name| Some(ToolChoice::Function(name)))
                .ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }

    /// The text of every system and developer message, joined by blank lines.
    pub fn system_text(&self) -> Option<String> {
        let mut out = String::new();
        for m in self
            .messages
            .iter()
            .filter(|m| matches!(m.role, Role::System | Role::Developer))
        {
            for t in m.content.text_parts().filter(|t| !t.trim().is_empty()) {
                if !out.is_empty() {
                    out.push_str("\n\n");
                }
                out.push_str(t);
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Where the system text goes once the other messages are `turns`: `Some(text)` for the
    /// API's own system field; `None` when there is none, or when it is all the request has,
    /// in which case it becomes the one user turn `as_prompt` makes of it (an API needs at
    /// least one message). A request with neither is refused.
    pub fn system_or_prompt(
        &self,
        turns: &mut Vec<Value>,
        as_prompt: impl FnOnce(&str) -> Value,
    ) -> Result<Option<String>, InvalidRequest> {
        let system = self.system_text();
        if !turns.is_empty() {
            return Ok(system);
        }
        match system {
            Some(text) => {
                turns.push(as_prompt(&text));
                Ok(None)
            }
            None => Err(InvalidRequest {
                message: "the request has no message with content to send".into(),
                param: Some("messages".into()),
                code: "invalid_value",
            }),
        }
    }

    /// Tool call id → function name, from every assistant message's `tool_calls`, so that a
    /// `tool` message can be answered under its function's name.
    pub fn tool_names(&self) -> HashMap<&str, &str> {
        self.messages
            .iter()
            .flat_map(|m| m.tool_calls.iter().flatten())
            .map(|c| (c.id.as_ref(), c.function.name.as_ref()))
            .collect()
    }
}

/// The function name a `tool` (or legacy `function`) message answers.
pub fn tool_message_name<'m>(
    msg: &'m OaMessage<'_>,
    names: &HashMap<&'m str, &'m str>,
    index: usize,
) -> Result<&'m str, InvalidRequest> {
    if let Some(id) = msg.tool_call_id.as_deref() {
        if let Some(name) = names.get(id) {
            return Ok(name);
        }
    }
    if let Some(name) = msg.name.as_deref() {
        return Ok(name);
    }
    Err(InvalidRequest {
        message: format!(
            "messages[{index}]: tool message's tool_call_id {:?} matches no tool call of an earlier assistant message",
            msg.tool_call_id.as_deref().unwrap_or("")
        ),
        param: Some(format!("messages[{index}].tool_call_id")),
        code: "invalid_value",
    })
}

/// An image given as a `data:` URL, split into media type and base64 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataUrl<'a> {
    pub media_type: &'a str,
    pub base64: &'a str,
}

/// Parse `data:<type>;base64,<payload>`; `None` if `url` is not a base64 data URL.
pub fn parse_data_url(url: &str) -> Option<DataUrl<'_>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, payload) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    // Parameters such as `;charset=` may sit between the type and `;base64`.
    let media_type = media_type.split(';').next().unwrap_or("");
    let media_type = if media_type.is_empty() {
        "application/octet-stream"
    } else {
        media_type
    };
    Some(DataUrl {
        media_type,
        base64: payload,
    })
}

/// An error for an image this backend cannot take.
pub fn unsupported_image(index: usize, backend: &str, url: &str) -> InvalidRequest {
    let shown: String = url.chars().take(60).collect();
    let message = if url.starts_with("http://") || url.starts_with("https://") {
        format!(
            "messages[{index}]: remote image URLs are not fetched for the {backend} backend; send the image inline as a base64 data URL (data:image/png;base64,...) instead of {shown}"
        )
    } else {
        format!("messages[{index}]: unsupported image URL {shown:?}; expected a base64 data URL")
    };
    InvalidRequest {
        message,
        param: Some(format!("messages[{index}].content")),
        code: "invalid_value",
    }
}

// ---------------------------------------------------------------------------------------
// The answer side.

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 24 hex digits unique in this process and unpredictable across processes.
pub fn unique_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = SEED.get_or_init(Default::default).build_hasher();
    h.write_u64(n);
    format!("{:016x}{:08x}", h.finish(), n as u32)
}

/// A new `chatcmpl-…` id.
pub fn completion_id() -> String {
    format!("chatcmpl-{}", unique_hex())
}

/// Token counts in OpenAI's shape (its SDKs call this object `CompletionUsage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CompletionUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionDetails>,
}

impl CompletionUsage {
    /// The counts as ClawGate accounts them, read as a passed-through answer's `usage` is.
    pub fn to_usage(&self) -> Usage {
        Usage::reported(
            self.prompt_tokens,
            self.completion_tokens,
            None,
            None,
            self.prompt_tokens_details.map(|d| d.cached_tokens),
        )
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PromptDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CompletionDetails {
    pub reasoning_tokens: u64,
}

/// A tool call in a non-streamed message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

impl ToolCall {
    pub fn new(id: String, name: String, arguments: String) -> Self {
        ToolCall {
            id,
            kind: "function",
            function: FunctionCall { name, arguments },
        }
    }
}

/// One choice of a non-streamed answer.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    pub index: u32,
    /// `None` when the model only called tools (OpenAI sends `null` then).
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: &'static str,
}

/// A translated answer for the client: a new `chat.completion` of `model` with `choices`,
/// and its usage handed over as counted (not read back from the body).
pub fn completion(model: &str, choices: &[Choice], usage: Option<CompletionUsage>) -> Completion {
    let body = completion_body(&completion_id(), model, choices, usage.as_ref());
    Completion {
        content_type: JSON,
        body: Bytes::from(body),
        usage: usage.as_ref().map(CompletionUsage::to_usage),
    }
}

/// Serialize a `chat.completion` body.
pub fn completion_body(
    id: &str,
    model: &str,
    choices: &[Choice],
    usage: Option<&CompletionUsage>,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        id: &'a str,
        object: &'static str,
        created: u64,
        model: &'a str,
        choices: Vec<ChoiceOut<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<&'a CompletionUsage>,
    }
    #[derive(Serialize)]
    struct ChoiceOut<'a> {
        index: u32,
        message: MessageOut<'a>,
        logprobs: Option<()>,
        finish_reason: &'static str,
    }
    #[derive(Serialize)]
    struct MessageOut<'a> {
        role: &'static str,
        content: Option<&'a str>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        tool_calls: &'a [ToolCall],
    }
    let body = Body {
        id,
        object: "chat.completion",
        created: unix_now(),
        model,
        choices: choices
            .iter()
            .map(|c| ChoiceOut {
                index: c.index,
                message: MessageOut {
                    role: "assistant",
                    content: c.content.as_deref(),
                    tool_calls: &c.tool_calls,
                },
                logprobs: None,
                finish_reason: c.finish_reason,
            })
            .collect(),
        usage,
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A piece of a streamed tool call.
#[derive(Debug, Clone, Serialize)]
pub struct ToolCallDelta<'a> {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionDelta<'a>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

/// A chunk's `delta`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

/// Writes `chat.completion.chunk` SSE events sharing one id, timestamp and model.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl ChunkWriter {
    pub fn new(model: &str, include_usage: bool) -> Self {
        ChunkWriter {
            id: completion_id(),
            created: unix_now(),
            model: model.to_owned(),
            include_usage,
        }
    }

    /// Whether the client asked for a usage chunk.
    pub fn include_usage(&self) -> bool {
        self.include_usage
    }

    /// A choice's first chunk, which carries the role.
    pub fn role(&self, out: &mut Events, index: u32) {
        let delta = Delta {
            role: Some("assistant"),
            content: Some(""),
            ..Default::default()
        };
        self.delta(out, index, delta, None);
    }

    /// A piece of a choice's text.
    pub fn text(&self, out: &mut Events, index: u32, text: &str) {
        let delta = Delta {
            content: Some(text),
            ..Default::default()
        };
        self.delta(out, index, delta, None);
    }

    /// A piece of one of a choice's tool calls.
    pub fn tool_call(&self, out: &mut Events, index: u32, call: ToolCallDelta<'_>) {
        let delta = Delta {
            tool_calls: Some(vec![call]),
            ..Default::default()
        };
        self.delta(out, index, delta, None);
    }

    /// A choice's last chunk, with its finish reason.
    pub fn finish(&self, out: &mut Events, index: u32, reason: &str) {
        self.delta(out, index, Delta::default(), Some(reason));
    }

    /// One choice's delta, with its finish reason when it is the last.
    fn delta(&self, out: &mut Events, index: u32, delta: Delta<'_>, finish_reason: Option<&str>) {
        #[derive(Serialize)]
        struct ChoiceOut<'a> {
            index: u32,
            delta: Delta<'a>,
            logprobs: Option<()>,
            finish_reason: Option<&'a str>,
        }
        self.write(
            out,
            &[ChoiceOut {
                index,
                delta,
                logprobs: None,
                finish_reason,
            }],
            None,
        );
    }

    /// The usage chunk (`choices: []`), only if the client asked for it.
    pub fn usage(&self, out: &mut Events, usage: &CompletionUsage) {
        if self.include_usage {
            self.write::<()>(out, &[], Some(usage));
        }
    }

    /// The stream's terminator.
    pub fn done(out: &mut Events) {
        out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
    }

    fn write<C: Serialize>(
        &self,
        out: &mut Events,
        choices: &[C],
        usage: Option<&CompletionUsage>,
    ) {
        #[derive(Serialize)]
        struct Chunk<'a, C> {
            id: &'a str,
            object: &'static str,
            created: u64,
            model: &'a str,
            choices: &'a [C],
            #[serde(skip_serializing_if = "Option::is_none")]
            usage: Option<&'a CompletionUsage>,
        }
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        };
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(b"data: ");
        if serde_json::to_writer(&mut buf, &chunk).is_ok() {
            buf.extend_from_slice(b"\n\n");
            out.push_back(Bytes::from(buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_split_into_type_and_payload() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("data:image/png;base64,iVBOR", Some(("image/png", "iVBOR"))),
            (
                "data:image/jpeg;name=a.jpg;base64,/9j/",
                Some(("image/jpeg", "/9j/")),
            ),
            (
                "data:;base64,AAAA",
                Some(("application/octet-stream", "AAAA")),
            ),
            ("data:text/plain,hello", None),
            ("https://example.com/cat.png", None),
        ];
        for (url, want) in cases {
            let got = parse_data_url(url).map(|d| (d.media_type, d.base64));
            assert_eq!(got, *want, "{url}");
        }
    }

    #[test]
    fn ids_are_unique_and_prefixed() {
        let a = completion_id();
        let b = completion_id();
        assert!(a.starts_with("chatcmpl-") && a.len() == 9 + 24);
        assert_ne!(a, b);
    }

    #[test]
    fn arguments_are_always_an_object() {
        let call = |args: Option<&'static str>| OaFunctionCall {
            name: "f".into(),
            arguments: args.map(Cow::Borrowed),
        };
        assert_eq!(
            call(Some(r#"{"a":1}"#)).arguments_object(),
            serde_json::json!({"a":1})
        );
        assert_eq!(call(Some("")).arguments_object(), serde_json::json!({}));
        assert_eq!(call(None).arguments_object(), serde_json::json!({}));
        assert_eq!(
            call(Some("{not json")).arguments_object(),
            serde_json::json!({})
        );
        assert_eq!(
            call(Some("[1]")).arguments_object(),
            serde_json::json!({"value":[1]})
        );
    }

    #[test]
    fn usage_chunk_is_written_only_when_asked() {
        let usage = CompletionUsage {
            prompt_tokens: 1,
            completion_tokens: 2,
            total_tokens: 3,
            ..Default::default()
        };
        let mut out = Events::new();
        ChunkWriter::new("m", false).usage(&mut out, &usage);
        assert!(out.is_empty());
        ChunkWriter::new("m", true).usage(&mut out, &usage);
        let text = std::str::from_utf8(&out[0]).unwrap();
        let v: Value = serde_json::from_str(text.trim_start_matches("data: ").trim()).unwrap();
        assert_eq!(v["choices"], serde_json::json!([]));
        assert_eq!(v["usage"]["total_tokens"], 3);
    }
}
