//! `POST /v1/embeddings` over real TCP: an OpenAI-compatible provider gets the client's body
//! with its `embedding_model`, a `google-genai` one `batchEmbedContents` (answered back in
//! OpenAI's list shape), fallback across providers with an embedding model, and errors.

use crate::support;

use serde_json::{json, Value};
use support::{Behavior, Gate, MockUpstream};

/// `gem` (google-genai), `ds` (openai-compat) with embedding models, `chat` without one.
async fn gate(chain: &[&str]) -> (Gate, MockUpstream, MockUpstream, MockUpstream) {
    let gem = MockUpstream::start("gem").await;
    let ds = MockUpstream::start("ds").await;
    let chat = MockUpstream::start("chat").await;
    let timeout = "timeout: { connect_s: 1, read_s: 3, first_byte_s: 2, idle_s: 2 }";
    let yaml = format!(
        "server:
  host: 127.0.0.1
  port: 0
health:
  consecutive_failures_before_skip: 1000
providers:
  chat:
    base_url: {chat}
    api_key: sk-chat
    model: chat-model
    {timeout}
  gem:
    backend: google-genai
    base_url: {gem}
    api_key: gemini-provider-key
    model: gemini-2.5-flash
    embedding_model: text-embedding-004
    {timeout}
  ds:
    base_url: {ds}
    api_key: sk-ds
    model: deepseek-chat
    embedding_model: embed-small
    {timeout}
fallback_chain: [{chain}]
",
        gem = gem.base_url(),
        ds = ds.base_url(),
        chat = chat.base_url(),
        chain = chain.join(", "),
    );
    let empty = tempfile::tempdir().unwrap();
    let gate = Gate::start_with_rules(&yaml, Some(empty.path())).await;
    (gate, gem, ds, chat)
}

async fn embed(gate: &Gate, body: &Value) -> reqwest::Response {
    Gate::client()
        .post(format!("{}/v1/embeddings", gate.url))
        .json(body)
        .send()
        .await
        .unwrap()
}

fn openai_list(vectors: &[&[f64]]) -> Value {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"object": "embedding", "embedding": v, "index": i}))
        .collect();
    json!({"object": "list", "data": data, "model": "embed-small", "usage": {"prompt_tokens": 4, "total_tokens": 4}})
}

#[tokio::test]
async fn an_openai_backend_gets_the_body_with_its_embedding_model() {
    let (gate, gem, ds, chat) = gate(&["chat", "ds", "gem"]).await;
    let answer = openai_list(&[&[0.5, 0.25]]);
    ds.script([Behavior::Status(200, answer.clone())]);
    let resp = embed(
        &gate,
        &json!({"model": "auto", "input": "hello", "dimensions": 2}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-clawgate-provider"], "ds");
    assert_eq!(resp.json::<Value>().await.unwrap(), answer);
    let got = &ds.received()[0];
    assert_eq!(got.path, "/v1/embeddings");
    assert_eq!(
        got.json(),
        json!({"model": "embed-small", "input": "hello", "dimensions": 2})
    );
    assert_eq!(
        chat.hits() + gem.hits(),
        0,
        "only providers with an embedding model"
    );
    let rows = gate.recent(1).await;
    assert_eq!(rows[0]["api"], "openai-embeddings");
    assert_eq!(rows[0]["provider"], "ds");
    assert_eq!(rows[0]["prompt_tok"], 4);
    gate.stop().await;
}

#[tokio::test]
async fn a_gemini_backend_gets_batch_embed_contents_and_answers_in_openai_shape() {
    let (gate, gem, ds, _chat) = gate(&["ds", "gem"]).await;
    gem.script([Behavior::Status(
        200,
        json!({"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}),
    )]);
    let resp = embed(&gate, &json!({"model": "gem", "input": ["one", "two"]})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-clawgate-provider"], "gem");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "text-embedding-004");
    assert_eq!(
        v["data"],
        json!([{"object": "embedding", "embedding": [0.1, 0.2], "index": 0},
               {"object": "embedding", "embedding": [0.3, 0.4], "index": 1}])
    );
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() >= 1);
    let got = &gem.received()[0];
    assert_eq!(got.path, "/v1/models/text-embedding-004:batchEmbedContents");
    assert_eq!(got.headers["x-goog-api-key"], "gemini-provider-key");
    assert_eq!(
        got.json()["requests"][1],
        json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": "two"}]}})
    );
    assert_eq!(ds.hits(), 0);
    gate.stop().await;
}

#[tokio::test]
async fn a_failing_provider_falls_back_and_a_refusal_does_not() {
    let (gate, gem, ds, _chat) = gate(&["gem", "ds"]).await;
    gem.script([Behavior::Status(
        503,
        json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}),
    )]);
    ds.script([Behavior::Status(200, openai_list(&[&[1.0]]))]);
    let resp = embed(&gate, &json!({"input": "x"})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-clawgate-attempts"], "gem,ds");
    assert_eq!(resp.headers()["x-clawgate-provider"], "ds");
    // A token-array input skips Gemini.
    ds.script([Behavior::Status(200, openai_list(&[&[1.0]]))]);
    let resp = embed(&gate, &json!({"input": [[1, 2, 3]]})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(gem.hits(), 1);
    // The client's own error is not retried elsewhere.
    ds.script([Behavior::Status(
        400,
        json!({"error": {"message": "input too long", "type": "invalid_request_error"}}),
    )]);
    let resp = embed(&gate, &json!({"model": "ds", "input": "x"})).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(gem.hits(), 1);
    // All fail: 502 in OpenAI's shape; a bad body: 400.
    gem.script([Behavior::Status(500, json!({}))]);
    ds.script([Behavior::Status(500, json!({}))]);
    let resp = embed(&gate, &json!({"input": "x"})).await;
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "all_providers_failed");
    let resp = embed(&gate, &json!({"model": "auto"})).await;
    assert_eq!(resp.status(), 400);
    let rows = gate.recent(5).await;
    assert!(rows.iter().all(|r| r["api"] == "openai-embeddings"));
    gate.stop().await;
}
