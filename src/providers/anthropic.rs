//! Anthropic's Messages API (`anthropic` backend), translated to and from OpenAI chat
//! completions.
//!
//! Out: system and developer messages become `system`; user/assistant turns become
//! `messages` with text, image (`base64` from data URLs, `url` for http(s)), `tool_use` and
//! `tool_result` blocks, consecutive same-role turns merged as the API requires; tools
//! become `tools` with `input_schema`; `max_tokens` is always sent (the client's, else the
//! provider's, else 4096); `response_format` (JSON mode, JSON schema) becomes a system
//! instruction, the API having no such field. Back: content blocks become the message text and `tool_calls`,
//! `stop_reason` becomes `finish_reason`, and the SSE events (`message_start`,
//! `content_block_*`, `message_delta`, `message_stop`, `ping`, `error`) become
//! `chat.completion.chunk` events.
//!
//! Prompt caching: the system prompt (which, with the tools before it, is the large stable
//! prefix of an agent's requests) and the last message carry `cache_control` breakpoints, so
//! repeated turns read the prefix from Anthropic's cache. Prompts below the model's minimum
//! cacheable length are simply not cached.

use std::collections::HashMap;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::config::ProviderConfig;
use crate::providers::translate::openai::{
    self, ChunkWriter, Delta, FunctionDelta, OaMessage, OpenAiRequest, ToolCall, ToolCallDelta,
    ToolChoice, Usage,
};
use crate::providers::translate::sse::{SseDecoder, SseEvent};
use crate::providers::translate::{
    upstream_headers, FailureKind, StreamTranslator, Translate, UpstreamFailure, UpstreamRequest,
};
use crate::request::{ChatRequest, Content, InvalidRequest, Role};

/// The `anthropic` backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anthropic;

/// The API version this translation is written against.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` when neither the client nor the provider config gives one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

