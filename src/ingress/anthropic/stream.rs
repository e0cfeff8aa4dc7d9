//! The hub's stream (OpenAI `chat.completion.chunk` events) as a Messages API event stream:
//! `message_start`, a `ping`, then per content block `content_block_start`, its deltas
//! (`text_delta`, `thinking_delta`, `input_json_delta`) and `content_block_stop`, then
//! `message_delta` (stop reason and usage) and `message_stop`. A failure the relay reports
//! (OpenAI's error event) becomes an `error` event.
//!
//! Anthropic's events come in blocks while OpenAI's deltas interleave freely, so a block is
//! closed when a delta of another kind (or another tool call) arrives. `message_delta` waits
//! for the usage chunk that follows the finish reason, or for the end.

use std::collections::VecDeque;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::response::{message_id, stop_reason, tool_use_id, usage_json};
use crate::ingress::hub_stream;
use crate::metrics::{usage, Usage};
use crate::providers::translate::sse::{SseDecoder, SseEvent};

/// What the translator needs to know about the request.
#[derive(Debug, Clone)]
pub struct StreamContext {
    /// The model to name until the upstream names its own.
    pub model: String,
    /// The client asked for thinking blocks.
    pub thinking: bool,
    /// The prompt estimate, for `message_start` (the real count comes with `message_delta`).
    pub prompt_estimate: u64,
}

/// The block being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool call: OpenAI's index of it.
    Tool(u32),
}

/// Translates a hub stream into Anthropic events.
pub struct AnthropicEvents<S> {
    inner: S,
    sse: SseDecoder,
    cx: StreamContext,
    out: VecDeque<Bytes>,
    started: bool,
    open: Option<Open>,
    /// The index the next content block gets.
    next_block: u32,
    /// OpenAI tool call index → its block's index.
    tools: Vec<(u32, u32)>,
    finish: Option<String>,
    usage: Option<Usage>,
    output_chars: usize,
    /// `message_stop` (or `error`) went out: nothing follows.
    ended: bool,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Vec<ChunkChoice<'a>>,
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
    #[serde(default, borrow)]
    tool_calls: Vec<CallDelta<'a>>,
}

#[derive(Deserialize)]
struct CallDelta<'a> {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(default, borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<std::borrow::Cow<'a, str>>,
}

impl<S> AnthropicEvents<S> {
    pub fn new(inner: S, cx: StreamContext) -> Self {
        AnthropicEvents {
            inner,
            sse: SseDecoder::new(),
            cx,
            out: VecDeque::new(),
            started: false,
            open: None,
            next_block: 0,
            tools: Vec::new(),
            finish: None,
            usage: None,
            output_chars: 0,
            ended: false,
        }
    }

    fn emit<T: Serialize>(&mut self, name: &str, data: &T) {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(b"event: ");
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b"\ndata: ");
        if serde_json::to_writer(&mut buf, data).is_ok() {
            buf.extend_from_slice(b"\n\n");
            self.out.push_back(Bytes::from(buf));
        }
    }

    fn start(&mut self, model: Option<&str>) {
        if self.started {
            return;
        }
        self.started = true;
        let model = model.unwrap_or(&self.cx.model).to_owned();
        let start = json!({
            "type": "message_start",
            "message": {
                "id": message_id(), "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": self.cx.prompt_estimate, "output_tokens": 0},
            }
        });
        self.emit("message_start", &start);
        self.emit("ping", &json!({"type": "ping"}));
    }

    fn close_block(&mut self) {
        if self.open.take().is_some() {
            let index = self.next_block - 1;
            self.emit(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    /// Make `kind` the open block (closing another), opening it with `block` when new.
    fn open_block(&mut self, kind: Open, block: Value) -> u32 {
        if self.open == Some(kind) {
            return self.next_block - 1;
        }
        self.close_block();
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some(kind);
        self.emit(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        index
    }

    fn text(&mut self, text: &str) {
        let index = self.open_block(Open::Text, json!({"type": "text", "text": ""}));
        self.output_chars += text.len();
        self.emit(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
        );
    }

    fn thinking(&mut self, text: &str) {
        let block = json!({"type": "thinking", "thinking": "", "signature": ""});
        let index = self.open_block(Open::Thinking, block);
        self.output_chars += text.len();
        self.emit(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": text}}),
        );
    }

    fn tool_call(&mut self, call: &CallDelta<'_>) {
        let oa_index = call.index.unwrap_or(0);
        let function = call.function.as_ref();
        let known = self.tools.iter().find(|(i, _)| *i == oa_index).map(|t| t.1);
        // A later piece of a call keeps its block's index, even if another block opened since.
        let index = match known {
            Some(index) => index,
            None => {
                let block = json!({
                    "type": "tool_use",
                    "id": tool_use_id(call.id.as_deref()),
                    "name": function.and_then(|f| f.name.as_deref()).unwrap_or(""),
                    "input": {},
                });
                let index = self.open_block(Open::Tool(oa_index), block);
                self.tools.push((oa_index, index));
                index
            }
        };
        if let Some(args) = function
            .and_then(|f| f.arguments.as_deref())
            .filter(|a| !a.is_empty())
        {
            self.output_chars += args.len();
            self.emit(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}}),
            );
        }
    }

    /// `message_delta` and `message_stop`.
    fn end(&mut self) {
        if self.ended {
            return;
        }
        self.start(None);
        self.close_block();
        self.ended = true;
        let usage = self
            .usage
            .unwrap_or_else(|| usage::estimate(0, self.output_chars));
        let mut u = usage_json(&usage);
        if self.usage.is_none() {
            // Nothing reported: keep message_start's estimate of the prompt.
            u["input_tokens"] = json!(self.cx.prompt_estimate);
        }
        let stop = stop_reason(self.finish.as_deref(), !self.tools.is_empty());
        self.emit(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": u}),
        );
        self.emit("message_stop", &json!({"type": "message_stop"}));
    }

    fn error(&mut self, error: &Value) {
        let message = error["message"]
            .as_str()
            .unwrap_or("the upstream stream failed");
        let overloaded =
            error["code"].as_str() == Some("overloaded") || message.contains("overloaded");
        let kind = if overloaded {
            "overloaded_error"
        } else {
            "api_error"
        };
        self.ended = true;
        self.emit(
            "error",
            &json!({"type": "error", "error": {"type": kind, "message": message}}),
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
            if self.started {
                self.close_block();
            }
            self.error(error);
            return;
        }
        self.start(chunk.model.as_deref());
        for choice in chunk.choices.iter().take(1) {
            if let Some(d) = &choice.delta {
                if let Some(r) = d.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
                    if self.cx.thinking {
                        self.thinking(r);
                    }
                }
                if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
                    self.text(t);
                }
                for call in &d.tool_calls {
                    self.tool_call(call);
                }
            }
            if let Some(f) = &choice.finish_reason {
                self.finish = Some(f.to_string());
            }
        }
    }
}

