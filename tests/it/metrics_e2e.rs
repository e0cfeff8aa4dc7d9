//! Metrics as an operator sees them: requests through the real server show up in
//! /api/recent, /api/stats, /metrics and the dashboard.

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{chat_body, Behavior, Gate, MockUpstream};

async fn gate() -> (Gate, MockUpstream, MockUpstream) {
    support::alpha_beta_gate().await
}

#[tokio::test]
async fn an_answered_request_is_recorded_with_tokens_and_cost() {
    let (gate, _a, _b) = gate().await;
    assert_eq!(
        gate.chat(&chat_body("alpha", "hello", false))
            .await
            .status(),
        200
    );
    let row = &gate.recent(1).await[0];
    assert_eq!(row["provider"], "alpha");
    assert_eq!(row["model"], "upstream-alpha");
    assert_eq!(row["layer"], "direct");
    assert_eq!(row["rule_name"], "explicit-model");
    assert_eq!(row["prompt_tok"], 10);
    assert_eq!(row["compl_tok"], 3);
    assert_eq!(row["success"], 1);
    // pricing: input 1.0, output 2.0 USD per million tokens
    let cost = row["cost_usd"].as_f64().unwrap();
    assert!((cost - 16e-6).abs() < 1e-9, "{cost}");
    assert!(row["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(row["timestamp"].as_f64().unwrap() > 1.7e9);
    gate.stop().await;
}

#[tokio::test]
async fn a_stream_is_recorded_with_the_usage_of_its_last_chunk() {
    let (gate, _a, _b) = gate().await;
    let mut body = chat_body("alpha", "hello", true);
    body["stream_options"] = json!({"include_usage": true});
    let text = gate.chat(&body).await.text().await.unwrap();
    assert!(text.contains("\"usage\""));
    let row = &gate.recent(1).await[0];
    assert_eq!(row["stream"], true);
    assert_eq!(row["prompt_tok"], 10);
    assert_eq!(row["compl_tok"], 3); // "Hello from alpha": three words
    assert_eq!(row["usage_estimated"], false);
    assert!(row["ttfb_ms"].as_f64().is_some());
    gate.stop().await;
}

#[tokio::test]
async fn usage_is_asked_for_on_the_clients_behalf_and_its_chunk_kept_from_the_client() {
    let (gate, a, _b) = gate().await;
    let text = gate
        .chat(&chat_body("alpha", "hello", true))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !text.contains("\"usage\""),
        "the client did not ask for usage: {text}"
    );
    assert_eq!(
        support::sse_text(&text),
        ("Hello from alpha".to_owned(), true)
    );
    assert_eq!(
        a.received()[0].json()["stream_options"]["include_usage"],
        true
    );
    let row = &gate.recent(1).await[0];
    assert_eq!(row["usage_estimated"], false);
    assert_eq!(row["compl_tok"], 3);
    gate.stop().await;
}

#[tokio::test]
async fn a_stream_without_usage_is_estimated_and_marked_so() {
    let (gate, a, _b) = gate().await;
    let events: Vec<Vec<u8>> = support::sse_events("m", "no usage here", false)
        .into_iter()
        .map(String::into_bytes)
        .collect();
    a.script([Behavior::Raw {
        status: 200,
        content_type: "text/event-stream",
        chunks: events,
    }]);
    gate.chat(&chat_body("alpha", "hello", true))
        .await
        .text()
        .await
        .unwrap();
    let row = &gate.recent(1).await[0];
    assert_eq!(row["usage_estimated"], true);
    assert!(row["prompt_tok"].as_u64().unwrap() > 0);
    gate.stop().await;
}

#[tokio::test]
async fn fallbacks_and_failures_are_recorded_with_each_attempt() {
    let (gate, a, b) = gate().await;
    a.script([Behavior::Status(500, json!({}))]);
    gate.chat(&chat_body("auto", "hello", false)).await;
    a.script([Behavior::Status(500, json!({}))]);
    b.script([Behavior::Status(503, json!({}))]);
    assert_eq!(
        gate.chat(&chat_body("auto", "hello", false)).await.status(),
        502
    );
    let rows = gate.recent(2).await;
    let (failed, fell_back) = (&rows[0], &rows[1]);
    assert_eq!(fell_back["provider"], "beta");
    assert_eq!(fell_back["success"], 1);
    assert_eq!(fell_back["attempts"][0]["provider"], "alpha");
    assert!(fell_back["attempts"][0]["error"]
        .as_str()
        .unwrap()
        .contains("HTTP 500"));
    assert_eq!(failed["success"], 0);
    assert_eq!(failed["status"], 502);
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 2);
    let stats = gate.get_json("/api/stats?window=1h").await;
    assert_eq!(stats["totals"]["total_requests"], 2);
    assert_eq!(stats["totals"]["total_failures"], 1);
    gate.stop().await;
}

