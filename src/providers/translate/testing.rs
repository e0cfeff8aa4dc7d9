//! Helpers for the translators' unit tests: a provider config, driving a stream translator
//! with arbitrary split points, and reading back the OpenAI chunks it wrote.

use std::path::Path;

use bytes::Bytes;
use serde_json::Value;

use crate::config::{Backend, Config, ProviderConfig};
use crate::providers::translate::{StreamTranslator, UpstreamFailure};

/// A provider as `config.yaml` would declare it (built through the real loader, so the test
/// keeps up with new config fields).
pub fn provider(backend: Backend, model: &str, max_tokens: Option<u64>) -> ProviderConfig {
    let max = max_tokens
        .map(|m| format!("\n    max_tokens: {m}"))
        .unwrap_or_default();
    let yaml = format!(
        "providers:\n  p:\n    backend: {}\n    base_url: http://127.0.0.1:9/v1beta\n    api_key: sk-test-secret\n    model: {model}{max}\n    headers:\n      x-extra: \"1\"\nfallback_chain: [p]\n",
        backend.as_str()
    );
    let config =
        Config::from_str(&yaml, Path::new("test.yaml"), &|_| None).expect("test config loads");
    config.providers.into_iter().next().expect("one provider")
}

/// What a stream translator wrote, and how it ended.
pub struct Run {
    /// Every SSE event written, as JSON (`[DONE]` as the string `"[DONE]"`).
    pub events: Vec<Value>,
    /// Events written before the first error.
    pub result: Result<(), UpstreamFailure>,
}

/// Feed `input` in pieces of `piece` bytes, then finish (unless a feed failed).
pub fn drive(mut t: Box<dyn StreamTranslator>, input: &[u8], piece: usize) -> Run {
    let mut out: Vec<Bytes> = Vec::new();
    let mut result = Ok(());
    for chunk in input.chunks(piece.max(1)) {
        result = t.feed(chunk, &mut out);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = t.finish(&mut out);
    }
    let events = out.iter().map(|b| parse_event(b)).collect();
    Run { events, result }
}

fn parse_event(bytes: &[u8]) -> Value {
    let text = std::str::from_utf8(bytes).expect("chunks are UTF-8");
    assert!(
        text.starts_with("data: ") && text.ends_with("\n\n"),
        "not one SSE event: {text:?}"
    );
    let data = &text[6..text.len() - 2];
    if data == "[DONE]" {
        return Value::String("[DONE]".into());
    }
    let v: Value = serde_json::from_str(data).expect("chunk is JSON");
    assert_eq!(v["object"], "chat.completion.chunk");
    assert!(v["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-")));
    v
}

/// The events with per-run values (ids, timestamps) blanked, for comparing runs.
pub fn normalized(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(o) = e.as_object_mut() {
                o.remove("id");
                o.remove("created");
            }
            if let Some(choices) = e.get_mut("choices").and_then(Value::as_array_mut) {
                for c in choices {
                    if let Some(calls) = c
                        .pointer_mut("/delta/tool_calls")
                        .and_then(Value::as_array_mut)
                    {
                        for call in calls {
                            if call.get("id").is_some() {
                                call["id"] = Value::String("<id>".into());
                            }
                        }
                    }
                }
            }
            e
        })
        .collect()
}

/// A stream's answer for choice 0, put back together as a client SDK would.
#[derive(Debug, Default, PartialEq)]
pub struct Assembled {
    pub role_first: bool,
    pub content: String,
    /// (id, name, arguments) per tool call index.
    pub tool_calls: Vec<(String, String, String)>,
    pub finish_reason: Option<String>,
    pub usage: Option<Value>,
    pub done_last: bool,
}

pub fn assemble(events: &[Value]) -> Assembled {
    let mut a = Assembled {
        done_last: events.last() == Some(&Value::String("[DONE]".into())),
        ..Default::default()
    };
    for (n, e) in events.iter().enumerate() {
        if e.get("usage").is_some_and(|u| !u.is_null()) {
            assert_eq!(
                e["choices"],
                serde_json::json!([]),
                "usage chunk has no choices"
            );
            a.usage = Some(e["usage"].clone());
        }
        let Some(choice) = e
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            continue;
        };
        let delta = &choice["delta"];
        if n == 0 {
            a.role_first = delta["role"] == "assistant";
        }
        if let Some(t) = delta["content"].as_str() {
            a.content.push_str(t);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = call["index"].as_u64().expect("tool call index") as usize;
            if a.tool_calls.len() <= i {
                a.tool_calls.resize(i + 1, Default::default());
            }
            let slot = &mut a.tool_calls[i];
            if let Some(id) = call["id"].as_str() {
                slot.0 = id.into();
            }
            if let Some(name) = call["function"]["name"].as_str() {
                slot.1 = name.into();
            }
            if let Some(args) = call["function"]["arguments"].as_str() {
                slot.2.push_str(args);
            }
        }
        if let Some(r) = choice["finish_reason"].as_str() {
            assert!(a.finish_reason.is_none(), "one finish reason per choice");
            a.finish_reason = Some(r.into());
        }
    }
    a
}

/// The split points every stream test uses: byte by byte, odd sizes, and all at once.
pub const PIECES: &[usize] = &[1, 2, 3, 7, 64, 1000, usize::MAX];
