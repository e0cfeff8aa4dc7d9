//! A Responses API request, checked and translated into the hub's form (an OpenAI chat
//! body): `instructions` becomes the system message, the stored conversation of
//! `previous_response_id` comes next, then `input`'s items as chat messages (messages,
//! `function_call` as an assistant's tool calls, `function_call_output` as tool messages);
//! function tools, `tool_choice`, `text.format`, `reasoning.effort`, `max_output_tokens` and
//! the sampling fields get their chat names. Built-in tools and items ClawGate cannot carry
//! out are refused with a 400 rather than dropped. What is lost: `docs/responses.md`.

use serde_json::{json, Map, Value};

use super::store::{Store, Stored};
use crate::ingress::error::ApiError;
use std::sync::Arc;

/// A Responses request in the hub's form, and what its answer needs.
#[derive(Debug)]
pub struct Translated {
    /// The OpenAI chat body.
    pub hub: Vec<u8>,
    /// The requested model, `auto` when the client named none.
    pub model: String,
    pub stream: bool,
    /// Keep the answer for `previous_response_id` and `GET` (`store`, true unless false).
    pub store: bool,
    /// The response this one continues.
    pub previous: Option<Arc<Stored>>,
    /// The hub messages this turn adds to the conversation (its input, not `instructions`).
    pub turn: Vec<Value>,
    /// The conversation key the client gave (or its chain carried).
    pub conversation: Option<String>,
    /// The request's fields a `response` object repeats.
    pub echo: Map<String, Value>,
    /// The client asked for reasoning (`reasoning` set): reasoning text is answered.
    pub reasoning: bool,
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid("invalid_value", message).with_param(param)
}

fn unsupported(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid("unsupported_parameter", message).with_param(param)
}

