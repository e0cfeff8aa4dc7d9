//! The Anthropic Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`) over real
//! TCP: translated to an OpenAI-compatible mock and back (whole and streamed), passed
//! through to a mock speaking Anthropic's wire format byte for byte except `model`, fallback
//! from one to the other, errors in Anthropic's shape and statuses, and the metrics rows.

use crate::support;

use std::path::Path;

use serde_json::{json, Value};
use support::{fixture, Behavior, Gate, MockUpstream};

/// A gate with `claude` (an `anthropic` backend) and `ds` (OpenAI-compatible), this
/// fallback chain and no routing rules.
async fn gate(chain: &[&str], server_extra: &str) -> (Gate, MockUpstream, MockUpstream) {
    let claude = MockUpstream::start("claude").await;
    let ds = MockUpstream::start("ds").await;
    let yaml = format!(
        "server:
  host: 127.0.0.1
  port: 0
  max_body_mb: 0.5
{server_extra}health:
  consecutive_failures_before_skip: 1000
providers:
  claude:
    backend: anthropic
    base_url: {claude}
    api_key: anthropic-provider-key
    model: claude-sonnet-4-5
    max_tokens: 32000
    pricing: {{ input: 3.0, output: 15.0 }}
    timeout: {{ connect_s: 1, read_s: 3, first_byte_s: 2, idle_s: 2 }}
  ds:
    backend: openai-compat
    base_url: {ds}
    api_key: sk-ds
    model: deepseek-chat
    max_tokens: 8000
    pricing: {{ input: 0.27, output: 1.1 }}
    timeout: {{ connect_s: 1, read_s: 3, first_byte_s: 2, idle_s: 2 }}
fallback_chain: [{chain}]
",
        claude = claude.base_url(),
        ds = ds.base_url(),
        chain = chain.join(", "),
    );
    let empty = tempfile::tempdir().unwrap();
    let gate = Gate::start_with_rules(&yaml, Some(empty.path())).await;
    (gate, claude, ds)
}

/// POST `body` (bytes) to `path` with Claude Code's API headers and `extra`.
async fn post(gate: &Gate, path: &str, body: Vec<u8>, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut req = Gate::client()
        .post(format!("{}{path}", gate.url))
        .header("content-type", "application/json");
    if !extra.iter().any(|(k, _)| *k == "anthropic-version") {
        req = req.header("anthropic-version", "2023-06-01");
    }
    if !extra.iter().any(|(k, _)| *k == "x-api-key") {
        req = req.header("x-api-key", "sk-ant-client");
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.body(body).send().await.unwrap()
}

async fn messages(gate: &Gate, body: &Value) -> reqwest::Response {
    post(gate, "/v1/messages", body.to_string().into_bytes(), &[]).await
}

fn hello(model: &str, stream: bool) -> Value {
    json!({
        "model": model, "max_tokens": 20000, "stream": stream,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]
    })
}

/// A recorded Claude Code request: its headers and body bytes.
fn claude_code(name: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/claude-code")
        .join(name);
    let recorded: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let headers = recorded["headers"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("anthropic-"))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    (headers, serde_json::to_vec(&recorded["body"]).unwrap())
}

/// The events of an Anthropic SSE body as (name, data), checking that each names its type.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_owned();
                }
            }
            let v: Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{data}: {e}"));
            assert_eq!(v["type"], name.as_str(), "{e}");
            (name, v)
        })
        .collect()
}

fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter_map(|(_, v)| v["delta"]["text"].as_str())
        .collect()
}