hub_stream::hub_events!(AnthropicEvents);

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::io;

    fn translate(events: &[&str], thinking: bool) -> Vec<(String, Value)> {
        let chunks: Vec<Result<Bytes, io::Error>> = events
            .iter()
            .map(|e| Ok(Bytes::from(format!("data: {e}\n\n"))))
            .collect();
        let cx = StreamContext {
            model: "claude-x".into(),
            thinking,
            prompt_estimate: 7,
        };
        let s = AnthropicEvents::new(futures_util::stream::iter(chunks), cx);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes: Vec<Bytes> = runtime.block_on(s.map(|r| r.unwrap()).collect());
        let text: String = bytes
            .iter()
            .map(|b| std::str::from_utf8(b).unwrap())
            .collect();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (head, data) = e.split_once('\n').unwrap();
                let name = head.strip_prefix("event: ").unwrap().to_owned();
                let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(v["type"], name.as_str());
                (name, v)
            })
            .collect()
    }

    fn chunk(delta: Value, finish: Value) -> String {
        json!({"id": "c", "object": "chat.completion.chunk", "model": "deepseek-chat",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    }

    #[test]
    fn text_and_a_tool_call_become_blocks_and_usage_ends_the_message() {
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
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let got = translate(&refs, true);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(got[0].1["message"]["model"], "deepseek-chat");
        assert_eq!(got[2].1["content_block"]["type"], "thinking");
        assert_eq!(got[5].1["content_block"]["type"], "text");
        assert_eq!(
            got[9].1["content_block"],
            json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {}})
        );
        assert_eq!(
            got[10].1["delta"],
            json!({"type": "input_json_delta", "partial_json": "{\"a\":"})
        );
        assert_eq!(got[13].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(got[13].1["usage"]["input_tokens"], 30);
        assert_eq!(got[13].1["usage"]["output_tokens"], 9);
    }

    #[test]
    fn reasoning_is_left_out_unless_asked_and_errors_end_the_stream() {
        let events = [
            chunk(json!({"reasoning_content": "think"}), Value::Null),
            chunk(json!({"content": "Hi"}), Value::Null),
            json!({"error": {"message": "alpha: stream broke", "type": "upstream_error", "code": "stream_interrupted"}}).to_string(),
        ];
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let got = translate(&refs, false);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "error"
            ]
        );
        assert_eq!(got[5].1["error"]["type"], "api_error");
    }

    #[test]
    fn a_stream_cut_without_done_still_ends_the_message() {
        let events = [chunk(json!({"content": "Hi"}), json!("stop"))];
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let got = translate(&refs, false);
        assert_eq!(got.last().unwrap().0, "message_stop");
        assert_eq!(got[got.len() - 2].1["delta"]["stop_reason"], "end_turn");
        assert_eq!(got[got.len() - 2].1["usage"]["input_tokens"], 7);
    }
}
