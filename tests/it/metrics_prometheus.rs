//! `/metrics` renders valid Prometheus text with bounded labels.

use crate::support::metrics as metrics_support;

use std::collections::BTreeMap;

use clawgate::metrics::Metrics;
use metrics_support::*;

/// Checks the exposition format line by line; returns samples by full series name.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut typed = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap_or("").to_owned();
            let kind = parts.next().unwrap_or("");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.push(name);
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment {line}");
        let (series, value) = line.rsplit_once(' ').unwrap_or(("", ""));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap_or("");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(
            typed.iter().any(|t| t == name || t == family),
            "sample before its # TYPE: {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                for pair in labels[1..labels.len() - 1].split("\",") {
                    let (k, _) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label in {line}"));
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                }
            }
        }
        samples.insert(series.to_owned(), v);
    }
    samples
}

#[test]
fn metrics_text_parses_and_counts_requests_tokens_cost_and_fallbacks() {
    let m = Metrics::disabled();
    let t = now();
    m.record(cached(t, "deepseek-chat", 100, 50, 80, 20));
    let mut fb = ok(t, "openrouter-fallback");
    fb.attempts = all_failed(0, &["deepseek-chat"]).attempts;
    fb.latency_ms = 1_500.0;
    m.record(fb);
    m.record(all_failed(t, &["deepseek-chat", "gemini-flash"]));
    let text = m.render("# HELP clawgate_rules_generation Rules generation.\n# TYPE clawgate_rules_generation gauge\nclawgate_rules_generation 3");
    let s = parse(&text);
    let get = |k: &str| {
        s.get(k)
            .copied()
            .unwrap_or_else(|| panic!("missing {k} in\n{text}"))
    };
    assert_eq!(
        get(
            r#"clawgate_requests_total{provider="deepseek-chat",layer="heuristic",rule="tool-use",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            r#"clawgate_requests_total{provider="none",layer="static",rule="heartbeat",status="502"}"#
        ),
        1.0
    );
    assert_eq!(
        get(r#"clawgate_tokens_total{provider="deepseek-chat",kind="cache_hit"}"#),
        80.0
    );
    assert!((get(r#"clawgate_cost_usd_total{provider="deepseek-chat"}"#) - 6.6e-5).abs() < 1e-12);
    assert_eq!(
        get(r#"clawgate_fallbacks_total{provider="openrouter-fallback"}"#),
        1.0
    );
    assert_eq!(
        get(r#"clawgate_attempt_failures_total{provider="deepseek-chat"}"#),
        2.0
    );
    assert_eq!(get("clawgate_rules_generation"), 3.0);
    assert_eq!(get("clawgate_metrics_events_dropped_total"), 0.0);
    assert_eq!(get("clawgate_metrics_queue_depth"), 0.0);

    // Histogram buckets are cumulative and end with +Inf = _count.
    let labels = r#"provider="openrouter-fallback",layer="heuristic",rule="tool-use",status="200""#;
    assert_eq!(
        get(&format!(
            r#"clawgate_request_duration_seconds_bucket{{{labels},le="1"}}"#
        )),
        0.0
    );
    assert_eq!(
        get(&format!(
            r#"clawgate_request_duration_seconds_bucket{{{labels},le="2.5"}}"#
        )),
        1.0
    );
    assert_eq!(
        get(&format!(
            r#"clawgate_request_duration_seconds_bucket{{{labels},le="+Inf"}}"#
        )),
        1.0
    );
    assert_eq!(
        get(&format!(
            r#"clawgate_request_duration_seconds_count{{{labels}}}"#
        )),
        1.0
    );
    assert_eq!(
        get(&format!(
            r#"clawgate_request_duration_seconds_sum{{{labels}}}"#
        )),
        1.5
    );
}

#[test]
fn label_values_are_escaped_and_series_stay_bounded() {
    let m = Metrics::disabled();
    let mut ev = ok(now(), "we\"ird\\id");
    ev.rule = "line\nbreak".into();
    m.record(ev);
    for i in 0..3_000 {
        let mut ev = ok(now(), "deepseek-chat");
        ev.rule = format!("rule-{i}");
        m.record(ev);
    }
    let text = m.render("");
    let s = parse(&text);
    assert!(text.contains(r#"provider="we\"ird\\id""#));
    assert!(text.contains(r#"rule="line\nbreak""#));
    let series = s
        .keys()
        .filter(|k| k.starts_with("clawgate_requests_total{"))
        .count();
    assert!(series <= 2_001, "{series} request series");
    assert!(s.contains_key(
        r#"clawgate_requests_total{provider="other",layer="other",rule="other",status="200"}"#
    ));
}