/// Check and translate a body, looking `previous_response_id` up in `store`.
pub fn translate(body: &[u8], store: &Store) -> Result<Translated, ApiError> {
    let req: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(req) = req else {
        return Err(ApiError::invalid(
            "invalid_type",
            "request body must be a JSON object",
        ));
    };
    let model = match req.get("model") {
        None | Some(Value::Null) => "auto".to_owned(),
        Some(Value::String(m)) if m.trim().is_empty() => "auto".to_owned(),
        Some(Value::String(m)) => m.trim().to_owned(),
        Some(other) => {
            return Err(invalid(
                "model",
                format!("'model' must be a string, got {other}"),
            ))
        }
    };
    for (field, what) in [
        ("conversation", "conversations"),
        ("prompt", "prompt templates"),
    ] {
        if req.get(field).is_some_and(|v| !v.is_null()) {
            return Err(unsupported(
                field,
                format!("'{field}': ClawGate does not keep {what}; use previous_response_id or send the input"),
            ));
        }
    }
    if req.get("background") == Some(&Value::Bool(true)) {
        return Err(unsupported(
            "background",
            "'background': ClawGate answers in the foreground only",
        ));
    }
    let flag = |name: &str| -> Result<Option<bool>, ApiError> {
        match req.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(invalid(
                name,
                format!("'{name}' must be a boolean, got {other}"),
            )),
        }
    };
    let stream = flag("stream")?.unwrap_or(false);
    let store_it = flag("store")?.unwrap_or(true);
    let parallel = flag("parallel_tool_calls")?;

    let previous = match req.get("previous_response_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(store.get(id).ok_or_else(|| {
            ApiError::invalid(
                "previous_response_not_found",
                format!("Previous response with id '{id}' not found (ClawGate keeps responses in memory, for a while, when stored)."),
            )
            .with_param("previous_response_id")
        })?),
        Some(other) => {
            return Err(invalid(
                "previous_response_id",
                format!("'previous_response_id' must be a string, got {other}"),
            ))
        }
    };

    let mut messages = Vec::new();
    match req.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => return Err(invalid("instructions", "'instructions' must be a string")),
    }
    if let Some(p) = &previous {
        messages.extend(p.turn.history());
    }
    let turn = match req.get("input") {
        None | Some(Value::Null) => {
            return Err(
                ApiError::invalid("missing_required_parameter", "'input' is required")
                    .with_param("input"),
            )
        }
        Some(Value::String(s)) => vec![json!({"role": "user", "content": s})],
        Some(Value::Array(items)) => input_items(items)?,
        Some(_) => {
            return Err(invalid(
                "input",
                "'input' must be a string or a list of input items",
            ))
        }
    };
    if turn.is_empty() && previous.is_none() {
        return Err(invalid("input", "'input' must contain at least one item"));
    }
    messages.extend(turn.iter().cloned());

    let mut hub = Map::new();
    hub.insert("model".into(), Value::String(model.clone()));
    hub.insert("messages".into(), Value::Array(messages));
    if stream {
        hub.insert("stream".into(), Value::Bool(true));
        hub.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let mut echo = Map::new();
    let tools = match req.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(tools)) => tools.clone(),
        Some(_) => return Err(invalid("tools", "'tools' must be a list")),
    };
    if !tools.is_empty() {
        let chat: Result<Vec<Value>, ApiError> =
            tools.iter().enumerate().map(|(i, t)| tool(i, t)).collect();
        hub.insert("tools".into(), Value::Array(chat?));
    }
    echo.insert("tools".into(), Value::Array(tools));
    let choice = req.get("tool_choice").cloned().unwrap_or(Value::Null);
    if !choice.is_null() {
        hub.insert("tool_choice".into(), tool_choice(&choice)?);
    }
    echo.insert(
        "tool_choice".into(),
        if choice.is_null() {
            json!("auto")
        } else {
            choice
        },
    );
    if let Some(p) = parallel {
        hub.insert("parallel_tool_calls".into(), Value::Bool(p));
    }
    echo.insert(
        "parallel_tool_calls".into(),
        Value::Bool(parallel.unwrap_or(true)),
    );

    let text = req.get("text").cloned().unwrap_or(Value::Null);
    if let Some(format) = text.get("format").filter(|f| !f.is_null()) {
        if let Some(rf) = response_format(format)? {
            hub.insert("response_format".into(), rf);
        }
    }
    echo.insert(
        "text".into(),
        if text.is_null() {
            json!({"format": {"type": "text"}})
        } else {
            text
        },
    );
    let reasoning = req.get("reasoning").cloned().unwrap_or(Value::Null);
    if let Some(effort) = reasoning.get("effort").filter(|e| !e.is_null()) {
        let Some(effort) = effort.as_str() else {
            return Err(invalid(
                "reasoning.effort",
                "'reasoning.effort' must be a string",
            ));
        };
        hub.insert("reasoning_effort".into(), json!(effort));
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "top_p")] {
        match req.get(from) {
            None | Some(Value::Null) => {
                echo.insert(from.into(), Value::Null);
            }
            Some(n @ Value::Number(_)) => {
                hub.insert(to.into(), n.clone());
                echo.insert(from.into(), n.clone());
            }
            Some(other) => {
                return Err(invalid(
                    from,
                    format!("'{from}' must be a number, got {other}"),
                ))
            }
        }
    }
    match req.get("max_output_tokens") {
        None | Some(Value::Null) => {
            echo.insert("max_output_tokens".into(), Value::Null);
        }
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => {
            hub.insert("max_tokens".into(), Value::Number(n.clone()));
            echo.insert("max_output_tokens".into(), Value::Number(n.clone()));
        }
        Some(other) => {
            return Err(invalid(
                "max_output_tokens",
                format!("'max_output_tokens' must be a positive integer, got {other}"),
            ))
        }
    }
    let key = |name: &str| match req.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    };
    let conversation = key("prompt_cache_key").or_else(|| previous.as_ref()?.conversation.clone());
    if let Some(k) = &conversation {
        hub.insert("prompt_cache_key".into(), json!(k));
    }
    if let Some(user) = key("user").or_else(|| key("safety_identifier")) {
        hub.insert("user".into(), json!(user));
    }
    for name in [
        "instructions",
        "user",
        "prompt_cache_key",
        "safety_identifier",
    ] {
        echo.insert(name.into(), req.get(name).cloned().unwrap_or(Value::Null));
    }
    echo.insert(
        "metadata".into(),
        req.get("metadata").cloned().unwrap_or(json!({})),
    );
    echo.insert(
        "reasoning".into(),
        json!({"effort": reasoning.get("effort").cloned().unwrap_or(Value::Null),
               "summary": reasoning.get("summary").cloned().unwrap_or(Value::Null)}),
    );
    echo.insert("store".into(), Value::Bool(store_it));
    echo.insert("truncation".into(), json!("disabled"));
    echo.insert(
        "previous_response_id".into(),
        req.get("previous_response_id")
            .cloned()
            .unwrap_or(Value::Null),
    );
    let hub = serde_json::to_vec(&Value::Object(hub))
        .map_err(|e| ApiError::invalid("invalid_value", e.to_string()))?;
    Ok(Translated {
        hub,
        model,
        stream,
        store: store_it,
        previous,
        turn,
        conversation,
        echo,
        reasoning: !reasoning.is_null(),
    })
}

