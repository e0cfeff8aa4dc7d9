//! Google's native Gemini API (`google-genai` backend), translated to and from OpenAI chat
//! completions.
//!
//! Out: system and developer messages become `systemInstruction`; user/assistant/tool turns
//! become `user`/`model` contents (consecutive same-role turns merged, as the API requires);
//! images given as data URLs become `inlineData`; tools become `functionDeclarations` with
//! their schemas cleaned (see [`gemini_schema`]); sampling options go into
//! `generationConfig`. Back: candidates become choices, `functionCall` parts become
//! `tool_calls`, `usageMetadata` becomes `usage`, and each `streamGenerateContent?alt=sse`
//! event becomes `chat.completion.chunk` events.
//!
//! Remote (`http(s)`) image URLs are refused with a 400: fetching them would make this pure
//! translator do network I/O with its own limits and failure modes.

use std::collections::HashMap;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::config::ProviderConfig;
use crate::providers::translate::gemini_schema::{self, Dialect};
use crate::providers::translate::openai::{
    self, ChunkWriter, Delta, FunctionDelta, OaMessage, OpenAiRequest, ToolCall, ToolCallDelta,
    ToolChoice, Usage,
};
use crate::providers::translate::sse::{SseDecoder, SseEvent};
use crate::providers::translate::{
    upstream_headers, FailureKind, StreamTranslator, Translate, UpstreamFailure, UpstreamRequest,
};
use crate::request::{ChatRequest, Content, InvalidRequest, Role};

/// The `google-genai` backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gemini;

/// Gemini 3 rejects a replayed `functionCall` without the `thoughtSignature` it was sent
/// with. OpenAI's `tool_calls` have nowhere to keep one, so replayed calls carry the value
/// Google documents for history that did not come from Gemini; older models ignore it.
const REPLAYED_CALL_SIGNATURE: &str = "skip_thought_signature_validator";

/// Gemini accepts at most this many stop sequences.
const MAX_STOP_SEQUENCES: usize = 5;

impl Translate for Gemini {
    fn request(
        &self,
        provider: &ProviderConfig,
        req: &ChatRequest<'_>,
    ) -> Result<UpstreamRequest, InvalidRequest> {
        let oa = OpenAiRequest::parse(req.body())?;
        let body = build_body(provider, &oa)?;
        let model = provider
            .model
            .strip_prefix("models/")
            .unwrap_or(&provider.model);
        let url = if req.stream {
            format!(
                "{}/models/{model}:streamGenerateContent?alt=sse",
                provider.base_url
            )
        } else {
            format!("{}/models/{model}:generateContent", provider.base_url)
        };
        let key = provider.api_key.as_deref();
        let own: Vec<(&'static str, &str, bool)> = key
            .map(|k| ("x-goog-api-key", k, true))
            .into_iter()
            .collect();
        Ok(UpstreamRequest {
            url,
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
        let resp: GenerateResponse = serde_json::from_slice(body).map_err(|e| UpstreamFailure {
            kind: FailureKind::Provider,
            status: 502,
            message: format!("unreadable Gemini response: {e}"),
        })?;
        if let Some(error) = &resp.error {
            return Err(classify_error(error.code.unwrap_or(500), error));
        }
        let mut choices = Vec::with_capacity(resp.candidates.len().max(1));
        for (pos, candidate) in resp.candidates.iter().enumerate() {
            let out = CandidateOutput::of(candidate);
            let reason = candidate.finish_reason.as_deref().unwrap_or("STOP");
            if out.is_empty() && is_failed_generation(reason) {
                return Err(failed_generation(reason));
            }
            let finish_reason = finish_reason(reason, !out.calls.is_empty());
            let content = match (out.text.is_empty(), out.calls.is_empty()) {
                (true, false) => None,
                _ => Some(out.text),
            };
            choices.push(openai::Choice {
                index: candidate.index.unwrap_or(pos as u32),
                content,
                tool_calls: out.calls,
                finish_reason,
            });
        }
        if choices.is_empty() {
            match resp
                .prompt_feedback
                .as_ref()
                .and_then(|f| f.block_reason.as_deref())
            {
                Some(_) => choices.push(openai::Choice {
                    index: 0,
                    content: Some(String::new()),
                    tool_calls: Vec::new(),
                    finish_reason: "content_filter",
                }),
                None => {
                    return Err(UpstreamFailure {
                        kind: FailureKind::Provider,
                        status: 502,
                        message: "Gemini returned no candidates".into(),
                    })
                }
            }
        }
        let usage = resp.usage_metadata.as_ref().map(UsageMetadata::to_openai);
        Ok(openai::completion_body(
            &openai::completion_id(),
            &provider.model,
            &choices,
            usage.as_ref(),
        ))
    }

    fn failure(&self, status: u16, body: &[u8]) -> UpstreamFailure {
        match parse_error_body(body) {
            Some(error) => classify_error(status, &error),
            None => classify_error(
                status,
                &ErrorDetail {
                    code: Some(status),
                    message: Some(String::from_utf8_lossy(body).into_owned()),
                    ..Default::default()
                },
            ),
        }
    }

    fn stream(
        &self,
        provider: &ProviderConfig,
        req: &ChatRequest<'_>,
    ) -> Box<dyn StreamTranslator> {
        Box::new(GeminiStream {
            sse: SseDecoder::new(),
            state: StreamState {
                writer: ChunkWriter::new(&provider.model, req.wants_stream_usage()),
                choices: Vec::new(),
                usage: None,
                blocked: false,
            },
        })
    }
}

// ---------------------------------------------------------------------------------------
// Request.

/// The `generateContent` body for an OpenAI request.
pub fn build_body(
    provider: &ProviderConfig,
    oa: &OpenAiRequest<'_>,
) -> Result<Value, InvalidRequest> {
    let mut body = Map::new();
    let system = oa.system_text();
    let mut contents = contents(oa)?;
    if contents.is_empty() {
        // Only system messages: Gemini needs at least one content, so they become the prompt.
        match &system {
            Some(text) => contents.push(json!({ "role": "user", "parts": [{ "text": text }] })),
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
            "systemInstruction".into(),
            json!({ "parts": [{ "text": text }] }),
        );
    }
    body.insert("contents".into(), Value::Array(contents));

    let declarations: Vec<Value> = oa.functions().map(function_declaration).collect();
    if !declarations.is_empty() {
        body.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        if let Some(config) = tool_config(oa.tool_choice()?) {
            body.insert("toolConfig".into(), config);
        }
    }

    let config = generation_config(provider, oa)?;
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(body))
}

/// User/assistant/tool messages as Gemini contents, consecutive same-role turns merged.
fn contents(oa: &OpenAiRequest<'_>) -> Result<Vec<Value>, InvalidRequest> {
    let names = oa.tool_names();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, msg) in oa.messages.iter().enumerate() {
        let (role, parts) = match msg.role {
            Role::System | Role::Developer => continue,
            Role::User => ("user", user_parts(i, &msg.content)?),
            Role::Assistant => ("model", model_parts(msg)),
            Role::Tool | Role::Function => ("user", vec![function_response(msg, &names, i)?]),
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, have)) if *last == role => have.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    Ok(turns
        .into_iter()
        .map(|(role, parts)| json!({ "role": role, "parts": parts }))
        .collect())
}

fn user_parts(index: usize, content: &Content<'_>) -> Result<Vec<Value>, InvalidRequest> {
    let mut parts = Vec::new();
    match content {
        Content::Null => {}
        Content::Text(t) => {
            if !t.is_empty() {
                parts.push(json!({ "text": t }));
            }
        }
        Content::Parts(list) => {
            for part in list {
                if let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) {
                    parts.push(json!({ "text": text }));
                } else if let Some(image) = &part.image_url {
                    let data = openai::parse_data_url(&image.url).ok_or_else(|| {
                        openai::unsupported_image(index, "google-genai", &image.url)
                    })?;
                    parts.push(json!({ "inlineData": { "mimeType": data.media_type, "data": data.base64 } }));
                }
            }
        }
    }
    Ok(parts)
}

