//! End to end over real TCP: a client → ClawGate → mock OpenAI-compatible upstreams.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{chat_body, config_yaml, sse_text, Behavior, Gate, MockUpstream, P};

fn p(id: &str, mock: &MockUpstream) -> P<'static> {
    P {
        id: Box::leak(id.to_owned().into_boxed_str()),
        base_url: mock.base_url(),
        extra: "",
    }
}

/// Two providers, `alpha` then `beta` in the fallback chain, and no routing rules.
async fn two_providers() -> (Gate, MockUpstream, MockUpstream) {
    support::alpha_beta_gate().await
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn non_streaming_answer_arrives_intact_with_routing_headers() {
    let (gate, a, _b) = two_providers().await;
    let resp = gate.chat(&chat_body("auto", "hello", false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("alpha"));
    assert_eq!(header(&resp, "x-clawgate-layer"), Some("fallback"));
    assert_eq!(header(&resp, "x-clawgate-rule"), Some("no-match"));
    assert_eq!(header(&resp, "x-clawgate-attempts"), None);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from alpha");
    assert_eq!(body["model"], "upstream-alpha");
    assert_eq!(a.hits(), 1);
    gate.stop().await;
}

#[tokio::test]
async fn streaming_answer_is_forwarded_event_by_event_with_headers_and_done() {
    let (gate, a, _b) = two_providers().await;
    a.set_chunk_delay(Duration::from_millis(100));
    let started = Instant::now();
    let mut resp = gate.chat(&chat_body("auto", "hello", true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), Some("text/event-stream"));
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("alpha"));
    assert_eq!(header(&resp, "x-clawgate-layer"), Some("fallback"));
    // The first event arrives long before the upstream has finished (6 events, 100 ms apart).
    let first = resp.chunk().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(first.starts_with(b"data: "), "{first:?}");
    let mut all = first.to_vec();
    let mut chunks = 1;
    while let Some(c) = resp.chunk().await.unwrap() {
        all.extend_from_slice(&c);
        chunks += 1;
    }
    let total = started.elapsed();
    assert!(chunks >= 4, "events were buffered into {chunks} chunks");
    assert!(
        total > first_at + Duration::from_millis(300),
        "first {first_at:?} total {total:?}"
    );
    let (text, done) = sse_text(std::str::from_utf8(&all).unwrap());
    assert_eq!(text, "Hello from alpha");
    assert!(done, "[DONE] must reach the client");
    gate.stop().await;
}

#[tokio::test]
async fn upstream_gets_the_rewritten_model_and_every_other_field_untouched() {
    let (gate, a, _b) = two_providers().await;
    let body = json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"a\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "file contents"}
        ],
        "tools": [{"type": "function", "function": {"name": "read", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "reasoning_effort": "high",
        "max_completion_tokens": 77,
        "temperature": 0.25
    });
    let resp = gate.chat(&body).await;
    assert_eq!(resp.status(), 200);
    let got = a.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/v1/chat/completions");
    assert_eq!(got[0].headers["authorization"], "Bearer sk-test-alpha");
    let hosts: Vec<_> = got[0].headers.get_all("host").iter().collect();
    assert_eq!(
        hosts,
        [a.addr.to_string().as_str()],
        "one Host header, host:port"
    );
    let mut sent = got[0].json();
    assert_eq!(sent["model"], "upstream-alpha");
    sent["model"] = json!("auto");
    assert_eq!(sent, body, "only the model may change");
    gate.stop().await;
}

#[tokio::test]
async fn provider_max_tokens_is_applied_when_the_client_sets_none() {
    let a = MockUpstream::start("alpha").await;
    let cfg = config_yaml(
        &[P {
            id: "alpha",
            base_url: a.base_url(),
            extra: "    max_tokens: 321\n    headers:\n      X-Title: ClawGate\n",
        }],
        &["alpha"],
        "",
    );
    let empty = tempfile::tempdir().unwrap();
    let gate = Gate::start_with_rules(&cfg, Some(empty.path())).await;
    assert_eq!(
        gate.chat(&chat_body("auto", "hi", false)).await.status(),
        200
    );
    let got = a.received();
    assert_eq!(got[0].json()["max_tokens"], 321);
    assert_eq!(got[0].headers["x-title"], "ClawGate");
    gate.stop().await;
}

#[tokio::test]
async fn a_loaded_provider_id_as_model_goes_straight_to_it() {
    let (gate, a, b) = two_providers().await;
    let resp = gate.chat(&chat_body("beta", "hello", false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("beta"));
    assert_eq!(header(&resp, "x-clawgate-layer"), Some("direct"));
    assert_eq!(header(&resp, "x-clawgate-rule"), Some("explicit-model"));
    assert_eq!((a.hits(), b.hits()), (0, 1));
    assert_eq!(b.received()[0].json()["model"], "upstream-beta");
    gate.stop().await;
}

#[tokio::test]
async fn every_provider_failure_kind_falls_through_to_the_next_provider() {
    let cases: Vec<(&str, Behavior, &str, bool)> = vec![
        (
            "429",
            Behavior::Status(429, json!({"error": {"message": "rate limited"}})),
            "HTTP 429",
            false,
        ),
        (
            "500",
            Behavior::Status(500, json!({"error": {"message": "boom"}})),
            "HTTP 500",
            false,
        ),
        ("503", Behavior::Status(503, json!({})), "HTTP 503", false),
        (
            "401",
            Behavior::Status(
                401,
                json!({"error": {"message": "Incorrect API key provided: sk-test-alpha"}}),
            ),
            "HTTP 401",
            false,
        ),
        ("403", Behavior::Status(403, json!({})), "HTTP 403", false),
        (
            "404",
            Behavior::Status(404, json!({"error": {"message": "model not found"}})),
            "HTTP 404",
            false,
        ),
        ("408", Behavior::Status(408, json!({})), "HTTP 408", false),
        ("hang", Behavior::Hang, "within", false),
        ("reset", Behavior::Reset, "", false),
        ("malformed", Behavior::Malformed, "not valid JSON", false),
        (
            "200 with error",
            Behavior::Status(200, json!({"error": {"message": "upstream quota"}})),
            "quota",
            false,
        ),
        (
            "stream 500",
            Behavior::Status(500, json!({})),
            "HTTP 500",
            true,
        ),
        ("stream hang", Behavior::Hang, "first byte", true),
        ("stream reset", Behavior::Reset, "", true),
        (
            "stream cut before first event",
            Behavior::CutStream { events: 0 },
            "stream broke",
            true,
        ),
    ];
    for (name, behavior, needle, stream) in cases {
        let (gate, a, b) = two_providers().await;
        a.script([behavior]);
        let resp = gate.chat(&chat_body("auto", "hello", stream)).await;
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(header(&resp, "x-clawgate-provider"), Some("beta"), "{name}");
        assert_eq!(
            header(&resp, "x-clawgate-attempts"),
            Some("alpha,beta"),
            "{name}"
        );
        let text = resp.text().await.unwrap();
        if stream {
            assert_eq!(
                sse_text(&text),
                ("Hello from beta".to_owned(), true),
                "{name}"
            );
        } else {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                v["choices"][0]["message"]["content"], "Hello from beta",
                "{name}"
            );
        }
        assert_eq!((a.hits(), b.hits()), (1, 1), "{name}");
        let health = gate.get_json("/health").await;
        let alpha = &health["providers"]["alpha"];
        assert_eq!(alpha["consecutive_failures"], 1, "{name}: {health}");
        let last_error = alpha["last_error"].as_str().unwrap();
        assert!(last_error.contains(needle), "{name}: {last_error}");
        assert!(
            !last_error.contains("sk-test-alpha"),
            "{name}: the key leaked into /health: {last_error}"
        );
        assert_eq!(
            health["providers"]["beta"]["consecutive_failures"], 0,
            "{name}"
        );
        gate.stop().await;
    }
}

#[tokio::test]
async fn a_client_error_from_the_upstream_is_returned_as_is_and_not_retried() {
    for status in [400u16, 413, 422] {
        let (gate, a, b) = two_providers().await;
        let upstream_error = json!({"error": {"message": "messages[0] is invalid", "type": "invalid_request_error", "param": "messages", "code": null}});
        a.script([Behavior::Status(status, upstream_error.clone())]);
        let resp = gate.chat(&chat_body("auto", "hello", false)).await;
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(header(&resp, "x-clawgate-provider"), Some("alpha"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body, upstream_error);
        assert_eq!(b.hits(), 0, "a client error must not be retried elsewhere");
        let health = gate.get_json("/health").await;
        assert_eq!(health["providers"]["alpha"]["consecutive_failures"], 0);
        gate.stop().await;
    }
}

#[tokio::test]
async fn circuit_opens_after_repeated_failures_and_a_probe_closes_it() {
    let (gate, a, b) = two_providers().await;
    a.set_default(Behavior::Status(500, json!({})));
    for _ in 0..3 {
        let resp = gate.chat(&chat_body("auto", "hello", false)).await;
        assert_eq!(header(&resp, "x-clawgate-provider"), Some("beta"));
    }
    let health = gate.get_json("/health").await;
    assert_eq!(health["providers"]["alpha"]["circuit"], "open", "{health}");
    assert_eq!(health["providers"]["alpha"]["healthy"], false);
    // While open, alpha is skipped: beta answers without alpha being called.
    let resp = gate.chat(&chat_body("auto", "hello", false)).await;
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("beta"));
    assert_eq!(header(&resp, "x-clawgate-attempts"), None);
    assert_eq!(a.hits(), 3);
    // After the cool-down (0.3 s in the test config) one probe goes to alpha; it succeeds.
    a.set_default(Behavior::Answer("alpha is back".into()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let resp = gate.chat(&chat_body("auto", "hello", false)).await;
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("alpha"));
    let health = gate.get_json("/health").await;
    assert_eq!(health["providers"]["alpha"]["circuit"], "closed");
    assert_eq!(health["providers"]["alpha"]["healthy"], true);
    assert_eq!(health["providers"]["alpha"]["consecutive_failures"], 0);
    assert_eq!(b.hits(), 4);
    gate.stop().await;
}

#[tokio::test]
async fn a_failed_probe_keeps_the_circuit_open_for_longer() {
    let (gate, a, _b) = two_providers().await;
    a.set_default(Behavior::Status(500, json!({})));
    for _ in 0..3 {
        gate.chat(&chat_body("auto", "hello", false)).await;
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    gate.chat(&chat_body("auto", "hello", false)).await; // the probe, fails
    assert_eq!(a.hits(), 4);
    let health = gate.get_json("/health").await;
    let retry = health["providers"]["alpha"]["retry_in_s"].as_f64().unwrap();
    assert!(
        retry > 0.4,
        "cool-down should have doubled to 0.6 s, retry in {retry}"
    );
    gate.stop().await;
}

#[tokio::test]
async fn when_every_circuit_is_open_providers_are_still_tried() {
    let (gate, a, b) = two_providers().await;
    a.set_default(Behavior::Status(500, json!({})));
    b.set_default(Behavior::Status(500, json!({})));
    for _ in 0..3 {
        gate.chat(&chat_body("auto", "hello", false)).await;
    }
    assert_eq!(gate.get_json("/health").await["status"], "degraded");
    b.set_default(Behavior::Answer("beta recovered".into()));
    let resp = gate.chat(&chat_body("auto", "hello", false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("beta"));
    gate.stop().await;
}

#[tokio::test]
async fn when_every_provider_fails_the_error_names_each_one() {
    let (gate, a, b) = two_providers().await;
    a.script([Behavior::Status(
        429,
        json!({"error": {"message": "slow down"}}),
    )]);
    b.script([Behavior::Status(502, json!({}))]);
    let resp = gate.chat(&chat_body("auto", "hello", false)).await;
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(error["type"], "provider_error");
    assert_eq!(error["code"], "all_providers_failed");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("alpha: HTTP 429") && message.contains("slow down"),
        "{message}"
    );
    assert!(message.contains("beta: HTTP 502"), "{message}");
    assert_eq!(error["attempts"].as_array().unwrap().len(), 2);
    assert!(error.get("param").is_some());
    gate.stop().await;
}

#[tokio::test]
async fn when_every_provider_times_out_the_answer_is_504() {
    let (gate, a, b) = two_providers().await;
    a.script([Behavior::Hang]);
    b.script([Behavior::Hang]);
    let started = Instant::now();
    let resp = gate.chat(&chat_body("auto", "hello", false)).await;
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(10));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    gate.stop().await;
}

#[tokio::test]
async fn with_no_provider_loaded_requests_get_503_saying_which_key_to_set() {
    let cfg = "providers:\n  deepseek-chat:\n    base_url: https://api.deepseek.com/v1\n    api_key: \"${DEEPSEEK_API_KEY}\"\n    model: deepseek-chat\nfallback_chain: [deepseek-chat]\n";
    let empty = tempfile::tempdir().unwrap();
    let gate = Gate::start_with_rules(cfg, Some(empty.path())).await;
    let resp = gate.chat(&chat_body("auto", "hello", false)).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_providers");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DEEPSEEK_API_KEY"),
        "{body}"
    );
    let health = gate.get_json("/health").await;
    assert_eq!(health["status"], "no_providers");
    assert_eq!(health["skipped_providers"], json!(["deepseek-chat"]));
    gate.stop().await;
}