/// `input`'s items as chat messages.
fn input_items(items: &[Value]) -> Result<Vec<Value>, ApiError> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("input[{i}]");
        let Some(obj) = item.as_object() else {
            return Err(invalid(&at, format!("'{at}' must be an object")));
        };
        let kind = obj.get("type").and_then(Value::as_str);
        match kind {
            None | Some("message") => out.push(message(&at, obj)?),
            Some("function_call") => {
                let call_id = string(obj, "call_id", &at)?;
                let name = string(obj, "name", &at)?;
                let arguments = obj.get("arguments").and_then(Value::as_str).unwrap_or("{}");
                let call = json!({"id": call_id, "type": "function",
                                  "function": {"name": name, "arguments": arguments}});
                // Calls in a row (and right after the assistant's text) are one assistant turn.
                match out.last_mut() {
                    Some(last) if last["role"] == "assistant" => {
                        match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
                            Some(calls) => calls.push(call),
                            None => {
                                last["tool_calls"] = json!([call]);
                            }
                        }
                    }
                    _ => out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            Some("function_call_output") => {
                let call_id = string(obj, "call_id", &at)?;
                let content = match obj.get("output") {
                    Some(Value::String(s)) => Value::String(s.clone()),
                    Some(Value::Array(parts)) => Value::Array(content_parts(&at, parts)?),
                    _ => return Err(invalid(&at, format!("'{at}.output' must be a string or a list of content"))),
                };
                out.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
            }
            // Reasoning is the model's own; upstreams take none back.
            Some("reasoning") => {}
            Some("item_reference") => {
                return Err(unsupported(
                    &at,
                    format!("'{at}': item references are not supported; send the item itself or use previous_response_id"),
                ))
            }
            Some(other) => {
                return Err(unsupported(
                    &format!("{at}.type"),
                    format!("'{at}': items of type '{other}' are not supported (ClawGate carries messages, function_call and function_call_output)"),
                ))
            }
        }
    }
    Ok(out)
}

fn string<'a>(obj: &'a Map<String, Value>, field: &str, at: &str) -> Result<&'a str, ApiError> {
    obj.get(field).and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid(
            "missing_required_parameter",
            format!("'{at}.{field}' is required"),
        )
        .with_param(format!("{at}.{field}"))
    })
}