fn model_parts(msg: &OaMessage<'_>) -> Vec<Value> {
    let mut parts: Vec<Value> = msg
        .content
        .text_parts()
        .filter(|t| !t.is_empty())
        .map(|t| json!({ "text": t }))
        .collect();
    for (n, call) in msg.tool_calls.iter().flatten().enumerate() {
        let mut part = json!({ "functionCall": { "name": call.function.name, "args": call.function.arguments_object() } });
        if n == 0 {
            part["thoughtSignature"] = Value::String(REPLAYED_CALL_SIGNATURE.into());
        }
        parts.push(part);
    }
    parts
}

fn function_response(
    msg: &OaMessage<'_>,
    names: &HashMap<&str, &str>,
    index: usize,
) -> Result<Value, InvalidRequest> {
    let name = openai::tool_message_name(msg, names, index)?;
    let text = msg.content.text();
    // `response` must be a JSON object: an object result goes as is, anything else is wrapped.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "content": text }),
    };
    Ok(json!({ "functionResponse": { "name": name, "response": response } }))
}

fn function_declaration(f: &openai::OaFunction<'_>) -> Value {
    let mut decl = Map::new();
    decl.insert("name".into(), Value::String(f.name.to_string()));
    if let Some(d) = f.description.as_deref().filter(|d| !d.is_empty()) {
        decl.insert("description".into(), Value::String(d.to_owned()));
    }
    if let Some(params) = &f.parameters {
        let cleaned = gemini_schema::clean(params);
        if !cleaned.is_empty_object() {
            let field = match cleaned.dialect {
                Dialect::OpenApi => "parameters",
                Dialect::JsonSchema => "parametersJsonSchema",
            };
            decl.insert(field.into(), cleaned.schema);
        }
    }
    Value::Object(decl)
}

fn tool_config(choice: Option<ToolChoice<'_>>) -> Option<Value> {
    let config = match choice? {
        ToolChoice::Auto => json!({ "mode": "AUTO" }),
        ToolChoice::None => json!({ "mode": "NONE" }),
        ToolChoice::Required => json!({ "mode": "ANY" }),
        ToolChoice::Function(name) => json!({ "mode": "ANY", "allowedFunctionNames": [name] }),
    };
    Some(json!({ "functionCallingConfig": config }))
}