impl Translate for Anthropic {
    fn request(
        &self,
        provider: &ProviderConfig,
        req: &ChatRequest<'_>,
    ) -> Result<UpstreamRequest, InvalidRequest> {
        let oa = OpenAiRequest::parse(req.body())?;
        let mut body = build_body(provider, &oa)?;
        if req.stream {
            body.insert("stream".into(), Value::Bool(true));
        }
        let mut own: Vec<(&'static str, &str, bool)> = Vec::with_capacity(2);
        if let Some(key) = provider.api_key.as_deref() {
            own.push(("x-api-key", key, true));
        }
        own.push(("anthropic-version", ANTHROPIC_VERSION, false));
        Ok(UpstreamRequest {
            url: format!("{}/messages", provider.base_url),
            headers: upstream_headers(provider, &own)?,
            body: serde_json::to_vec(&body).unwrap_or_default(),
        })
    }

    fn response(
        &self,
        provider: &ProviderConfig,
        _req: &ChatRequest<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, UpstreamFailure> {
        let msg: MessageResponse = serde_json::from_slice(body).map_err(|e| UpstreamFailure {
            kind: FailureKind::Provider,
            status: 502,
            message: format!("unreadable Anthropic response: {e}"),
        })?;
        if let Some(error) = &msg.error {
            return Err(classify_error(None, error));
        }
        let mut text = String::new();
        let mut calls = Vec::new();
        for block in &msg.content {
            match block {
                Block::Text { text: t } => text.push_str(t),
                Block::ToolUse { id, name, input } => {
                    calls.push(ToolCall::new(
                        id.clone(),
                        name.clone(),
                        arguments_text(input),
                    ));
                }
                Block::Other => {}
            }
        }
        let finish_reason = finish_reason(msg.stop_reason.as_deref(), !calls.is_empty());
        let content = if text.is_empty() && !calls.is_empty() {
            None
        } else {
            Some(text)
        };
        let choice = openai::Choice {
            index: 0,
            content,
            tool_calls: calls,
            finish_reason,
        };
        let usage = msg.usage.map(RawUsage::to_openai);
        Ok(openai::completion_body(
            &openai::completion_id(),
            &provider.model,
            &[choice],
            usage.as_ref(),
        ))
    }

    fn failure(&self, status: u16, body: &[u8]) -> UpstreamFailure {
        #[derive(Deserialize)]
        struct Wrapper {
            error: ErrorDetail,
        }
        match serde_json::from_slice::<Wrapper>(body) {
            Ok(w) => classify_error(Some(status), &w.error),
            Err(_) => classify_error(
                Some(status),
                &ErrorDetail {
                    kind: String::new(),
                    message: String::from_utf8_lossy(body).into_owned(),
                },
            ),
        }
    }

    fn stream(
        &self,
        provider: &ProviderConfig,
        req: &ChatRequest<'_>,
    ) -> Box<dyn StreamTranslator> {
        Box::new(AnthropicStream {
            sse: SseDecoder::new(),
            state: StreamState {
                writer: ChunkWriter::new(&provider.model, req.wants_stream_usage()),
                started: false,
                tool_blocks: HashMap::new(),
                tool_calls: 0,
                usage: RawUsage::default(),
                stop_reason: None,
                finished: false,
                done: false,
            },
        })
    }
}

// ---------------------------------------------------------------------------------------
// Request.

/// The Messages API body for an OpenAI request (without `stream`).
pub fn build_body(
    provider: &ProviderConfig,
    oa: &OpenAiRequest<'_>,
) -> Result<Map<String, Value>, InvalidRequest> {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(provider.model.clone()));
    let max_tokens = oa
        .max_output_tokens()
        .or(provider.max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    body.insert("max_tokens".into(), json!(max_tokens));

    let system = oa.system_text();
    let mut messages = messages(oa)?;
    if messages.is_empty() {
        // Only system messages: the API needs at least one message, so they become the prompt.
        match &system {
            Some(text) => messages
                .push(json!({ "role": "user", "content": [{ "type": "text", "text": text }] })),
            None => {
                return Err(InvalidRequest {
                    message: "the request has no message with content to send".into(),
                    param: Some("messages".into()),
                    code: "invalid_value",
                })
            }
        }
    } else if let Some(text) = &system {
        body.insert(
            "system".into(),
            json!([{ "type": "text", "text": text, "cache_control": { "type": "ephemeral" } }]),
        );
    }
    if let Some(rule) = json_instruction(oa.response_format.as_ref())? {
        // After the cached system block, so the cached prefix is the same with or without it.
        let block = json!({ "type": "text", "text": rule });
        match body.get_mut("system").and_then(Value::as_array_mut) {
            Some(blocks) => blocks.push(block),
            None => {
                body.insert("system".into(), json!([block]));
            }
        }
    }
    if let Some(last) = messages
        .last_mut()
        .and_then(|m| m.get_mut("content"))
        .and_then(Value::as_array_mut)
    {
        if let Some(Value::Object(block)) = last.last_mut() {
            block.insert("cache_control".into(), json!({ "type": "ephemeral" }));
        }
    }
    body.insert("messages".into(), Value::Array(messages));

    let tools: Vec<Value> = oa
        .functions()
        .map(|f| {
            let mut tool = Map::new();
            tool.insert("name".into(), Value::String(f.name.to_string()));
            if let Some(d) = f.description.as_deref().filter(|d| !d.is_empty()) {
                tool.insert("description".into(), Value::String(d.to_owned()));
            }
            tool.insert("input_schema".into(), input_schema(f.parameters.as_ref()));
            Value::Object(tool)
        })
        .collect();
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
        let no_parallel = oa.parallel_tool_calls == Some(false);
        let choice = match oa.tool_choice()? {
            None if no_parallel => Some(json!({ "type": "auto" })),
            None => None,
            Some(ToolChoice::Auto) => Some(json!({ "type": "auto" })),
            Some(ToolChoice::None) => Some(json!({ "type": "none" })),
            Some(ToolChoice::Required) => Some(json!({ "type": "any" })),
            Some(ToolChoice::Function(name)) => Some(json!({ "type": "tool", "name": name })),
        };
        if let Some(mut choice) = choice {
            if no_parallel && choice["type"] != "none" {
                choice["disable_parallel_tool_use"] = Value::Bool(true);
            }
            body.insert("tool_choice".into(), choice);
        }
    }

    if let Some(stop) = &oa.stop {
        // The API rejects stop sequences that are only whitespace.
        let seqs: Vec<&str> = stop
            .sequences()
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .collect();
        if !seqs.is_empty() {
            body.insert("stop_sequences".into(), json!(seqs));
        }
    }
    // Anthropic's temperature range is 0..=1 (OpenAI's is 0..=2), and recent models refuse
    // `temperature` and `top_p` together: temperature wins.
    if let Some(t) = oa.temperature {
        body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    } else if let Some(p) = oa.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(user) = oa.user.as_deref().filter(|u| !u.is_empty()) {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    Ok(body)
}

/// What every JSON-mode instruction asks for.
const JSON_ONLY: &str =
    "nothing else: no text before or after it, no Markdown code fences, no comments.";

/// OpenAI's `response_format` as a system instruction. The Messages API has no JSON mode
/// (its structured outputs are a beta limited to some models, and forcing a tool call would
/// fight the client's own tools), so the request says in words what the client asked for; a
/// `json_schema` is given in full. The answer is passed back as it comes.
fn json_instruction(format: Option<&Value>) -> Result<Option<String>, InvalidRequest> {
    let Some(format) = format else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(format!(
            "Respond with a single valid JSON object and {JSON_ONLY}"
        ))),
        Some("json_schema") => {
            let spec = format.get("json_schema");
            let field = |name: &str| spec.and_then(|s| s.get(name));
            let mut rule = String::from("Respond with a single valid JSON value");
            match field("schema") {
                Some(schema) => {
                    rule.push_str(" that conforms to the JSON Schema below");
                    if let Some(name) = field("name").and_then(Value::as_str) {
                        rule.push_str(&format!(" (named `{name}`)"));
                    }
                    rule.push_str(&format!(", and {JSON_ONLY}"));
                    if let Some(d) = field("description").and_then(Value::as_str) {
                        rule.push_str(&format!("\nWhat it is for: {d}"));
                    }
                    rule.push_str(&format!("\n\nJSON Schema:\n{schema}"));
                }
                None => rule.push_str(&format!(" and {JSON_ONLY}")),
            }
            Ok(Some(rule))
        }
        Some(other) => Err(InvalidRequest {
            message: format!("response_format type {other:?} is not supported; use \"text\", \"json_object\" or \"json_schema\""),
            param: Some("response_format.type".into()),
            code: "invalid_value",
        }),
    }
}

