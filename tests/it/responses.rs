//! The OpenAI Responses API (`POST /v1/responses`, `GET`/`DELETE /v1/responses/{id}`) over
//! real TCP: translated to OpenAI-compatible mocks' chat completions and back (whole and
//! streamed), function calls and `previous_response_id` turns, stored responses, errors in
//! OpenAI's shape with their statuses, and the metrics rows.

use crate::support;

use serde_json::{json, Value};
use support::{Behavior, Gate, MockUpstream};

/// A gate with two OpenAI-compatible providers, `ds` and `alt`, this fallback chain and no
/// routing rules.
async fn gate(chain: &[&str]) -> (Gate, MockUpstream, MockUpstream) {
    let ds = MockUpstream::start("ds").await;
    let alt = MockUpstream::start("alt").await;
    let yaml = format!(
        "server:
  host: 127.0.0.1
  port: 0
  max_body_mb: 0.5
health:
  consecutive_failures_before_skip: 1000
providers:
  ds:
    backend: openai-compat
    base_url: {ds}
    api_key: sk-ds
    model: deepseek-chat
    max_tokens: 8000
    timeout: {{ connect_s: 1, read_s: 3, first_byte_s: 2, idle_s: 2 }}
  alt:
    backend: openai-compat
    base_url: {alt}
    api_key: sk-alt
    model: alt-model
    timeout: {{ connect_s: 1, read_s: 3, first_byte_s: 2, idle_s: 2 }}
fallback_chain: [{chain}]
",
        ds = ds.base_url(),
        alt = alt.base_url(),
        chain = chain.join(", "),
    );
    let empty = tempfile::tempdir().unwrap();
    let gate = Gate::start_with_rules(&yaml, Some(empty.path())).await;
    (gate, ds, alt)
}

async fn post(gate: &Gate, body: impl Into<reqwest::Body>) -> reqwest::Response {
    Gate::client()
        .post(format!("{}/v1/responses", gate.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn create(gate: &Gate, body: &Value) -> reqwest::Response {
    post(gate, body.to_string()).await
}

/// The events of a Responses SSE body, checking that each names its type and that they are
/// numbered in order.
fn events(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .enumerate()
        .map(|(i, e)| {
            let (head, data) = e.split_once('\n').unwrap();
            let name = head.strip_prefix("event: ").unwrap();
            let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(v["type"], name, "{e}");
            assert_eq!(v["sequence_number"], i, "{e}");
            v
        })
        .collect()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// A whole chat answer calling `get_weather` with `args`.
fn tool_answer(args: &str) -> Behavior {
    let body = json!({"id": "c", "object": "chat.completion", "model": "deepseek-chat",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": args}}]}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26}});
    Behavior::Raw {
        status: 200,
        content_type: "application/json",
        chunks: vec![body.to_string().into_bytes()],
    }
}

#[tokio::test]
async fn a_response_is_translated_whole_with_the_routing_headers_and_recorded() {
    let (gate, ds, _alt) = gate(&["ds", "alt"]).await;
    let resp = create(
        &gate,
        &json!({"model": "auto", "input": "Say hello", "instructions": "Be brief.", "max_output_tokens": 100}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    for h in ["provider", "layer", "rule", "lane", "affinity"] {
        assert!(
            resp.headers().contains_key(format!("x-clawgate-{h}")),
            "{h}"
        );
    }
    assert_eq!(resp.headers()["x-clawgate-provider"], "ds");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["instructions"], "Be brief.");
    assert_eq!(v["output"].as_array().unwrap().len(), 1);
    let item = &v["output"][0];
    assert_eq!(item["type"], "message");
    assert_eq!(item["role"], "assistant");
    assert_eq!(item["content"][0]["type"], "output_text");
    assert_eq!(item["content"][0]["text"], "Hello from ds");
    assert_eq!(v["usage"]["input_tokens"], 10);
    assert_eq!(v["usage"]["output_tokens"], 3);
    assert_eq!(v["usage"]["total_tokens"], 13);
    let sent = ds.received()[0].json();
    assert_eq!(ds.received()[0].path, "/v1/chat/completions");
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}])
    );
    assert_eq!(sent["max_tokens"], 100);
    let rows = gate.recent(1).await;
    assert_eq!(rows[0]["api"], "openai-responses");
    assert_eq!(rows[0]["provider"], "ds");
    assert_eq!(rows[0]["status"], 200);
    gate.stop().await;
}

#[tokio::test]
async fn a_streamed_response_is_a_full_event_stream_and_is_stored() {
    let (gate, ds, _alt) = gate(&["ds"]).await;
    let resp = create(
        &gate,
        &json!({"model": "auto", "input": "Say hello", "stream": true}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-clawgate-provider"], "ds");
    let evs = events(&resp.text().await.unwrap());
    let names = kinds(&evs);
    assert_eq!(
        &names[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(
        &names[names.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let text: String = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello from ds");
    let done = &evs.last().unwrap()["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["usage"]["input_tokens"], 10);
    assert_eq!(done["usage"]["output_tokens"], 3);
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello from ds");
    assert_eq!(
        ds.received()[0].json()["stream_options"]["include_usage"],
        true
    );
    // What the stream completed is stored as it was sent.
    let id = done["id"].as_str().unwrap();
    let stored = gate.get_json(&format!("/v1/responses/{id}")).await;
    assert_eq!(&stored, done);
    let rows = gate.recent(1).await;
    assert_eq!(rows[0]["api"], "openai-responses");
    assert_eq!(rows[0]["stream"], true);
    gate.stop().await;
}

#[tokio::test]
async fn a_function_call_is_answered_and_the_next_turn_continues_the_chain() {
    let (gate, ds, _alt) = gate(&["ds"]).await;
    ds.script([tool_answer("{\"city\":\"Paris\"}")]);
    let tools =
        json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]);
    let first: Value = create(
        &gate,
        &json!({"model": "auto", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]}],
                "tools": tools, "tool_choice": "required", "prompt_cache_key": "session-7"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(first["output"].as_array().unwrap().len(), 1);
    let call = &first["output"][0];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["call_id"], "call_w1");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], "{\"city\":\"Paris\"}");
    let sent = ds.received()[0].json();
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])
    );
    assert_eq!(sent["tool_choice"], "required");

    let second = create(
        &gate,
        &json!({"model": "auto", "previous_response_id": first["id"], "tools": tools,
                "input": [{"type": "function_call_output", "call_id": "call_w1", "output": "sunny"}]}),
    )
    .await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["previous_response_id"], first["id"]);
    let sent = ds.received()[1].json();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_w1", "content": "sunny"}
        ])
    );
    // The chain keeps the conversation key its first turn gave.
    assert_eq!(sent["prompt_cache_key"], "session-7");
    gate.stop().await;
}

