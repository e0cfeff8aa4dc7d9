//! The hub's whole answer (an OpenAI `chat.completion`) as an Anthropic `message`, and
//! the pieces the stream's translation shares with it: ids, stop reasons, usage.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::metrics::Usage;
use crate::providers::translate::openai::unique_hex;
use crate::request::Content;

/// A new `msg_…` id.
pub fn message_id() -> String {
    format!("msg_{}", unique_hex())
}

/// Tool use ids the Messages API accepts (`^[a-zA-Z0-9_-]+$`): an id another provider
/// minted is kept where it can be, so that the client's replay of it stays valid should a
/// later turn go to Anthropic.
pub fn tool_use_id(id: Option<&str>) -> String {
    match id.filter(|i| !i.is_empty()) {
        None => format!("toolu_{}", unique_hex()),
        Some(id) => id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
    }
}

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`.
pub fn stop_reason(finish: Option<&str>, called_tools: bool) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        Some("tool_calls") | Some("function_call") => "tool_use",
        _ if called_tools => "tool_use",
        _ => "end_turn",
    }
}

/// Usage in Anthropic's terms: `input_tokens` leaves out the tokens read from cache.
pub fn usage_json(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.prompt.saturating_sub(usage.cache_hit),
        "output_tokens": usage.completion,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cache_hit,
    })
}

/// A tool call's arguments (JSON text) as the `input` object; empty or invalid arguments
/// become `{}`, a value that is not an object is wrapped as `{"value": …}`.
pub fn tool_input(arguments: &str) -> Value {
    let text = arguments.trim();
    if text.is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(other) => json!({ "value": other }),
        Err(_) => Value::Object(Map::new()),
    }
}

#[derive(Deserialize)]
struct Completion<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    message: Option<Message<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    content: Content<'a>,
    /// DeepSeek's (and others') reasoning text.
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Function<'a>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(default, borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// A `chat.completion` body as a Messages API answer; `usage` is what the request is
/// accounted with; `thinking`: the client asked for thinking blocks.
pub fn message(body: &[u8], usage: &Usage, thinking: bool, model: &str) -> Result<Vec<u8>, String> {
    let completion: Completion<'_> =
        serde_json::from_slice(body).map_err(|e| format!("unreadable answer: {e}"))?;
    let choice = completion.choices.into_iter().next();
    let finish = choice
        .as_ref()
        .and_then(|c| c.finish_reason.as_deref().map(str::to_owned));
    let message = choice.and_then(|c| c.message);
    let mut content = Vec::new();
    let mut called = false;
    if let Some(m) = &message {
        if let Some(r) = m
            .reasoning_content
            .as_deref()
            .filter(|r| thinking && !r.is_empty())
        {
            content.push(json!({ "type": "thinking", "thinking": r, "signature": "" }));
        }
        let text = m.content.text();
        if !text.is_empty() {
            content.push(json!({ "type": "text", "text": text }));
        } else if let Some(r) = m.refusal.as_deref().filter(|r| !r.is_empty()) {
            content.push(json!({ "type": "text", "text": r }));
        }
        for call in &m.tool_calls {
            called = true;
            content.push(json!({
                "type": "tool_use",
                "id": tool_use_id(call.id.as_deref()),
                "name": call.function.name,
                "input": tool_input(call.function.arguments.as_deref().unwrap_or("")),
            }));
        }
    }
    let refused = message
        .as_ref()
        .is_some_and(|m| m.refusal.as_deref().is_some_and(|r| !r.is_empty()));
    let stop = if refused && !called {
        "refusal"
    } else {
        stop_reason(finish.as_deref(), called)
    };
    let model = completion.model.as_deref().unwrap_or(model);
    let out = json!({
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": usage_json(usage),
    });
    serde_json::to_vec(&out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage() -> Usage {
        Usage::reported(100, 20, None, None, Some(60))
    }

    fn translate(body: Value, thinking: bool) -> Value {
        let out = message(body.to_string().as_bytes(), &usage(), thinking, "fallback").unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn text_reasoning_and_tool_calls_become_blocks() {
        let v = translate(
            json!({"id": "chatcmpl-1", "model": "deepseek-reasoner", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Checking.", "reasoning_content": "The user wants weather.",
                "tool_calls": [{"id": "call_0:a b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                               {"id": "", "type": "function", "function": {"name": "noop", "arguments": ""}}]}}]}),
            true,
        );
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["model"], "deepseek-reasoner");
        assert!(v["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(
            v["content"][0],
            json!({"type": "thinking", "thinking": "The user wants weather.", "signature": ""})
        );
        assert_eq!(
            v["content"][1],
            json!({"type": "text", "text": "Checking."})
        );
        assert_eq!(
            v["content"][2],
            json!({"type": "tool_use", "id": "call_0_a_b", "name": "get_weather", "input": {"city": "Paris"}})
        );
        assert_eq!(v["content"][3]["input"], json!({}));
        assert!(v["content"][3]["id"]
            .as_str()
            .unwrap()
            .starts_with("toolu_"));
        assert_eq!(
            v["usage"],
            json!({"input_tokens": 40, "output_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60})
        );
    }

    #[test]
    fn finish_reasons_map_to_stop_reasons_and_reasoning_needs_asking() {
        for (finish, want) in [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("content_filter", "refusal"),
        ] {
            let v = translate(
                json!({"choices": [{"finish_reason": finish, "message": {"role": "assistant", "content": "x", "reasoning_content": "r"}}]}),
                false,
            );
            assert_eq!(v["stop_reason"], want);
            assert_eq!(v["model"], "fallback");
            assert_eq!(v["content"], json!([{"type": "text", "text": "x"}]));
        }
    }
}
