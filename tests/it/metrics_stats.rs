//! `/api/stats` and `/api/recent` over known events: field names, sums, cost with cache, windows,
//! rollups against raw rows, ordering and limits.

use crate::support::metrics as metrics_support;

use std::collections::BTreeMap;

use clawgate::metrics::{parse_limit, QueryError, RequestEvent, Usage, Window};
use metrics_support::*;
use serde_json::Value;

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn has_all(v: &Value, names: &[&str]) {
    let k = keys(v);
    for n in names {
        assert!(k.iter().any(|x| x == n), "missing field {n:?} in {v}");
    }
}

#[test]
fn stats_keep_the_original_field_names() {
    let (_dir, _path, m) = store(0);
    let t = now();
    m.record(cached(t - 2 * MIN, "deepseek-chat", 100, 50, 80, 20));
    m.record(all_failed(t - MIN, &["gemini-flash"]));
    m.flush();
    let s = m.stats(Window::H24);
    has_all(&s, &["totals", "providers", "routing", "hourly", "daily"]);
    has_all(
        &s["totals"],
        &[
            "total_requests",
            "total_failures",
            "total_prompt_tokens",
            "total_compl_tokens",
            "total_cache_hit",
            "total_cache_miss",
            "cache_hit_pct",
            "total_cost_usd",
            "avg_latency_ms",
            "first_request",
            "last_request",
            "p50_latency_ms",
            "p95_latency_ms",
            "total_fallbacks",
        ],
    );
    has_all(
        &s["providers"][0],
        &[
            "provider",
            "requests",
            "failures",
            "prompt_tokens",
            "compl_tokens",
            "total_tokens",
            "cache_hit_tokens",
            "cache_miss_tokens",
            "cache_hit_pct",
            "cost_usd",
            "avg_latency_ms",
            "fallbacks",
            "p50_latency_ms",
            "p95_latency_ms",
        ],
    );
    has_all(
        &s["routing"][0],
        &[
            "layer",
            "rule_name",
            "provider",
            "requests",
            "cost_usd",
            "avg_latency_ms",
        ],
    );
    has_all(
        &s["hourly"][0],
        &["hour_offset", "requests", "cost_usd", "tokens"],
    );
    has_all(
        &s["daily"][0],
        &["day", "requests", "cost_usd", "tokens", "failures"],
    );
    has_all(
        &s["rules"][0],
        &[
            "layer",
            "rule_name",
            "requests",
            "failures",
            "fallbacks",
            "cost_usd",
            "p95_latency_ms",
        ],
    );
    has_all(
        &s["layers"][0],
        &[
            "layer",
            "requests",
            "failures",
            "fallbacks",
            "cost_usd",
            "p95_latency_ms",
        ],
    );
}

#[test]
fn an_empty_database_reports_zeros_not_nulls() {
    let (_dir, _path, m) = store(0);
    let t = &m.stats(Window::All)["totals"];
    for f in [
        "total_requests",
        "total_failures",
        "total_prompt_tokens",
        "total_cost_usd",
        "avg_latency_ms",
        "cache_hit_pct",
    ] {
        assert_eq!(t[f].as_f64(), Some(0.0), "{f}");
    }
    assert!(t["first_request"].is_null() && t["last_request"].is_null());
}