/// A tool's parameters as `input_schema`, which must be an object schema.
fn input_schema(parameters: Option<&Value>) -> Value {
    match parameters {
        Some(Value::Object(schema)) => {
            let mut schema = schema.clone();
            schema
                .entry("type")
                .or_insert_with(|| Value::String("object".into()));
            Value::Object(schema)
        }
        _ => json!({ "type": "object", "properties": {} }),
    }
}

fn messages(oa: &OpenAiRequest<'_>) -> Result<Vec<Value>, InvalidRequest> {
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, msg) in oa.messages.iter().enumerate() {
        let (role, blocks) = match msg.role {
            Role::System | Role::Developer => continue,
            Role::User => ("user", user_blocks(i, &msg.content)?),
            Role::Assistant => ("assistant", assistant_blocks(msg)),
            Role::Tool | Role::Function => ("user", vec![tool_result(msg)]),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, have)) if *last == role => have.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    // A final assistant turn is a prefill, which may not end in whitespace.
    if let Some(("assistant", blocks)) = turns.last_mut() {
        if let Some(Value::String(text)) = blocks.last_mut().and_then(|b| b.get_mut("text")) {
            let trimmed = text.trim_end().len();
            text.truncate(trimmed);
        }
    }
    Ok(turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect())
}

fn text_block(text: &str) -> Option<Value> {
    // The API rejects empty and whitespace-only text blocks.
    (!text.trim().is_empty()).then(|| json!({ "type": "text", "text": text }))
}

fn user_blocks(index: usize, content: &Content<'_>) -> Result<Vec<Value>, InvalidRequest> {
    let mut blocks = Vec::new();
    match content {
        Content::Null => {}
        Content::Text(t) => blocks.extend(text_block(t)),
        Content::Parts(parts) => {
            for part in parts {
                if let Some(text) = part.text.as_deref() {
                    blocks.extend(text_block(text));
                } else if let Some(image) = &part.image_url {
                    let url = image.url.as_ref();
                    let source = if let Some(data) = openai::parse_data_url(url) {
                        json!({ "type": "base64", "media_type": data.media_type, "data": data.base64 })
                    } else if url.starts_with("https://") || url.starts_with("http://") {
                        json!({ "type": "url", "url": url })
                    } else {
                        return Err(openai::unsupported_image(index, "anthropic", url));
                    };
                    blocks.push(json!({ "type": "image", "source": source }));
                }
            }
        }
    }
    Ok(blocks)
}

fn assistant_blocks(msg: &OaMessage<'_>) -> Vec<Value> {
    let mut blocks: Vec<Value> = msg.content.text_parts().filter_map(text_block).collect();
    for call in msg.tool_calls.iter().flatten() {
        blocks.push(json!({
            "type": "tool_use",
            "id": tool_id(&call.id),
            "name": call.function.name,
            "input": call.function.arguments_object(),
        }));
    }
    blocks
}

fn tool_result(msg: &OaMessage<'_>) -> Value {
    let text = msg.content.text();
    match msg.tool_call_id.as_deref() {
        Some(id) => {
            let mut block = json!({ "type": "tool_result", "tool_use_id": tool_id(id) });
            if !text.trim().is_empty() {
                block["content"] = Value::String(text.into_owned());
            }
            block
        }
        // A legacy `function` message has no call id to answer: keep its result as text.
        None => {
            let name = msg.name.as_deref().unwrap_or("function");
            json!({ "type": "text", "text": format!("[{name} result]\n{text}") })
        }
    }
}

/// Tool ids must match `^[a-zA-Z0-9_-]+$`; ids minted by other providers may not.
fn tool_id(id: &str) -> String {
    if id.is_empty() {
        return "call_".into();
    }
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Response.

#[derive(Debug, Default, Deserialize)]
struct MessageResponse {
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    error: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Thinking, redacted thinking, server tool blocks: not part of an OpenAI answer.
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct RawUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl RawUsage {
    /// `input_tokens` excludes cached tokens; OpenAI's `prompt_tokens` counts the whole prompt.
    fn to_openai(self) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt =
            self.input_tokens.unwrap_or(0) + cached + self.cache_creation_input_tokens.unwrap_or(0);
        let completion = self.output_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: Some(openai::PromptDetails {
                cached_tokens: cached,
            }),
            completion_tokens_details: None,
        }
    }

    /// Later events carry running totals: take the fields they have.
    fn update(&mut self, newer: &RawUsage) {
        let pick = |have: &mut Option<u64>, new: Option<u64>| {
            if new.is_some() {
                *have = new;
            }
        };
        pick(&mut self.input_tokens, newer.input_tokens);
        pick(&mut self.output_tokens, newer.output_tokens);
        pick(
            &mut self.cache_creation_input_tokens,
            newer.cache_creation_input_tokens,
        );
        pick(
            &mut self.cache_read_input_tokens,
            newer.cache_read_input_tokens,
        );
    }
}

