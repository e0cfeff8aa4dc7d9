//! Metrics costs: `record` on the request path, writer throughput, and `/api/stats` over 1M events.
//!
//! `cargo bench --bench metrics`. Besides criterion's timings it prints the writer's sustained
//! events/s and the database size per million requests.

use std::time::{Duration, Instant};

use clawgate::metrics::{AttemptRecord, Metrics, RequestEvent, Window};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const PROVIDERS: [&str; 5] = [
    "deepseek-chat",
    "deepseek-reasoner",
    "gemini-flash",
    "gemini-flash-lite",
    "openrouter-fallback",
];
const RULES: [(&str, &str); 6] = [
    ("static", "heartbeat"),
    ("static", "subagent"),
    ("heuristic", "math-reasoning"),
    ("heuristic", "tool-use"),
    ("direct", "explicit-model"),
    ("default", "default"),
];

fn event(i: u64, ts_ms: u64) -> RequestEvent {
    let (layer, rule) = RULES[(i % RULES.len() as u64) as usize];
    let provider = PROVIDERS[(i / 7 % PROVIDERS.len() as u64) as usize];
    RequestEvent {
        ts_ms,
        requested_model: "auto".into(),
        provider: (i % 50 != 0).then(|| provider.to_owned()),
        upstream_model: Some(provider.to_owned()),
        layer: layer.into(),
        rule: rule.into(),
        attempts: if i % 20 == 0 {
            vec![AttemptRecord {
                provider: "gemini-flash".into(),
                error: "HTTP 429".into(),
            }]
        } else {
            vec![]
        },
        status: if i % 50 == 0 { 502 } else { 200 },
        latency_ms: 200.0 + (i % 3000) as f64,
        ttfb_ms: (i % 2 == 0).then_some(80.0),
        prompt_tokens: 1200 + i % 4000,
        completion_tokens: 200 + i % 700,
        cache_hit_tokens: 1000,
        cache_miss_tokens: 200 + i % 4000,
        usage_estimated: false,
        cost_usd: 0.0004,
        stream: i % 2 == 0,
        error: (i % 50 == 0).then(|| "all providers failed".to_owned()),
        classification: false,
        lane: if i % 10 == 0 { "heartbeat" } else { "main" }.into(),
        affinity: ["hit", "hit", "hit", "miss", "switch"][(i % 5) as usize].into(),
        api: String::new(),
    }
}

fn bench_record(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Metrics::open(&dir.path().join("bench.db"), 0).expect("open");
    let now = RequestEvent::now_ms();
    let mut g = c.benchmark_group("record");
    // The request path: counters + try_send. Events are built outside the timing (the dispatcher
    // builds them anyway) and the queue is flushed between chunks so nothing is dropped.
    g.bench_function("enabled, queue has room", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(5_000);
                let events: Vec<_> = (0..n).map(|i| event(i, now)).collect();
                let start = Instant::now();
                for ev in events {
                    m.record(ev);
                }
                total += start.elapsed();
                m.flush();
                left -= n;
            }
            total
        })
    });
    let off = Metrics::disabled();
    g.bench_function("disabled (counters only)", |b| {
        b.iter_custom(|iters| {
            let events: Vec<_> = (0..iters).map(|i| event(i, now)).collect();
            let start = Instant::now();
            for ev in events {
                off.record(ev);
            }
            start.elapsed()
        })
    });
    g.finish();
    let c = m.counters();
    println!(
        "record bench: written {} dropped {} in {} batches",
        c.written, c.dropped, c.batches
    );
}

fn bench_writer(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Metrics::open(&dir.path().join("writer.db"), 0).expect("open");
    let now = RequestEvent::now_ms();
    let mut g = c.benchmark_group("writer");
    g.sample_size(10);
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("record + commit 10k events", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for it in 0..iters {
                let events: Vec<_> = (0..10_000)
                    .map(|i| event(it * 10_000 + i, now - i))
                    .collect();
                let start = Instant::now();
                for ev in events {
                    m.record(ev);
                }
                m.flush();
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn bench_stats(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stats.db");
    let m = Metrics::open(&path, 0).expect("open");
    let now = RequestEvent::now_ms();
    let span = 30 * 86_400_000u64;
    let start = Instant::now();
    for i in 0..N {
        // Spread over 30 days, oldest first, as a server would write them.
        m.record(event(i, now - span + i * span / N));
        if i % 5_000 == 4_999 {
            m.flush();
        }
    }
    m.flush();
    let secs = start.elapsed().as_secs_f64();
    let counters = m.counters();
    m.shutdown();
    drop(m);
    let size = std::fs::metadata(&path).map(|md| md.len()).unwrap_or(0);
    println!(
        "populated {N} events in {secs:.1} s = {:.0} events/s sustained (dropped {}); DB size {:.1} MB per million requests",
        N as f64 / secs,
        counters.dropped,
        size as f64 / 1e6 / (N as f64 / 1e6)
    );
    let m = Metrics::open(&path, 0).expect("reopen");
    let mut g = c.benchmark_group("stats over 1M events (30 days)");
    g.sample_size(10);
    for w in [
        Window::H1,
        Window::H24,
        Window::D7,
        Window::D30,
        Window::All,
    ] {
        g.bench_function(format!("stats window={}", w.as_str()), |b| {
            b.iter(|| m.stats(w))
        });
    }
    g.bench_function("recent limit=50", |b| b.iter(|| m.recent(50)));
    g.bench_function("recent limit=1000", |b| b.iter(|| m.recent(1000)));
    g.bench_function("render /metrics", |b| b.iter(|| m.render("")));
    g.finish();
    let t = m.stats(Window::All);
    println!("check: total_requests = {}", t["totals"]["total_requests"]);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_record, bench_writer, bench_stats
}
criterion_main!(benches);