fn generation_config(
    provider: &ProviderConfig,
    oa: &OpenAiRequest<'_>,
) -> Result<Map<String, Value>, InvalidRequest> {
    let mut c = Map::new();
    if let Some(t) = oa.temperature {
        c.insert("temperature".into(), json!(t));
    }
    if let Some(p) = oa.top_p {
        c.insert("topP".into(), json!(p));
    }
    if let Some(max) = oa.max_output_tokens().or(provider.max_tokens) {
        c.insert("maxOutputTokens".into(), json!(max));
    }
    if let Some(stop) = &oa.stop {
        let seqs: Vec<&str> = stop
            .sequences()
            .into_iter()
            .take(MAX_STOP_SEQUENCES)
            .collect();
        if !seqs.is_empty() {
            c.insert("stopSequences".into(), json!(seqs));
        }
    }
    if let Some(n) = oa.n.filter(|&n| n > 1) {
        c.insert("candidateCount".into(), json!(n));
    }
    if let Some(seed) = oa.seed {
        c.insert("seed".into(), json!(seed));
    }
    if let Some(p) = oa.presence_penalty {
        c.insert("presencePenalty".into(), json!(p));
    }
    if let Some(p) = oa.frequency_penalty {
        c.insert("frequencyPenalty".into(), json!(p));
    }
    if let Some(budget) = oa.reasoning_effort.as_deref().and_then(thinking_budget) {
        c.insert("thinkingConfig".into(), json!({ "thinkingBudget": budget }));
    }
    if let Some(format) = &oa.response_format {
        match format.get("type").and_then(Value::as_str) {
            None | Some("text") => {}
            Some("json_object") => {
                c.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                c.insert("responseMimeType".into(), json!("application/json"));
                if let Some(schema) = format.get("json_schema").and_then(|s| s.get("schema")) {
                    let cleaned = gemini_schema::clean(schema);
                    let field = match cleaned.dialect {
                        Dialect::OpenApi => "responseSchema",
                        Dialect::JsonSchema => "responseJsonSchema",
                    };
                    c.insert(field.into(), cleaned.schema);
                }
            }
            Some(other) => {
                return Err(InvalidRequest {
                    message: format!("response_format type {other:?} is not supported; use \"text\", \"json_object\" or \"json_schema\""),
                    param: Some("response_format.type".into()),
                    code: "invalid_value",
                })
            }
        }
    }
    Ok(c)
}

/// OpenAI's `reasoning_effort` as a Gemini 2.5 thinking budget (the mapping Google's own
/// OpenAI-compatible endpoint uses).
fn thinking_budget(effort: &str) -> Option<u32> {
    match effort {
        "none" => Some(0),
        "minimal" | "low" => Some(1024),
        "medium" => Some(8192),
        "high" => Some(24576),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Response.

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    error: Option<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<GContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct GContent {
    #[serde(default)]
    parts: Vec<GPart>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GPart {
    #[serde(default)]
    text: Option<String>,
    /// A thought summary (only sent when asked for); never part of the answer.
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    function_call: Option<GFunctionCall>,
}

#[derive(Debug, Default, Deserialize)]
struct GFunctionCall {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    tool_use_prompt_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
    #[serde(default)]
    total_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Thinking tokens are output tokens (as OpenAI counts reasoning tokens).
    fn to_openai(&self) -> Usage {
        let prompt = self.prompt_token_count + self.tool_use_prompt_token_count;
        let completion = self.candidates_token_count + self.thoughts_token_count;
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: self
                .total_token_count
                .unwrap_or(prompt + completion)
                .max(prompt + completion),
            prompt_tokens_details: Some(openai::PromptDetails {
                cached_tokens: self.cached_content_token_count,
            }),
            completion_tokens_details: Some(openai::CompletionDetails {
                reasoning_tokens: self.thoughts_token_count,
            }),
        }
    }
}

/// The answer text and tool calls of one candidate (or one streamed piece of it).
struct CandidateOutput {
    text: String,
    calls: Vec<ToolCall>,
}

impl CandidateOutput {
    fn of(candidate: &Candidate) -> Self {
        let mut text = String::new();
        let mut calls = Vec::new();
        for part in candidate.content.iter().flat_map(|c| &c.parts) {
            if part.thought == Some(true) {
                continue;
            }
            if let Some(t) = &part.text {
                text.push_str(t);
            }
            if let Some(call) = &part.function_call {
                let id = match call.id.as_deref().filter(|id| !id.is_empty()) {
                    Some(id) => id.to_owned(),
                    None => format!("call_{}", openai::unique_hex()),
                };
                let args = match &call.args {
                    Some(v @ Value::Object(_)) => v.to_string(),
                    _ => "{}".to_owned(),
                };
                calls.push(ToolCall::new(id, call.name.clone(), args));
            }
        }
        CandidateOutput { text, calls }
    }

    fn is_empty(&self) -> bool {
        self.text.is_empty() && self.calls.is_empty()
    }
}

/// Gemini's `finishReason` as OpenAI's `finish_reason`.
fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

/// Finish reasons that mean the model produced nothing usable (a broken tool call): with no
/// output at all, that is a provider failure worth falling back on, not an empty answer.
fn is_failed_generation(reason: &str) -> bool {
    matches!(
        reason,
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" | "TOO_MANY_TOOL_CALLS"
    )
}

fn failed_generation(reason: &str) -> UpstreamFailure {
    UpstreamFailure {
        kind: FailureKind::Provider,
        status: 502,
        message: format!("Gemini produced no answer (finishReason {reason})"),
    }
}

// ---------------------------------------------------------------------------------------
// Errors.

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    details: Option<Vec<Value>>,
}

/// `{"error": {...}}`, or the same wrapped in an array (as `streamGenerateContent` sends it).
fn parse_error_body(body: &[u8]) -> Option<ErrorDetail> {
    #[derive(Deserialize)]
    struct Wrapper {
        error: ErrorDetail,
    }
    // `Many` first: serde would also read a one-element array as the struct, positionally.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Many(Vec<Wrapper>),
        One(Wrapper),
    }
    match serde_json::from_slice::<Body>(body).ok()? {
        Body::One(w) => Some(w.error),
        Body::Many(list) => list.into_iter().next().map(|w| w.error),
    }
}