#[tokio::test]
async fn a_rejected_request_is_recorded_too() {
    let (gate, _a, _b) = gate().await;
    let resp = gate.chat_raw("{not json").await;
    assert_eq!(resp.status(), 400);
    let row = &gate.recent(1).await[0];
    assert_eq!(row["success"], 0);
    assert_eq!(row["status"], 400);
    assert!(row["error"].as_str().unwrap().starts_with("invalid_json"));
    gate.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_recorded() {
    let (gate, a, _b) = gate().await;
    a.set_chunk_delay(Duration::from_millis(200));
    let mut resp = gate
        .chat(&chat_body("alpha", "one two three four five six", true))
        .await;
    resp.chunk().await.unwrap();
    drop(resp);
    let row = &gate.recent(1).await[0];
    assert!(
        row["error"].as_str().unwrap().starts_with("client_closed"),
        "{row}"
    );
    gate.stop().await;
}

#[tokio::test]
async fn stats_keep_the_original_field_names_and_reject_bad_queries() {
    let (gate, _a, _b) = gate().await;
    for _ in 0..3 {
        gate.chat(&chat_body("alpha", "hello", false)).await;
    }
    gate.recent(3).await;
    let stats = gate.get_json("/api/stats?window=24h").await;
    for key in [
        "total_requests",
        "total_failures",
        "total_prompt_tokens",
        "total_compl_tokens",
        "total_cost_usd",
        "avg_latency_ms",
    ] {
        assert!(stats["totals"].get(key).is_some(), "totals.{key}: {stats}");
    }
    assert_eq!(stats["totals"]["total_requests"], 3);
    assert_eq!(stats["totals"]["total_prompt_tokens"], 30);
    assert_eq!(stats["providers"][0]["provider"], "alpha");
    assert_eq!(stats["routing"][0]["rule_name"], "explicit-model");
    for key in ["hourly", "daily"] {
        assert!(stats[key].is_array(), "{key}");
    }
    let client = Gate::client();
    for (path, param) in [
        ("/api/stats?window=forever", "window"),
        ("/api/recent?limit=0", "limit"),
        ("/api/recent?limit=5000", "limit"),
        ("/api/recent?limit=x", "limit"),
    ] {
        let resp = client
            .get(format!("{}{path}", gate.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["param"], param, "{path}");
    }
    gate.stop().await;
}

#[tokio::test]
async fn prometheus_metrics_count_requests_and_show_provider_state() {
    let (gate, _a, _b) = gate().await;
    gate.chat(&chat_body("alpha", "hello", false)).await;
    let resp = Gate::client()
        .get(format!("{}/metrics", gate.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("clawgate_requests_total{") && l.contains("provider=\"alpha\"")),
        "{text}"
    );
    assert!(
        text.contains("clawgate_provider_up{provider=\"alpha\"} 1"),
        "{text}"
    );
    assert!(text.contains("clawgate_rules_generation 1"));
    assert!(!text.contains("sk-test"));
    gate.stop().await;
}

#[tokio::test]
async fn the_dashboard_is_one_self_contained_page() {
    let (gate, _a, _b) = gate().await;
    let resp = Gate::client()
        .get(format!("{}/dashboard", gate.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("/api/stats") && html.contains("/api/recent"));
    for external in ["src=\"http", "href=\"http", "src='http", "@import"] {
        assert!(
            !html.contains(external),
            "the dashboard loads something from elsewhere: {external}"
        );
    }
    gate.stop().await;
}
