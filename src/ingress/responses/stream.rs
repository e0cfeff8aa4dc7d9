//! The hub's stream (OpenAI `chat.completion.chunk` events) as Responses API events:
//! `response.created`, `response.in_progress`, then per output item
//! `response.output_item.added`, its deltas (`response.output_text.delta` inside a
//! `response.content_part.added`/`.done` pair, `response.function_call_arguments.delta`,
//! `response.reasoning_text.delta`), their `.done` and `response.output_item.done`; then
//! `response.completed` (or `response.incomplete`) with the whole response and its usage. A
//! failure the relay reports (OpenAI's error event) becomes `response.failed`.
//!
//! Items come one after another while chat deltas interleave freely, so an item is closed
//! when a delta of another kind (or another tool call) arrives. The end waits for the usage
//! chunk that follows the finish reason, or for the end of the hub stream.

use std::collections::VecDeque;

use bytes::Bytes;
use serde_json::{json, Value};

use super::response::{
    call_item, message_item, new_id, output_text, reasoning_item, Base, Collected,
};
use crate::ingress::hub_stream;
use crate::metrics::{usage, Usage};
use crate::providers::translate::sse::{SseDecoder, SseEvent};

/// Called once with the final `response` object and the collected answer, when the stream
/// completed (not when it failed).
pub type OnDone = Box<dyn FnOnce(&Value, &Collected) + Send>;

/// What the translator needs to know about the request.
pub struct StreamContext {
    pub base: Base,
    /// The client asked for reasoning: reasoning text is streamed as a reasoning item.
    pub reasoning: bool,
    /// The prompt estimate, for usage when the upstream reports none.
    pub prompt_estimate: u64,
    pub on_done: Option<OnDone>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Open {
    Text {
        id: String,
        start: usize,
    },
    Reasoning {
        id: String,
        start: usize,
    },
    /// A tool call: OpenAI's index of it, and its place in `collected.calls`.
    Call {
        id: String,
        oa_index: u32,
        call: usize,
    },
}

/// Translates a hub stream into Responses events.
pub struct ResponsesEvents<S> {
    inner: S,
    sse: SseDecoder,
    cx: StreamContext,
    out: VecDeque<Bytes>,
    seq: u64,
    started: bool,
    /// Finished output items.
    items: Vec<Value>,
    open: Option<Open>,
    collected: Collected,
    /// OpenAI tool call index → its place in `collected.calls`.
    calls: Vec<(u32, usize)>,
    usage: Option<Usage>,
    output_chars: usize,
    ended: bool,
}

impl<S> ResponsesEvents<S> {
    pub fn new(inner: S, cx: StreamContext) -> Self {
        ResponsesEvents {
            inner,
            sse: SseDecoder::new(),
            cx,
            out: VecDeque::new(),
            seq: 0,
            started: false,
            items: Vec::new(),
            open: None,
            collected: Collected::default(),
            calls: Vec::new(),
            usage: None,
            output_chars: 0,
            ended: false,
        }
    }

    fn emit(&mut self, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        let mut buf = Vec::with_capacity(160);
        buf.extend_from_slice(b"event: ");
        buf.extend_from_slice(kind.as_bytes());
        buf.extend_from_slice(b"\ndata: ");
        if serde_json::to_writer(&mut buf, &data).is_ok() {
            buf.extend_from_slice(b"\n\n");
            self.out.push_back(Bytes::from(buf));
        }
    }

    fn start(&mut self, model: Option<&str>) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(m) = model.filter(|m| !m.is_empty()) {
            self.cx.base.model = m.to_owned();
        }
        let response = self.cx.base.object("in_progress", Vec::new(), None);
        self.emit("response.created", json!({ "response": response }));
        self.emit("response.in_progress", json!({ "response": response }));
    }

    /// The output index the open item has (it is the next after the finished ones).
    fn index(&self) -> usize {
        self.items.len()
    }