/// A Gemini error as a fallback decision. Only a 400 `INVALID_ARGUMENT` about the request
/// is the client's; a 400 about the API key or the account's region is the provider's.
fn classify_error(status: u16, error: &ErrorDetail) -> UpstreamFailure {
    let code = error.status.as_deref().unwrap_or("");
    let message = error.message.as_deref().unwrap_or("").trim();
    let reasons: Vec<&str> = error
        .details
        .iter()
        .flatten()
        .filter_map(|d| d.get("reason").and_then(Value::as_str))
        .collect();
    let key_problem = reasons.iter().any(|r| r.starts_with("API_KEY"))
        || message.to_ascii_lowercase().contains("api key");
    let client = status == 400 && matches!(code, "INVALID_ARGUMENT" | "") && !key_problem;
    let label = if code.is_empty() {
        format!("HTTP {status}")
    } else {
        code.to_owned()
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
        status: if client { 400 } else { status },
        message,
    }
}

// ---------------------------------------------------------------------------------------
// Streaming.

/// Translates a `streamGenerateContent?alt=sse` stream.
struct GeminiStream {
    sse: SseDecoder,
    state: StreamState,
}

struct StreamState {
    writer: ChunkWriter,
    choices: Vec<ChoiceState>,
    /// The latest `usageMetadata` (each event carries the running totals).
    usage: Option<Usage>,
    /// The prompt was blocked (`promptFeedback.blockReason`, no candidates).
    blocked: bool,
}

struct ChoiceState {
    index: u32,
    started: bool,
    tool_calls: u32,
    finished: bool,
}

impl StreamTranslator for GeminiStream {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let state = &mut self.state;
        self.sse.feed(chunk, |event| state.on_event(&event, out))
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let state = &mut self.state;
        self.sse.finish(|event| state.on_event(&event, out))?;
        state.finish(out)
    }
}

impl StreamState {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let resp: GenerateResponse = serde_json::from_str(data).map_err(|e| UpstreamFailure {
            kind: FailureKind::Provider,
            status: 502,
            message: format!("unreadable Gemini stream event: {e}"),
        })?;
        if let Some(error) = &resp.error {
            return Err(classify_error(error.code.unwrap_or(500), error));
        }
        for (pos, candidate) in resp.candidates.iter().enumerate() {
            let index = candidate.index.unwrap_or(pos as u32);
            self.on_candidate(index, candidate, out)?;
        }
        let blocked = resp
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_ref())
            .is_some();
        if resp.candidates.is_empty() && blocked && !self.blocked {
            self.blocked = true;
            let writer = &self.writer;
            let choice = choice_state(&mut self.choices, 0);
            if !choice.finished {
                start(writer, choice, out);
                writer.delta(out, 0, Delta::default(), Some("content_filter"));
                choice.finished = true;
            }
        }
        if let Some(usage) = &resp.usage_metadata {
            self.usage = Some(usage.to_openai());
        }
        Ok(())
    }

    fn on_candidate(
        &mut self,
        index: u32,
        candidate: &Candidate,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        let writer = &self.writer;
        let choice = choice_state(&mut self.choices, index);
        if choice.finished {
            return Ok(());
        }
        let piece = CandidateOutput::of(candidate);
        let reason = candidate.finish_reason.as_deref();
        if let Some(r) = reason {
            if !choice.started && piece.is_empty() && is_failed_generation(r) {
                return Err(failed_generation(r));
            }
        }
        if !piece.is_empty() || reason.is_some() {
            start(writer, choice, out);
        }
        if !piece.text.is_empty() {
            writer.delta(
                out,
                index,
                Delta {
                    content: Some(&piece.text),
                    ..Default::default()
                },
                None,
            );
        }
        for call in &piece.calls {
            let delta = ToolCallDelta {
                index: choice.tool_calls,
                id: Some(&call.id),
                kind: Some("function"),
                function: FunctionDelta {
                    name: Some(&call.function.name),
                    arguments: &call.function.arguments,
                },
            };
            writer.delta(
                out,
                index,
                Delta {
                    tool_calls: Some(vec![delta]),
                    ..Default::default()
                },
                None,
            );
            choice.tool_calls += 1;
        }
        if let Some(r) = reason {
            writer.delta(
                out,
                index,
                Delta::default(),
                Some(finish_reason(r, choice.tool_calls > 0)),
            );
            choice.finished = true;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let cut = self.choices.is_empty() || self.choices.iter().any(|c| !c.finished);
        if cut {
            let message = if self.choices.iter().any(|c| c.started) {
                "Gemini stream ended before its finish reason (cut off midway)"
            } else {
                "Gemini stream ended without an answer"
            };
            return Err(UpstreamFailure {
                kind: FailureKind::Provider,
                status: 502,
                message: message.into(),
            });
        }
        if self.writer.include_usage() {
            self.writer.usage(out, &self.usage.unwrap_or_default());
        }
        ChunkWriter::done(out);
        Ok(())
    }
}

fn choice_state(choices: &mut Vec<ChoiceState>, index: u32) -> &mut ChoiceState {
    let pos = match choices.iter().position(|c| c.index == index) {
        Some(pos) => pos,
        None => {
            choices.push(ChoiceState {
                index,
                started: false,
                tool_calls: 0,
                finished: false,
            });
            choices.len() - 1
        }
    };
    &mut choices[pos]
}

