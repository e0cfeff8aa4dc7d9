//! The Gemini API ingress (`POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`) over real TCP: translated to an OpenAI-compatible mock
//! and back (whole and streamed), passed through to a mock speaking Gemini's wire format byte
//! for byte (the model in the URL the provider's), fallback from one to the other, the client
//! key, errors in Google's shape and statuses, and the metrics rows.

use crate::support;

use serde_json::{json, Value};
use support::{fixture, Behavior, Gate, MockUpstream};

/// A gate with `gem` (a `google-genai` backend) and `ds` (OpenAI-compatible), this fallback
/// chain and no routing rules.
async fn gate(chain: &[&str], server_extra: &str) -> (Gate, MockUpstream, MockUpstream) {
    let gem = MockUpstream::start("gem").await;
    let ds = MockUpstream::start("ds").await;
    let yaml = format!(
        "server:
  host: 127.0.0.1
  port: 0
{server_extra}health:
  consecutive_failures_before_skip: 1000
providers:
  gem:
    backend: google-genai
    base_url: {gem}
    api_key: gemini-provider-key
    model: gemini-2.5-flash
    timeout: {{ connect_s: 1, read_s: 3, first_byte_s: 2, idle_s: 2 }}
  ds:
    backend: openai-compat
    base_url: {ds}
    api_key: sk-ds
    model: deepseek-chat
    max_tokens: 8000
    timeout: {{ connect_s: 1, read_s: 3, first_byte_s: 2, idle_s: 2 }}
fallback_chain: [{chain}]
",
        gem = gem.base_url(),
        ds = ds.base_url(),
        chain = chain.join(", "),
    );
    let empty = tempfile::tempdir().unwrap();
    let gate = Gate::start_with_rules(&yaml, Some(empty.path())).await;
    (gate, gem, ds)
}

fn path(model: &str, stream: bool) -> String {
    if stream {
        format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/v1beta/models/{model}:generateContent")
    }
}

/// POST `body` to `path` as the `google-genai` SDK does, with `key` as `x-goog-api-key`.
async fn post(gate: &Gate, path: &str, body: Vec<u8>, key: Option<&str>) -> reqwest::Response {
    let mut req = Gate::client()
        .post(format!("{}{path}", gate.url))
        .header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("x-goog-api-key", key);
    }
    req.body(body).send().await.unwrap()
}

fn hello() -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 20000, "temperature": 0.3, "topK": 40},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    })
}

async fn generate(gate: &Gate, model: &str, stream: bool, body: &Value) -> reqwest::Response {
    post(
        gate,
        &path(model, stream),
        body.to_string().into_bytes(),
        Some("k"),
    )
    .await
}

/// The `data:` payloads of a Gemini SSE body.
fn events(body: &str) -> Vec<Value> {
    body.split("\r\n\r\n")
        .flat_map(|e| e.split("\n\n"))
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let data = e
                .trim()
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("{e}"));
            serde_json::from_str(data).unwrap_or_else(|err| panic!("{data}: {err}"))
        })
        .collect()
}

fn text_of(events: &[Value]) -> String {
    events
        .iter()
        .flat_map(|e| e["candidates"][0]["content"]["parts"].as_array().cloned())
        .flatten()
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_request_to_an_openai_backend_is_answered_in_geminis_shape() {
    let (gate, _gem, ds) = gate(&["ds"], "").await;
    let resp = generate(&gate, "ds", false, &hello()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-clawgate-provider"], "ds");
    assert_eq!(resp.headers()["x-clawgate-rule"], "explicit-model");
    assert!(resp.headers().contains_key("x-clawgate-lane"));
    assert!(resp.headers().contains_key("x-clawgate-affinity"));
    let v: Value = resp.json().await.unwrap();
    let c = &v["candidates"][0];
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(c["content"]["parts"], json!([{"text": "Hello from ds"}]));
    assert_eq!(c["finishReason"], "STOP");
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 10);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 3);
    assert_eq!(v["usageMetadata"]["totalTokenCount"], 13);
    let sent = ds.received()[0].json();
    assert_eq!(ds.received()[0].path, "/v1/chat/completions");
    assert_eq!(sent["model"], "deepseek-chat");
    assert_eq!(
        sent["max_tokens"], 8000,
        "capped at the provider's max_tokens"
    );
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}])
    );
    let rows = gate.recent(1).await;
    assert_eq!(rows[0]["api"], "gemini");
    assert_eq!(rows[0]["provider"], "ds");
    gate.stop().await;
}