fn arguments_text(input: &Value) -> String {
    match input {
        Value::Object(_) => input.to_string(),
        _ => "{}".into(),
    }
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
fn finish_reason(reason: Option<&str>, has_calls: bool) -> &'static str {
    match reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

// ---------------------------------------------------------------------------------------
// Errors.

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// An Anthropic error as a fallback decision. `status` is `None` for an `error` event
/// inside a stream, where only the error type tells what happened.
fn classify_error(status: Option<u16>, error: &ErrorDetail) -> UpstreamFailure {
    let status = status.unwrap_or(match error.kind.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    });
    let message = error.message.trim();
    // An empty account answers 400 invalid_request_error; that is the provider's problem.
    let billing = message.to_ascii_lowercase().contains("credit balance");
    let client = !billing
        && match error.kind.as_str() {
            "invalid_request_error" | "request_too_large" => true,
            "" => matches!(status, 400 | 413 | 422),
            _ => false,
        };
    let label = if error.kind.is_empty() {
        format!("HTTP {status}")
    } else {
        error.kind.clone()
    };
    let message = if message.is_empty() {
        label
    } else {
        format!("{label}: {}", openai::short(message))
    };
    UpstreamFailure {
        kind: if client {
            FailureKind::Client
        } else {
            FailureKind::Provider
        },
        status: if client && status != 413 { 400 } else { status },
        message,
    }
}

// ---------------------------------------------------------------------------------------
// Streaming.

/// Translates a Messages API event stream.
struct AnthropicStream {
    sse: SseDecoder,
    state: StreamState,
}

struct StreamState {
    writer: ChunkWriter,
    /// The role chunk went out. It waits for the first content so that an `error` event
    /// right after `message_start` still finds nothing sent and the request can fall back.
    started: bool,
    /// Content block index → OpenAI tool call index, for `tool_use` blocks.
    tool_blocks: HashMap<u64, u32>,
    tool_calls: u32,
    usage: RawUsage,
    stop_reason: Option<String>,
    /// The chunk with `finish_reason` went out.
    finished: bool,
    /// `message_stop` arrived and `[DONE]` went out.
    done: bool,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: u64,
        delta: BlockDelta,
    },
    ContentBlockStop {},
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<RawUsage>,
    },
    MessageStop {},
    Ping {},
    Error {
        error: ErrorDetail,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        #[serde(default)]
        partial_json: String,
    },
    /// Thinking, signature and citation deltas.
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

impl StreamTranslator for AnthropicStream {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let state = &mut self.state;
        self.sse.feed(chunk, |event| state.on_event(&event, out))
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let state = &mut self.state;
        self.sse.finish(|event| state.on_event(&event, out))?;
        if state.done {
            return Ok(());
        }
        Err(UpstreamFailure {
            kind: FailureKind::Provider,
            status: 502,
            message: if state.started {
                "Anthropic stream ended before message_stop (cut off midway)".into()
            } else {
                "Anthropic stream ended without an answer".into()
            },
        })
    }
}