#[tokio::test]
async fn a_stream_that_breaks_after_its_first_event_ends_with_an_error_event() {
    let (gate, a, b) = two_providers().await;
    a.script([Behavior::CutStream { events: 3 }]);
    let resp = gate.chat(&chat_body("auto", "hello", true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("alpha"));
    let text = resp.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 4, "{text}");
    let last: Value = serde_json::from_str(events[3].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("alpha: "));
    assert!(!text.contains("[DONE]"));
    assert_eq!(b.hits(), 0, "no fallback once the client has bytes");
    gate.stop().await;
}

#[tokio::test]
async fn a_stream_that_goes_quiet_is_ended_by_the_idle_timeout() {
    let (gate, a, _b) = two_providers().await;
    a.set_chunk_delay(Duration::from_millis(1500)); // idle_s is 1 in the test config
    let started = Instant::now();
    let resp = gate.chat(&chat_body("auto", "hello", true)).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("idle timeout"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    gate.stop().await;
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_stream() {
    let (gate, a, _b) = two_providers().await;
    a.set_chunk_delay(Duration::from_millis(200));
    let mut resp = gate
        .chat(&chat_body(
            "auto",
            "one two three four five six seven eight nine ten",
            true,
        ))
        .await;
    assert!(resp.chunk().await.unwrap().is_some());
    drop(resp);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        a.stream_endings(),
        (0, 1),
        "the upstream stream should have been dropped, not finished"
    );
    gate.stop().await;
}

#[tokio::test]
async fn bad_input_gets_the_right_status_and_openai_error_shape() {
    let (gate, a, _b) = two_providers().await;
    let client = Gate::client();
    let url = format!("{}/v1/chat/completions", gate.url);
    let big = "x".repeat(21 * 1024 * 1024);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, Option<&str>, &str)> = vec![
        (
            "malformed JSON",
            client
                .post(&url)
                .header("content-type", "application/json")
                .body("{\"model\": "),
            400,
            None,
            "invalid_json",
        ),
        (
            "empty body",
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(""),
            400,
            None,
            "invalid_json",
        ),
        (
            "not an object",
            client.post(&url).json(&json!([1, 2])),
            400,
            None,
            "invalid_type",
        ),
        (
            "missing messages",
            client.post(&url).json(&json!({"model": "auto"})),
            400,
            Some("messages"),
            "missing_required_parameter",
        ),
        (
            "empty messages",
            client
                .post(&url)
                .json(&json!({"model": "auto", "messages": []})),
            400,
            Some("messages"),
            "invalid_value",
        ),
        (
            "messages not a list",
            client.post(&url).json(&json!({"messages": "hi"})),
            400,
            Some("messages"),
            "invalid_type",
        ),
        (
            "model not a string",
            client
                .post(&url)
                .json(&json!({"model": 7, "messages": [{"role": "user", "content": "x"}]})),
            400,
            Some("model"),
            "invalid_type",
        ),
        (
            "unknown role",
            client
                .post(&url)
                .json(&json!({"messages": [{"role": "wizard", "content": "x"}]})),
            400,
            Some("messages[0].role"),
            "invalid_type",
        ),
        (
            "content a number",
            client
                .post(&url)
                .json(&json!({"messages": [{"role": "user", "content": 5}]})),
            400,
            Some("messages[0].content"),
            "invalid_type",
        ),
        (
            "stream not a bool",
            client
                .post(&url)
                .json(&json!({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})),
            400,
            Some("stream"),
            "invalid_type",
        ),
        (
            "body too large",
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(big),
            413,
            None,
            "request_too_large",
        ),
        (
            "wrong content type",
            client
                .post(&url)
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            None,
            "unsupported_media_type",
        ),
        (
            "form content type",
            client.post(&url).form(&[("a", "b")]),
            415,
            None,
            "unsupported_media_type",
        ),
        (
            "GET on chat",
            client.get(&url),
            405,
            None,
            "method_not_allowed",
        ),
        (
            "unknown path",
            client.get(format!("{}/v1/nothing", gate.url)),
            404,
            None,
            "unknown_url",
        ),
    ];
    for (name, req, status, param, code) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{name}");
        assert_eq!(
            header(&resp, "content-type"),
            Some("application/json"),
            "{name}"
        );
        let body: Value = resp.json().await.unwrap();
        let error = &body["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {body}"
        );
        assert!(error["type"].is_string(), "{name}: {body}");
        assert_eq!(
            error["param"],
            param.map_or(Value::Null, |p| json!(p)),
            "{name}: {body}"
        );
        assert_eq!(error["code"], code, "{name}: {body}");
    }
    assert_eq!(a.hits(), 0, "no bad request may reach a provider");
    // The server is still serving.
    assert_eq!(
        gate.chat(&chat_body("auto", "hello", false)).await.status(),
        200
    );
    gate.stop().await;
}

