//! What the Anthropic Messages ingress costs, next to the OpenAI chat ingress.
//!
//! For a real Claude Code request (tests/fixtures/claude-code, ~54 KB, 12 tools, a tool
//! result): the translation into the hub's form (`translate`: check, decode, write the OpenAI
//! body) and the hub parse routing needs (`ChatRequest::parse` of it), against what a chat
//! request pays (`ChatRequest::parse` of the same conversation written by a client); the
//! pass-through body (`model` replaced) against chat's `upstream_body`; a whole answer
//! translated back; and a stream translated back, reported per upstream event.
//! Run: `cargo bench --bench messages -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;

use bytes::Bytes;
use clawgate::ingress::anthropic::{request, response, stream};
use clawgate::metrics::Usage;
use clawgate::request::ChatRequest;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::StreamExt;

fn claude_code() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/claude-code/tool-turn-2-tool-result.json");
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("fixture JSON");
    serde_json::to_vec(&recorded["body"]).expect("body")
}

/// An OpenAI stream of `n` text pieces, a finish chunk, usage and `[DONE]`.
fn openai_stream(n: usize) -> Vec<Bytes> {
    let mut events = Vec::new();
    for i in 0..n {
        events.push(Bytes::from(format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"deepseek-chat\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"finish_reason\":null}}]}}\n\n"
        )));
    }
    events.push(Bytes::from_static(b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"deepseek-chat\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"));
    events.push(Bytes::from_static(b"data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":12000,\"completion_tokens\":50,\"total_tokens\":12050}}\n\n"));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

fn bench(c: &mut Criterion) {
    let body = claude_code();
    let translated = request::translate(&body).expect("translates");
    let hub = translated.hub.clone();

    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("anthropic: translate to the hub", |b| {
        b.iter(|| request::translate(black_box(&body)).expect("ok"))
    });
    g.bench_function(
        "anthropic: translate + hub parse (the whole ingress)",
        |b| {
            b.iter(|| {
                let t = request::translate(black_box(&body)).expect("ok");
                let req = ChatRequest::parse(&t.hub).expect("ok");
                black_box(req.messages.len());
            })
        },
    );
    g.bench_function("chat: parse (the whole ingress)", |b| {
        b.iter(|| {
            black_box(
                ChatRequest::parse(black_box(&hub))
                    .expect("ok")
                    .messages
                    .len(),
            )
        })
    });
    let native = clawgate::providers::native::Native {
        backend: clawgate::config::Backend::Anthropic,
        body: &body,
        model_span: translated.model_span.clone(),
        headers: Vec::new(),
        hub_max_tokens: Some(translated.max_tokens),
    };
    g.bench_function("anthropic: pass-through body (model replaced)", |b| {
        b.iter(|| black_box(native.with_model("claude-sonnet-4-5")))
    });
    let chat = ChatRequest::parse(&hub).expect("ok");
    g.bench_function("chat: pass-through body (upstream_body)", |b| {
        b.iter(|| black_box(chat.upstream_body("deepseek-chat", Some(8000))))
    });
    g.finish();

    let answer = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"deepseek-chat","choices":[{"index":0,"message":{"role":"assistant","content":"The file says: secret token: tok-391304a3ead6.","tool_calls":[{"id":"call_0","type":"function","function":{"name":"Bash","arguments":"{\"command\":\"cat planted.txt\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":12000,"completion_tokens":50,"total_tokens":12050}}"#;
    let usage = Usage::reported(12000, 50, None, None, Some(9000));
    let mut g = c.benchmark_group("answer");
    g.bench_function("anthropic: whole answer from the hub", |b| {
        b.iter(|| response::message(black_box(answer), &usage, false, "m").expect("ok"))
    });
    let events = openai_stream(200);
    g.throughput(Throughput::Elements(events.len() as u64));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    g.bench_function("anthropic: stream from the hub (per event)", |b| {
        b.iter(|| {
            let input = futures_util::stream::iter(events.clone().into_iter().map(Ok));
            let cx = stream::StreamContext {
                model: "m".into(),
                thinking: false,
                prompt_estimate: 0,
            };
            let out = stream::AnthropicEvents::new(input, cx);
            runtime.block_on(out.for_each(|e| {
                black_box(e.expect("ok"));
                async {}
            }));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
