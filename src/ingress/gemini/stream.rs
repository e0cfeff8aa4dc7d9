//! The hub's stream (OpenAI `chat.completion.chunk` events) as Gemini's
//! `streamGenerateContent?alt=sse` stream: one `GenerateContentResponse` per event.
//!
//! Text (and, when asked for, thought summaries) goes out as it comes. Gemini sends a
//! function call whole, in one part, so a tool call's argument pieces are gathered and the
//! call sent with the last event, which carries the `finishReason` and `usageMetadata` (it
//! waits for the usage chunk that follows the finish reason, or for the end). A failure the
//! relay reports (OpenAI's error event) becomes Google's error object, and ends the stream.

use std::collections::VecDeque;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::status_name;
use super::response::{call_part, finish_reason, response_id, usage_metadata};
use crate::ingress::hub_stream;
use crate::metrics::{usage, Usage};
use crate::providers::translate::sse::{SseDecoder, SseEvent};

/// What the translator needs to know about the request.
#[derive(Debug, Clone)]
pub struct StreamContext {
    /// The model to name until the upstream names its own.
    pub model: String,
    /// The client asked for thought summaries.
    pub thoughts: bool,
    /// The prompt estimate, for the usage when the upstream reports none.
    pub prompt_estimate: u64,
}

/// Translates a hub stream into Gemini events.
pub struct GeminiEvents<S> {
    inner: S,
    sse: SseDecoder,
    cx: StreamContext,
    id: String,
    out: VecDeque<Bytes>,
    /// Tool calls being gathered: OpenAI index → (id, name, arguments).
    calls: Vec<(u32, String, String, String)>,
    finish: Option<String>,
    usage: Option<Usage>,
    reasoning: u64,
    output_chars: usize,
    ended: bool,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Vec<ChunkChoice<'a>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Vec<CallDelta>,
}

#[derive(Deserialize)]
struct CallDelta {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

impl<S> GeminiEvents<S> {
    pub fn new(inner: S, cx: StreamContext) -> Self {
        GeminiEvents {
            inner,
            sse: SseDecoder::new(),
            cx,
            id: response_id(),
            out: VecDeque::new(),
            calls: Vec::new(),
            finish: None,
            usage: None,
            reasoning: 0,
            output_chars: 0,
            ended: false,
        }
    }

    fn emit(&mut self, data: &Value) {
        let mut buf = Vec::with_capacity(160);
        buf.extend_from_slice(b"data: ");
        if serde_json::to_writer(&mut buf, data).is_ok() {
            buf.extend_from_slice(b"\r\n\r\n");
            self.out.push_back(Bytes::from(buf));
        }
    }

    fn response(&self, parts: Vec<Value>) -> Value {
        json!({
            "candidates": [{ "content": { "role": "model", "parts": parts }, "index": 0 }],
            "modelVersion": self.cx.model,
            "responseId": self.id,
        })
    }

    fn text(&mut self, text: &str, thought: bool) {
        self.output_chars += text.len();
        let part = if thought {
            json!({ "text": text, "thought": true })
        } else {
            json!({ "text": text })
        };
        let resp = self.response(vec![part]);
        self.emit(&resp);
    }

    fn tool_call(&mut self, call: &CallDelta) {
        let index = call.index.unwrap_or(0);
        let pos = match self.calls.iter().position(|c| c.0 == index) {
            Some(pos) => pos,
            None => {
                self.calls
                    .push((index, String::new(), String::new(), String::new()));
                self.calls.len() - 1
            }
        };
        let entry = &mut self.calls[pos];
        if let Some(id) = call.id.as_deref().filter(|i| !i.is_empty()) {
            entry.1 = id.to_owned();
        }
        if let Some(f) = &call.function {
            if let Some(name) = f.name.as_deref().filter(|n| !n.is_empty()) {
                entry.2 = name.to_owned();
            }
            if let Some(args) = &f.arguments {
                entry.3.push_str(args);
                self.output_chars += args.len();
            }
        }
    }

    /// The last event: the gathered calls, the finish reason and the usage.
    fn end(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        let mut parts: Vec<Value> = self
            .calls
            .iter()
            .map(|(_, id, name, args)| call_part(Some(id), name, args))
            .collect();
        if parts.is_empty() {
            parts.push(json!({ "text": "" }));
        }
        let usage = self.usage.unwrap_or_else(|| {
            let mut u = usage::estimate(0, self.output_chars);
            u.prompt = self.cx.prompt_estimate;
            u
        });
        let mut resp = self.response(parts);
        resp["candidates"][0]["finishReason"] = json!(finish_reason(self.finish.as_deref()));
        resp["usageMetadata"] = usage_metadata(&usage, self.reasoning);
        self.emit(&resp);
    }

