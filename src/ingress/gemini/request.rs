//! A Gemini `generateContent` request, checked and translated into the hub's form (an OpenAI
//! chat body).
//!
//! Contents become messages (`user` → user, `model` → assistant; `functionCall` parts become
//! `tool_calls`, `functionResponse` parts `tool` messages), `systemInstruction` the system
//! message, `tools[].functionDeclarations` OpenAI functions (their OpenAPI schemas turned
//! into JSON Schema), `toolConfig` `tool_choice`, `generationConfig` the sampling options.
//! Gemini's calls carry no id unless the client set one: ids are made up from the call's
//! position, and a `functionResponse` without one answers the oldest open call of its name.
//! What is dropped (`topK`, built-in tools, safety settings, cached content) is listed in
//! `docs/gemini.md`.

use serde_json::{json, Map, Value};

use crate::request::InvalidRequest;

/// OpenAI accepts at most four stop sequences.
const MAX_STOP_SEQUENCES: usize = 4;

/// A Gemini request in the hub's form, and what the answer's translation needs.
#[derive(Debug, Clone)]
pub struct Translated {
    /// The OpenAI chat body; when the client set `maxOutputTokens`, `max_tokens` is its last
    /// member.
    pub hub: Vec<u8>,
    /// Where the value of `max_tokens` starts in `hub`, and the value.
    pub max_tokens: Option<(usize, u64)>,
    /// The model named in the path (`models/` taken off).
    pub model: String,
    pub stream: bool,
    /// The client asked for thought summaries (`thinkingConfig.includeThoughts`).
    pub thoughts: bool,
}

fn invalid(message: impl Into<String>, param: &str) -> InvalidRequest {
    InvalidRequest {
        message: message.into(),
        param: Some(param.into()),
        code: "invalid_argument",
    }
}

/// A field by its camelCase name, or by its snake_case one (the REST API takes both).
fn field<'v>(obj: &'v Value, camel: &str, snake: &str) -> Option<&'v Value> {
    obj.get(camel)
        .or_else(|| obj.get(snake))
        .filter(|v| !v.is_null())
}