#[tokio::test]
async fn a_stream_cut_midway_ends_with_response_failed() {
    let (gate, ds, _alt) = gate(&["ds"]).await;
    ds.script([Behavior::CutStream { events: 3 }]);
    let resp = create(
        &gate,
        &json!({"model": "ds", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let evs = events(&resp.text().await.unwrap());
    let last = evs.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"]["code"], "server_error");
    assert!(!kinds(&evs).contains(&"response.completed"));
    gate.stop().await;
}

#[tokio::test]
async fn stored_responses_are_read_and_deleted_and_unstored_ones_are_not_found() {
    let (gate, _ds, _alt) = gate(&["ds"]).await;
    let first: Value = create(&gate, &json!({"input": "hi"}))
        .await
        .json()
        .await
        .unwrap();
    let id = first["id"].as_str().unwrap();
    assert_eq!(gate.get_json(&format!("/v1/responses/{id}")).await, first);
    let url = format!("{}/v1/responses/{id}", gate.url);
    let deleted = Gate::client().delete(&url).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(deleted.json::<Value>().await.unwrap()["deleted"], true);
    let gone = Gate::client().get(&url).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    let v: Value = gone.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let unstored: Value = create(&gate, &json!({"input": "hi", "store": false}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unstored["store"], false);
    let url = format!(
        "{}/v1/responses/{}",
        gate.url,
        unstored["id"].as_str().unwrap()
    );
    assert_eq!(Gate::client().get(&url).send().await.unwrap().status(), 404);
    let next = create(
        &gate,
        &json!({"input": "again", "previous_response_id": unstored["id"]}),
    )
    .await;
    assert_eq!(next.status(), 400);
    gate.stop().await;
}

/// Status, OpenAI error code and param for each kind of failure, and their metrics rows.
#[tokio::test]
async fn errors_come_in_openais_shape_with_their_statuses_and_are_recorded() {
    let (gate, ds, alt) = gate(&["ds", "alt"]).await;
    let bad: Vec<(Vec<u8>, u16, &str, Value)> = vec![
        (b"{\"input\":".to_vec(), 400, "invalid_json", Value::Null),
        (
            br#"{"input":"x","previous_response_id":"resp_unknown"}"#.to_vec(),
            400,
            "previous_response_not_found",
            json!("previous_response_id"),
        ),
        (
            br#"{"input":"x","tools":[{"type":"web_search_preview"}]}"#.to_vec(),
            400,
            "unsupported_parameter",
            json!("tools[0].type"),
        ),
        (
            br#"{"model":"ds"}"#.to_vec(),
            400,
            "missing_required_parameter",
            json!("input"),
        ),
        (
            vec![b' '; 600 * 1024],
            413,
            "request_too_large",
            Value::Null,
        ),
    ];
    for (body, status, code, param) in &bad {
        let resp = post(&gate, body.clone()).await;
        assert_eq!(resp.status(), *status);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], *code, "{v}");
        assert_eq!(v["error"]["param"], *param, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    }
    assert_eq!(ds.hits() + alt.hits(), 0);
    // Every provider failing: OpenAI's envelope with the attempts.
    ds.script([Behavior::Status(500, json!({"error": {"message": "boom"}}))]);
    alt.script([Behavior::Status(503, json!({"error": {"message": "busy"}}))]);
    let resp = create(&gate, &json!({"input": "hi"})).await;
    assert!(resp.status().is_server_error());
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "all_providers_failed");
    // An upstream's refusal comes back as it is (OpenAI's shape already).
    ds.script([Behavior::Status(
        400,
        json!({"error": {"message": "context too long", "type": "invalid_request_error"}}),
    )]);
    let resp = create(&gate, &json!({"model": "ds", "input": "hi"})).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["message"], "context too long");
    // Only POST creates; other methods on the path are refused.
    let resp = Gate::client()
        .get(format!("{}/v1/responses", gate.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);

    let rows = gate.recent(7).await;
    let statuses: Vec<u64> = rows.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    // Newest first: the refusal, every provider failing, then the requests refused unread.
    assert_eq!(statuses[0], 400);
    assert!(statuses[1] >= 500, "{statuses:?}");
    assert_eq!(&statuses[2..], [413, 400, 400, 400, 400]);
    assert!(rows
        .iter()
        .all(|r| r["api"] == "openai-responses" && r["success"] == 0));
    gate.stop().await;
}
