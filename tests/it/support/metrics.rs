//! Shared helpers for the metrics tests: events, stores in temporary directories.
#![allow(dead_code)]

use std::path::PathBuf;

use clawgate::config::Pricing;
use clawgate::metrics::{usage, AttemptRecord, Metrics, RequestEvent, Usage};

pub const DEEPSEEK: Pricing = Pricing {
    input: 0.27,
    output: 1.10,
    cache_read: Some(0.07),
};
pub const MIN: u64 = 60_000;
pub const HOUR: u64 = 3_600_000;
pub const DAY: u64 = 86_400_000;

/// A store in a fresh temporary directory (kept alive by the returned guard).
pub fn store(retention_days: u32) -> (tempfile::TempDir, PathBuf, Metrics) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("clawgate.db");
    let m = Metrics::open(&path, retention_days).expect("open metrics");
    (dir, path, m)
}

/// A successful routed request answered by `provider` at `ts_ms`.
pub fn ok(ts_ms: u64, provider: &str) -> RequestEvent {
    RequestEvent {
        ts_ms,
        requested_model: "auto".into(),
        provider: Some(provider.into()),
        upstream_model: Some(format!("{provider}-model")),
        layer: "heuristic".into(),
        rule: "tool-use".into(),
        status: 200,
        latency_ms: 250.0,
        prompt_tokens: 100,
        completion_tokens: 50,
        cost_usd: 1e-5,
        ..RequestEvent::default()
    }
}

/// A request where every target failed.
pub fn all_failed(ts_ms: u64, tried: &[&str]) -> RequestEvent {
    RequestEvent {
        ts_ms,
        requested_model: "auto".into(),
        layer: "static".into(),
        rule: "heartbeat".into(),
        attempts: tried
            .iter()
            .map(|p| AttemptRecord {
                provider: (*p).into(),
                error: "HTTP 503".into(),
            })
            .collect(),
        status: 502,
        latency_ms: 40.0,
        error: Some("all providers failed".into()),
        ..RequestEvent::default()
    }
}

/// An answered request with DeepSeek-style cache figures, priced with DeepSeek's prices.
pub fn cached(
    ts_ms: u64,
    provider: &str,
    prompt: u64,
    completion: u64,
    hit: u64,
    miss: u64,
) -> RequestEvent {
    let mut ev = ok(ts_ms, provider);
    ev.set_usage(
        &Usage {
            prompt,
            completion,
            cache_hit: hit,
            cache_miss: miss,
            estimated: false,
        },
        &DEEPSEEK,
    );
    ev
}

pub fn now() -> u64 {
    RequestEvent::now_ms()
}

/// A tiny deterministic generator for "random" test data.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn cost_of(u: Usage) -> f64 {
    usage::cost(&DEEPSEEK, &u)
}