#[tokio::test]
async fn models_lists_auto_and_every_loaded_provider() {
    let (gate, _a, _b) = two_providers().await;
    let models = gate.get_json("/v1/models").await;
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["auto", "alpha", "beta"]);
    assert_eq!(models["data"][1]["owned_by"], "openai-compat");
    assert_eq!(models["data"][1]["object"], "model");
    let without_prefix = gate.get_json("/models").await;
    assert_eq!(without_prefix, models);
    gate.stop().await;
}

#[tokio::test]
async fn chat_completions_answers_without_the_v1_prefix_too() {
    let (gate, _a, _b) = two_providers().await;
    let resp = Gate::client()
        .post(format!("{}/chat/completions", gate.url))
        .json(&chat_body("auto", "hello", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    gate.stop().await;
}

#[tokio::test]
async fn health_reports_each_provider_without_secrets() {
    let (gate, a, _b) = two_providers().await;
    a.script([Behavior::Status(
        401,
        json!({"error": {"message": "bad key sk-test-alpha"}}),
    )]);
    gate.chat(&chat_body("auto", "hello", false)).await;
    gate.chat(&chat_body("auto", "hello", false)).await;
    let health = gate.get_json("/health").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    for key in [
        "healthy",
        "consecutive_failures",
        "avg_latency_ms",
        "last_error",
        "circuit",
    ] {
        assert!(
            health["providers"]["alpha"].get(key).is_some(),
            "{key}: {health}"
        );
    }
    assert!(
        health["providers"]["alpha"]["avg_latency_ms"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(health["rules"]["generation"].is_u64());
    assert!(!health.to_string().contains("sk-test"), "{health}");
    gate.stop().await;
}

#[tokio::test]
async fn a_client_key_is_required_when_one_is_configured() {
    let a = MockUpstream::start("alpha").await;
    let cfg = config_yaml(&[p("alpha", &a)], &["alpha"], "").replace(
        "  log_level: debug\n",
        "  log_level: debug\n  api_key: let-me-in\n",
    );
    let empty = tempfile::tempdir().unwrap();
    let gate = Gate::start_with_rules(&cfg, Some(empty.path())).await;
    let url = format!("{}/v1/chat/completions", gate.url);
    let body = chat_body("auto", "hi", false);
    let none = Gate::client().post(&url).json(&body).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = Gate::client()
        .post(&url)
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = Gate::client()
        .post(&url)
        .bearer_auth("let-me-in")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(
        Gate::client()
            .get(format!("{}/health", gate.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(a.hits(), 1);
    gate.stop().await;
}

#[tokio::test]
async fn a_real_openclaw_turn_is_proxied_byte_for_byte_except_the_model() {
    let (gate, a, _b) = two_providers().await;
    let body = support::openclaw_body("turn-local-main");
    let raw = serde_json::to_vec(&body).unwrap();
    assert!(raw.len() > 30_000);
    let resp = gate.chat_raw(raw.clone()).await;
    assert_eq!(resp.status(), 200);
    let (text, done) = sse_text(&resp.text().await.unwrap());
    assert_eq!((text.as_str(), done), ("Hello from alpha", true));
    let sent = a.received()[0].body.clone();
    let model = body["model"].as_str().unwrap();
    let expected = String::from_utf8(raw).unwrap().replacen(
        &format!("\"model\":\"{model}\""),
        "\"model\":\"upstream-alpha\"",
        1,
    );
    assert_eq!(String::from_utf8(sent.to_vec()).unwrap(), expected);
    gate.stop().await;
}
