//! Gemini and Anthropic backends end to end: the client speaks OpenAI, the mock upstreams
//! speak Google's and Anthropic's own wire formats (recorded in tests/fixtures).

use crate::support;

use serde_json::{json, Value};
use support::{chat_body, fixture, sse_text, Behavior, Gate, MockUpstream};

struct Upstreams {
    gemini: MockUpstream,
    claude: MockUpstream,
    openai: MockUpstream,
}

async fn start() -> (Gate, Upstreams) {
    let gemini = MockUpstream::start("gemini").await;
    let claude = MockUpstream::start("claude").await;
    let openai = MockUpstream::start("openai").await;
    let cfg = format!(
        "providers:
  gem:
    backend: google-genai
    base_url: http://{g}/v1beta
    api_key: gemini-secret-key
    model: gemini-test
    max_tokens: 1000
    timeout: {{ connect_s: 1, read_s: 3 }}
  claude:
    backend: anthropic
    base_url: http://{c}/v1
    api_key: anthropic-secret-key
    model: claude-test
    max_tokens: 2000
    timeout: {{ connect_s: 1, read_s: 3 }}
  oai:
    backend: openai-compat
    base_url: http://{o}/v1
    api_key: sk-openai
    model: gpt-test
fallback_chain: [oai]
",
        g = gemini.addr,
        c = claude.addr,
        o = openai.addr
    );
    let empty = tempfile::tempdir().unwrap();
    let gate = Gate::start_with_rules(&cfg, Some(empty.path())).await;
    (
        gate,
        Upstreams {
            gemini,
            claude,
            openai,
        },
    )
}

/// A fixture's bytes in small pieces, as a network would deliver them.
fn pieces(path: &str, size: usize) -> Vec<Vec<u8>> {
    fixture(path).chunks(size).map(<[u8]>::to_vec).collect()
}

fn raw_json(status: u16, path: &str) -> Behavior {
    Behavior::Raw {
        status,
        content_type: "application/json",
        chunks: vec![fixture(path)],
    }
}

fn raw_sse(path: &str) -> Behavior {
    Behavior::Raw {
        status: 200,
        content_type: "text/event-stream",
        chunks: pieces(path, 37),
    }
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn gemini_answer_reaches_the_client_as_an_openai_completion() {
    let (gate, up) = start().await;
    up.gemini
        .script([raw_json(200, "gemini/response-text.json")]);
    let body = json!({"model": "gem", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"}
    ]});
    let resp = gate.chat(&body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("gem"));
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello! How can I help?"
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["prompt_tokens"], 1203);
    let got = &up.gemini.received()[0];
    assert_eq!(got.path, "/v1beta/models/gemini-test:generateContent");
    assert_eq!(got.headers["x-goog-api-key"], "gemini-secret-key");
    assert!(got.headers.get("authorization").is_none());
    let sent = got.json();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "be brief");
    assert_eq!(sent["contents"][0]["role"], "user");
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 1000);
    gate.stop().await;
}

#[tokio::test]
async fn gemini_stream_becomes_openai_chunks_ending_in_done() {
    let (gate, up) = start().await;
    up.gemini.script([raw_sse("gemini/stream-text.sse")]);
    let resp = gate.chat(&chat_body("gem", "hi", true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), Some("text/event-stream"));
    let text = resp.text().await.unwrap();
    let (content, done) = sse_text(&text);
    assert_eq!(
        content,
        "Hello! I'm ready to help with your workspace — what's first? ✨"
    );
    assert!(done);
    assert_eq!(
        up.gemini.received()[0].path,
        "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"
    );
    gate.stop().await;
}