    fn close(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        let index = self.index();
        let item = match open {
            Open::Text { id, start } => {
                let text = self.collected.text[start..].to_owned();
                self.emit(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                );
                self.emit(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": output_text(&text)}),
                );
                message_item(&id, &text, "completed")
            }
            Open::Reasoning { id, start } => {
                let text = self.collected.reasoning[start..].to_owned();
                self.emit(
                    "response.reasoning_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text}),
                );
                reasoning_item(&id, &text)
            }
            Open::Call { id, call, .. } => {
                let (call_id, name, args) = self.collected.calls[call].clone();
                self.emit(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "name": name, "arguments": args}),
                );
                call_item(&id, &call_id, &name, &args, "completed")
            }
        };
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.items.push(item);
    }

    fn open(&mut self, open: Open, item: Value) {
        self.close();
        let index = self.index();
        self.emit(
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        );
        if let Open::Text { id, .. } = &open {
            let id = id.clone();
            self.emit(
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0, "part": output_text("")}),
            );
        }
        self.open = Some(open);
    }

    fn text(&mut self, text: &str) {
        let id = match &self.open {
            Some(Open::Text { id, .. }) => id.clone(),
            _ => {
                let id = new_id("msg");
                let start = self.collected.text.len();
                let item = message_item(&id, "", "in_progress");
                self.open(
                    Open::Text {
                        id: id.clone(),
                        start,
                    },
                    item,
                );
                id
            }
        };
        self.collected.text.push_str(text);
        self.output_chars += text.len();
        let index = self.index();
        self.emit(
            "response.output_text.delta",
            json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []}),
        );
    }

    fn reasoning(&mut self, text: &str) {
        self.output_chars += text.len();
        if !self.cx.reasoning {
            return;
        }
        let id = match &self.open {
            Some(Open::Reasoning { id, .. }) => id.clone(),
            _ => {
                let id = new_id("rs");
                let start = self.collected.reasoning.len();
                let item = json!({"id": id, "type": "reasoning", "summary": [], "content": [], "status": "in_progress"});
                self.open(
                    Open::Reasoning {
                        id: id.clone(),
                        start,
                    },
                    item,
                );
                id
            }
        };
        self.collected.reasoning.push_str(text);
        let index = self.index();
        self.emit(
            "response.reasoning_text.delta",
            json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text}),
        );
    }

    fn call(&mut self, call: &Value) {
        let oa_index = call["index"].as_u64().unwrap_or(0) as u32;
        let f = &call["function"];
        let args = f["arguments"].as_str().unwrap_or("");
        self.output_chars += args.len();
        let known = self.calls.iter().find(|(i, _)| *i == oa_index).map(|c| c.1);
        let at = match known {
            Some(at) => at,
            None => {
                let call_id = call["id"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .unwrap_or_else(|| new_id("call"));
                let name = f["name"].as_str().unwrap_or("").to_owned();
                let at = self.collected.calls.len();
                self.collected
                    .calls
                    .push((call_id.clone(), name.clone(), String::new()));
                self.calls.push((oa_index, at));
                let id = new_id("fc");
                let item = call_item(&id, &call_id, &name, "", "in_progress");
                self.open(
                    Open::Call {
                        id,
                        oa_index,
                        call: at,
                    },
                    item,
                );
                at
            }
        };
        if args.is_empty() {
            return;
        }
        self.collected.calls[at].2.push_str(args);
        // A later piece of a call already closed is kept for the final response only.
        if let Some(Open::Call { id, call, .. }) = &self.open {
            if *call == at {
                let id = id.clone();
                let index = self.index();
                self.emit(
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": index, "delta": args}),
                );
            }
        }
    }

    fn end(&mut self) {
        if self.ended {
            return;
        }
        self.start(None);
        self.close();
        self.ended = true;
        let usage = self.usage.unwrap_or_else(|| {
            let mut u = usage::estimate(0, self.output_chars);
            u.prompt = self.cx.prompt_estimate;
            u
        });
        let (status, why) = self.collected.status();
        let mut response =
            self.cx
                .base
                .object(status, std::mem::take(&mut self.items), Some(&usage));
        if let Some(reason) = why {
            response["incomplete_details"] = json!({ "reason": reason });
        }
        if let Some(done) = self.cx.on_done.take() {
            done(&response, &self.collected);
        }
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.emit(kind, json!({ "response": response }));
    }

    fn error(&mut self, error: &Value) {
        self.start(None);
        self.close();
        self.ended = true;
        let message = error["message"]
            .as_str()
            .unwrap_or("the upstream stream failed");
        let response = self
            .cx
            .base
            .failed(std::mem::take(&mut self.items), message);
        self.emit("response.failed", json!({ "response": response }));
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
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            self.error(error);
            return;
        }
        self.start(chunk["model"].as_str());
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let d = &choice["delta"];
        if let Some(r) = d["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
            self.reasoning(r);
        }
        if let Some(t) = d["content"].as_str().filter(|t| !t.is_empty()) {
            self.text(t);
        }
        if let Some(calls) = d["tool_calls"].as_array() {
            for call in calls {
                self.call(call);
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.collected.finish = Some(f.to_owned());
        }
    }
}

