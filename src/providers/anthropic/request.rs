//! The Messages API request for an OpenAI chat request.

use http::HeaderName;
use serde_json::{json, Map, Value};

use super::Anthropic;
use crate::config::ProviderConfig;
use crate::providers::translate::openai::{self, OaMessage, OpenAiRequest, ToolChoice};
use crate::providers::translate::WriteRequest;
use crate::request::{Content, InvalidRequest, Role};

/// The API version this translation is written against.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` when neither the client nor the provider config gives one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

impl WriteRequest for Anthropic {
    fn endpoint(&self, config: &ProviderConfig, _stream: bool) -> String {
        format!("{}/messages", config.base_url)
    }

    fn api_headers(&self, config: &ProviderConfig) -> Vec<(HeaderName, String, bool)> {
        let key = config.api_key.clone();
        let key = key.map(|k| (HeaderName::from_static("x-api-key"), k, true));
        let version = (
            HeaderName::from_static("anthropic-version"),
            ANTHROPIC_VERSION.to_owned(),
            false,
        );
        key.into_iter().chain([version]).collect()
    }

    fn request(
        &self,
        config: &ProviderConfig,
        oa: &OpenAiRequest<'_>,
        stream: bool,
    ) -> Result<Vec<u8>, InvalidRequest> {
        let mut body = build_body(config, oa)?;
        if stream {
            body.insert("stream".into(), Value::Bool(true));
        }
        Ok(serde_json::to_vec(&body).unwrap_or_default())
    }
}

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

    let mut messages = messages(oa)?;
    let as_prompt =
        |text: &str| json!({ "role": "user", "content": [{ "type": "text", "text": text }] });
    if let Some(text) = oa.system_or_prompt(&mut messages, as_prompt)? {
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