/// The first chunk of a choice carries the role.
fn start(writer: &ChunkWriter, choice: &mut ChoiceState, out: &mut Vec<Bytes>) {
    if !choice.started {
        choice.started = true;
        writer.delta(
            out,
            choice.index,
            Delta {
                role: Some("assistant"),
                content: Some(""),
                ..Default::default()
            },
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Backend;
    use crate::providers::translate::testing::{assemble, drive, normalized, provider, PIECES};

    const OPENCLAW: &[u8] = include_bytes!("../../tests/fixtures/openclaw-tool-replay.json");

    fn gemini() -> ProviderConfig {
        provider(Backend::GoogleGenai, "gemini-2.5-flash", Some(8000))
    }

    fn translate(body: &[u8]) -> Result<(UpstreamRequest, Value), InvalidRequest> {
        let req = ChatRequest::parse(body)?;
        let up = Gemini.request(&gemini(), &req)?;
        let json = serde_json::from_slice(&up.body).expect("body is JSON");
        Ok((up, json))
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

    fn stream_of(body: Value) -> Box<dyn StreamTranslator> {
        let bytes = serde_json::to_vec(&body).unwrap();
        let req = ChatRequest::parse(&bytes).unwrap();
        Gemini.stream(&gemini(), &req)
    }

    fn streaming(include_usage: bool) -> Box<dyn StreamTranslator> {
        stream_of(
            json!({"model":"auto","stream":true,"stream_options":{"include_usage":include_usage},
            "messages":[{"role":"user","content":"hi"}]}),
        )
    }

    #[test]
    fn openclaw_turn_with_tool_replay_translates_field_by_field() {
        let (up, body) = translate(OPENCLAW).unwrap();
        assert_eq!(
            up.url,
            "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert!(
            !up.url.contains("sk-test-secret"),
            "the key never goes in the URL"
        );
        let header = |name: &str| {
            up.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
        };
        assert_eq!(header("x-goog-api-key").as_deref(), Some("sk-test-secret"));
        assert!(up
            .headers
            .iter()
            .any(|(n, v)| n == "x-goog-api-key" && v.is_sensitive()));
        assert_eq!(header("content-type").as_deref(), Some("application/json"));
        assert_eq!(header("x-extra").as_deref(), Some("1"));

        let system = body["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .unwrap();
        assert!(system.starts_with("<!-- openclaw:attempt:STABLE -->"));

        let contents = body["contents"].as_array().unwrap();
        let roles: Vec<&str> = contents
            .iter()
            .map(|c| c["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "model", "user", "model", "user"]);
        assert!(contents[0]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Say hello"));
        let calls = contents[1]["parts"].as_array().unwrap();
        assert_eq!(
            calls[0]["functionCall"],
            json!({"name":"ls","args":{"path":"."}})
        );
        assert_eq!(calls[0]["thoughtSignature"], REPLAYED_CALL_SIGNATURE);
        assert_eq!(
            calls[1]["functionCall"],
            json!({"name":"read","args":{"path":"README.md"}})
        );
        let results = contents[2]["parts"].as_array().unwrap();
        assert_eq!(
            results[0]["functionResponse"],
            json!({"name":"ls","response":{"content":"\"README.md\"\n\"src/\""}})
        );
        assert_eq!(
            results[1]["functionResponse"],
            json!({"name":"read","response":{"content":"# Project\nHello."}})
        );
        assert_eq!(
            contents[3]["parts"],
            json!([{"text":"The workspace has a README."}])
        );
        assert!(contents[4]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>"));

        let decls = body["tools"][0]["functionDeclarations"].as_array().unwrap();
        assert_eq!(decls.len(), 12);
        for d in decls {
            let name = d["name"].as_str().unwrap();
            assert!(d["description"].is_string(), "{name}");
            if let Some(p) = d.get("parameters") {
                let text = p.to_string();
                for banned in [
                    "$schema",
                    "additionalProperties",
                    "patternProperties",
                    "const",
                    "\"properties\":{}",
                ] {
                    assert!(!text.contains(banned), "{name}: {banned} in {text}");
                }
            }
        }
        let exec = decls.iter().find(|d| d["name"] == "exec").unwrap();
        assert_eq!(
            exec["parametersJsonSchema"]["properties"]["env"]["additionalProperties"],
            json!({"type":"string"})
        );
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig":{"mode":"AUTO"}})
        );
        assert_eq!(body["generationConfig"], json!({"maxOutputTokens": 8192}));
    }

    #[test]
    fn non_streamed_requests_use_generate_content() {
        let (up, body) = translate(&body_of(json!({}))).unwrap();
        assert_eq!(
            up.url,
            "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            body["contents"],
            json!([{"role":"user","parts":[{"text":"hi"}]}])
        );
        assert!(body.get("systemInstruction").is_none());
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn sampling_options_map_to_generation_config() {
        let schema = json!({"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false});
        let cases: Vec<(Value, Value)> = vec![
            (json!({}), json!({"maxOutputTokens":8000})),
            (json!({"max_tokens":100}), json!({"maxOutputTokens":100})),
            (
                json!({"max_tokens":100,"max_completion_tokens":50}),
                json!({"maxOutputTokens":50}),
            ),
            (
                json!({"temperature":0.2,"top_p":0.9}),
                json!({"maxOutputTokens":8000,"temperature":0.2,"topP":0.9}),
            ),
            (
                json!({"stop":"END"}),
                json!({"maxOutputTokens":8000,"stopSequences":["END"]}),
            ),
            (
                json!({"stop":["a","b","c","d","e","f"]}),
                json!({"maxOutputTokens":8000,"stopSequences":["a","b","c","d","e"]}),
            ),
            (
                json!({"n":2,"seed":7}),
                json!({"maxOutputTokens":8000,"candidateCount":2,"seed":7}),
            ),
            (json!({"n":1}), json!({"maxOutputTokens":8000})),
            (
                json!({"presence_penalty":0.5,"frequency_penalty":0.1}),
                json!({"maxOutputTokens":8000,"presencePenalty":0.5,"frequencyPenalty":0.1}),
            ),
            (
                json!({"reasoning_effort":"low"}),
                json!({"maxOutputTokens":8000,"thinkingConfig":{"thinkingBudget":1024}}),
            ),
            (
                json!({"response_format":{"type":"text"}}),
                json!({"maxOutputTokens":8000}),
            ),
            (
                json!({"response_format":{"type":"json_object"}}),
                json!({"maxOutputTokens":8000,"responseMimeType":"application/json"}),
            ),
            (
                json!({"response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":schema}}}),
                json!({"maxOutputTokens":8000,"responseMimeType":"application/json",
                       "responseSchema":{"type":"object","properties":{"a":{"type":"string"}}}}),
            ),
        ];
        for (extra, want) in cases {
            let (_, body) = translate(&body_of(extra.clone())).unwrap();
            assert_eq!(body["generationConfig"], want, "{extra}");
        }
        let err = translate(&body_of(json!({"response_format":{"type":"yaml"}}))).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("response_format.type"));
    }

    #[test]
    fn tool_choice_maps_to_function_calling_config() {
        let tools = json!([{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"type":"string"}}}}}]);
        let cases: Vec<(Value, Option<Value>)> = vec![
            (Value::Null, None),
            (json!("auto"), Some(json!({"mode":"AUTO"}))),
            (json!("none"), Some(json!({"mode":"NONE"}))),
            (json!("required"), Some(json!({"mode":"ANY"}))),
            (
                json!({"type":"function","function":{"name":"f"}}),
                Some(json!({"mode":"ANY","allowedFunctionNames":["f"]})),
            ),
        ];
        for (choice, want) in cases {
            let (_, body) =
                translate(&body_of(json!({"tools":tools,"tool_choice":choice}))).unwrap();
            assert_eq!(
                body["toolConfig"].get("functionCallingConfig").cloned(),
                want,
                "{choice}"
            );
        }
        let err =
            translate(&body_of(json!({"tools":tools,"tool_choice":"sometimes"}))).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("tool_choice"));
    }

    #[test]
    fn parameterless_tools_are_declared_without_parameters() {
        let tools = json!([{"type":"function","function":{"name":"now","description":"time","parameters":{"type":"object","properties":{}}}},
                           {"type":"function","function":{"name":"ping"}}]);
        let (_, body) = translate(&body_of(json!({"tools":tools}))).unwrap();
        assert_eq!(
            body["tools"][0]["functionDeclarations"],
            json!([{"name":"now","description":"time"},{"name":"ping"}])
        );
    }

    #[test]
    fn images_go_inline_and_remote_urls_are_refused() {
        let msg = |url: &str| {
            json!({"messages":[{"role":"user","content":[
            {"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":url,"detail":"high"}}]}]})
        };
        let (_, body) = translate(&body_of(msg("data:image/png;base64,iVBORw0KGgo="))).unwrap();
        assert_eq!(
            body["contents"][0]["parts"],
            json!([{"text":"what is this?"},{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}}])
        );
        let err = translate(&body_of(msg("https://example.com/cat.png"))).unwrap_err();
        assert!(
            err.message.contains("remote image URLs are not fetched"),
            "{}",
            err.message
        );
        assert_eq!(err.param.as_deref(), Some("messages[0].content"));
    }

    #[test]
    fn consecutive_turns_of_one_role_are_merged_and_empty_ones_dropped() {
        let (_, body) = translate(&body_of(json!({"messages":[
            {"role":"system","content":"be brief"},
            {"role":"user","content":"one"},
            {"role":"assistant","content":""},
            {"role":"user","content":[{"type":"text","text":"two"}]},
            {"role":"developer","content":"and kind"},
            {"role":"assistant","content":"ok"},
            {"role":"assistant","content":null},
            {"role":"assistant","content":"more"}]})))
        .unwrap();
        assert_eq!(
            body["systemInstruction"],
            json!({"parts":[{"text":"be brief\n\nand kind"}]})
        );
        assert_eq!(
            body["contents"],
            json!([{"role":"user","parts":[{"text":"one"},{"text":"two"}]},{"role":"model","parts":[{"text":"ok"},{"text":"more"}]}])
        );
    }

    #[test]
    fn system_only_requests_send_the_system_text_as_the_prompt() {
        let (_, body) = translate(&body_of(
            json!({"messages":[{"role":"system","content":"say hi"}]}),
        ))
        .unwrap();
        assert_eq!(
            body["contents"],
            json!([{"role":"user","parts":[{"text":"say hi"}]}])
        );
        assert!(body.get("systemInstruction").is_none());
    }

    #[test]
    fn tool_results_need_a_matching_call() {
        let err = translate(&body_of(json!({"messages":[{"role":"user","content":"x"},
            {"role":"tool","tool_call_id":"nope","content":"r"}]})))
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[1].tool_call_id"));
        // A JSON object result is passed as the response itself.
        let (_, body) = translate(&body_of(json!({"messages":[{"role":"user","content":"x"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":""}}]},
            {"role":"tool","tool_call_id":"c1","content":"{\"ok\":true}"}]}))).unwrap();
        assert_eq!(
            body["contents"][1]["parts"][0]["functionCall"],
            json!({"name":"f","args":{}})
        );
        assert_eq!(
            body["contents"][2]["parts"][0]["functionResponse"],
            json!({"name":"f","response":{"ok":true}})
        );
    }

    fn respond(fixture: &str) -> Result<Value, UpstreamFailure> {
        let req = ChatRequest::parse(br#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        Gemini
            .response(&gemini(), &req, fixture.as_bytes())
            .map(|b| serde_json::from_slice(&b).expect("completion is JSON"))
    }

    #[test]
    fn text_answer_becomes_a_chat_completion_with_usage() {
        let v = respond(include_str!(
            "../../tests/fixtures/gemini/response-text.json"
        ))
        .unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(v["model"], "gemini-2.5-flash");
        assert_eq!(
            v["choices"][0]["message"],
            json!({"role":"assistant","content":"Hello! How can I help?"})
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens":1203,"completion_tokens":39,"total_tokens":1242,
                   "prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":30}})
        );
    }

    #[test]
    fn function_calls_become_tool_calls_with_ids() {
        let v = respond(include_str!(
            "../../tests/fixtures/gemini/response-tool-call.json"
        ))
        .unwrap();
        let msg = &v["choices"][0]["message"];
        assert_eq!(msg["content"], Value::Null);
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let calls = msg["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "exec");
        let args: Value =
            serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"command":"ls -la","env":{"LANG":"C"}}));
        let (a, b) = (
            calls[0]["id"].as_str().unwrap(),
            calls[1]["id"].as_str().unwrap(),
        );
        assert!(a.starts_with("call_") && b.starts_with("call_") && a != b);
    }

    #[test]
    fn finish_reasons_map_to_openai() {
        let cases = [
            ("STOP", false, "stop"),
            ("STOP", true, "tool_calls"),
            ("MAX_TOKENS", false, "length"),
            ("MAX_TOKENS", true, "length"),
            ("SAFETY", false, "content_filter"),
            ("RECITATION", false, "content_filter"),
            ("PROHIBITED_CONTENT", false, "content_filter"),
            ("OTHER", false, "stop"),
            ("FINISH_REASON_UNSPECIFIED", false, "stop"),
        ];
        for (reason, calls, want) in cases {
            assert_eq!(finish_reason(reason, calls), want, "{reason} {calls}");
        }
    }

    #[test]
    fn safety_blocks_become_content_filter_not_errors() {
        for fixture in [
            include_str!("../../tests/fixtures/gemini/response-safety.json"),
            include_str!("../../tests/fixtures/gemini/response-prompt-blocked.json"),
        ] {
            let v = respond(fixture).unwrap();
            assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
            assert_eq!(v["choices"][0]["message"]["content"], "");
        }
    }

    #[test]
    fn a_malformed_function_call_with_no_output_is_a_provider_failure() {
        let err = respond(include_str!(
            "../../tests/fixtures/gemini/response-malformed-call.json"
        ))
        .unwrap_err();
        assert_eq!(err.kind, FailureKind::Provider);
        assert!(err.message.contains("MALFORMED_FUNCTION_CALL"));
        let err = respond("<html>oops</html>").unwrap_err();
        assert_eq!(err.kind, FailureKind::Provider);
    }

    #[test]
    fn upstream_errors_map_to_fallback_decisions() {
        let cases: &[(u16, &str, FailureKind, u16, &str)] = &[
            (
                429,
                include_str!("../../tests/fixtures/gemini/error-429.json"),
                FailureKind::Provider,
                429,
                "RESOURCE_EXHAUSTED: You exceeded",
            ),
            (
                400,
                include_str!("../../tests/fixtures/gemini/error-400-invalid-argument.json"),
                FailureKind::Client,
                400,
                "INVALID_ARGUMENT: * GenerateContentRequest",
            ),
            (
                400,
                include_str!("../../tests/fixtures/gemini/error-400-api-key.json"),
                FailureKind::Provider,
                400,
                "INVALID_ARGUMENT: API key not valid",
            ),
            (
                503,
                include_str!("../../tests/fixtures/gemini/error-503-array.json"),
                FailureKind::Provider,
                503,
                "UNAVAILABLE: The model is overloaded",
            ),
            (
                404,
                include_str!("../../tests/fixtures/gemini/error-404.json"),
                FailureKind::Provider,
                404,
                "NOT_FOUND: models/gemini-9-flash",
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#,
                FailureKind::Provider,
                403,
                "PERMISSION_DENIED",
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#,
                FailureKind::Provider,
                400,
                "FAILED_PRECONDITION",
            ),
            (
                502,
                "<html>Bad Gateway</html>",
                FailureKind::Provider,
                502,
                "HTTP 502: <html>",
            ),
            (
                400,
                "not json",
                FailureKind::Client,
                400,
                "HTTP 400: not json",
            ),
        ];
        for (status, body, kind, want_status, prefix) in cases {
            let f = Gemini.failure(*status, body.as_bytes());
            assert_eq!(f.kind, *kind, "{body}");
            assert_eq!(f.status, *want_status, "{body}");
            assert!(f.message.starts_with(prefix), "{} vs {prefix}", f.message);
        }
    }

    #[test]
    fn text_stream_is_the_same_whatever_the_split_points() {
        let input = include_bytes!("../../tests/fixtures/gemini/stream-text.sse");
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
        assert_eq!(
            a.content,
            "Hello! I'm ready to help with your workspace — what's first? ✨"
        );
        assert_eq!(a.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            a.usage.as_ref().unwrap()["prompt_tokens_details"]["cached_tokens"],
            1024
        );
        assert_eq!(a.usage.as_ref().unwrap()["completion_tokens"], 58);
        // Role, three content deltas, finish, usage, [DONE].
        assert_eq!(whole.events.len(), 7);
        // LF line endings are read the same as Gemini's CRLF.
        let lf = String::from_utf8_lossy(input).replace("\r\n", "\n");
        let run = drive(streaming(true), lf.as_bytes(), 5);
        assert_eq!(normalized(&run.events), normalized(&whole.events));
    }

    #[test]
    fn usage_chunk_is_sent_only_when_asked() {
        let input = include_bytes!("../../tests/fixtures/gemini/stream-text.sse");
        let run = drive(streaming(false), input, 10);
        let a = assemble(&run.events);
        assert!(a.usage.is_none() && a.done_last);
        assert!(run.events.iter().all(|e| e.get("usage").is_none()));
    }

    #[test]
    fn streamed_function_calls_become_tool_call_deltas() {
        let input = include_bytes!("../../tests/fixtures/gemini/stream-tool-call.sse");
        for &piece in PIECES {
            let run = drive(streaming(true), input, piece);
            assert!(run.result.is_ok());
            let a = assemble(&run.events);
            assert_eq!(a.content, "Let me look at the workspace.");
            assert_eq!(a.finish_reason.as_deref(), Some("tool_calls"));
            let names: Vec<(&str, &str)> = a
                .tool_calls
                .iter()
                .map(|(_, n, args)| (n.as_str(), args.as_str()))
                .collect();
            assert_eq!(
                names,
                [
                    ("ls", r#"{"path":"."}"#),
                    ("read", r#"{"limit":50,"path":"README.md"}"#)
                ]
            );
            assert!(a
                .tool_calls
                .iter()
                .all(|(id, _, _)| id.starts_with("call_")));
            assert_ne!(a.tool_calls[0].0, a.tool_calls[1].0);
            assert_eq!(a.usage.as_ref().unwrap()["completion_tokens"], 150);
        }
    }

    #[test]
    fn stream_cut_midway_is_a_provider_failure() {
        let input = include_bytes!("../../tests/fixtures/gemini/stream-cut.sse");
        let run = drive(streaming(true), input, 9);
        let err = run.result.unwrap_err();
        assert_eq!(err.kind, FailureKind::Provider);
        assert!(err.message.contains("cut off"), "{}", err.message);
        assert_eq!(assemble(&run.events).content, "Once upon a time, in a land");
        let run = drive(streaming(true), b"", 1);
        assert_eq!(run.result.unwrap_err().kind, FailureKind::Provider);
        assert!(run.events.is_empty());
    }

    #[test]
    fn error_event_mid_stream_fails_the_feed() {
        let input = include_bytes!("../../tests/fixtures/gemini/stream-error.sse");
        let run = drive(streaming(true), input, 4);
        let err = run.result.unwrap_err();
        assert_eq!((err.kind, err.status), (FailureKind::Provider, 503));
        assert!(err.message.starts_with("UNAVAILABLE"));
    }

    #[test]
    fn blocked_prompt_streams_a_content_filter_finish() {
        let input = include_bytes!("../../tests/fixtures/gemini/stream-prompt-blocked.sse");
        let run = drive(streaming(false), input, 3);
        assert!(run.result.is_ok());
        let a = assemble(&run.events);
        assert!(a.role_first && a.done_last);
        assert_eq!(a.finish_reason.as_deref(), Some("content_filter"));
    }

    #[test]
    fn malformed_call_before_any_output_fails_the_stream_so_it_can_fall_back() {
        let event = br#"data: {"candidates":[{"content":{},"finishReason":"MALFORMED_FUNCTION_CALL","index":0}]}

"#;
        let run = drive(streaming(false), event, 7);
        assert!(run.events.is_empty());
        assert_eq!(run.result.unwrap_err().kind, FailureKind::Provider);
    }

    #[test]
    fn several_candidates_stream_as_separate_choices() {
        let input = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"A\"}]},\"index\":0},{\"content\":{\"parts\":[{\"text\":\"B\"}]},\"index\":1}]}\n\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"finishReason\":\"STOP\",\"index\":0},{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"MAX_TOKENS\",\"index\":1}]}\n\n",
        );
        let run = drive(streaming(false), input.as_bytes(), 11);
        assert!(run.result.is_ok());
        let mut text = [String::new(), String::new()];
        let mut finish = [None, None];
        for e in &run.events {
            for c in e["choices"].as_array().into_iter().flatten() {
                let i = c["index"].as_u64().unwrap() as usize;
                text[i].push_str(c["delta"]["content"].as_str().unwrap_or(""));
                if let Some(r) = c["finish_reason"].as_str() {
                    finish[i] = Some(r.to_owned());
                }
            }
        }
        assert_eq!(text, ["Aa", "Bb"]);
        assert_eq!(finish, [Some("stop".to_owned()), Some("length".to_owned())]);
    }

    #[test]
    fn streamed_text_equals_the_non_streamed_answer() {
        // The same answer, recorded both ways.
        let streamed = assemble(
            &drive(
                streaming(false),
                include_bytes!("../../tests/fixtures/gemini/stream-text.sse"),
                1,
            )
            .events,
        );
        let whole = r#"{"candidates":[{"content":{"parts":[{"text":"Hello! I'm ready to help with your workspace — what's first? ✨"}],"role":"model"},"finishReason":"STOP","index":0}]}"#;
        let v = respond(whole).unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"],
            streamed.content.as_str()
        );
        assert_eq!(
            v["choices"][0]["finish_reason"],
            streamed.finish_reason.unwrap().as_str()
        );
    }
}