#[tokio::test]
async fn a_message_from_an_openai_backend_is_answered_in_anthropic_shape() {
    let (gate, _claude, ds) = gate(&["ds"], "").await;
    let resp = messages(&gate, &hello("ds", false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-clawgate-provider"], "ds");
    assert_eq!(resp.headers()["x-clawgate-rule"], "explicit-model");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hello from ds"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 10);
    assert_eq!(v["usage"]["output_tokens"], 3);
    // The upstream got an OpenAI chat request, its max_tokens capped at the provider's.
    let sent = ds.received()[0].json();
    assert_eq!(ds.received()[0].path, "/v1/chat/completions");
    assert_eq!(sent["model"], "deepseek-chat");
    assert_eq!(sent["max_tokens"], 8000);
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Say hello"}]}])
    );
    gate.stop().await;
}

#[tokio::test]
async fn a_streamed_message_from_an_openai_backend_is_a_full_anthropic_event_stream() {
    let (gate, _claude, ds) = gate(&["ds"], "").await;
    let resp = messages(&gate, &hello("auto", true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-clawgate-provider"], "ds");
    let body = resp.text().await.unwrap();
    let evs = events(&body);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..3],
        ["message_start", "ping", "content_block_start"]
    );
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert_eq!(text_of(&evs), "Hello from ds");
    let delta = &evs[evs.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["input_tokens"], 10);
    assert_eq!(delta["usage"]["output_tokens"], 3);
    assert_eq!(
        ds.received()[0].json()["stream_options"]["include_usage"],
        true
    );
    gate.stop().await;
}

#[tokio::test]
async fn an_anthropic_backend_gets_the_clients_bytes_except_model_and_answers_through() {
    let (gate, claude, _ds) = gate(&["claude", "ds"], "").await;
    let (headers, body) = claude_code("tool-turn-2-tool-result.json");
    let stream = fixture("anthropic/stream-tool-use.sse");
    claude.script([Behavior::Raw {
        status: 200,
        content_type: "text/event-stream",
        chunks: stream.chunks(100).map(<[u8]>::to_vec).collect(),
    }]);
    let extra: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = post(&gate, "/v1/messages?beta=true", body.clone(), &extra).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-clawgate-provider"], "claude");
    assert_eq!(
        resp.bytes().await.unwrap(),
        stream,
        "the stream comes back byte for byte"
    );
    let got = &claude.received()[0];
    assert_eq!(got.path, "/v1/messages");
    let want = String::from_utf8(body).unwrap().replacen(
        "\"model\":\"claude-opus-5-5\"",
        "\"model\":\"claude-sonnet-4-5\"",
        1,
    );
    assert_eq!(std::str::from_utf8(&got.body).unwrap(), want);
    for name in ["anthropic-version", "anthropic-beta"] {
        let sent = headers.iter().find(|(k, _)| k == name).unwrap();
        assert_eq!(got.headers[name], sent.1.as_str(), "{name}");
    }
    assert_eq!(got.headers["x-api-key"], "anthropic-provider-key");
    let rows = gate.recent(1).await;
    assert_eq!(rows[0]["api"], "anthropic-messages");
    assert_eq!(rows[0]["provider"], "claude");
    assert_eq!(rows[0]["prompt_tok"], 472 + 2048);
    gate.stop().await;
}

#[tokio::test]
async fn a_whole_pass_through_answer_and_refusal_come_back_as_anthropic_wrote_them() {
    let (gate, claude, _ds) = gate(&["claude"], "").await;
    let answer = fixture("anthropic/response-text.json");
    let refusal = fixture("anthropic/error-400-invalid-request.json");
    claude.script([
        Behavior::Raw {
            status: 200,
            content_type: "application/json",
            chunks: vec![answer.clone()],
        },
        Behavior::Raw {
            status: 400,
            content_type: "application/json",
            chunks: vec![refusal.clone()],
        },
    ]);
    let resp = messages(&gate, &hello("claude", false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), answer);
    let resp = messages(&gate, &hello("claude", false)).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.bytes().await.unwrap(), refusal);
    assert_eq!(claude.hits(), 2, "a refusal is not retried elsewhere");
    gate.stop().await;
}

#[tokio::test]
async fn a_claude_code_request_falls_back_from_anthropic_to_an_openai_backend() {
    let (gate, claude, ds) = gate(&["claude", "ds"], "").await;
    claude.script([Behavior::Raw {
        status: 529,
        content_type: "application/json",
        chunks: vec![fixture("anthropic/error-529-overloaded.json")],
    }]);
    let (headers, body) = claude_code("tool-turn-2-tool-result.json");
    let extra: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = post(&gate, "/v1/messages?beta=true", body, &extra).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-clawgate-attempts"], "claude,ds");
    assert_eq!(resp.headers()["x-clawgate-provider"], "ds");
    let evs = events(&resp.text().await.unwrap());
    assert_eq!(text_of(&evs), "Hello from ds");
    assert_eq!(evs.last().unwrap().0, "message_stop");
    let sent = ds.received()[0].json();
    assert_eq!(
        sent["max_tokens"], 8000,
        "Claude Code's 128000 capped at the provider's"
    );
    assert_eq!(sent["tools"].as_array().unwrap().len(), 12);
    let msgs = sent["messages"].as_array().unwrap();
    let tool = msgs.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool["tool_call_id"], "toolu_01ABCDEF");
    assert_eq!(tool["content"], "secret token: tok-391304a3ead6");
    let call = msgs.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(call["tool_calls"][0]["function"]["name"], "Bash");
    assert!(ds.received()[0].headers.get("anthropic-beta").is_none());
    gate.stop().await;
}