impl StreamState {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let data = event.data.trim();
        if self.done || data.is_empty() {
            return Ok(());
        }
        let parsed: Event = serde_json::from_str(data).map_err(|e| UpstreamFailure {
            kind: FailureKind::Provider,
            status: 502,
            message: format!("unreadable Anthropic stream event {:?}: {e}", event.event),
        })?;
        match parsed {
            Event::MessageStart { message } => {
                if let Some(u) = &message.usage {
                    self.usage.update(u);
                }
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                StartBlock::Text { text } => self.text(&text, out),
                StartBlock::ToolUse { id, name } => {
                    self.start(out);
                    let call = self.tool_calls;
                    self.tool_calls += 1;
                    self.tool_blocks.insert(index, call);
                    let delta = ToolCallDelta {
                        index: call,
                        id: Some(&id),
                        kind: Some("function"),
                        function: FunctionDelta {
                            name: Some(&name),
                            arguments: "",
                        },
                    };
                    self.writer.delta(
                        out,
                        0,
                        Delta {
                            tool_calls: Some(vec![delta]),
                            ..Default::default()
                        },
                        None,
                    );
                }
                StartBlock::Other => {}
            },
            Event::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => self.text(&text, out),
                BlockDelta::InputJsonDelta { partial_json } => {
                    if let (Some(&call), false) =
                        (self.tool_blocks.get(&index), partial_json.is_empty())
                    {
                        let delta = ToolCallDelta {
                            index: call,
                            id: None,
                            kind: None,
                            function: FunctionDelta {
                                name: None,
                                arguments: &partial_json,
                            },
                        };
                        self.writer.delta(
                            out,
                            0,
                            Delta {
                                tool_calls: Some(vec![delta]),
                                ..Default::default()
                            },
                            None,
                        );
                    }
                }
                BlockDelta::Other => {}
            },
            Event::MessageDelta { delta, usage } => {
                if let Some(u) = &usage {
                    self.usage.update(u);
                }
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                    self.finish_choice(out);
                }
            }
            Event::MessageStop {} => {
                self.finish_choice(out);
                self.writer.usage(out, &self.usage.to_openai());
                ChunkWriter::done(out);
                self.done = true;
            }
            Event::Error { error } => return Err(classify_error(None, &error)),
            Event::ContentBlockStop {} | Event::Ping {} | Event::Unknown => {}
        }
        Ok(())
    }

    fn start(&mut self, out: &mut Vec<Bytes>) {
        if !self.started {
            self.started = true;
            self.writer.delta(
                out,
                0,
                Delta {
                    role: Some("assistant"),
                    content: Some(""),
                    ..Default::default()
                },
                None,
            );
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<Bytes>) {
        if !text.is_empty() {
            self.start(out);
            self.writer.delta(
                out,
                0,
                Delta {
                    content: Some(text),
                    ..Default::default()
                },
                None,
            );
        }
    }

    fn finish_choice(&mut self, out: &mut Vec<Bytes>) {
        if !self.finished {
            self.start(out);
            self.finished = true;
            let reason = finish_reason(self.stop_reason.as_deref(), self.tool_calls > 0);
            self.writer.delta(out, 0, Delta::default(), Some(reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Backend;
    use crate::providers::translate::testing::{assemble, drive, normalized, provider, PIECES};

    const OPENCLAW: &[u8] = include_bytes!("../../tests/fixtures/openclaw-tool-replay.json");

    fn claude(max_tokens: Option<u64>) -> ProviderConfig {
        provider(Backend::Anthropic, "claude-sonnet-4-5", max_tokens)
    }

    fn translate_with(
        p: &ProviderConfig,
        body: &[u8],
    ) -> Result<(UpstreamRequest, Value), InvalidRequest> {
        let req = ChatRequest::parse(body)?;
        let up = Anthropic.request(p, &req)?;
        let json = serde_json::from_slice(&up.body).expect("body is JSON");
        Ok((up, json))
    }

    fn translate(body: &[u8]) -> Result<(UpstreamRequest, Value), InvalidRequest> {
        translate_with(&claude(Some(8000)), body)
    }

    fn body_of(extra: Value) -> Vec<u8> {
        let mut base = json!({"model":"auto","messages":[{"role":"user","content":"hi"}]});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::to_vec(&base).unwrap()
    }

    fn streaming(include_usage: bool) -> Box<dyn StreamTranslator> {
        let bytes = serde_json::to_vec(
            &json!({"model":"auto","stream":true,"stream_options":{"include_usage":include_usage},
            "messages":[{"role":"user","content":"hi"}]}),
        )
        .unwrap();
        let req = ChatRequest::parse(&bytes).unwrap();
        Anthropic.stream(&claude(None), &req)
    }

    #[test]
    fn openclaw_turn_with_tool_replay_translates_field_by_field() {
        let (up, body) = translate(OPENCLAW).unwrap();
        assert_eq!(up.url, "http://127.0.0.1:9/v1beta/messages");
        let header = |name: &str| {
            up.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
        };
        assert_eq!(header("x-api-key").as_deref(), Some("sk-test-secret"));
        assert!(up
            .headers
            .iter()
            .any(|(n, v)| n == "x-api-key" && v.is_sensitive()));
        assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
        assert_eq!(header("content-type").as_deref(), Some("application/json"));
        assert_eq!(header("x-extra").as_deref(), Some("1"));

        assert_eq!(body["model"], "claude-sonnet-4-5");
        assert_eq!(body["max_tokens"], 8192);
        assert_eq!(body["stream"], true);
        let system = &body["system"][0];
        assert!(system["text"]
            .as_str()
            .unwrap()
            .starts_with("<!-- openclaw:attempt:STABLE -->"));
        assert_eq!(system["cache_control"], json!({"type":"ephemeral"}));

        let messages = body["messages"].as_array().unwrap();
        let roles: Vec<&str> = messages
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
        assert_eq!(
            messages[1]["content"],
            json!([{"type":"tool_use","id":"call_ls_01","name":"ls","input":{"path":"."}},
                   {"type":"tool_use","id":"call_read_02","name":"read","input":{"path":"README.md"}}])
        );
        assert_eq!(
            messages[2]["content"],
            json!([{"type":"tool_result","tool_use_id":"call_ls_01","content":"\"README.md\"\n\"src/\""},
                   {"type":"tool_result","tool_use_id":"call_read_02","content":"# Project\nHello."}])
        );
        assert_eq!(
            messages[3]["content"],
            json!([{"type":"text","text":"The workspace has a README."}])
        );
        let last = &messages[4]["content"][0];
        assert!(last["text"]
            .as_str()
            .unwrap()
            .starts_with("<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>"));
        assert_eq!(last["cache_control"], json!({"type":"ephemeral"}));

        let tools = body["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 12);
        let exec = tools.iter().find(|t| t["name"] == "exec").unwrap();
        assert_eq!(
            exec["input_schema"]["properties"]["env"]["patternProperties"],
            json!({"^.*$":{"type":"string"}})
        );
        assert!(tools
            .iter()
            .all(|t| t["input_schema"]["type"] == "object" && t["description"].is_string()));
        assert_eq!(body["tool_choice"], json!({"type":"auto"}));
    }

    #[test]
    fn max_tokens_is_always_sent() {
        let cases: Vec<(Option<u64>, Value, u64)> = vec![
            (Some(8000), json!({"max_tokens":100}), 100),
            (
                Some(8000),
                json!({"max_completion_tokens":50,"max_tokens":100}),
                50,
            ),
            (Some(8000), json!({}), 8000),
            (None, json!({}), DEFAULT_MAX_TOKENS),
        ];
        for (config, extra, want) in cases {
            let (up, body) = translate_with(&claude(config), &body_of(extra.clone())).unwrap();
            assert_eq!(body["max_tokens"], want, "{extra}");
            assert!(body.get("stream").is_none());
            assert!(up.url.ends_with("/messages"));
        }
    }

    #[test]
    fn sampling_options_map_to_messages_fields() {
        let cases: Vec<(Value, &str, Option<Value>)> = vec![
            (json!({"temperature":0.3}), "temperature", Some(json!(0.3))),
            (json!({"temperature":1.7}), "temperature", Some(json!(1.0))),
            (json!({"top_p":0.9}), "top_p", Some(json!(0.9))),
            (json!({"temperature":0.3,"top_p":0.9}), "top_p", None),
            (
                json!({"stop":"END"}),
                "stop_sequences",
                Some(json!(["END"])),
            ),
            (
                json!({"stop":["a"," ","","b"]}),
                "stop_sequences",
                Some(json!(["a", "b"])),
            ),
            (json!({"stop":["\n"]}), "stop_sequences", None),
            (
                json!({"user":"u-1"}),
                "metadata",
                Some(json!({"user_id":"u-1"})),
            ),
        ];
        for (extra, field, want) in cases {
            let (_, body) = translate(&body_of(extra.clone())).unwrap();
            assert_eq!(body.get(field).cloned(), want, "{extra}");
        }
    }

    #[test]
    fn tool_choice_and_parallel_calls_map_to_tool_choice() {
        let tools = json!([{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}]);
        let cases: Vec<(Value, Value, Option<Value>)> = vec![
            (Value::Null, Value::Null, None),
            (json!("auto"), Value::Null, Some(json!({"type":"auto"}))),
            (json!("none"), Value::Null, Some(json!({"type":"none"}))),
            (json!("required"), Value::Null, Some(json!({"type":"any"}))),
            (
                json!({"type":"function","function":{"name":"f"}}),
                Value::Null,
                Some(json!({"type":"tool","name":"f"})),
            ),
            (
                Value::Null,
                json!(false),
                Some(json!({"type":"auto","disable_parallel_tool_use":true})),
            ),
            (
                json!("required"),
                json!(false),
                Some(json!({"type":"any","disable_parallel_tool_use":true})),
            ),
            (json!("none"), json!(false), Some(json!({"type":"none"}))),
            (json!("auto"), json!(true), Some(json!({"type":"auto"}))),
        ];
        for (choice, parallel, want) in cases {
            let (_, body) = translate(&body_of(
                json!({"tools":tools,"tool_choice":choice,"parallel_tool_calls":parallel}),
            ))
            .unwrap();
            assert_eq!(
                body.get("tool_choice").cloned(),
                want,
                "{choice} {parallel}"
            );
        }
        // No tools, no tool_choice.
        let (_, body) = translate(&body_of(json!({"tool_choice":"auto"}))).unwrap();
        assert!(body.get("tool_choice").is_none() && body.get("tools").is_none());
        // A tool without parameters still gets an object schema.
        let (_, body) = translate(&body_of(
            json!({"tools":[{"type":"function","function":{"name":"ping"}}]}),
        ))
        .unwrap();
        assert_eq!(
            body["tools"],
            json!([{"name":"ping","input_schema":{"type":"object","properties":{}}}])
        );
    }

    #[test]
    fn json_mode_becomes_a_system_instruction_after_the_cached_prompt() {
        let system = json!([{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]);
        let (_, body) = translate(&body_of(
            json!({"messages":system,"response_format":{"type":"json_object"}}),
        ))
        .unwrap();
        let blocks = body["system"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0]["text"], "be brief");
        assert!(blocks[0].get("cache_control").is_some());
        let rule = blocks[1]["text"].as_str().unwrap();
        assert!(
            rule.starts_with("Respond with a single valid JSON object"),
            "{rule}"
        );
        assert!(blocks[1].get("cache_control").is_none());

        let schema = json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false});
        let (_, body) = translate(&body_of(json!({"response_format":{"type":"json_schema",
            "json_schema":{"name":"place","schema":schema,"strict":true}}})))
        .unwrap();
        let blocks = body["system"].as_array().unwrap();
        assert_eq!(blocks.len(), 1);
        let rule = blocks[0]["text"].as_str().unwrap();
        assert!(rule.contains("(named `place`)"), "{rule}");
        let shown: Value =
            serde_json::from_str(rule.rsplit("JSON Schema:\n").next().unwrap()).unwrap();
        assert_eq!(shown, schema);

        let (_, body) = translate(&body_of(json!({"response_format":{"type":"text"}}))).unwrap();
        assert!(body.get("system").is_none());
        let err = translate(&body_of(json!({"response_format":{"type":"yaml"}}))).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("response_format.type"));
    }

    #[test]
    fn images_become_image_blocks() {
        let msg = |url: &str| {
            json!({"messages":[{"role":"user","content":[
            {"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":url}}]}]})
        };
        let (_, body) = translate(&body_of(msg("data:image/jpeg;base64,/9j/4AAQ"))).unwrap();
        assert_eq!(
            body["messages"][0]["content"][1],
            json!({"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AAQ"},"cache_control":{"type":"ephemeral"}})
        );
        let (_, body) = translate(&body_of(msg("https://example.com/cat.png"))).unwrap();
        assert_eq!(
            body["messages"][0]["content"][1]["source"],
            json!({"type":"url","url":"https://example.com/cat.png"})
        );
        let err = translate(&body_of(msg("file:///etc/passwd"))).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].content"));
    }

    #[test]
    fn turns_are_merged_and_empty_text_dropped() {
        let (_, body) = translate(&body_of(json!({"messages":[
            {"role":"system","content":"be brief"},
            {"role":"user","content":"one"},
            {"role":"user","content":[{"type":"text","text":"  "},{"type":"text","text":"two"}]},
            {"role":"assistant","content":""},
            {"role":"developer","content":"and kind"},
            {"role":"assistant","content":"Sure: "}]})))
        .unwrap();
        assert_eq!(body["system"][0]["text"], "be brief\n\nand kind");
        assert_eq!(
            body["messages"],
            json!([{"role":"user","content":[{"type":"text","text":"one"},{"type":"text","text":"two"}]},
                   {"role":"assistant","content":[{"type":"text","text":"Sure:","cache_control":{"type":"ephemeral"}}]}])
        );
    }

    #[test]
    fn tool_ids_from_other_providers_are_made_valid_on_both_sides() {
        let (_, body) = translate(&body_of(json!({"messages":[{"role":"user","content":"x"},
            {"role":"assistant","content":"ok","tool_calls":[{"id":"call:a/1","type":"function","function":{"name":"f","arguments":"{bad"}}]},
            {"role":"tool","tool_call_id":"call:a/1","content":""}]}))).unwrap();
        let msgs = &body["messages"];
        assert_eq!(
            msgs[1]["content"][1],
            json!({"type":"tool_use","id":"call_a_1","name":"f","input":{}})
        );
        assert_eq!(msgs[2]["content"][0]["tool_use_id"], "call_a_1");
        assert!(msgs[2]["content"][0].get("content").is_none());
    }

    fn respond(fixture: &str) -> Result<Value, UpstreamFailure> {
        let req = ChatRequest::parse(br#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        Anthropic
            .response(&claude(None), &req, fixture.as_bytes())
            .map(|b| serde_json::from_slice(&b).expect("completion is JSON"))
    }

    #[test]
    fn text_answer_becomes_a_chat_completion_with_usage() {
        let v = respond(include_str!(
            "../../tests/fixtures/anthropic/response-text.json"
        ))
        .unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "claude-sonnet-4-5");
        assert_eq!(
            v["choices"][0]["message"],
            json!({"role":"assistant","content":"Hello! How can I help?"})
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens":1825,"completion_tokens":9,"total_tokens":1834,"prompt_tokens_details":{"cached_tokens":1800}})
        );
    }

    #[test]
    fn tool_use_becomes_tool_calls() {
        let v = respond(include_str!(
            "../../tests/fixtures/anthropic/response-tool-use.json"
        ))
        .unwrap();
        let msg = &v["choices"][0]["message"];
        assert_eq!(msg["content"], "I'll run it.");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(msg["tool_calls"][0]["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(msg["tool_calls"][0]["function"]["name"], "exec");
        let args: Value = serde_json::from_str(
            msg["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(args, json!({"command":"ls -la","env":{"LANG":"C"}}));
        assert_eq!(v["usage"]["prompt_tokens"], 472 + 2048);
        let v = respond(include_str!(
            "../../tests/fixtures/anthropic/response-refusal.json"
        ))
        .unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    }

    #[test]
    fn stop_reasons_map_to_openai() {
        let cases = [
            (Some("end_turn"), false, "stop"),
            (Some("stop_sequence"), false, "stop"),
            (Some("max_tokens"), false, "length"),
            (Some("max_tokens"), true, "length"),
            (Some("tool_use"), true, "tool_calls"),
            (Some("refusal"), false, "content_filter"),
            (Some("pause_turn"), false, "stop"),
            (None, false, "stop"),
        ];
        for (reason, calls, want) in cases {
            assert_eq!(finish_reason(reason, calls), want, "{reason:?}");
        }
    }

    #[test]
    fn upstream_errors_map_to_fallback_decisions() {
        let cases: &[(u16, &str, FailureKind, u16, &str)] = &[
            (
                529,
                include_str!("../../tests/fixtures/anthropic/error-529-overloaded.json"),
                FailureKind::Provider,
                529,
                "overloaded_error: Overloaded",
            ),
            (
                429,
                include_str!("../../tests/fixtures/anthropic/error-429-rate-limit.json"),
                FailureKind::Provider,
                429,
                "rate_limit_error",
            ),
            (
                400,
                include_str!("../../tests/fixtures/anthropic/error-400-invalid-request.json"),
                FailureKind::Client,
                400,
                "invalid_request_error: messages.1",
            ),
            (
                400,
                include_str!("../../tests/fixtures/anthropic/error-400-credit-balance.json"),
                FailureKind::Provider,
                400,
                "invalid_request_error: Your credit",
            ),
            (
                401,
                include_str!("../../tests/fixtures/anthropic/error-401-auth.json"),
                FailureKind::Provider,
                401,
                "authentication_error",
            ),
            (
                413,
                r#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#,
                FailureKind::Client,
                413,
                "request_too_large",
            ),
            (
                500,
                r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
                FailureKind::Provider,
                500,
                "api_error",
            ),
            (
                404,
                r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}"#,
                FailureKind::Provider,
                404,
                "not_found_error",
            ),
            (
                502,
                "<html>Bad Gateway</html>",
                FailureKind::Provider,
                502,
                "HTTP 502",
            ),
        ];
        for (status, body, kind, want_status, prefix) in cases {
            let f = Anthropic.failure(*status, body.as_bytes());
            assert_eq!((f.kind, f.status), (*kind, *want_status), "{body}");
            assert!(f.message.starts_with(prefix), "{} vs {prefix}", f.message);
        }
    }

    #[test]
    fn text_stream_is_the_same_whatever_the_split_points() {
        let input = include_bytes!("../../tests/fixtures/anthropic/stream-text.sse");
        let whole = drive(streaming(true), input, usize::MAX);
        assert!(whole.result.is_ok());
        for &piece in PIECES {
            let run = drive(streaming(true), input, piece);
            assert!(run.result.is_ok(), "piece {piece}");
            assert_eq!(
                normalized(&run.events),
                normalized(&whole.events),
                "piece {piece}"
            );
        }
        let a = assemble(&whole.events);
        assert!(a.role_first && a.done_last);
        assert_eq!(a.content, "Hello! I'm ready to help — what's first? ✨");
        assert_eq!(a.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            a.usage,
            Some(
                json!({"prompt_tokens":1825,"completion_tokens":15,"total_tokens":1840,"prompt_tokens_details":{"cached_tokens":1800}})
            )
        );
        let crlf = String::from_utf8_lossy(input).replace('\n', "\r\n");
        let run = drive(streaming(true), crlf.as_bytes(), 3);
        assert_eq!(normalized(&run.events), normalized(&whole.events));
    }

    #[test]
    fn usage_chunk_is_sent_only_when_asked() {
        let run = drive(
            streaming(false),
            include_bytes!("../../tests/fixtures/anthropic/stream-text.sse"),
            10,
        );
        let a = assemble(&run.events);
        assert!(a.usage.is_none() && a.done_last && run.result.is_ok());
    }

    #[test]
    fn streamed_tool_use_becomes_tool_call_deltas() {
        let input = include_bytes!("../../tests/fixtures/anthropic/stream-tool-use.sse");
        for &piece in PIECES {
            let run = drive(streaming(true), input, piece);
            assert!(run.result.is_ok());
            let a = assemble(&run.events);
            assert_eq!(a.content, "Let me look at the workspace.");
            assert_eq!(a.finish_reason.as_deref(), Some("tool_calls"));
            assert_eq!(
                a.tool_calls,
                [
                    (
                        "toolu_01T1x1fJ34qAmk2tNTrN7Up6".to_owned(),
                        "ls".to_owned(),
                        r#"{"path": "."}"#.to_owned()
                    ),
                    (
                        "toolu_01ABCdefGHIjklMNOpqrSTUv".to_owned(),
                        "read".to_owned(),
                        r#"{"path":"README.md","limit":50}"#.to_owned()
                    ),
                ]
            );
            let usage = a.usage.unwrap();
            assert_eq!(
                (
                    usage["prompt_tokens"].as_u64(),
                    usage["completion_tokens"].as_u64()
                ),
                (Some(472 + 2048), Some(89))
            );
        }
    }

    #[test]
    fn error_event_before_any_content_fails_with_nothing_sent() {
        let input = include_bytes!("../../tests/fixtures/anthropic/stream-error-overloaded.sse");
        for &piece in PIECES {
            let run = drive(streaming(true), input, piece);
            assert!(
                run.events.is_empty(),
                "nothing reached the client, so the dispatcher can fall back"
            );
            let err = run.result.unwrap_err();
            assert_eq!((err.kind, err.status), (FailureKind::Provider, 529));
            assert_eq!(err.message, "overloaded_error: Overloaded");
        }
        let bad = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}\n\n";
        assert_eq!(
            drive(streaming(false), bad, 5).result.unwrap_err().kind,
            FailureKind::Client
        );
    }

    #[test]
    fn stream_cut_midway_is_a_provider_failure_and_thinking_is_not_shown() {
        let run = drive(
            streaming(true),
            include_bytes!("../../tests/fixtures/anthropic/stream-cut.sse"),
            6,
        );
        let err = run.result.unwrap_err();
        assert_eq!(err.kind, FailureKind::Provider);
        assert!(err.message.contains("cut off"), "{}", err.message);
        let a = assemble(&run.events);
        assert_eq!(a.content, "Once upon a time");
        assert!(a.finish_reason.is_none());
    }

    #[test]
    fn streamed_text_equals_the_non_streamed_answer() {
        let streamed = assemble(
            &drive(
                streaming(false),
                include_bytes!("../../tests/fixtures/anthropic/stream-tool-use.sse"),
                1,
            )
            .events,
        );
        let whole = r#"{"content":[{"type":"text","text":"Let me look at the workspace."},
            {"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"ls","input":{"path":"."}},
            {"type":"tool_use","id":"toolu_01ABCdefGHIjklMNOpqrSTUv","name":"read","input":{"path":"README.md","limit":50}}],
            "stop_reason":"tool_use"}"#;
        let v = respond(whole).unwrap();
        let msg = &v["choices"][0]["message"];
        assert_eq!(msg["content"], streamed.content.as_str());
        for (i, (id, name, args)) in streamed.tool_calls.iter().enumerate() {
            assert_eq!(msg["tool_calls"][i]["id"], id.as_str());
            assert_eq!(msg["tool_calls"][i]["function"]["name"], name.as_str());
            let a: Value = serde_json::from_str(args).unwrap();
            let b: Value = serde_json::from_str(
                msg["tool_calls"][i]["function"]["arguments"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(a, b);
        }
    }
}
