//! The hub's whole answer (an OpenAI `chat.completion`) as a `response` object, and the
//! pieces the stream's translation shares with it: ids, output items, usage, the object.

use serde_json::{json, Map, Value};

use crate::metrics::Usage;
use crate::providers::translate::openai::unique_hex;

/// A new id with `prefix` (`resp`, `msg`, `fc`, `rs`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", unique_hex())
}

/// What every `response` object of one request shares.
#[derive(Debug, Clone)]
pub struct Base {
    pub id: String,
    pub created_at: u64,
    pub model: String,
    /// The request's fields the object repeats.
    pub echo: Map<String, Value>,
}

impl Base {
    pub fn new(model: &str, echo: Map<String, Value>) -> Base {
        let created_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Base {
            id: new_id("resp"),
            created_at,
            model: model.to_owned(),
            echo,
        }
    }

    /// The `response` object with this status, output and usage.
    pub fn object(&self, status: &str, output: Vec<Value>, usage: Option<&Usage>) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), json!(self.id));
        o.insert("object".into(), json!("response"));
        o.insert("created_at".into(), json!(self.created_at));
        o.insert("status".into(), json!(status));
        if status == "completed" {
            o.insert("completed_at".into(), json!(now_s()));
        }
        o.insert("error".into(), Value::Null);
        o.insert("incomplete_details".into(), Value::Null);
        o.insert("model".into(), json!(self.model));
        o.insert("output".into(), Value::Array(output));
        o.insert("usage".into(), usage.map(usage_json).unwrap_or(Value::Null));
        for (k, v) in &self.echo {
            o.insert(k.clone(), v.clone());
        }
        Value::Object(o)
    }

    /// The object of a failed response.
    pub fn failed(&self, output: Vec<Value>, message: &str) -> Value {
        let mut o = self.object("failed", output, None);
        o["error"] = json!({"code": "server_error", "message": message});
        o
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Usage in the Responses API's terms.
pub fn usage_json(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.prompt,
        "input_tokens_details": {"cached_tokens": usage.cache_hit, "cache_write_tokens": 0},
        "output_tokens": usage.completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.prompt + usage.completion,
    })
}

/// An assistant message item.
pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    let content = if status == "in_progress" {
        json!([])
    } else {
        json!([output_text(text)])
    };
    json!({"id": id, "type": "message", "role": "assistant", "status": status, "content": content})
}

/// An `output_text` content part.
pub fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A function call item.
pub fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "call_id": call_id,
           "name": name, "arguments": arguments})
}

/// A reasoning item carrying the upstream's reasoning text.
pub fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"id": id, "type": "reasoning", "summary": [],
           "content": [{"type": "reasoning_text", "text": text}], "status": "completed"})
}

/// An answer's output, collected: what the `response` object lists and what the
/// conversation keeps.
#[derive(Debug, Default, Clone)]
pub struct Collected {
    pub reasoning: String,
    pub text: String,
    /// `(call_id, name, arguments)`.
    pub calls: Vec<(String, String, String)>,
    pub finish: Option<String>,
}

impl Collected {
    /// The assistant's turn as a hub message.
    pub fn hub_message(&self) -> Value {
        let mut m = json!({"role": "assistant",
                           "content": if self.text.is_empty() && !self.calls.is_empty() { Value::Null } else { json!(self.text) }});
        if !self.calls.is_empty() {
            m["tool_calls"] = self
                .calls
                .iter()
                .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
        }
        m
    }

    /// The status the answer's finish reason gives, and why it is incomplete.
    pub fn status(&self) -> (&'static str, Option<&'static str>) {
        match self.finish.as_deref() {
            Some("length") => ("incomplete", Some("max_output_tokens")),
            Some("content_filter") => ("incomplete", Some("content_filter")),
            _ => ("completed", None),
        }
    }
}

/// A `chat.completion` body's first choice, collected; `None` when it is no completion.
pub fn collect(body: &[u8]) -> Result<(Collected, Option<String>), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("answer is not JSON: {e}"))?;
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or("answer has no choices")?;
    let m = &choice["message"];
    let mut c = Collected {
        finish: choice["finish_reason"].as_str().map(str::to_owned),
        ..Collected::default()
    };
    c.reasoning = m["reasoning_content"].as_str().unwrap_or("").to_owned();
    c.text = match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => m["refusal"].as_str().unwrap_or("").to_owned(),
    };
    if let Some(calls) = m["tool_calls"].as_array() {
        for call in calls {
            let f = &call["function"];
            c.calls.push((
                call["id"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| new_id("call")),
                f["name"].as_str().unwrap_or("").to_owned(),
                f["arguments"].as_str().unwrap_or("{}").to_owned(),
            ));
        }
    }
    Ok((c, v["model"].as_str().map(str::to_owned)))
}

/// The output items of a collected answer; `reasoning`: the client asked for reasoning.
pub fn output(c: &Collected, reasoning: bool) -> Vec<Value> {
    let mut out = Vec::new();
    if reasoning && !c.reasoning.is_empty() {
        out.push(reasoning_item(&new_id("rs"), &c.reasoning));
    }
    if !c.text.is_empty() || c.calls.is_empty() {
        out.push(message_item(&new_id("msg"), &c.text, "completed"));
    }
    for (call_id, name, args) in &c.calls {
        out.push(call_item(&new_id("fc"), call_id, name, args, "completed"));
    }
    out
}

/// The `response` object for a whole answer.
pub fn object(base: &Base, c: &Collected, usage: &Usage, reasoning: bool) -> Value {
    let (status, why) = c.status();
    let mut o = base.object(status, output(c, reasoning), Some(usage));
    if let Some(reason) = why {
        o["incomplete_details"] = json!({"reason": reason});
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_with_text_and_calls_becomes_output_items() {
        let body = json!({"model": "deepseek-chat", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": "Checking.", "reasoning_content": "hmm",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"c\":1}"}}]}}]});
        let (c, model) = collect(body.to_string().as_bytes()).unwrap();
        assert_eq!(model.as_deref(), Some("deepseek-chat"));
        let base = Base::new("deepseek-chat", Map::new());
        let usage = Usage {
            prompt: 10,
            completion: 4,
            cache_hit: 3,
            ..Usage::default()
        };
        let o = object(&base, &c, &usage, true);
        assert_eq!(o["object"], "response");
        assert_eq!(o["status"], "completed");
        let kinds: Vec<&str> = o["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["reasoning", "message", "function_call"]);
        assert_eq!(o["output"][1]["content"][0]["text"], "Checking.");
        assert_eq!(o["output"][2]["call_id"], "call_1");
        assert_eq!(o["output"][2]["arguments"], "{\"c\":1}");
        assert_eq!(o["usage"]["total_tokens"], 14);
        assert_eq!(o["usage"]["input_tokens_details"]["cached_tokens"], 3);
        assert_eq!(
            c.hub_message(),
            json!({"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"c\":1}"}}]})
        );
    }

    #[test]
    fn a_cut_answer_is_incomplete() {
        let body = json!({"choices": [{"finish_reason": "length", "message": {"content": "Hal"}}]});
        let (c, _) = collect(body.to_string().as_bytes()).unwrap();
        let o = object(&Base::new("m", Map::new()), &c, &Usage::default(), false);
        assert_eq!(o["status"], "incomplete");
        assert_eq!(o["incomplete_details"]["reason"], "max_output_tokens");
    }
}