#[tokio::test]
async fn gemini_quota_exhaustion_falls_through_to_the_next_provider() {
    let (gate, up) = start().await;
    up.gemini.script([raw_json(429, "gemini/error-429.json")]);
    let resp = gate.chat(&chat_body("gem", "hi", true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("oai"));
    assert_eq!(header(&resp, "x-clawgate-attempts"), Some("gem,oai"));
    assert_eq!(sse_text(&resp.text().await.unwrap()).0, "Hello from openai");
    let health = gate.get_json("/health").await;
    let last = health["providers"]["gem"]["last_error"].as_str().unwrap();
    assert!(
        last.contains("429") || last.contains("RESOURCE_EXHAUSTED"),
        "{last}"
    );
    assert!(!health.to_string().contains("gemini-secret-key"));
    gate.stop().await;
}

#[tokio::test]
async fn gemini_rejecting_the_request_is_the_clients_400_and_not_retried() {
    let (gate, up) = start().await;
    up.gemini
        .script([raw_json(400, "gemini/error-400-invalid-argument.json")]);
    let resp = gate.chat(&chat_body("gem", "hi", false)).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("gem cannot take this request"));
    assert_eq!(up.openai.hits(), 0);
    gate.stop().await;
}

#[tokio::test]
async fn gemini_stream_failing_midway_ends_with_an_error_event() {
    let (gate, up) = start().await;
    up.gemini.script([raw_sse("gemini/stream-error.sse")]);
    let resp = gate.chat(&chat_body("gem", "hi", true)).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("Partial"), "{text}");
    let last = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .last()
        .unwrap();
    let last: Value = serde_json::from_str(last.trim_start_matches("data: ")).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted", "{text}");
    assert_eq!(up.openai.hits(), 0);
    gate.stop().await;
}

#[tokio::test]
async fn anthropic_answer_reaches_the_client_as_an_openai_completion() {
    let (gate, up) = start().await;
    up.claude
        .script([raw_json(200, "anthropic/response-text.json")]);
    let resp = gate.chat(&chat_body("claude", "hi", false)).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert!(
        answer["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{answer}"
    );
    let got = &up.claude.received()[0];
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(got.headers["x-api-key"], "anthropic-secret-key");
    assert!(got.headers.get("anthropic-version").is_some());
    assert_eq!(got.json()["max_tokens"], 2000);
    assert_eq!(got.json()["model"], "claude-test");
    gate.stop().await;
}

#[tokio::test]
async fn anthropic_stream_becomes_openai_chunks_ending_in_done() {
    let (gate, up) = start().await;
    up.claude.script([raw_sse("anthropic/stream-text.sse")]);
    let resp = gate.chat(&chat_body("claude", "hi", true)).await;
    assert_eq!(resp.status(), 200);
    let (content, done) = sse_text(&resp.text().await.unwrap());
    assert_eq!(content, "Hello! I'm ready to help — what's first? ✨");
    assert!(done);
    gate.stop().await;
}

#[tokio::test]
async fn anthropic_overloaded_before_any_content_falls_back() {
    let (gate, up) = start().await;
    up.claude
        .script([raw_sse("anthropic/stream-error-overloaded.sse")]);
    let resp = gate.chat(&chat_body("claude", "hi", true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("oai"));
    assert_eq!(header(&resp, "x-clawgate-attempts"), Some("claude,oai"));
    assert_eq!(sse_text(&resp.text().await.unwrap()).0, "Hello from openai");
    gate.stop().await;
}

#[tokio::test]
async fn anthropic_529_overloaded_falls_back() {
    let (gate, up) = start().await;
    up.claude
        .script([raw_json(529, "anthropic/error-529-overloaded.json")]);
    let resp = gate.chat(&chat_body("claude", "hi", false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("oai"));
    gate.stop().await;
}

#[tokio::test]
async fn an_openclaw_turn_with_tools_is_translated_for_gemini() {
    let (gate, up) = start().await;
    up.gemini.script([raw_sse("gemini/stream-tool-call.sse")]);
    let mut body = support::openclaw_body("turn-local-main");
    body["model"] = json!("gem");
    let resp = gate.chat(&body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("\"tool_calls\""), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    let sent = up.gemini.received()[0].json();
    let declarations = sent["tools"][0]["functionDeclarations"].as_array().unwrap();
    assert_eq!(declarations.len(), body["tools"].as_array().unwrap().len());
    gate.stop().await;
}
