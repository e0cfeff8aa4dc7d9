//! The `generateContent` request for an OpenAI chat request.

use std::collections::HashMap;

use http::HeaderName;
use serde_json::{json, Map, Value};

use super::schema::{self, Dialect};
use super::Gemini;
use crate::config::ProviderConfig;
use crate::providers::translate::openai::{self, OaMessage, OpenAiRequest, ToolChoice};
use crate::providers::translate::WriteRequest;
use crate::request::{Content, InvalidRequest, Role};

/// Gemini 3 rejects a replayed `functionCall` without the `thoughtSignature` it was sent
/// with. OpenAI's `tool_calls` have nowhere to keep one, so replayed calls carry the value
/// Google documents for history that did not come from Gemini; older models ignore it.
pub(super) const REPLAYED_CALL_SIGNATURE: &str = "skip_thought_signature_validator";

/// Gemini accepts at most this many stop sequences.
const MAX_STOP_SEQUENCES: usize = 5;

impl WriteRequest for Gemini {
    fn endpoint(&self, config: &ProviderConfig, stream: bool) -> String {
        let model = config
            .model
            .strip_prefix("models/")
            .unwrap_or(&config.model);
        if stream {
            format!(
                "{}/models/{model}:streamGenerateContent?alt=sse",
                config.base_url
            )
        } else {
            format!("{}/models/{model}:generateContent", config.base_url)
        }
    }

    fn api_headers(&self, config: &ProviderConfig) -> Vec<(HeaderName, String, bool)> {
        let key = config.api_key.clone();
        key.map(|k| (HeaderName::from_static("x-goog-api-key"), k, true))
            .into_iter()
            .collect()
    }

    fn request(
        &self,
        config: &ProviderConfig,
        oa: &OpenAiRequest<'_>,
        _stream: bool,
    ) -> Result<Vec<u8>, InvalidRequest> {
        Ok(serde_json::to_vec(&build_body(config, oa)?).unwrap_or_default())
    }
}

/// The `generateContent` body for an OpenAI request.
pub fn build_body(
    provider: &ProviderConfig,
    oa: &OpenAiRequest<'_>,
) -> Result<Value, InvalidRequest> {
    let mut body = Map::new();
    let mut contents = contents(oa)?;
    let as_prompt = |text: &str| json!({ "role": "user", "parts": [{ "text": text }] });
    if let Some(text) = oa.system_or_prompt(&mut contents, as_prompt)? {
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
        let cleaned = schema::clean(params);
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
                    let cleaned = schema::clean(schema);
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
