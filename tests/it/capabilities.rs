//! Provider capabilities at serving time: a provider that cannot take a request (images for a
//! text-only model, a prompt longer than its context window) is skipped for the next one of
//! the chain, with the skip shown in `X-ClawGate-Attempts` and recorded in metrics, and never
//! counted against its health. When no provider can take it, the chain is tried as it is.

use crate::support;

use serde_json::{json, Value};
use support::{chat_body, config_yaml, Gate, MockUpstream, P};

const TEXT_ONLY: &str =
    "    capabilities: { context_window: 128000, max_output: 8192, vision: false, tools: true }\n";
const SEES: &str =
    "    capabilities: { context_window: 1048576, max_output: 65536, vision: true, tools: true }\n";

/// `deepseek-chat` (text only, 128k) then `gemini-flash` (vision, 1M) in the fallback chain,
/// mocks both, and the one rule `default route deepseek-chat`; `second` overrides
/// gemini-flash's capabilities.
async fn gate_with(second: &'static str) -> (Gate, MockUpstream, MockUpstream) {
    let chat = MockUpstream::start("deepseek-chat").await;
    let flash = MockUpstream::start("gemini-flash").await;
    let cfg = config_yaml(
        &[
            P {
                id: "deepseek-chat",
                base_url: chat.base_url(),
                extra: TEXT_ONLY,
            },
            P {
                id: "gemini-flash",
                base_url: flash.base_url(),
                extra: second,
            },
        ],
        &["deepseek-chat", "gemini-flash"],
        "",
    );
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("90-default.rules"),
        "default route deepseek-chat\n",
    )
    .unwrap();
    let gate = Gate::start_with_rules(&cfg, Some(rules.path())).await;
    (gate, chat, flash)
}

fn image_body() -> Value {
    json!({
        "model": "auto",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]}]
    })
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn an_image_request_skips_the_text_only_provider_for_the_next_that_has_vision() {
    let (gate, chat, flash) = gate_with(SEES).await;
    let resp = gate.chat(&image_body()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("gemini-flash"));
    assert_eq!(header(&resp, "x-clawgate-rule"), Some("default"));
    assert_eq!(
        header(&resp, "x-clawgate-attempts"),
        Some("deepseek-chat,gemini-flash")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from gemini-flash"
    );
    assert_eq!(
        chat.hits(),
        0,
        "the text-only provider never sees the image"
    );
    assert_eq!(flash.hits(), 1);

    let row = &gate.recent(1).await[0];
    assert_eq!(row["provider"], "gemini-flash");
    assert_eq!(
        row["attempts"],
        json!([{"provider": "deepseek-chat", "error": "skipped: vision"}])
    );
    let stats = gate.get_json("/api/stats?window=1h").await;
    assert_eq!(
        stats["totals"]["total_failed_attempts"], 0,
        "a skip is not a failed attempt: {stats}"
    );
    gate.stop().await;
}

#[tokio::test]
async fn a_skipped_provider_stays_healthy_and_serves_what_it_can_take() {
    let (gate, chat, _flash) = gate_with(SEES).await;
    // More skips in a row than the failures that open a circuit (3 in the test config).
    for _ in 0..5 {
        let resp = gate.chat(&image_body()).await;
        assert_eq!(header(&resp, "x-clawgate-provider"), Some("gemini-flash"));
    }
    let health = gate.get_json("/health").await;
    assert_eq!(health["providers"]["deepseek-chat"]["circuit"], "closed");
    assert_eq!(
        health["providers"]["deepseek-chat"]["consecutive_failures"],
        0
    );
    let resp = gate.chat(&chat_body("auto", "hello", false)).await;
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("deepseek-chat"));
    assert_eq!(header(&resp, "x-clawgate-attempts"), None);
    assert_eq!(chat.hits(), 1);
    gate.stop().await;
}

#[tokio::test]
async fn a_prompt_too_long_for_a_128k_provider_skips_it_with_reason_context() {
    let (gate, chat, flash) = gate_with(SEES).await;
    // About 200k tokens (4 bytes each).
    let long = "word ".repeat(160_000);
    let resp = gate.chat(&chat_body("auto", &long, false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("gemini-flash"));
    assert_eq!(
        header(&resp, "x-clawgate-attempts"),
        Some("deepseek-chat,gemini-flash")
    );
    assert_eq!(chat.hits(), 0);
    assert_eq!(flash.hits(), 1);
    let row = &gate.recent(1).await[0];
    assert_eq!(row["attempts"][0]["error"], "skipped: context");

    // A prompt that fits, with room for the answer, stays on the first provider.
    let fits = "word ".repeat(80_000);
    let resp = gate.chat(&chat_body("auto", &fits, false)).await;
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("deepseek-chat"));
    gate.stop().await;
}

#[tokio::test]
async fn when_no_provider_can_take_the_request_the_chain_is_tried_as_it_is() {
    let (gate, chat, flash) = gate_with(TEXT_ONLY).await;
    let resp = gate.chat(&image_body()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-clawgate-provider"), Some("deepseek-chat"));
    assert_eq!(header(&resp, "x-clawgate-attempts"), None);
    assert_eq!((chat.hits(), flash.hits()), (1, 0));
    gate.stop().await;
}

#[tokio::test]
async fn when_the_provider_left_times_out_the_answer_is_504_and_lists_the_skip() {
    let (gate, _chat, flash) = gate_with(SEES).await;
    flash.set_default(support::Behavior::Hang);
    let resp = gate.chat(&image_body()).await;
    assert_eq!(
        resp.status(),
        504,
        "a skip is not a failure: every provider tried timed out"
    );
    let body: Value = resp.json().await.unwrap();
    let attempts = body["error"]["attempts"].as_array().unwrap();
    assert_eq!(attempts[0], "deepseek-chat: skipped: vision");
    assert!(
        attempts[1].as_str().unwrap().starts_with("gemini-flash: "),
        "{body}"
    );
    gate.stop().await;
}
