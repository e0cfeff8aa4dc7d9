//! What translating to Gemini and Anthropic costs, next to OpenAI-compatible pass-through.
//!
//! For a real OpenClaw turn (tests/fixtures/openclaw, ~60 KB, 12 tools): building the upstream
//! request (pass-through: `upstream_body`, which rewrites `model`; translated: the whole
//! Gemini or Anthropic body), a non-streamed answer translated back, and a stream translated
//! event by event (reported per upstream event) against the pass-through stream decoder.
//! Request parsing for routing (`ChatRequest::parse`) is done for every backend and is
//! measured on its own.
//! Run: `cargo bench --bench translate -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;

use bytes::Bytes;
use clawgate::config::{Backend, Config, ProviderConfig};
use clawgate::providers::anthropic::{self, Anthropic};
use clawgate::providers::gemini::{self, schema as gemini_schema, Gemini};
use clawgate::providers::openai_compat::OpenAiCompat;
use clawgate::providers::protocol::{Events, Protocol};
use clawgate::providers::translate::openai::OpenAiRequest;
use clawgate::request::ChatRequest;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn fixture(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The request body of a recorded OpenClaw turn.
fn openclaw(name: &str) -> Vec<u8> {
    let recorded: serde_json::Value =
        serde_json::from_slice(&fixture(&format!("openclaw/{name}.json"))).expect("fixture JSON");
    serde_json::to_vec(&recorded["body"]).expect("body")
}

fn provider(backend: Backend, model: &str) -> ProviderConfig {
    let yaml = format!(
        "providers:\n  p:\n    backend: {}\n    base_url: http://127.0.0.1:9/v1\n    api_key: sk-bench\n    model: {model}\nfallback_chain: [p]\n",
        backend.as_str()
    );
    let config = Config::from_str(&yaml, Path::new("bench.yaml"), &|_| None).expect("config");
    config.providers.into_iter().next().expect("one provider")
}

/// Complete SSE events in `input` (blank-line separated), for per-event figures.
fn count_events(input: &[u8]) -> u64 {
    String::from_utf8_lossy(input)
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter(|e| e.contains("data:"))
        .count() as u64
}

/// An OpenAI-compatible stream with the same number of events as `events`, for the framer.
fn openai_stream(events: u64) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..events {
        s.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word {i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

fn requests(c: &mut Criterion) {
    let openai = provider(Backend::OpenAiCompat, "deepseek-chat");
    let gemini = provider(Backend::GoogleGenai, "gemini-2.5-flash");
    let claude = provider(Backend::Anthropic, "claude-sonnet-4-5");
    for name in ["turn-local-main", "subagent-child"] {
        let body = openclaw(name);
        let mut g = c.benchmark_group(format!("request/{name}"));
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function("parse for routing", |b| {
            b.iter(|| ChatRequest::parse(black_box(&body)).unwrap())
        });
        let req = ChatRequest::parse(&body).unwrap();
        g.bench_function("openai-compat pass-through body", |b| {
            b.iter(|| OpenAiCompat.body(&openai, black_box(&req)).unwrap())
        });
        g.bench_function("to gemini", |b| {
            b.iter(|| Gemini.body(&gemini, black_box(&req)).unwrap())
        });
        g.bench_function("to anthropic", |b| {
            b.iter(|| Anthropic.body(&claude, black_box(&req)).unwrap())
        });
        // Where the translation time goes.
        let oa = OpenAiRequest::parse(&body).unwrap();
        g.bench_function("breakdown: full re-parse", |b| {
            b.iter(|| OpenAiRequest::parse(black_box(&body)).unwrap())
        });
        g.bench_function("breakdown: gemini body from parsed", |b| {
            b.iter(|| gemini::build_body(&gemini, black_box(&oa)).unwrap())
        });
        g.bench_function("breakdown: gemini tool schemas", |b| {
            b.iter(|| {
                oa.functions()
                    .filter_map(|f| f.parameters.as_ref())
                    .map(gemini_schema::clean)
                    .count()
            })
        });
        let gbody = gemini::build_body(&gemini, &oa).unwrap();
        g.bench_function("breakdown: gemini body to bytes", |b| {
            b.iter(|| serde_json::to_vec(black_box(&gbody)).unwrap())
        });
        g.bench_function("breakdown: anthropic body from parsed", |b| {
            b.iter(|| anthropic::build_body(&claude, black_box(&oa)).unwrap())
        });
        g.finish();
    }
}

fn responses(c: &mut Criterion) {
    let gemini = provider(Backend::GoogleGenai, "gemini-2.5-flash");
    let claude = provider(Backend::Anthropic, "claude-sonnet-4-5");
    let mut g = c.benchmark_group("response");
    for (label, fixture_path) in [
        ("gemini text", "gemini/response-text.json"),
        ("gemini tool call", "gemini/response-tool-call.json"),
    ] {
        let answer = Bytes::from(fixture(fixture_path));
        g.bench_function(label, |b| {
            b.iter(|| {
                Gemini
                    .complete(&gemini, None, black_box(answer.clone()))
                    .unwrap()
            })
        });
    }
    for (label, fixture_path) in [
        ("anthropic text", "anthropic/response-text.json"),
        ("anthropic tool use", "anthropic/response-tool-use.json"),
    ] {
        let answer = Bytes::from(fixture(fixture_path));
        g.bench_function(label, |b| {
            b.iter(|| {
                Anthropic
                    .complete(&claude, None, black_box(answer.clone()))
                    .unwrap()
            })
        });
    }
    g.finish();
}

/// A stream as the relay decodes it: read by read, then its end.
fn decode(
    protocol: &dyn Protocol,
    provider: &ProviderConfig,
    req: &ChatRequest<'_>,
    reads: &[Bytes],
) -> Events {
    let (_, mut decoder) = protocol.stream(provider, req, None);
    let mut out = Events::new();
    for r in reads {
        decoder.feed(black_box(r.clone()), &mut out).unwrap();
    }
    decoder.finish(&mut out).unwrap();
    out
}

fn streams(c: &mut Criterion) {
    let body = br#"{"model":"auto","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    let req = ChatRequest::parse(body).unwrap();
    let gemini = provider(Backend::GoogleGenai, "gemini-2.5-flash");
    let claude = provider(Backend::Anthropic, "claude-sonnet-4-5");
    let mut g = c.benchmark_group("stream per event");
    let cases: [(&str, &str, &dyn Protocol, &ProviderConfig); 4] = [
        ("gemini text", "gemini/stream-text.sse", &Gemini, &gemini),
        (
            "gemini tool call",
            "gemini/stream-tool-call.sse",
            &Gemini,
            &gemini,
        ),
        (
            "anthropic text",
            "anthropic/stream-text.sse",
            &Anthropic,
            &claude,
        ),
        (
            "anthropic tool use",
            "anthropic/stream-tool-use.sse",
            &Anthropic,
            &claude,
        ),
    ];
    for (label, path, protocol, provider) in cases {
        let input = fixture(path);
        // As the network delivers it: one read per event.
        let reads: Vec<Bytes> = String::from_utf8_lossy(&input)
            .split_inclusive("\n\n")
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        g.throughput(Throughput::Elements(count_events(&input)));
        g.bench_function(label, |b| {
            b.iter(|| decode(protocol, provider, &req, &reads))
        });
    }
    let passthrough = openai_stream(8);
    let reads: Vec<Bytes> = String::from_utf8_lossy(&passthrough)
        .split_inclusive("\n\n")
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect();
    g.throughput(Throughput::Elements(reads.len() as u64));
    let openai = provider(Backend::OpenAiCompat, "deepseek-chat");
    g.bench_function("openai-compat pass-through", |b| {
        b.iter(|| decode(&OpenAiCompat, &openai, &req, &reads))
    });
    g.finish();
}

criterion_group!(benches, requests, responses, streams);
criterion_main!(benches);