#[tokio::test]
async fn a_streamed_request_to_an_openai_backend_is_a_gemini_event_stream() {
    let (gate, _gem, ds) = gate(&["ds"], "").await;
    let resp = generate(&gate, "auto", true, &hello()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-clawgate-provider"], "ds");
    let evs = events(&resp.text().await.unwrap());
    assert_eq!(text_of(&evs), "Hello from ds");
    let last = evs.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["promptTokenCount"], 10);
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 3);
    let sent = ds.received()[0].json();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let rows = gate.recent(1).await;
    assert_eq!(rows[0]["api"], "gemini");
    gate.stop().await;
}

#[tokio::test]
async fn a_gemini_backend_gets_the_clients_bytes_at_its_own_models_url() {
    let (gate, gem, _ds) = gate(&["gem", "ds"], "").await;
    let stream = fixture("gemini/stream-tool-call.sse");
    let answer = fixture("gemini/response-text.json");
    gem.script([
        Behavior::Raw {
            status: 200,
            content_type: "text/event-stream",
            chunks: stream.chunks(90).map(<[u8]>::to_vec).collect(),
        },
        Behavior::Raw {
            status: 200,
            content_type: "application/json",
            chunks: vec![answer.clone()],
        },
    ]);
    // Thought signatures and fields ClawGate has no translation for travel untouched.
    let body = br#"{"contents":[{"role":"user","parts":[{"text":"ls"}]},{"role":"model","parts":[{"functionCall":{"name":"ls","args":{}},"thoughtSignature":"c2ln"}]}],"cachedContent":"cachedContents/x", "generationConfig":{"topK":3}}"#;
    let resp = post(&gate, &path("auto", true), body.to_vec(), Some("k")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-clawgate-provider"], "gem");
    assert_eq!(resp.bytes().await.unwrap(), stream, "byte for byte");
    let got = &gem.received()[0];
    assert_eq!(
        got.path,
        "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(got.body, body.to_vec());
    assert_eq!(got.headers["x-goog-api-key"], "gemini-provider-key");
    let resp = post(&gate, &path("gem", false), body.to_vec(), Some("k")).await;
    assert_eq!(resp.bytes().await.unwrap(), answer);
    assert_eq!(
        gem.received()[1].path,
        "/v1/models/gemini-2.5-flash:generateContent"
    );
    let rows = gate.recent(2).await;
    assert!(rows
        .iter()
        .all(|r| r["api"] == "gemini" && r["provider"] == "gem"));
    assert!(rows[1]["prompt_tok"].as_u64().unwrap() > 100, "{rows:?}");
    gate.stop().await;
}

#[tokio::test]
async fn an_overloaded_gemini_backend_falls_back_to_a_translated_one() {
    let (gate, gem, ds) = gate(&["gem", "ds"], "").await;
    gem.script([Behavior::Raw {
        status: 200,
        content_type: "text/event-stream",
        chunks: vec![fixture("gemini/stream-error-overloaded.sse")],
    }]);
    let resp = generate(&gate, "auto", true, &hello()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-clawgate-attempts"], "gem,ds");
    assert_eq!(resp.headers()["x-clawgate-provider"], "ds");
    assert_eq!(
        text_of(&events(&resp.text().await.unwrap())),
        "Hello from ds"
    );
    assert_eq!(ds.hits(), 1);
    gate.stop().await;
}

#[tokio::test]
async fn a_function_call_round_trip_through_an_openai_backend() {
    let (gate, _gem, ds) = gate(&["ds"], "").await;
    let calls = json!([{"id": "call_9", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":\".\"}"}}]);
    ds.script([Behavior::Status(
        200,
        json!({"id": "c", "object": "chat.completion", "model": "deepseek-chat",
               "choices": [{"index": 0, "finish_reason": "tool_calls",
                   "message": {"role": "assistant", "content": null, "tool_calls": calls}}],
               "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}),
    )]);
    let tools = json!([{"functionDeclarations": [{"name": "ls", "parameters": {"type": "OBJECT", "properties": {"path": {"type": "STRING"}}}}]}]);
    let first =
        json!({"contents": [{"role": "user", "parts": [{"text": "list"}]}], "tools": tools});
    let v: Value = generate(&gate, "ds", false, &first)
        .await
        .json()
        .await
        .unwrap();
    let part = &v["candidates"][0]["content"]["parts"][0];
    assert_eq!(
        part["functionCall"],
        json!({"id": "call_9", "name": "ls", "args": {"path": "."}})
    );
    // The SDK sends the call back without an id: the response is matched to it by name.
    let second = json!({"contents": [
        {"role": "user", "parts": [{"text": "list"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "ls", "args": {"path": "."}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "ls", "response": {"output": "a.txt"}}}]}
    ], "tools": tools});
    let resp = generate(&gate, "ds", false, &second).await;
    assert_eq!(resp.status(), 200);
    let msgs = ds.received()[1].json()["messages"].clone();
    let id = msgs[1]["tool_calls"][0]["id"].clone();
    assert_eq!(
        msgs[2],
        json!({"role": "tool", "tool_call_id": id, "content": "a.txt"})
    );
    let declared = &ds.received()[0].json()["tools"][0]["function"]["parameters"];
    assert_eq!(
        declared,
        &json!({"type": "object", "properties": {"path": {"type": "string"}}})
    );
    gate.stop().await;
}

#[tokio::test]
async fn errors_come_in_googles_shape_with_its_statuses() {
    let (gate, gem, ds) = gate(&["gem", "ds"], "  api_key: gate-key\n").await;
    let check = |v: &Value, code: u64, status: &str| {
        assert_eq!(v["error"]["code"], code, "{v}");
        assert_eq!(v["error"]["status"], status, "{v}");
        assert!(v["error"]["message"].is_string());
    };
    // The key: x-goog-api-key, ?key=, or a bearer token.
    let body = hello().to_string().into_bytes();
    let resp = post(&gate, &path("auto", false), body.clone(), None).await;
    assert_eq!(resp.status(), 401);
    check(&resp.json().await.unwrap(), 401, "UNAUTHENTICATED");
    let resp = post(&gate, &path("auto", false), body.clone(), Some("wrong")).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(gem.hits() + ds.hits(), 0);
    let with_query = format!("{}?key=gate-key", path("gem", false));
    let resp = post(&gate, &with_query, body.clone(), None).await;
    assert_eq!(resp.status(), 200);
    // Bad requests.
    let resp = post(
        &gate,
        &path("auto", false),
        b"{\"contents\":".to_vec(),
        Some("gate-key"),
    )
    .await;
    assert_eq!(resp.status(), 400);
    check(&resp.json().await.unwrap(), 400, "INVALID_ARGUMENT");
    let resp = post(
        &gate,
        &path("auto", false),
        b"{\"contents\":[]}".to_vec(),
        Some("gate-key"),
    )
    .await;
    assert_eq!(resp.status(), 400);
    // A passed-through refusal comes back as Google wrote it, untried elsewhere.
    let refusal = fixture("gemini/error-400-invalid-argument.json");
    gem.script([Behavior::Raw {
        status: 400,
        content_type: "application/json",
        chunks: vec![refusal.clone()],
    }]);
    let resp = post(&gate, &path("auto", false), body.clone(), Some("gate-key")).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.bytes().await.unwrap(), refusal);
    // Every provider rate-limited → 429; one overloaded → 503; else 500.
    let raw = |status, name: &str| Behavior::Raw {
        status,
        content_type: "application/json",
        chunks: vec![fixture(name)],
    };
    let limited = json!({"error": {"message": "slow down", "type": "rate_limit"}});
    gem.script([raw(429, "gemini/error-429.json")]);
    ds.script([Behavior::Status(429, limited)]);
    let resp = post(&gate, &path("auto", false), body.clone(), Some("gate-key")).await;
    assert_eq!(resp.status(), 429);
    check(&resp.json().await.unwrap(), 429, "RESOURCE_EXHAUSTED");
    gem.script([raw(503, "gemini/error-503-array.json")]);
    ds.script([Behavior::Status(500, json!({"error": {"message": "boom"}}))]);
    let resp = post(&gate, &path("auto", false), body.clone(), Some("gate-key")).await;
    assert_eq!(resp.status(), 503);
    check(&resp.json().await.unwrap(), 503, "UNAVAILABLE");
    gem.script([Behavior::Status(500, json!({}))]);
    ds.script([Behavior::Status(500, json!({"error": {"message": "boom"}}))]);
    let resp = post(&gate, &path("auto", true), body.clone(), Some("gate-key")).await;
    assert_eq!(resp.status(), 500);
    let v: Value = resp.json().await.unwrap();
    check(&v, 500, "INTERNAL");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("All providers failed"));
    // An OpenAI-shaped refusal from a translated upstream, in Google's shape.
    ds.script([Behavior::Status(
        400,
        json!({"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}),
    )]);
    let resp = post(&gate, &path("ds", false), body.clone(), Some("gate-key")).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        json!({"error": {"code": 400, "message": "max_tokens is too large", "status": "INVALID_ARGUMENT"}})
    );
    // Another method on this API's paths.
    let resp = Gate::client()
        .get(format!("{}{}", gate.url, path("auto", false)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let rows = gate.recent(3).await;
    assert!(rows.iter().all(|r| r["api"] == "gemini"), "{rows:?}");
    gate.stop().await;
}