/// A message item as a chat message.
fn message(at: &str, obj: &Map<String, Value>) -> Result<Value, ApiError> {
    let role = match obj.get("role").and_then(Value::as_str) {
        Some("user") => "user",
        Some("assistant") => "assistant",
        Some("system") | Some("developer") => "system",
        Some(other) => {
            return Err(invalid(
                &format!("{at}.role"),
                format!("'{at}.role' must be user, assistant, system or developer, got '{other}'"),
            ))
        }
        None => {
            return Err(ApiError::invalid(
                "missing_required_parameter",
                format!("'{at}.role' is required"),
            )
            .with_param(format!("{at}.role")))
        }
    };
    let content = match obj.get("content") {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) if role == "user" => Value::Array(content_parts(at, parts)?),
        // The chat API takes text only from the assistant and the system: parts joined.
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                match p.get("type").and_then(Value::as_str) {
                    Some("input_text") | Some("output_text") | Some("text") => {
                        text.push_str(p.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    Some("refusal") => {
                        text.push_str(p.get("refusal").and_then(Value::as_str).unwrap_or(""))
                    }
                    _ => {
                        return Err(unsupported(
                            &format!("{at}.content[{j}]"),
                            format!("'{at}.content[{j}]': {role} messages take text only"),
                        ))
                    }
                }
            }
            Value::String(text)
        }
        _ => {
            return Err(invalid(
                &format!("{at}.content"),
                format!("'{at}.content' must be a string or a list of content parts"),
            ))
        }
    };
    Ok(json!({"role": role, "content": content}))
}

/// Input content parts (`input_text`, `input_image`) as chat content parts.
fn content_parts(at: &str, parts: &[Value]) -> Result<Vec<Value>, ApiError> {
    parts
        .iter()
        .enumerate()
        .map(|(j, p)| {
            let here = format!("{at}.content[{j}]");
            match p.get("type").and_then(Value::as_str) {
                Some("input_text") | Some("output_text") | Some("text") => Ok(json!({
                    "type": "text",
                    "text": p.get("text").and_then(Value::as_str).unwrap_or(""),
                })),
                Some("input_image") => {
                    let Some(url) = p.get("image_url").and_then(Value::as_str) else {
                        return Err(unsupported(
                            &here,
                            format!("'{here}': images by file_id are not supported; send image_url (a URL or a data URL)"),
                        ));
                    };
                    let mut image = json!({"url": url});
                    if let Some(d) = p.get("detail").and_then(Value::as_str) {
                        image["detail"] = json!(d);
                    }
                    Ok(json!({"type": "image_url", "image_url": image}))
                }
                Some(other) => Err(unsupported(
                    &here,
                    format!("'{here}': content of type '{other}' is not supported (input_text and input_image are)"),
                )),
                None => Err(invalid(&here, format!("'{here}.type' is required"))),
            }
        })
        .collect()
}

/// A Responses tool (function tools only) as a chat tool.
fn tool(i: usize, t: &Value) -> Result<Value, ApiError> {
    let at = format!("tools[{i}]");
    match t.get("type").and_then(Value::as_str) {
        Some("function") => {
            let Some(name) = t.get("name").and_then(Value::as_str) else {
                return Err(ApiError::invalid(
                    "missing_required_parameter",
                    format!("'{at}.name' is required"),
                )
                .with_param(format!("{at}.name")));
            };
            let mut function = json!({"name": name});
            for field in ["description", "parameters", "strict"] {
                if let Some(v) = t.get(field).filter(|v| !v.is_null()) {
                    function[field] = v.clone();
                }
            }
            Ok(json!({"type": "function", "function": function}))
        }
        Some(other) => Err(unsupported(
            &format!("{at}.type"),
            format!("'{at}': built-in tools ('{other}') are not supported by ClawGate; only function tools are"),
        )),
        None => Err(invalid(&at, format!("'{at}.type' is required"))),
    }
}

fn tool_choice(choice: &Value) -> Result<Value, ApiError> {
    match choice {
        Value::String(s) if matches!(s.as_str(), "none" | "auto" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name", "'tool_choice.name' is required"))?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(unsupported(
            "tool_choice",
            format!("'tool_choice' {choice} is not supported (none, auto, required or a function)"),
        )),
    }
}