hub_stream::hub_events!(ResponsesEvents);

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::io;
    use std::sync::{Arc, Mutex};

    fn translate(events: &[String], reasoning: bool, done: Option<OnDone>) -> Vec<Value> {
        let chunks: Vec<Result<Bytes, io::Error>> = events
            .iter()
            .map(|e| Ok(Bytes::from(format!("data: {e}\n\n"))))
            .collect();
        let cx = StreamContext {
            base: Base::new("gpt-x", serde_json::Map::new()),
            reasoning,
            prompt_estimate: 7,
            on_done: done,
        };
        let s = ResponsesEvents::new(futures_util::stream::iter(chunks), cx);
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
            .enumerate()
            .map(|(i, e)| {
                let (head, data) = e.split_once('\n').unwrap();
                let name = head.strip_prefix("event: ").unwrap();
                let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(v["type"], name);
                assert_eq!(v["sequence_number"], i);
                v
            })
            .collect()
    }

    fn chunk(delta: Value, finish: Value) -> String {
        json!({"id": "c", "object": "chat.completion.chunk", "model": "deepseek-chat",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    }

    fn kinds(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn text_and_a_call_become_items_and_usage_completes_the_response() {
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
        let stored = Arc::new(Mutex::new(None));
        let keep = Arc::clone(&stored);
        let done: OnDone = Box::new(move |r, c| {
            *keep.lock().unwrap() = Some((r.clone(), c.hub_message()));
        });
        let got = translate(&events, true, Some(done));
        assert_eq!(
            kinds(&got),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_text.delta",
                "response.reasoning_text.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        assert_eq!(got[0]["response"]["model"], "deepseek-chat");
        assert_eq!(got[8]["output_index"], 1);
        assert_eq!(got[10]["text"], "Hello");
        assert_eq!(got[13]["item"]["call_id"], "call_1");
        assert_eq!(got[16]["arguments"], "{\"a\":1}");
        let response = &got[18]["response"];
        assert_eq!(response["status"], "completed");
        assert_eq!(response["output"].as_array().unwrap().len(), 3);
        assert_eq!(response["usage"]["input_tokens"], 30);
        assert_eq!(response["usage"]["output_tokens"], 9);
        let (kept, hub) = stored.lock().unwrap().clone().unwrap();
        assert_eq!(&kept, response);
        assert_eq!(hub["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
    }

    #[test]
    fn an_error_fails_the_response_and_a_cut_stream_still_completes() {
        let events = [
            chunk(json!({"reasoning_content": "think"}), Value::Null),
            chunk(json!({"content": "Hi"}), Value::Null),
            json!({"error": {"message": "alpha: stream broke", "type": "upstream_error"}})
                .to_string(),
        ];
        let got = translate(&events, false, None);
        let last = got.last().unwrap();
        assert_eq!(last["type"], "response.failed");
        assert_eq!(last["response"]["status"], "failed");
        assert_eq!(last["response"]["error"]["message"], "alpha: stream broke");
        assert!(!kinds(&got).contains(&"response.reasoning_text.delta"));

        let got = translate(
            &[chunk(json!({"content": "Hi"}), json!("length"))],
            false,
            None,
        );
        let last = got.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(last["response"]["usage"]["input_tokens"], 7);
    }
}
