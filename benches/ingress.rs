//! What each client API's ingress costs for the same real agent request: OpenClaw's 59 KB turn
//! (tests/fixtures/openclaw/turn-local-main.json: a 28 KB system prompt, 12 tools) as chat
//! completions sends it, and the same conversation written as an OpenAI Responses body and as a
//! Gemini body. Each ingress is its translation into the hub's form (the OpenAI chat body) plus
//! the hub parse that routing and dispatch read; chat's is the parse alone. The Anthropic
//! Messages ingress has its own bench (`benches/messages.rs`, a real Claude Code request).
//! Run: `cargo bench --bench ingress -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;

use clawgate::ingress::{gemini, responses};
use clawgate::request::ChatRequest;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};

fn openclaw_turn() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openclaw/turn-local-main.json");
    let recorded: Value =
        serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("fixture JSON");
    recorded["body"].clone()
}

/// A message's text, whether its content is a string or parts.
fn text(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn tools(chat: &Value) -> impl Iterator<Item = &Value> {
    chat["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| &t["function"])
}

/// The same conversation as a Responses body: instructions, input messages, function tools.
fn as_responses(chat: &Value) -> Vec<u8> {
    let messages = chat["messages"].as_array().expect("messages");
    let instructions = messages
        .iter()
        .filter(|m| m["role"] == "system")
        .map(text)
        .collect::<String>();
    let input: Vec<Value> = messages
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| {
            let kind = if m["role"] == "assistant" {
                "output_text"
            } else {
                "input_text"
            };
            json!({"role": m["role"], "content": [{"type": kind, "text": text(m)}]})
        })
        .collect();
    let tools: Vec<Value> = tools(chat)
        .map(|f| json!({"type": "function", "name": f["name"], "description": f["description"], "parameters": f["parameters"]}))
        .collect();
    serde_json::to_vec(
        &json!({"model": "auto", "instructions": instructions, "input": input,
        "tools": tools, "stream": true, "max_output_tokens": 8000}),
    )
    .expect("json")
}

/// The same conversation as a Gemini body: systemInstruction, contents, functionDeclarations.
fn as_gemini(chat: &Value) -> Vec<u8> {
    let messages = chat["messages"].as_array().expect("messages");
    let system = messages
        .iter()
        .filter(|m| m["role"] == "system")
        .map(text)
        .collect::<String>();
    let contents: Vec<Value> = messages
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| {
            let role = if m["role"] == "assistant" {
                "model"
            } else {
                "user"
            };
            json!({"role": role, "parts": [{"text": text(m)}]})
        })
        .collect();
    let decls: Vec<Value> = tools(chat)
        .map(|f| json!({"name": f["name"], "description": f["description"], "parameters": f["parameters"]}))
        .collect();
    serde_json::to_vec(
        &json!({"systemInstruction": {"parts": [{"text": system}]}, "contents": contents,
        "tools": [{"functionDeclarations": decls}], "generationConfig": {"maxOutputTokens": 8000}}),
    )
    .expect("json")
}

fn bench(c: &mut Criterion) {
    let chat = openclaw_turn();
    let chat_body = serde_json::to_vec(&chat).expect("json");
    let responses_body = as_responses(&chat);
    let gemini_body = as_gemini(&chat);
    let store = responses::store::Store::new(Default::default());

    let mut g = c.benchmark_group("ingress, OpenClaw turn");
    g.throughput(Throughput::Bytes(chat_body.len() as u64));
    g.bench_function("chat completions: parse", |b| {
        b.iter(|| {
            black_box(
                ChatRequest::parse(black_box(&chat_body))
                    .expect("ok")
                    .messages
                    .len(),
            )
        })
    });
    g.bench_function("responses: translate + hub parse", |b| {
        b.iter(|| {
            let t = responses::request::translate(black_box(&responses_body), &store).expect("ok");
            black_box(ChatRequest::parse(&t.hub).expect("ok").messages.len())
        })
    });
    g.bench_function("gemini: translate + hub parse", |b| {
        b.iter(|| {
            let t = gemini::request::translate(black_box(&gemini_body), "auto", true).expect("ok");
            black_box(ChatRequest::parse(&t.hub).expect("ok").messages.len())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