/// `text.format` as `response_format` (none for plain text).
fn response_format(format: &Value) -> Result<Option<Value>, ApiError> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for field in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(field).filter(|v| !v.is_null()) {
                    schema.insert(field.into(), v.clone());
                }
            }
            if !schema.contains_key("name") || !schema.contains_key("schema") {
                return Err(ApiError::invalid(
                    "missing_required_parameter",
                    "'text.format' of type json_schema needs 'name' and 'schema'",
                )
                .with_param("text.format"));
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        _ => Err(invalid(
            "text.format.type",
            "'text.format.type' must be text, json_object or json_schema",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::responses::store::Turn;

    fn hub(body: Value, store: &Store) -> Value {
        let t = translate(body.to_string().as_bytes(), store).unwrap();
        serde_json::from_slice(&t.hub).unwrap()
    }

    #[test]
    fn a_string_input_with_instructions_and_options_becomes_a_chat_body() {
        let store = Store::default();
        let got = hub(
            json!({"model": "gpt-x", "input": "Hi", "instructions": "Be brief.", "stream": true,
                   "max_output_tokens": 50, "temperature": 0.2, "reasoning": {"effort": "low"},
                   "text": {"format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}, "strict": true}},
                   "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": true}],
                   "tool_choice": {"type": "function", "name": "f"}, "prompt_cache_key": "conv-1"}),
            &store,
        );
        assert_eq!(
            got,
            json!({"model": "gpt-x", "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                   "max_tokens": 50, "temperature": 0.2, "reasoning_effort": "low",
                   "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}, "strict": true}},
                   "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": true}}],
                   "tool_choice": {"type": "function", "function": {"name": "f"}},
                   "prompt_cache_key": "conv-1"})
        );
    }

    #[test]
    fn items_become_messages_tool_calls_and_tool_results() {
        let store = Store::default();
        let got = hub(
            json!({"model": "m", "input": [
                {"role": "developer", "content": "Rules."},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "Weather?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                 "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "w", "arguments": "{\"c\":1}"},
                {"type": "function_call", "call_id": "call_b", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
                {"type": "function_call_output", "call_id": "call_b", "output": "rain"}]}),
            &store,
        );
        assert_eq!(
            got["messages"],
            json!([
                {"role": "system", "content": "Rules."},
                {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}]},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "w", "arguments": "{\"c\":1}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_b", "content": "rain"}
            ])
        );
    }

    #[test]
    fn a_previous_response_brings_its_history_and_its_conversation_key() {
        let store = Store::default();
        store.insert(
            "resp_1".into(),
            Stored {
                response: json!({}),
                turn: Arc::new(Turn {
                    messages: vec![
                        json!({"role": "user", "content": "one"}),
                        json!({"role": "assistant", "content": "two"}),
                    ],
                    parent: None,
                }),
                conversation: Some("chain-key".into()),
            },
        );
        let got = hub(
            json!({"model": "m", "input": "three", "previous_response_id": "resp_1", "instructions": "New."}),
            &store,
        );
        let contents: Vec<&str> = got["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(contents, ["New.", "one", "two", "three"]);
        assert_eq!(got["prompt_cache_key"], "chain-key");
    }

    #[test]
    fn what_cannot_be_carried_is_refused_with_its_param() {
        let store = Store::default();
        let cases = [
            (
                json!({"input": "x", "previous_response_id": "resp_nope"}),
                "previous_response_id",
                "previous_response_not_found",
            ),
            (
                json!({"input": "x", "tools": [{"type": "web_search"}]}),
                "tools[0].type",
                "unsupported_parameter",
            ),
            (
                json!({"input": [{"type": "computer_call_output", "call_id": "c"}]}),
                "input[0].type",
                "unsupported_parameter",
            ),
            (
                json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
                "input[0].content[0]",
                "unsupported_parameter",
            ),
            (json!({"model": "m"}), "input", "missing_required_parameter"),
            (
                json!({"input": "x", "background": true}),
                "background",
                "unsupported_parameter",
            ),
            (
                json!({"input": "x", "text": {"format": {"type": "yaml"}}}),
                "text.format.type",
                "invalid_value",
            ),
        ];
        for (body, param, code) in cases {
            let e = translate(body.to_string().as_bytes(), &store).unwrap_err();
            assert_eq!(e.status, http::StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
            assert_eq!(e.code, code, "{body}");
        }
    }
}
