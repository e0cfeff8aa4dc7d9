//! The hub's whole answer (an OpenAI `chat.completion`) as a Gemini
//! `GenerateContentResponse`, and the pieces the stream's translation shares with it.

use serde_json::{json, Map, Value};

use crate::metrics::Usage;
use crate::providers::translate::openai::unique_hex;

/// OpenAI's `finish_reason` as Gemini's `finishReason` (a function call ends with `STOP`).
pub fn finish_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "MAX_TOKENS",
        Some("content_filter") => "SAFETY",
        _ => "STOP",
    }
}

/// Usage as `usageMetadata`: reasoning tokens are Gemini's `thoughtsTokenCount`, outside
/// `candidatesTokenCount`.
pub fn usage_metadata(usage: &Usage, reasoning: u64) -> Value {
    let thoughts = reasoning.min(usage.completion);
    let mut u = json!({
        "promptTokenCount": usage.prompt,
        "candidatesTokenCount": usage.completion - thoughts,
        "totalTokenCount": usage.prompt + usage.completion,
    });
    if thoughts > 0 {
        u["thoughtsTokenCount"] = json!(thoughts);
    }
    if usage.cache_hit > 0 {
        u["cachedContentTokenCount"] = json!(usage.cache_hit);
    }
    u
}

/// A tool call's arguments (JSON text) as `args`: an object, `{}` when empty or invalid.
pub fn call_args(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments.trim()) {
        Ok(v @ Value::Object(_)) => v,
        Ok(other) if !other.is_null() => json!({ "value": other }),
        _ => Value::Object(Map::new()),
    }
}

/// A `functionCall` part.
pub fn call_part(id: Option<&str>, name: &str, arguments: &str) -> Value {
    let mut call = json!({ "name": name, "args": call_args(arguments) });
    if let Some(id) = id.filter(|i| !i.is_empty()) {
        call["id"] = json!(id);
    }
    json!({ "functionCall": call })
}

/// A new response id.
pub fn response_id() -> String {
    unique_hex()
}

/// A `chat.completion` body as a `GenerateContentResponse`; `usage` is what the request is
/// accounted with; `thoughts`: the client asked for thought summaries.
pub fn generate_response(
    body: &[u8],
    usage: &Usage,
    thoughts: bool,
    model: &str,
) -> Result<Vec<u8>, String> {
    let completion: Value =
        serde_json::from_slice(body).map_err(|e| format!("unreadable answer: {e}"))?;
    let empty = Vec::new();
    let choices = completion["choices"].as_array().unwrap_or(&empty);
    let mut candidates = Vec::with_capacity(choices.len());
    for (pos, choice) in choices.iter().enumerate() {
        let message = &choice["message"];
        let mut parts = Vec::new();
        if thoughts {
            if let Some(r) = message["reasoning_content"]
                .as_str()
                .filter(|r| !r.is_empty())
            {
                parts.push(json!({ "text": r, "thought": true }));
            }
        }
        let text = match &message["content"] {
            Value::String(s) => s.clone(),
            Value::Array(list) => list
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<String>(),
            _ => String::new(),
        };
        let text = if text.is_empty() {
            message["refusal"].as_str().unwrap_or("").to_owned()
        } else {
            text
        };
        if !text.is_empty() {
            parts.push(json!({ "text": text }));
        }
        for call in message["tool_calls"].as_array().into_iter().flatten() {
            let f = &call["function"];
            parts.push(call_part(
                call["id"].as_str(),
                f["name"].as_str().unwrap_or(""),
                f["arguments"].as_str().unwrap_or(""),
            ));
        }
        if parts.is_empty() {
            parts.push(json!({ "text": "" }));
        }
        candidates.push(json!({
            "content": { "role": "model", "parts": parts },
            "finishReason": finish_reason(choice["finish_reason"].as_str()),
            "index": choice["index"].as_u64().unwrap_or(pos as u64),
        }));
    }
    let reasoning = completion["usage"]["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap_or(0);
    let model = completion["model"].as_str().unwrap_or(model);
    let out = json!({
        "candidates": candidates,
        "usageMetadata": usage_metadata(usage, reasoning),
        "modelVersion": model,
        "responseId": completion["id"].as_str().map(str::to_owned).unwrap_or_else(response_id),
    });
    Ok(out.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_calls_become_parts_and_usage_metadata() {
        let body = json!({
            "id": "chatcmpl-1", "model": "deepseek-chat",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
                "content": "Let me look.", "reasoning_content": "hmm",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        });
        let usage = Usage {
            prompt: 10,
            completion: 5,
            ..Usage::default()
        };
        let out = generate_response(body.to_string().as_bytes(), &usage, false, "x").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let c = &v["candidates"][0];
        assert_eq!(c["finishReason"], "STOP");
        assert_eq!(c["content"]["role"], "model");
        assert_eq!(c["content"]["parts"][0], json!({"text": "Let me look."}));
        assert_eq!(
            c["content"]["parts"][1],
            json!({"functionCall": {"id": "call_1", "name": "weather", "args": {"city": "Paris"}}})
        );
        assert_eq!(v["usageMetadata"]["promptTokenCount"], 10);
        assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 5);
        assert_eq!(v["usageMetadata"]["totalTokenCount"], 15);
        assert_eq!(v["modelVersion"], "deepseek-chat");
    }
}
