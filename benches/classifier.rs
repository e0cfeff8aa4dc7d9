//! What the LLM classifier adds to a request: a cache hit (no call), and a miss measured
//! against the same call made straight through the dispatcher to the same loopback upstream.
//!
//! `cargo bench --bench classifier`. The upstream is a minimal HTTP/1.1 server in this process
//! answering a fixed chat completion, so the difference between `miss` and `dispatch_only` is
//! what classifying adds on top of the call itself (prompt building, hashing, the in-flight
//! map, the task, parsing and normalising the answer, the metrics event).

use std::sync::Arc;

use bytes::Bytes;
use clawgate::classifier::Classifier;
use clawgate::config::Config;
use clawgate::metrics::Metrics;
use clawgate::providers::dispatch::dispatch;
use clawgate::providers::ProviderSet;
use clawgate::request::ChatRequest;
use criterion::{criterion_group, criterion_main, Criterion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ANSWER: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"REASONING"},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":1,"total_tokens":121}}"#;

/// A keep-alive HTTP/1.1 server that answers every request with [`ANSWER`].
async fn upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(8192);
                let mut chunk = [0u8; 8192];
                loop {
                    // Read one request: headers, then content-length bytes.
                    let (head_end, len) = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, len);
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    while buf.len() < head_end + len {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + len);
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
                        ANSWER.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn config(addr: std::net::SocketAddr, cache_entries: usize) -> Config {
    let yaml = format!(
        "providers:\n  judge:\n    base_url: http://{addr}/v1\n    api_key: k\n    model: m\n    pricing: {{ input: 1, output: 2 }}\n  everyday:\n    base_url: http://{addr}/v1\n    api_key: k\n    model: m\nfallback_chain: [everyday]\nllm_classifier:\n  enabled: true\n  classifier_provider: judge\n  cache_entries: {cache_entries}\n  category_routing:\n    REASONING: everyday\n    SIMPLE: everyday\n"
    );
    Config::from_str(&yaml, "bench.yaml".as_ref(), &|_| None).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(upstream());
    let metrics = Metrics::disabled();
    let text =
        "Please explain why the sum of the angles of a triangle is 180 degrees, step by step, \
                and what changes on a sphere. "
            .repeat(4);

    let cached = config(addr, 4096);
    let providers = ProviderSet::build(&cached, None).unwrap();
    let judge = providers.get("judge").cloned();
    let classifier = Classifier::new();
    rt.block_on(classifier.classify(&cached.classifier, judge.as_ref(), &text, &metrics));
    let mut g = c.benchmark_group("classifier");
    g.bench_function("hit", |b| {
        b.iter(|| {
            rt.block_on(classifier.classify(&cached.classifier, judge.as_ref(), &text, &metrics))
        })
    });

    let uncached = config(addr, 0);
    let providers = ProviderSet::build(&uncached, None).unwrap();
    let judge = providers.get("judge").cloned();
    let classifier = Classifier::new();
    g.bench_function("miss", |b| {
        b.iter(|| {
            rt.block_on(classifier.classify(&uncached.classifier, judge.as_ref(), &text, &metrics))
        })
    });

    let prompt = uncached
        .classifier
        .prompt
        .replace("{last_user_message}", &text);
    let body = Bytes::from(
        serde_json::json!({
            "model": "judge", "messages": [{"role": "user", "content": prompt}],
            "temperature": 0, "max_tokens": 50, "stream": false,
        })
        .to_string(),
    );
    let chain = [Arc::clone(judge.as_ref().unwrap())];
    g.bench_function("dispatch_only", |b| {
        b.iter(|| {
            rt.block_on(async {
                let req = ChatRequest::parse(&body).unwrap();
                dispatch(&chain, &req).await
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