/// Translate a `generateContent` body; `model` and `stream` come from the path.
pub fn translate(body: &[u8], model: &str, stream: bool) -> Result<Translated, InvalidRequest> {
    let req: Value = serde_json::from_slice(body).map_err(|e| InvalidRequest {
        message: format!("Invalid JSON payload received. {e}"),
        param: None,
        code: "invalid_json",
    })?;
    if !req.is_object() {
        return Err(invalid("the request body must be a JSON object", ""));
    }
    let mut hub = Map::new();
    hub.insert("model".into(), json!(model));
    let mut messages = Vec::new();
    if let Some(system) = field(&req, "systemInstruction", "system_instruction") {
        let text = system_text(system)?;
        if !text.is_empty() {
            messages.push(json!({ "role": "system", "content": text }));
        }
    }
    let contents = match field(&req, "contents", "contents") {
        Some(Value::Array(list)) => list.as_slice(),
        Some(Value::Object(_)) => std::slice::from_ref(&req["contents"]),
        Some(_) => return Err(invalid("contents must be a list of Content", "contents")),
        None => &[],
    };
    if contents.is_empty() {
        return Err(invalid(
            "* GenerateContentRequest.contents: contents is not specified",
            "contents",
        ));
    }
    let mut calls = Calls::default();
    for (i, content) in contents.iter().enumerate() {
        turn(i, content, &mut calls, &mut messages)?;
    }
    hub.insert("messages".into(), Value::Array(messages));
    if stream {
        hub.insert("stream".into(), json!(true));
        hub.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    let tools = tools(&req)?;
    if !tools.is_empty() {
        hub.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice(&req) {
            hub.insert("tool_choice".into(), choice);
        }
    }
    let mut max_tokens = None;
    let mut thoughts = false;
    if let Some(config) = field(&req, "generationConfig", "generation_config") {
        max_tokens = generation_config(config, &mut hub)?;
        thoughts = field(config, "thinkingConfig", "thinking_config")
            .and_then(|t| field(t, "includeThoughts", "include_thoughts"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    let mut out = serde_json::to_vec(&Value::Object(hub)).unwrap_or_default();
    let max_tokens = max_tokens.map(|n| {
        out.pop(); // the closing brace
        out.extend_from_slice(b",\"max_tokens\":");
        let at = out.len();
        out.extend_from_slice(n.to_string().as_bytes());
        out.push(b'}');
        (at, n)
    });
    Ok(Translated {
        hub: out,
        max_tokens,
        model: model.to_owned(),
        stream,
        thoughts,
    })
}

/// `systemInstruction`: a Content (its text parts joined) or, leniently, a string.
fn system_text(system: &Value) -> Result<String, InvalidRequest> {
    match system {
        Value::String(s) => Ok(s.clone()),
        Value::Object(_) => {
            let parts = system.get("parts").and_then(Value::as_array);
            let texts: Vec<&str> = parts
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            Ok(texts.join("\n"))
        }
        _ => Err(invalid(
            "systemInstruction must be a Content",
            "systemInstruction",
        )),
    }
}

/// The calls made so far, for the responses that answer them.
#[derive(Default)]
struct Calls {
    /// `(id, name, answered)` in the order they were made.
    made: Vec<(String, String, bool)>,
}

impl Calls {
    fn call(&mut self, id: Option<&str>, name: &str) -> String {
        let id = match id.filter(|i| !i.is_empty()) {
            Some(id) => id.to_owned(),
            None => format!("call_{}_{name}", self.made.len()),
        };
        self.made.push((id.clone(), name.to_owned(), false));
        id
    }

    fn answer(&mut self, id: Option<&str>, name: &str) -> String {
        if let Some(id) = id.filter(|i| !i.is_empty()) {
            if let Some(c) = self.made.iter_mut().find(|c| c.0 == id) {
                c.2 = true;
            }
            return id.to_owned();
        }
        match self.made.iter_mut().find(|c| !c.2 && c.1 == name) {
            Some(c) => {
                c.2 = true;
                c.0.clone()
            }
            None => format!("call_{}_{name}", self.made.len()),
        }
    }
}

/// One `Content` as hub messages.
fn turn(
    i: usize,
    content: &Value,
    calls: &mut Calls,
    messages: &mut Vec<Value>,
) -> Result<(), InvalidRequest> {
    let param = format!("contents[{i}]");
    let role = content
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("user");
    let parts = match content.get("parts") {
        Some(Value::Array(parts)) => parts.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err(invalid("parts must be a list of Part", &param)),
    };
    match role {
        "model" | "assistant" => {
            let mut text = String::new();
            let mut tool_calls = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                if part.get("thought").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                if let Some(t) = part.get("text").and_then(Value::as_str) {
                    text.push_str(t);
                } else if let Some(call) = field(part, "functionCall", "function_call") {
                    let name = call.get("name").and_then(Value::as_str).ok_or_else(|| {
                        invalid(
                            "functionCall.name is required",
                            &format!("{param}.parts[{j}]"),
                        )
                    })?;
                    let id = calls.call(call.get("id").and_then(Value::as_str), name);
                    let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
                    tool_calls.push(json!({
                        "id": id, "type": "function",
                        "function": { "name": name, "arguments": args.to_string() },
                    }));
                }
            }
            if text.is_empty() && tool_calls.is_empty() {
                return Ok(());
            }
            let mut msg = json!({ "role": "assistant", "content": text });
            if !tool_calls.is_empty() {
                if text.is_empty() {
                    msg["content"] = Value::Null;
                }
                msg["tool_calls"] = Value::Array(tool_calls);
            }
            messages.push(msg);
        }
        "user" | "function" | "tool" => {
            let mut user = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let at = format!("{param}.parts[{j}]");
                if let Some(t) = part.get("text").and_then(Value::as_str) {
                    if !t.is_empty() {
                        user.push(json!({ "type": "text", "text": t }));
                    }
                } else if let Some(data) = field(part, "inlineData", "inline_data") {
                    user.push(inline_data(data, &at)?);
                } else if let Some(file) = field(part, "fileData", "file_data") {
                    user.push(file_data(file, &at)?);
                } else if let Some(resp) = field(part, "functionResponse", "function_response") {
                    let name = resp.get("name").and_then(Value::as_str).unwrap_or("");
                    let id = calls.answer(resp.get("id").and_then(Value::as_str), name);
                    let response = resp.get("response").cloned().unwrap_or(Value::Null);
                    // `{"output": …}` / `{"result": …}` is how results are wrapped; a string
                    // inside goes as the text, anything else as JSON.
                    let text = match response.as_object().filter(|o| o.len() == 1) {
                        Some(o) => match o.values().next() {
                            Some(Value::String(s))
                                if o.contains_key("output")
                                    || o.contains_key("result")
                                    || o.contains_key("content") =>
                            {
                                s.clone()
                            }
                            _ => response.to_string(),
                        },
                        None => response.to_string(),
                    };
                    messages.push(json!({ "role": "tool", "tool_call_id": id, "content": text }));
                }
            }
            if !user.is_empty() {
                let content = match user.as_slice() {
                    [only] if only["type"] == "text" => only["text"].clone(),
                    _ => Value::Array(user),
                };
                messages.push(json!({ "role": "user", "content": content }));
            }
        }
        other => {
            return Err(invalid(
                format!("Please use a valid role: user, model. (got {other:?})"),
                &param,
            ))
        }
    }
    Ok(())
}

/// An inline image as a data URL; other media types cannot be said in the hub's form.
fn inline_data(data: &Value, at: &str) -> Result<Value, InvalidRequest> {
    let mime = field(data, "mimeType", "mime_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let b64 = data.get("data").and_then(Value::as_str).unwrap_or("");
    if !mime.starts_with("image/") {
        return Err(invalid(
            format!("inlineData of type {mime:?} is not supported by ClawGate's translation; only images are"),
            at,
        ));
    }
    Ok(json!({ "type": "image_url", "image_url": { "url": format!("data:{mime};base64,{b64}") } }))
}

/// A file by URL, taken when it is an image.
fn file_data(file: &Value, at: &str) -> Result<Value, InvalidRequest> {
    let mime = field(file, "mimeType", "mime_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let uri = field(file, "fileUri", "file_uri")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !mime.is_empty() && !mime.starts_with("image/") {
        return Err(invalid(
            format!("fileData of type {mime:?} is not supported by ClawGate's translation; only images are"),
            at,
        ));
    }
    Ok(json!({ "type": "image_url", "image_url": { "url": uri } }))
}

/// `tools[].functionDeclarations` as OpenAI tools; built-in tools (search, code execution)
/// have no hub form and are left out.
fn tools(req: &Value) -> Result<Vec<Value>, InvalidRequest> {
    let mut out = Vec::new();
    let list = req.get("tools").and_then(Value::as_array);
    for (i, tool) in list.into_iter().flatten().enumerate() {
        let decls =
            field(tool, "functionDeclarations", "function_declarations").and_then(Value::as_array);
        for (j, decl) in decls.into_iter().flatten().enumerate() {
            let name = decl.get("name").and_then(Value::as_str).ok_or_else(|| {
                invalid(
                    "function declaration name is required",
                    &format!("tools[{i}].functionDeclarations[{j}].name"),
                )
            })?;
            let mut function = Map::new();
            function.insert("name".into(), json!(name));
            if let Some(d) = decl.get("description").and_then(Value::as_str) {
                function.insert("description".into(), json!(d));
            }
            let parameters = match (
                field(decl, "parametersJsonSchema", "parameters_json_schema"),
                decl.get("parameters").filter(|p| !p.is_null()),
            ) {
                (Some(schema), _) => schema.clone(),
                (None, Some(openapi)) => json_schema(openapi),
                (None, None) => json!({ "type": "object", "properties": {} }),
            };
            function.insert("parameters".into(), parameters);
            out.push(json!({ "type": "function", "function": function }));
        }
    }
    Ok(out)
}

/// Gemini's OpenAPI subset (`"type": "OBJECT"`, `nullable`) as JSON Schema.
pub fn json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            let nullable = map.get("nullable").and_then(Value::as_bool) == Some(true);
            for (key, value) in map {
                match key.as_str() {
                    "nullable" | "propertyOrdering" => {}
                    "type" => {
                        let t = value
                            .as_str()
                            .map(|t| Value::String(t.to_ascii_lowercase()))
                            .unwrap_or_else(|| value.clone());
                        let t = if nullable { json!([t, "null"]) } else { t };
                        out.insert(key.clone(), t);
                    }
                    "properties" | "$defs" | "definitions" => {
                        let props = value
                            .as_object()
                            .map(|p| {
                                p.iter()
                                    .map(|(k, v)| (k.clone(), json_schema(v)))
                                    .collect::<Map<_, _>>()
                            })
                            .map(Value::Object)
                            .unwrap_or_else(|| value.clone());
                        out.insert(key.clone(), props);
                    }
                    "items" | "additionalProperties" | "not" => {
                        out.insert(key.clone(), json_schema(value));
                    }
                    "anyOf" | "oneOf" | "allOf" | "prefixItems" => {
                        let list = value
                            .as_array()
                            .map(|l| Value::Array(l.iter().map(json_schema).collect()))
                            .unwrap_or_else(|| value.clone());
                        out.insert(key.clone(), list);
                    }
                    _ => {
                        out.insert(key.clone(), value.clone());
                    }
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// `toolConfig.functionCallingConfig` as `tool_choice`.
fn tool_choice(req: &Value) -> Option<Value> {
    let config = field(req, "toolConfig", "tool_config")
        .and_then(|c| field(c, "functionCallingConfig", "function_calling_config"))?;
    let mode = config.get("mode").and_then(Value::as_str).unwrap_or("AUTO");
    let allowed: Vec<&str> = field(config, "allowedFunctionNames", "allowed_function_names")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    Some(match mode.to_ascii_uppercase().as_str() {
        "NONE" => json!("none"),
        "ANY" => match allowed.as_slice() {
            [one] => json!({ "type": "function", "function": { "name": one } }),
            _ => json!("required"),
        },
        _ => json!("auto"),
    })
}

/// `generationConfig` into the hub body; returns `maxOutputTokens`.
fn generation_config(
    config: &Value,
    hub: &mut Map<String, Value>,
) -> Result<Option<u64>, InvalidRequest> {
    let number = |camel: &str, snake: &str| field(config, camel, snake).filter(|v| v.is_number());
    for (camel, snake, hub_name) in [
        ("temperature", "temperature", "temperature"),
        ("topP", "top_p", "top_p"),
        ("seed", "seed", "seed"),
        ("presencePenalty", "presence_penalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty", "frequency_penalty"),
    ] {
        if let Some(v) = number(camel, snake) {
            hub.insert(hub_name.into(), v.clone());
        }
    }
    if let Some(n) = number("candidateCount", "candidate_count").and_then(Value::as_u64) {
        if n > 1 {
            hub.insert("n".into(), json!(n));
        }
    }
    if let Some(stops) = field(config, "stopSequences", "stop_sequences").and_then(Value::as_array)
    {
        let stops: Vec<&Value> = stops.iter().take(MAX_STOP_SEQUENCES).collect();
        if !stops.is_empty() {
            hub.insert("stop".into(), json!(stops));
        }
    }
    let mime = field(config, "responseMimeType", "response_mime_type").and_then(Value::as_str);
    let schema = field(config, "responseJsonSchema", "response_json_schema")
        .cloned()
        .or_else(|| field(config, "responseSchema", "response_schema").map(json_schema));
    match (mime, schema) {
        (Some("application/json"), Some(schema)) | (None, Some(schema)) => {
            hub.insert(
                "response_format".into(),
                json!({ "type": "json_schema", "json_schema": { "name": "response", "schema": schema } }),
            );
        }
        (Some("application/json"), None) => {
            hub.insert("response_format".into(), json!({ "type": "json_object" }));
        }
        (Some("text/plain") | None, None) => {}
        (Some(other), _) => {
            return Err(invalid(
                format!(
                "responseMimeType {other:?} is not supported; use text/plain or application/json"
            ),
                "generationConfig.responseMimeType",
            ))
        }
    }
    if let Some(thinking) = field(config, "thinkingConfig", "thinking_config") {
        let level = field(thinking, "thinkingLevel", "thinking_level")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        let budget = field(thinking, "thinkingBudget", "thinking_budget").and_then(Value::as_i64);
        let effort = match (level.as_deref(), budget) {
            (Some(l @ ("minimal" | "low" | "medium" | "high")), _) => Some(l.to_owned()),
            (_, Some(b)) if b > 0 && b <= 1024 => Some("low".into()),
            (_, Some(b)) if b > 1024 && b <= 8192 => Some("medium".into()),
            (_, Some(b)) if b > 8192 => Some("high".into()),
            _ => None,
        };
        if let Some(effort) = effort {
            hub.insert("reasoning_effort".into(), json!(effort));
        }
    }
    match number("maxOutputTokens", "max_output_tokens") {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(invalid(
                "maxOutputTokens must be a positive integer",
                "generationConfig.maxOutputTokens",
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(body: Value, stream: bool) -> (Value, Translated) {
        let t = translate(body.to_string().as_bytes(), "auto", stream).unwrap();
        (serde_json::from_slice(&t.hub).unwrap(), t)
    }

    #[test]
    fn contents_system_tools_and_config_become_the_hub_body() {
        let (h, t) = hub(
            json!({
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "Weather in Paris?"},
                        {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"output": "sunny"}}}]},
                ],
                "tools": [{"functionDeclarations": [{"name": "weather", "description": "d",
                    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING", "nullable": true}}, "required": ["city"]}}]},
                    {"googleSearch": {}}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}},
                "generationConfig": {"maxOutputTokens": 300, "temperature": 0.2, "topP": 0.9, "topK": 40,
                    "stopSequences": ["END"], "responseMimeType": "text/plain"},
            }),
            true,
        );
        assert_eq!(h["model"], "auto");
        assert_eq!(h["stream"], true);
        assert_eq!(
            h["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(
            h["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,iVBO"
        );
        let call = &h["messages"][2]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "weather");
        assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(h["messages"][3]["role"], "tool");
        assert_eq!(h["messages"][3]["tool_call_id"], call["id"]);
        assert_eq!(h["messages"][3]["content"], "sunny");
        let params = &h["tools"][0]["function"]["parameters"];
        assert_eq!(params["type"], "object");
        assert_eq!(
            params["properties"]["city"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(h["tools"].as_array().unwrap().len(), 1);
        assert_eq!(h["tool_choice"]["function"]["name"], "weather");
        assert_eq!(h["temperature"], 0.2);
        assert_eq!(h["top_p"], 0.9);
        assert_eq!(h["stop"], json!(["END"]));
        assert_eq!(h["max_tokens"], 300);
        let (at, n) = t.max_tokens.unwrap();
        assert_eq!(n, 300);
        assert_eq!(&t.hub[at..], b"300}");
    }

    #[test]
    fn json_output_and_bad_requests() {
        let (h, t) = hub(
            json!({"contents": [{"parts": [{"text": "hi"}]}],
                   "generationConfig": {"responseMimeType": "application/json",
                       "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "INTEGER"}}}}}),
            false,
        );
        assert!(t.max_tokens.is_none());
        assert_eq!(h["messages"][0], json!({"role": "user", "content": "hi"}));
        assert_eq!(h["response_format"]["type"], "json_schema");
        assert_eq!(
            h["response_format"]["json_schema"]["schema"]["properties"]["a"]["type"],
            "integer"
        );
        for bad in [
            json!({"contents": []}),
            json!({"contents": [{"role": "robot", "parts": [{"text": "x"}]}]}),
            json!({"contents": [{"parts": [{"inlineData": {"mimeType": "application/pdf", "data": "x"}}]}]}),
        ] {
            assert!(
                translate(bad.to_string().as_bytes(), "auto", false).is_err(),
                "{bad}"
            );
        }
        assert!(translate(b"{not json", "auto", false).is_err());
    }
}