    fn error(&mut self, error: &Value) {
        let message = error["message"]
            .as_str()
            .unwrap_or("the upstream stream failed");
        self.ended = true;
        let code = if message.contains("overloaded") {
            503
        } else {
            500
        };
        self.emit(
            &json!({ "error": { "code": code, "message": message, "status": status_name(code) } }),
        );
    }

    fn on_event(&mut self, event: &SseEvent) {
        let data = event.data.trim();
        if self.ended || data.is_empty() {
            return;
        }
        if data == "[DONE]" {
            self.end();
            return;
        }
        if let Some(u) = usage::from_sse_event(data.as_bytes()) {
            self.usage = Some(u);
        }
        let Ok(chunk) = serde_json::from_str::<Chunk<'_>>(data) else {
            return;
        };
        if let Some(error) = &chunk.error {
            self.error(error);
            return;
        }
        if let Some(model) = chunk.model.as_deref().filter(|m| !m.is_empty()) {
            if model != self.cx.model {
                self.cx.model = model.to_owned();
            }
        }
        if let Some(r) = chunk
            .usage
            .as_ref()
            .and_then(|u| u["completion_tokens_details"]["reasoning_tokens"].as_u64())
        {
            self.reasoning = r;
        }
        for choice in chunk.choices.iter().take(1) {
            if let Some(d) = &choice.delta {
                if let Some(r) = d.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
                    if self.cx.thoughts {
                        self.text(r, true);
                    }
                }
                if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
                    self.text(t, false);
                }
                for call in &d.tool_calls {
                    self.tool_call(call);
                }
            }
            if let Some(f) = &choice.finish_reason {
                self.finish = Some(f.to_string());
            }
        }
        // The usage chunk (no choices) follows the finish reason: the answer is complete.
        if self.finish.is_some() && chunk.choices.is_empty() && chunk.usage.is_some() {
            self.end();
        }
    }
}

hub_stream::hub_events!(GeminiEvents);

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::io;

    fn translate(events: &[String], thoughts: bool) -> Vec<Value> {
        let chunks: Vec<Result<Bytes, io::Error>> = events
            .iter()
            .map(|e| Ok(Bytes::from(format!("data: {e}\n\n"))))
            .collect();
        let cx = StreamContext {
            model: "gemini-x".into(),
            thoughts,
            prompt_estimate: 7,
        };
        let s = GeminiEvents::new(futures_util::stream::iter(chunks), cx);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes: Vec<Bytes> = runtime.block_on(s.map(|r| r.unwrap()).collect());
        let text: String = bytes
            .iter()
            .map(|b| std::str::from_utf8(b).unwrap())
            .collect();
        text.split("\r\n\r\n")
            .filter(|e| !e.is_empty())
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect()
    }

    fn chunk(delta: Value, finish: Value) -> String {
        json!({"id": "c", "object": "chat.completion.chunk", "model": "deepseek-chat",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    }

    #[test]
    fn text_goes_as_it_comes_and_calls_whole_with_the_finish_and_usage() {
        let events = [
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"reasoning_content": "think"}), Value::Null),
            chunk(json!({"content": "Hel"}), Value::Null),
            chunk(json!({"content": "lo"}), Value::Null),
            chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}), Value::Null),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}), Value::Null),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}), Value::Null),
            chunk(json!({}), json!("tool_calls")),
            json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}}).to_string(),
            "[DONE]".into(),
        ];
        let got = translate(&events, false);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(
            got[0]["candidates"][0]["content"]["parts"][0]["text"],
            "Hel"
        );
        assert_eq!(got[0]["modelVersion"], "deepseek-chat");
        assert_eq!(got[1]["candidates"][0]["content"]["parts"][0]["text"], "lo");
        let last = &got[2];
        assert_eq!(
            last["candidates"][0]["content"]["parts"][0],
            json!({"functionCall": {"id": "call_1", "name": "f", "args": {"a": 1}}})
        );
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(last["usageMetadata"]["promptTokenCount"], 30);
        assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 9);
        let with_thoughts = translate(&events, true);
        assert_eq!(
            with_thoughts[0]["candidates"][0]["content"]["parts"][0],
            json!({"text": "think", "thought": true})
        );
    }

    #[test]
    fn an_error_ends_the_stream_and_a_cut_stream_still_finishes() {
        let events = [
            chunk(json!({"content": "Hi"}), Value::Null),
            json!({"error": {"message": "alpha: stream broke", "type": "upstream_error", "code": "stream_interrupted"}}).to_string(),
        ];
        let got = translate(&events, false);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1]["error"]["code"], 500);
        assert_eq!(got[1]["error"]["status"], "INTERNAL");
        let got = translate(&[chunk(json!({"content": "Hi"}), json!("length"))], false);
        assert_eq!(
            got.last().unwrap()["candidates"][0]["finishReason"],
            "MAX_TOKENS"
        );
        assert_eq!(got.last().unwrap()["usageMetadata"]["promptTokenCount"], 7);
    }
}