#[test]
fn totals_sum_tokens_and_price_cache_hits_at_the_cache_read_price() {
    let (_dir, _path, m) = store(0);
    let t = now();
    m.record(cached(t - 3 * MIN, "deepseek-chat", 100, 50, 80, 20)); // 6.6e-05 USD
    m.record(cached(
        t - 2 * MIN,
        "deepseek-chat",
        1_000_000,
        1_000_000,
        0,
        0,
    )); // 1.37 USD
    m.record(all_failed(t - MIN, &["deepseek-chat", "gemini-flash"]));
    m.flush();
    let s = m.stats(Window::H1);
    let tot = &s["totals"];
    assert_eq!(tot["total_requests"], 3);
    assert_eq!(tot["total_failures"], 1);
    assert_eq!(tot["total_failed_attempts"], 2);
    assert_eq!(tot["total_prompt_tokens"], 1_000_100);
    assert_eq!(tot["total_compl_tokens"], 1_000_050);
    assert_eq!(
        (
            tot["total_cache_hit"].clone(),
            tot["total_cache_miss"].clone()
        ),
        (80.into(), 20.into())
    );
    assert_eq!(tot["cache_hit_pct"], 80.0);
    let cost = tot["total_cost_usd"].as_f64().unwrap_or(0.0);
    assert!((cost - (1.37 + 6.6e-5)).abs() < 1e-6, "cost {cost}");
    assert_eq!(tot["avg_latency_ms"], 180.0); // (250 + 250 + 40) / 3

    let p = &s["providers"];
    let ds = p
        .as_array()
        .and_then(|a| a.iter().find(|r| r["provider"] == "deepseek-chat"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        ds["requests"], 3,
        "2 answers + 1 failed attempt, as the original's rows counted"
    );
    assert_eq!(ds["failures"], 1);
    assert_eq!(ds["answered"], 2);
    assert_eq!(ds["cost_usd"], 1.370066);
    let gf = p
        .as_array()
        .and_then(|a| a.iter().find(|r| r["provider"] == "gemini-flash"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            gf["requests"].clone(),
            gf["failures"].clone(),
            gf["cost_usd"].clone()
        ),
        (1.into(), 1.into(), 0.0.into())
    );
    // Routing lists successful requests only.
    assert_eq!(s["routing"].as_array().map(Vec::len), Some(1));
    assert_eq!(s["routing"][0]["requests"], 2);
}

#[test]
fn fallbacks_count_for_the_provider_that_answered() {
    let (_dir, _path, m) = store(0);
    let mut ev = ok(now(), "openrouter-fallback");
    ev.attempts = all_failed(0, &["deepseek-chat"]).attempts;
    m.record(ev);
    m.flush();
    let s = m.stats(Window::H1);
    assert_eq!(s["totals"]["total_fallbacks"], 1);
    assert_eq!(s["totals"]["total_failures"], 0);
    let rows = s["providers"].as_array().cloned().unwrap_or_default();
    let by: BTreeMap<String, Value> = rows
        .into_iter()
        .map(|r| (r["provider"].as_str().unwrap_or("").to_owned(), r))
        .collect();
    assert_eq!(by["openrouter-fallback"]["fallbacks"], 1);
    assert_eq!(by["deepseek-chat"]["failed_attempts"], 1);
    assert_eq!(s["rules"][0]["fallbacks"], 1);
    assert_eq!(s["layers"][0]["fallbacks"], 1);
}

#[test]
fn long_windows_start_on_a_clock_hour_and_short_ones_on_a_minute() {
    let now_ms = 1_764_000_000_000 + 37 * MIN + 12_345;
    for w in [Window::H1, Window::H24] {
        assert_eq!(
            w.start_minute(now_ms),
            (now_ms - w.duration_ms().unwrap_or(0)) / MIN,
            "{w:?}"
        );
    }
    for w in [Window::D7, Window::D30] {
        assert_eq!(w.start_minute(now_ms) % 60, 0, "{w:?}");
        assert!(w.start_minute(now_ms) * MIN <= now_ms - w.duration_ms().unwrap_or(0));
    }
    assert_eq!(Window::All.start_minute(now_ms), 0);
}

#[test]
fn each_window_counts_only_its_span() {
    let (_dir, _path, m) = store(0);
    let t = now();
    for age in [10 * MIN, 3 * HOUR, 2 * DAY, 10 * DAY, 40 * DAY] {
        m.record(ok(t - age, "deepseek-chat"));
    }
    m.flush();
    for (w, n) in [
        (Window::H1, 1),
        (Window::H24, 2),
        (Window::D7, 3),
        (Window::D30, 4),
        (Window::All, 5),
    ] {
        assert_eq!(m.stats_at(w, t)["totals"]["total_requests"], n, "{w:?}");
    }
    let s = m.stats_at(Window::H1, t);
    assert_eq!(s["window"], "1h");
    // hourly is the original's last 24 hours whatever the window; daily the last 30 days.
    let hourly_requests: u64 = s["hourly"]
        .as_array()
        .map(|a| a.iter().map(|h| h["requests"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0);
    assert_eq!(hourly_requests, 2);
    // hour_offset 23 is the current clock hour (the 10-minute-old request may fall in the previous one).
    let newest_offset = 23 - (t / HOUR - (t - 10 * MIN) / HOUR);
    assert_eq!(
        s["hourly"]
            .as_array()
            .and_then(|a| a.last())
            .map(|h| h["hour_offset"].clone()),
        Some(newest_offset.into())
    );
    let daily_requests: u64 = s["daily"]
        .as_array()
        .map(|a| a.iter().map(|d| d["requests"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0);
    assert_eq!(daily_requests, 4);
    let days: std::collections::BTreeSet<u64> = [10 * MIN, 3 * HOUR, 2 * DAY, 10 * DAY, 40 * DAY]
        .iter()
        .map(|a| (t - a) / DAY)
        .collect();
    assert_eq!(
        m.stats_at(Window::All, t)["daily"].as_array().map(Vec::len),
        Some(days.len())
    );
}

/// Brute force over the generated events, with the store's window start (minute- or hour-aligned).
fn expected(events: &[RequestEvent], w: Window, now_ms: u64) -> (u64, u64, u64, f64) {
    let start = w.start_minute(now_ms) * MIN;
    let end = if w == Window::All {
        u64::MAX
    } else {
        (now_ms / MIN + 1) * MIN
    };
    let sel: Vec<_> = events
        .iter()
        .filter(|e| e.ts_ms >= start && e.ts_ms < end)
        .collect();
    let failures = sel.iter().filter(|e| !e.succeeded()).count() as u64;
    let tokens = sel
        .iter()
        .map(|e| e.prompt_tokens + e.completion_tokens)
        .sum();
    let cost = sel.iter().map(|e| e.cost_usd).sum();
    (sel.len() as u64, failures, tokens, cost)
}

fn random_events(n: usize, now_ms: u64, span_ms: u64, seed: u64) -> Vec<RequestEvent> {
    let mut r = Lcg(seed);
    let providers = [
        "deepseek-chat",
        "deepseek-reasoner",
        "gemini-flash",
        "gemini-flash-lite",
    ];
    (0..n)
        .map(|_| {
            let ts = now_ms - r.below(span_ms);
            let p = providers[r.below(4) as usize];
            match r.below(10) {
                0 => all_failed(ts, &[p]),
                _ => {
                    let prompt = r.below(5000);
                    let hit = r.below(prompt + 1);
                    let mut ev = cached(ts, p, prompt, r.below(800), hit, prompt - hit);
                    ev.latency_ms = r.below(20_000) as f64 / 3.0;
                    ev.rule = ["tool-use", "math-reasoning", "vision"][r.below(3) as usize].into();
                    ev
                }
            }
        })
        .collect()
}

#[test]
fn every_window_matches_the_raw_events_across_hour_and_minute_edges() {
    let (_dir, _path, m) = store(0);
    // A "now" in the middle of an hour, so windows start and end on ragged minutes.
    let now_ms = now() / HOUR * HOUR - 17 * MIN - 5_000;
    let events = random_events(3_000, now_ms + 2 * MIN, 45 * DAY, 7);
    for e in &events {
        m.record(e.clone());
    }
    m.flush();
    for w in [
        Window::H1,
        Window::H24,
        Window::D7,
        Window::D30,
        Window::All,
    ] {
        let t = &m.stats_at(w, now_ms)["totals"];
        let (n, failures, tokens, cost) = expected(&events, w, now_ms);
        assert_eq!(t["total_requests"], n, "{w:?}");
        assert_eq!(t["total_failures"], failures, "{w:?}");
        assert_eq!(t["total_tokens"], tokens, "{w:?}");
        let got = t["total_cost_usd"].as_f64().unwrap_or(-1.0);
        assert!((got - cost).abs() < 1e-5, "{w:?}: {got} vs {cost}");
    }
}

#[test]
fn rollups_agree_with_the_raw_rows() {
    let (_dir, _path, m) = store(0);
    let t = now();
    let events = random_events(900, t, 3 * DAY, 11);
    for e in &events {
        m.record(e.clone());
    }
    m.flush();
    let s = m.stats_at(Window::All, t + MIN);
    let raw = m.recent(1000)["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(raw.len(), 900);

    let mut by_provider: BTreeMap<String, (u64, u64, u64, u64, f64)> = BTreeMap::new();
    for r in raw.iter().filter(|r| r["provider"] != "") {
        let e = by_provider
            .entry(r["provider"].as_str().unwrap_or("").to_owned())
            .or_default();
        e.0 += 1;
        e.1 += r["prompt_tok"].as_u64().unwrap_or(0);
        e.2 += r["compl_tok"].as_u64().unwrap_or(0);
        e.3 += r["cache_hit"].as_u64().unwrap_or(0);
        e.4 += r["cost_usd"].as_f64().unwrap_or(0.0);
    }
    for p in s["providers"].as_array().cloned().unwrap_or_default() {
        let name = p["provider"].as_str().unwrap_or("");
        let (n, prompt, compl, hit, cost) = by_provider.get(name).cloned().unwrap_or_default();
        assert_eq!(p["answered"], n, "{name}");
        assert_eq!(p["prompt_tokens"], prompt, "{name}");
        assert_eq!(p["compl_tokens"], compl, "{name}");
        assert_eq!(p["cache_hit_tokens"], hit, "{name}");
        assert!(
            (p["cost_usd"].as_f64().unwrap_or(-1.0) - cost).abs() < 1e-5,
            "{name}"
        );
    }
    let failures = raw.iter().filter(|r| r["success"] == 0).count();
    assert_eq!(s["totals"]["total_failures"], failures);
    let routed: u64 = s["routing"]
        .as_array()
        .map(|a| a.iter().map(|r| r["requests"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0);
    assert_eq!(routed as usize, raw.len() - failures);
    let timeline: u64 = s["timeline"]
        .as_array()
        .map(|a| a.iter().map(|r| r["requests"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0);
    assert_eq!(timeline, 900);
}

#[test]
fn latency_percentiles_come_from_the_recorded_latencies() {
    let (_dir, _path, m) = store(0);
    let t = now();
    for i in 1..=100 {
        let mut ev = ok(t - i, "deepseek-chat");
        ev.latency_ms = i as f64 * 10.0; // 10 ms .. 1000 ms
        m.record(ev);
    }
    m.flush();
    let tot = &m.stats(Window::H1)["totals"];
    let p50 = tot["p50_latency_ms"].as_f64().unwrap_or(0.0);
    let p95 = tot["p95_latency_ms"].as_f64().unwrap_or(0.0);
    assert!((450.0..=560.0).contains(&p50), "p50 {p50}");
    assert!((860.0..=1040.0).contains(&p95), "p95 {p95}");
    assert_eq!(tot["avg_latency_ms"], 505.0);
}

#[test]
fn recent_is_newest_first_with_the_original_row_fields() {
    let (_dir, _path, m) = store(0);
    let t = now();
    // Recorded out of order: the timestamp decides.
    for (age, p) in [(5, "b"), (1, "a"), (9, "c")] {
        m.record(ok(t - age * 1_000, p));
    }
    let mut streamed = ok(t, "d");
    streamed.stream = true;
    streamed.ttfb_ms = Some(12.34);
    streamed.set_usage(
        &Usage {
            prompt: 4,
            completion: 2,
            estimated: true,
            ..Usage::default()
        },
        &DEEPSEEK,
    );
    m.record(streamed);
    m.record(all_failed(t - 20_000, &["x", "y"]));
    m.flush();
    let rows = m.recent(50)["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let order: Vec<&str> = rows
        .iter()
        .map(|r| r["provider"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(order, ["d", "a", "b", "c", ""]);
    for f in [
        "id",
        "timestamp",
        "provider",
        "model",
        "layer",
        "rule_name",
        "prompt_tok",
        "compl_tok",
        "cache_hit",
        "cache_miss",
        "cost_usd",
        "latency_ms",
        "success",
        "error",
        "requested_model",
        "attempts",
        "status",
        "ttfb_ms",
        "stream",
        "usage_estimated",
    ] {
        assert!(rows[0].get(f).is_some(), "missing {f}");
    }
    assert!((rows[0]["timestamp"].as_f64().unwrap_or(0.0) - t as f64 / 1e3).abs() < 1e-3);
    assert_eq!(
        (
            rows[0]["stream"].clone(),
            rows[0]["usage_estimated"].clone()
        ),
        (true.into(), true.into())
    );
    assert_eq!(rows[0]["ttfb_ms"], 12.3);
    assert_eq!(rows[0]["model"], "d-model");
    assert_eq!(rows[1]["success"], 1);
    let failed = &rows[4];
    assert_eq!(
        (failed["success"].clone(), failed["status"].clone()),
        (0.into(), 502.into())
    );
    assert_eq!(failed["error"], "all providers failed");
    assert_eq!(failed["attempts"][1]["provider"], "y");
    assert_eq!(m.recent(2)["requests"].as_array().map(Vec::len), Some(2));
}

#[test]
fn bad_query_parameters_are_errors_with_a_message() {
    assert_eq!(parse_limit(None), Ok(50));
    assert_eq!(parse_limit(Some("1000")), Ok(1000));
    for bad in ["0", "1001", "abc", "-1", "2.5"] {
        let err = parse_limit(Some(bad)).expect_err(bad);
        assert!(matches!(err, QueryError::BadLimit(_)));
        assert!(err.to_string().contains("1 to 1000"), "{err}");
    }
    assert_eq!(Window::from_query(Some("7d")), Ok(Window::D7));
    let err = Window::from_query(Some("week")).expect_err("week");
    assert!(err.to_string().contains("1h, 24h, 7d, 30d, all"), "{err}");
}

#[test]
fn usage_cost_examples_of_the_original() {
    let big = Usage {
        prompt: 1_000_000,
        completion: 1_000_000,
        ..Usage::default()
    };
    assert!((cost_of(big) - 1.37).abs() < 1e-9);
    let small = Usage {
        prompt: 100,
        completion: 50,
        cache_hit: 80,
        cache_miss: 20,
        estimated: false,
    };
    assert!((cost_of(small) - 6.6e-5).abs() < 1e-12);
}