#[tokio::test]
async fn a_translated_stream_cut_midway_ends_with_an_anthropic_error_event() {
    let (gate, _claude, ds) = gate(&["ds"], "").await;
    ds.script([Behavior::CutStream { events: 3 }]);
    let resp = messages(&gate, &hello("ds", true)).await;
    assert_eq!(resp.status(), 200);
    let evs = events(&resp.text().await.unwrap());
    let (name, last) = evs.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(last["error"]["type"], "api_error");
    assert!(evs.iter().all(|(n, _)| n != "message_stop"));
    gate.stop().await;
}

/// Status, Anthropic error type and a piece of the message for each kind of failure.
#[tokio::test]
async fn errors_come_in_anthropics_shape_with_its_statuses_and_are_recorded() {
    let (gate, claude, ds) = gate(&["claude", "ds"], "").await;
    let bad: Vec<(Vec<u8>, u16, &str, &str)> = vec![
        (b"{\"model\":".to_vec(), 400, "invalid_request_error", "not valid JSON"),
        (
            br#"{"model":"ds","messages":[{"role":"user","content":"hi"}]}"#.to_vec(),
            400,
            "invalid_request_error",
            "max_tokens: Field required",
        ),
        (
            br#"{"model":"ds","max_tokens":5,"messages":[{"role":"user","content":[{"type":"hologram"}]}]}"#.to_vec(),
            400,
            "invalid_request_error",
            "messages.0.content.0.type",
        ),
        (vec![b' '; 600 * 1024], 413, "request_too_large", "byte limit"),
    ];
    for (body, status, kind, message) in &bad {
        let resp = post(&gate, "/v1/messages", body.clone(), &[]).await;
        assert_eq!(resp.status(), *status);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], *kind);
        assert!(
            v["error"]["message"].as_str().unwrap().contains(message),
            "{v}"
        );
    }
    assert_eq!(claude.hits() + ds.hits(), 0);
    // Upstream failures: every provider rate-limited → 429; overloaded → 529; else 500.
    let limited =
        json!({"error": {"message": "slow down", "type": "rate_limit", "code": "rate_limit"}});
    let anthropic_429 = fixture("anthropic/error-429-rate-limit.json");
    let raw = |status, body: &Vec<u8>| Behavior::Raw {
        status,
        content_type: "application/json",
        chunks: vec![body.clone()],
    };
    claude.script([raw(429, &anthropic_429)]);
    ds.script([Behavior::Status(429, limited)]);
    let resp = messages(&gate, &hello("auto", false)).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_error"
    );
    claude.script([raw(529, &fixture("anthropic/error-529-overloaded.json"))]);
    ds.script([Behavior::Status(500, json!({"error": {"message": "boom"}}))]);
    let resp = messages(&gate, &hello("auto", false)).await;
    assert_eq!(resp.status(), 529);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["type"],
        "overloaded_error"
    );
    claude.script([raw(500, &b"{}".to_vec())]);
    ds.script([Behavior::Status(500, json!({"error": {"message": "boom"}}))]);
    let resp = messages(&gate, &hello("auto", true)).await;
    assert_eq!(resp.status(), 500);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "api_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("All providers failed"));
    // An OpenAI-shaped refusal from a translated upstream, in Anthropic's shape.
    ds.script([Behavior::Status(
        400,
        json!({"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}),
    )]);
    let resp = messages(&gate, &hello("ds", false)).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["error"],
        json!({"type": "invalid_request_error", "message": "max_tokens is too large"})
    );

    let rows = gate.recent(8).await;
    let statuses: Vec<u64> = rows.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(
        statuses,
        [400, 500, 529, 429, 413, 400, 400, 400],
        "newest first"
    );
    assert!(rows
        .iter()
        .all(|r| r["api"] == "anthropic-messages" && r["success"] == 0));
    gate.stop().await;
}

#[tokio::test]
async fn the_client_key_may_come_as_x_api_key_or_bearer_and_is_checked() {
    let (gate, _claude, _ds) = gate(&["ds"], "  api_key: gate-key\n").await;
    let body = hello("ds", false).to_string().into_bytes();
    let resp = post(&gate, "/v1/messages", body.clone(), &[]).await;
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    let resp = post(
        &gate,
        "/v1/messages",
        body.clone(),
        &[("x-api-key", "gate-key")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = Gate::client()
        .post(format!("{}/v1/messages", gate.url))
        .header("authorization", "Bearer gate-key")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = Gate::client()
        .get(format!("{}/v1/messages", gate.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.json::<Value>().await.unwrap()["type"], "error");
    gate.stop().await;
}

#[tokio::test]
async fn count_tokens_and_models_answer_in_anthropic_shape() {
    let (gate, _claude, _ds) = gate(&["ds"], "").await;
    let (_, body) = claude_code("tool-turn-1-request.json");
    let resp = post(&gate, "/v1/messages/count_tokens", body, &[]).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let n = v["input_tokens"].as_u64().unwrap();
    assert!((5_000..30_000).contains(&n), "{n}");
    let resp = post(&gate, "/v1/messages/count_tokens", b"{}".to_vec(), &[]).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["type"],
        "invalid_request_error"
    );

    let anthropic: Value = Gate::client()
        .get(format!("{}/v1/models", gate.url))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anthropic["has_more"], false);
    assert_eq!(anthropic["first_id"], "auto");
    let ids: Vec<&str> = anthropic["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["auto", "claude", "ds"]);
    assert_eq!(anthropic["data"][1]["type"], "model");
    assert!(anthropic["data"][1]["created_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let openai = gate.get_json("/v1/models").await;
    assert_eq!(openai["object"], "list");
    gate.stop().await;
}

#[tokio::test]
async fn stats_break_totals_down_by_client_api() {
    let (gate, _claude, _ds) = gate(&["ds"], "").await;
    assert_eq!(messages(&gate, &hello("ds", false)).await.status(), 200);
    assert!(!messages(&gate, &hello("ds", true))
        .await
        .text()
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        gate.chat(&support::chat_body("ds", "hi", false))
            .await
            .status(),
        200
    );
    let rows = gate.recent(3).await;
    let apis: Vec<&str> = rows.iter().map(|r| r["api"].as_str().unwrap()).collect();
    assert_eq!(
        apis,
        ["openai-chat", "anthropic-messages", "anthropic-messages"]
    );
    let stats = gate.get_json("/api/stats").await;
    let by_api: Vec<(String, u64)> = stats["apis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["api"].as_str().unwrap().to_owned(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_api,
        [
            ("anthropic-messages".to_owned(), 2),
            ("openai-chat".to_owned(), 1)
        ]
    );
    gate.stop().await;
}

#[tokio::test]
async fn an_anthropic_error_midway_through_a_passed_through_stream_reaches_the_client_once() {
    let (gate, claude, _ds) = gate(&["claude", "ds"], "").await;
    let stream = fixture("anthropic/stream-error-midway.sse");
    // The error comes after the first content reached the client: it cannot fall back.
    let at = memchr::memmem::find(&stream, b"event: error").unwrap();
    claude.script([Behavior::RawPaced {
        content_type: "text/event-stream",
        chunks: vec![stream[..at].to_vec(), stream[at..].to_vec()],
        pause: std::time::Duration::from_millis(100),
    }]);
    let resp = messages(&gate, &hello("auto", true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-clawgate-provider"], "claude");
    let body = resp.text().await.unwrap();
    assert_eq!(
        body.as_bytes(),
        stream,
        "as Anthropic sent it, and no second error event"
    );
    let evs = events(&body);
    assert_eq!(evs.last().unwrap().1["error"]["type"], "overloaded_error");
    let rows = gate.recent(1).await;
    assert_eq!(rows[0]["success"], 0);
    assert!(
        rows[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("overloaded_error: Overloaded"),
        "{}",
        rows[0]
    );
    gate.stop().await;
}
