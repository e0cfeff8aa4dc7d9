//! The backend conformance suite: what every backend must do, OpenAI-compatible pass-through
//! included, each against a loopback mock upstream speaking its own wire format (recorded in
//! tests/fixtures): a plain answer, a stream whatever its split points, tools round trip,
//! images, JSON mode, usage, each error class, and a stream cut before and after its first
//! byte.
//!
//! A backend is a [`Spec`]: its config entry, its recorded answers and what each must come
//! out as, and what its upstream must be sent. `conformance!` runs every check for every
//! spec; a new backend is one more spec and one more line there. The peculiarities of one
//! backend's stream (Gemini's candidates, Anthropic's error events) are at the end; the rest
//! of what is its own is in its unit tests (src/providers/<backend>/tests.rs).

use crate::support;

use std::path::Path;

use bytes::Bytes;
use clawgate::config::{Config, ProviderConfig};
use clawgate::providers::protocol::{Events, FailureKind, Protocol, UpstreamFailure};
use clawgate::providers::protocol_for;
use clawgate::request::ChatRequest;
use serde_json::{json, Value};
use support::{fixture, Behavior, Gate, MockUpstream, Received};

/// One backend, as the suite sees it.
struct Spec {
    /// The provider id the client asks for, its `backend`, the path of its `base_url`, its
    /// upstream model, key and `max_tokens`.
    id: &'static str,
    backend: &'static str,
    base_path: &'static str,
    model: &'static str,
    key: &'static str,
    max_tokens: u64,
    /// Where its upstream is asked for a whole answer, and for a stream.
    whole_path: &'static str,
    stream_path: &'static str,
    /// The `model` a client sees in a whole answer.
    answer_model: &'static str,
    /// Translated (not passed through): errors are described by ClawGate, and a stream's
    /// decoder itself fails a stream that ends without an answer.
    translated: bool,

    /// A text answer: recorded whole, its text and usage (as the client sees it).
    text_whole: &'static str,
    text_whole_content: &'static str,
    text_whole_usage: &'static str,
    /// The same streamed: its text, its usage chunk, how many events it makes, and how many
    /// upstream events it takes to have sent the first text ("Hello").
    text_stream: &'static str,
    text_stream_content: &'static str,
    text_stream_usage: &'static str,
    text_stream_events: usize,
    text_stream_first_words: usize,

    /// A whole answer calling tools: its text (`None`: null), its calls as (id, name,
    /// arguments as JSON; an id ending in `*` is a prefix), its prompt tokens.
    tool_whole: &'static str,
    tool_whole_content: Option<&'static str>,
    tool_whole_calls: &'static [(&'static str, &'static str, &'static str)],
    tool_whole_prompt_tokens: u64,
    /// A streamed one: its text, its calls with their arguments as streamed, its usage.
    tool_stream: &'static str,
    tool_stream_content: &'static str,
    tool_stream_calls: &'static [(&'static str, &'static str, &'static str)],
    tool_stream_usage: (u64, u64),
    /// The same answer recorded whole (inline) and streamed (a fixture).
    same_answer: (&'static str, &'static str),

    /// What the upstream must be sent: for a plain request (system "be brief", user "hi",
    /// with the headers); the number of tools and the tool replay of
    /// openclaw-tool-replay.json; an image; JSON mode.
    sent_plain: fn(&Received),
    sent_tools: fn(&Value) -> usize,
    sent_replay: fn(&Value),
    sent_image: fn(&Value),
    sent_json_mode: fn(&Value),

    /// Error answers and what they mean: (status, body, kind, reported status, message
    /// prefix). A `Client` error of a pass-through backend is passed on as it came.
    error_table: &'static [(u16, &'static str, FailureKind, u16, &'static str)],
    /// Error answers that fall through, as (class, status, fixture, what /health says).
    fall_through: &'static [(&'static str, u16, &'static str, &'static str)],
    /// What /health says of a 200 answer that is not JSON.
    malformed_needle: &'static str,
    /// A 400 about the request.
    bad_request: &'static str,

    /// A stream whose first event is an error.
    stream_error_first: &'static str,
    /// A stream with an error event after some text: the fixture, the text, and the last
    /// event's error code.
    stream_error_after: (&'static str, &'static str, &'static str),
    /// A stream that ends cleanly midway: the fixture, its text, what the failure says.
    stream_cut: (&'static str, &'static str, &'static str),
}

const OPENAI: Spec = Spec {
    id: "oai",
    backend: "openai-compat",
    base_path: "/v1",
    model: "deepseek-chat",
    key: "sk-openai",
    max_tokens: 3000,
    whole_path: "/v1/chat/completions",
    stream_path: "/v1/chat/completions",
    answer_model: "deepseek-chat",
    translated: false,
    text_whole: "openai/response-text.json",
    text_whole_content: "Hello! How can I help?",
    text_whole_usage: r#"{"prompt_tokens":1825,"completion_tokens":9,"total_tokens":1834,"prompt_tokens_details":{"cached_tokens":1792},"prompt_cache_hit_tokens":1792,"prompt_cache_miss_tokens":33}"#,
    text_stream: "openai/stream-text.sse",
    text_stream_content: "Hello! I'm ready to help — what's first? ✨",
    text_stream_usage: r#"{"prompt_tokens":1825,"completion_tokens":15,"total_tokens":1840,"prompt_tokens_details":{"cached_tokens":1792},"prompt_cache_hit_tokens":1792,"prompt_cache_miss_tokens":33}"#,
    text_stream_events: 7,
    text_stream_first_words: 2,
    tool_whole: "openai/response-tool-call.json",
    tool_whole_content: Some(""),
    tool_whole_calls: &[
        (
            "call_00_0aE9hG7nL2pQ4rS6tU8vW1xY",
            "exec",
            r#"{"command":"ls -la","env":{"LANG":"C"}}"#,
        ),
        (
            "call_01_3bF5jK8mN0oP2qR4sT6uV8wX",
            "read",
            r#"{"path":"a.txt"}"#,
        ),
    ],
    tool_whole_prompt_tokens: 2100,
    tool_stream: "openai/stream-tool-call.sse",
    tool_stream_content: "Let me look at the workspace.",
    tool_stream_calls: &[
        ("call_00_4JpTvcbwnhrSzmyBbRCQ6rGq", "ls", r#"{"path": "."}"#),
        (
            "call_01_Q8d1tqnVAbGnpZXcJ5lW7m0s",
            "read",
            r#"{"path":"README.md","limit":50}"#,
        ),
    ],
    tool_stream_usage: (2520, 89),
    same_answer: (
        r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"deepseek-chat","choices":[{"index":0,"message":{"role":"assistant","content":"Let me look at the workspace.","tool_calls":[
            {"id":"call_00_4JpTvcbwnhrSzmyBbRCQ6rGq","type":"function","function":{"name":"ls","arguments":"{\"path\":\".\"}"}},
            {"id":"call_01_Q8d1tqnVAbGnpZXcJ5lW7m0s","type":"function","function":{"name":"read","arguments":"{\"path\":\"README.md\",\"limit\":50}"}}]},
            "finish_reason":"tool_calls"}]}"#,
        "openai/stream-tool-call.sse",
    ),
    sent_plain: |got| {
        assert_eq!(got.headers["authorization"], "Bearer sk-openai");
        let sent = got.json();
        assert_eq!(sent["model"], "deepseek-chat");
        assert_eq!(
            sent["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(sent["max_tokens"], 3000);
    },
    sent_tools: |sent| sent["tools"].as_array().unwrap().len(),
    sent_replay: |sent| assert_eq!(sent["messages"], tool_replay()["messages"]),
    sent_image: |sent| {
        assert_eq!(
            sent["messages"][0]["content"][1],
            json!({"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"high"}})
        );
    },
    sent_json_mode: |sent| assert_eq!(sent["response_format"], json!({"type":"json_object"})),
    error_table: &[
        (
            429,
            include_str!("../fixtures/openai/error-429.json"),
            FailureKind::Status,
            429,
            "HTTP 429 Too Many Requests: Rate limit reached",
        ),
        (
            503,
            include_str!("../fixtures/openai/error-503.json"),
            FailureKind::Status,
            503,
            "HTTP 503 Service Unavailable: Service is too busy",
        ),
        (
            401,
            include_str!("../fixtures/openai/error-401.json"),
            FailureKind::Status,
            401,
            "HTTP 401 Unauthorized: Authentication Fails",
        ),
        (
            502,
            "<html>Bad Gateway</html>",
            FailureKind::Status,
            502,
            "HTTP 502 Bad Gateway: <html>",
        ),
        (
            400,
            include_str!("../fixtures/openai/error-400.json"),
            FailureKind::Client,
            400,
            "",
        ),
        (413, "request too large", FailureKind::Client, 413, ""),
        (422, "{}", FailureKind::Client, 422, ""),
    ],
    fall_through: &[
        ("429", 429, "openai/error-429.json", "HTTP 429"),
        ("5xx", 503, "openai/error-503.json", "HTTP 503"),
        ("401", 401, "openai/error-401.json", "HTTP 401"),
    ],
    malformed_needle: "not valid JSON",
    bad_request: "openai/error-400.json",
    stream_error_first: "openai/stream-error-overloaded.sse",
    stream_error_after: ("openai/stream-error.sse", "Partial", "overloaded"),
    stream_cut: (
        "openai/stream-cut.sse",
        "Once upon a time",
        "in the middle of an event",
    ),
};

const GEMINI: Spec = Spec {
    id: "gem",
    backend: "google-genai",
    base_path: "/v1beta",
    model: "gemini-2.5-flash",
    key: "gemini-secret-key",
    max_tokens: 1000,
    whole_path: "/v1beta/models/gemini-2.5-flash:generateContent",
    stream_path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
    answer_model: "gemini-2.5-flash",
    translated: true,
    text_whole: "gemini/response-text.json",
    text_whole_content: "Hello! How can I help?",
    text_whole_usage: r#"{"prompt_tokens":1203,"completion_tokens":39,"total_tokens":1242,
                   "prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":30}}"#,
    text_stream: "gemini/stream-text.sse",
    text_stream_content: "Hello! I'm ready to help with your workspace — what's first? ✨",
    text_stream_usage: r#"{"prompt_tokens":1203,"completion_tokens":58,"total_tokens":1261,
                   "prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":41}}"#,
    // Role, three content deltas, finish, usage, [DONE].
    text_stream_events: 7,
    text_stream_first_words: 1,
    tool_whole: "gemini/response-tool-call.json",
    tool_whole_content: None,
    tool_whole_calls: &[
        (
            "call_*",
            "exec",
            r#"{"command":"ls -la","env":{"LANG":"C"}}"#,
        ),
        ("call_*", "read", r#"{"path":"a.txt"}"#),
    ],
    tool_whole_prompt_tokens: 2100,
    tool_stream: "gemini/stream-tool-call.sse",
    tool_stream_content: "Let me look at the workspace.",
    tool_stream_calls: &[
        ("call_*", "ls", r#"{"path":"."}"#),
        ("call_*", "read", r#"{"limit":50,"path":"README.md"}"#),
    ],
    tool_stream_usage: (2100, 150),
    same_answer: (
        r#"{"candidates":[{"content":{"parts":[{"text":"Hello! I'm ready to help with your workspace — what's first? ✨"}],"role":"model"},"finishReason":"STOP","index":0}]}"#,
        "gemini/stream-text.sse",
    ),
    sent_plain: |got| {
        assert_eq!(got.headers["x-goog-api-key"], "gemini-secret-key");
        assert!(got.headers.get("authorization").is_none());
        let sent = got.json();
        assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "be brief");
        assert_eq!(sent["contents"][0]["role"], "user");
        assert_eq!(sent["generationConfig"]["maxOutputTokens"], 1000);
    },
    sent_tools: |sent| {
        sent["tools"][0]["functionDeclarations"]
            .as_array()
            .unwrap()
            .len()
    },
    sent_replay: |sent| {
        let contents = &sent["contents"];
        assert_eq!(
            contents[1]["parts"][0]["functionCall"],
            json!({"name":"ls","args":{"path":"."}})
        );
        assert_eq!(
            contents[2]["parts"][0]["functionResponse"],
            json!({"name":"ls","response":{"content":"\"README.md\"\n\"src/\""}})
        );
    },
    sent_image: |sent| {
        assert_eq!(
            sent["contents"][0]["parts"],
            json!([{"text":"what is this?"},{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}}])
        );
    },
    sent_json_mode: |sent| {
        assert_eq!(
            sent["generationConfig"]["responseMimeType"],
            "application/json"
        );
    },
    error_table: &[
        (
            429,
            include_str!("../fixtures/gemini/error-429.json"),
            FailureKind::Status,
            429,
            "RESOURCE_EXHAUSTED: You exceeded",
        ),
        (
            400,
            include_str!("../fixtures/gemini/error-400-invalid-argument.json"),
            FailureKind::Client,
            400,
            "INVALID_ARGUMENT: * GenerateContentRequest",
        ),
        (
            400,
            include_str!("../fixtures/gemini/error-400-api-key.json"),
            FailureKind::Status,
            400,
            "INVALID_ARGUMENT: API key not valid",
        ),
        (
            503,
            include_str!("../fixtures/gemini/error-503-array.json"),
            FailureKind::Status,
            503,
            "UNAVAILABLE: The model is overloaded",
        ),
        (
            404,
            include_str!("../fixtures/gemini/error-404.json"),
            FailureKind::Status,
            404,
            "NOT_FOUND: models/gemini-9-flash",
        ),
        (
            403,
            r#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#,
            FailureKind::Status,
            403,
            "PERMISSION_DENIED",
        ),
        (
            400,
            r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#,
            FailureKind::Status,
            400,
            "FAILED_PRECONDITION",
        ),
        (
            502,
            "<html>Bad Gateway</html>",
            FailureKind::Status,
            502,
            "HTTP 502: <html>",
        ),
        (
            400,
            "not json",
            FailureKind::Client,
            400,
            "HTTP 400: not json",
        ),
    ],
    fall_through: &[
        ("429", 429, "gemini/error-429.json", "RESOURCE_EXHAUSTED"),
        ("5xx", 503, "gemini/error-503-array.json", "UNAVAILABLE"),
        (
            "403",
            403,
            "gemini/error-403-permission.json",
            "PERMISSION_DENIED",
        ),
    ],
    malformed_needle: "unreadable Gemini response",
    bad_request: "gemini/error-400-invalid-argument.json",
    stream_error_first: "gemini/stream-error-overloaded.sse",
    stream_error_after: ("gemini/stream-error.sse", "Partial", "stream_interrupted"),
    stream_cut: (
        "gemini/stream-cut.sse",
        "Once upon a time, in a land",
        "cut off",
    ),
};

const ANTHROPIC: Spec = Spec {
    id: "claude",
    backend: "anthropic",
    base_path: "/v1",
    model: "claude-sonnet-4-5",
    key: "anthropic-secret-key",
    max_tokens: 2000,
    whole_path: "/v1/messages",
    stream_path: "/v1/messages",
    answer_model: "claude-sonnet-4-5",
    translated: true,
    text_whole: "anthropic/response-text.json",
    text_whole_content: "Hello! How can I help?",
    text_whole_usage: r#"{"prompt_tokens":1825,"completion_tokens":9,"total_tokens":1834,"prompt_tokens_details":{"cached_tokens":1800}}"#,
    text_stream: "anthropic/stream-text.sse",
    text_stream_content: "Hello! I'm ready to help — what's first? ✨",
    text_stream_usage: r#"{"prompt_tokens":1825,"completion_tokens":15,"total_tokens":1840,"prompt_tokens_details":{"cached_tokens":1800}}"#,
    text_stream_events: 6,
    text_stream_first_words: 4,
    tool_whole: "anthropic/response-tool-use.json",
    tool_whole_content: Some("I'll run it."),
    tool_whole_calls: &[(
        "toolu_01A09q90qw90lq917835lq9",
        "exec",
        r#"{"command":"ls -la","env":{"LANG":"C"}}"#,
    )],
    tool_whole_prompt_tokens: 472 + 2048,
    tool_stream: "anthropic/stream-tool-use.sse",
    tool_stream_content: "Let me look at the workspace.",
    tool_stream_calls: &[
        ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "ls", r#"{"path": "."}"#),
        (
            "toolu_01ABCdefGHIjklMNOpqrSTUv",
            "read",
            r#"{"path":"README.md","limit":50}"#,
        ),
    ],
    tool_stream_usage: (472 + 2048, 89),
    same_answer: (
        r#"{"content":[{"type":"text","text":"Let me look at the workspace."},
            {"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"ls","input":{"path":"."}},
            {"type":"tool_use","id":"toolu_01ABCdefGHIjklMNOpqrSTUv","name":"read","input":{"path":"README.md","limit":50}}],
            "stop_reason":"tool_use"}"#,
        "anthropic/stream-tool-use.sse",
    ),
    sent_plain: |got| {
        assert_eq!(got.headers["x-api-key"], "anthropic-secret-key");
        assert!(got.headers.get("anthropic-version").is_some());
        let sent = got.json();
        assert_eq!(sent["max_tokens"], 2000);
        assert_eq!(sent["model"], "claude-sonnet-4-5");
        assert_eq!(sent["system"][0]["text"], "be brief");
    },
    sent_tools: |sent| sent["tools"].as_array().unwrap().len(),
    sent_replay: |sent| {
        let messages = &sent["messages"];
        assert_eq!(
            messages[1]["content"][0],
            json!({"type":"tool_use","id":"call_ls_01","name":"ls","input":{"path":"."}})
        );
        assert_eq!(messages[2]["content"][0]["tool_use_id"], "call_ls_01");
    },
    sent_image: |sent| {
        assert_eq!(
            sent["messages"][0]["content"][1],
            json!({"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="},"cache_control":{"type":"ephemeral"}})
        );
    },
    sent_json_mode: |sent| {
        let system = sent["system"].as_array().unwrap();
        let rule = system.last().unwrap()["text"].as_str().unwrap();
        assert!(
            rule.starts_with("Respond with a single valid JSON object"),
            "{rule}"
        );
    },
    error_table: &[
        (
            529,
            include_str!("../fixtures/anthropic/error-529-overloaded.json"),
            FailureKind::Status,
            529,
            "overloaded_error: Overloaded",
        ),
        (
            429,
            include_str!("../fixtures/anthropic/error-429-rate-limit.json"),
            FailureKind::Status,
            429,
            "rate_limit_error",
        ),
        (
            400,
            include_str!("../fixtures/anthropic/error-400-invalid-request.json"),
            FailureKind::Client,
            400,
            "invalid_request_error: messages.1",
        ),
        (
            400,
            include_str!("../fixtures/anthropic/error-400-credit-balance.json"),
            FailureKind::Status,
            400,
            "invalid_request_error: Your credit",
        ),
        (
            401,
            include_str!("../fixtures/anthropic/error-401-auth.json"),
            FailureKind::Status,
            401,
            "authentication_error",
        ),
        (
            413,
            r#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#,
            FailureKind::Client,
            413,
            "request_too_large",
        ),
        (
            500,
            r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
            FailureKind::Status,
            500,
            "api_error",
        ),
        (
            404,
            r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}"#,
            FailureKind::Status,
            404,
            "not_found_error",
        ),
        (
            502,
            "<html>Bad Gateway</html>",
            FailureKind::Status,
            502,
            "HTTP 502",
        ),
    ],
    fall_through: &[
        (
            "429",
            429,
            "anthropic/error-429-rate-limit.json",
            "rate_limit_error",
        ),
        (
            "5xx",
            529,
            "anthropic/error-529-overloaded.json",
            "overloaded_error",
        ),
        (
            "401",
            401,
            "anthropic/error-401-auth.json",
            "authentication_error",
        ),
    ],
    malformed_needle: "unreadable Anthropic response",
    bad_request: "anthropic/error-400-invalid-request.json",
    stream_error_first: "anthropic/stream-error-overloaded.sse",
    stream_error_after: (
        "anthropic/stream-error-midway.sse",
        "Partial",
        "stream_interrupted",
    ),
    stream_cut: ("anthropic/stream-cut.sse", "Once upon a time", "cut off"),
};

/// One test per check for one spec: `tokio` for the checks that run a gate, `unit` for those
/// that drive the protocol directly.
macro_rules! checks {
    ($spec:ident; $($kind:ident $name:ident => $check:ident,)*) => {$(
        checks!(@one $kind $spec $name $check);
    )*};
    (@one tokio $spec:ident $name:ident $check:ident) => {
        #[tokio::test]
        async fn $name() {
            $check(&$spec).await
        }
    };
    (@one unit $spec:ident $name:ident $check:ident) => {
        #[test]
        fn $name() {
            $check(&$spec)
        }
    };
}

/// Every check, for every backend.
macro_rules! conformance {
    ($($backend:ident: $spec:ident;)*) => {$(
        mod $backend {
            use super::*;

            checks! {
                $spec;
                tokio a_plain_answer_reaches_the_client_as_an_openai_completion => plain_answer,
                tokio a_stream_becomes_openai_chunks_ending_in_done => streamed_answer,
                unit a_stream_reads_the_same_whatever_its_split_points => stream_split_anywhere,
                unit a_usage_chunk_is_sent_only_when_asked => usage_chunk_only_when_asked,
                tokio usage_is_accounted_as_the_upstream_reported_it => usage_is_accounted,
                tokio tools_round_trip => round_trip_tools,
                unit streamed_tool_calls_are_the_same_whatever_the_split_points => streamed_tool_calls,
                unit a_streamed_answer_equals_the_same_answer_whole => streamed_equals_whole,
                tokio an_image_reaches_the_upstream => image,
                tokio json_mode_reaches_the_upstream => json_mode,
                unit upstream_errors_map_to_fallback_decisions => error_table,
                tokio every_provider_failure_falls_through_to_the_next_provider => failures_fall_through,
                tokio a_request_the_upstream_rejects_is_the_clients_400_and_not_retried => bad_request,
                tokio a_stream_that_fails_before_its_first_byte_falls_back => stream_fails_before_first_byte,
                tokio a_stream_that_fails_after_its_first_byte_ends_with_an_error_event => stream_fails_after_first_byte,
                unit a_stream_cut_midway_is_a_failure => stream_cut_midway,
            }
        }
    )*};
}

conformance! {
    openai_compat: OPENAI;
    gemini: GEMINI;
    anthropic: ANTHROPIC;
}

// ---------------------------------------------------------------------------------------
// The checks.

async fn plain_answer(spec: &Spec) {
    let (gate, up, _spare) = start(spec).await;
    up.script([raw_json(200, spec.text_whole)]);
    let body = json!({"model": spec.id, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"}
    ]});
    let resp = gate.chat(&body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-clawgate-provider"), Some(spec.id));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["model"], spec.answer_model);
    assert_eq!(
        v["choices"][0]["message"],
        json!({"role":"assistant","content": spec.text_whole_content})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"], parse(spec.text_whole_usage));
    let got = &up.received()[0];
    assert_eq!(got.path, spec.whole_path);
    (spec.sent_plain)(got);
    gate.stop().await;
}

async fn streamed_answer(spec: &Spec) {
    let (gate, up, _spare) = start(spec).await;
    up.script([raw_sse(spec.text_stream)]);
    let mut body = chat(spec, true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = gate.chat(&body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), Some("text/event-stream"));
    let a = assemble(&events_of(&resp.text().await.unwrap()));
    assert!(a.role_first && a.done_last);
    assert_eq!(a.content, spec.text_stream_content);
    assert_eq!(a.finish_reason.as_deref(), Some("stop"));
    assert_eq!(a.usage, Some(parse(spec.text_stream_usage)));
    assert_eq!(up.received()[0].path, spec.stream_path);
    gate.stop().await;
}

fn stream_split_anywhere(spec: &Spec) {
    let input = fixture(spec.text_stream);
    let whole = drive(spec, Some(true), &input, usize::MAX);
    assert!(whole.result.is_ok());
    for &piece in PIECES {
        let run = drive(spec, Some(true), &input, piece);
        assert!(run.result.is_ok(), "piece {piece}");
        assert_eq!(
            normalized(&run.events),
            normalized(&whole.events),
            "piece {piece}"
        );
    }
    let a = assemble(&whole.events);
    assert!(a.role_first && a.done_last);
    assert_eq!(a.content, spec.text_stream_content);
    assert_eq!(a.finish_reason.as_deref(), Some("stop"));
    assert_eq!(a.usage, Some(parse(spec.text_stream_usage)));
    assert_eq!(whole.events.len(), spec.text_stream_events);
    // LF and CRLF line endings read the same.
    let text = String::from_utf8_lossy(&input);
    let other = if text.contains("\r\n") {
        text.replace("\r\n", "\n")
    } else {
        text.replace('\n', "\r\n")
    };
    for piece in [3, 5] {
        let run = drive(spec, Some(true), other.as_bytes(), piece);
        assert_eq!(normalized(&run.events), normalized(&whole.events));
    }
}

fn usage_chunk_only_when_asked(spec: &Spec) {
    // A pass-through upstream is asked for usage on the client's behalf: the client that
    // did not ask does not get it either.
    for asked in [Some(false), None] {
        if asked.is_some() && !spec.translated {
            continue; // the client's own stream_options pass through as they are
        }
        let run = drive(spec, asked, &fixture(spec.text_stream), 10);
        let a = assemble(&run.events);
        assert!(a.usage.is_none() && a.done_last && run.result.is_ok());
        assert!(run.events.iter().all(|e| e.get("usage").is_none()));
    }
}

async fn usage_is_accounted(spec: &Spec) {
    let (gate, up, _spare) = start(spec).await;
    up.script([raw_json(200, spec.text_whole), raw_sse(spec.text_stream)]);
    gate.chat(&chat(spec, false)).await.text().await.unwrap();
    // The client does not ask for usage; the request is accounted all the same.
    let text = gate.chat(&chat(spec, true)).await.text().await.unwrap();
    assert!(!text.contains("\"usage\""), "{text}");
    let rows = gate.recent(2).await;
    for (usage, stream) in [
        (spec.text_whole_usage, false),
        (spec.text_stream_usage, true),
    ] {
        let usage = parse(usage);
        let row = rows.iter().find(|r| r["stream"] == stream).unwrap();
        assert_eq!(row["provider"], spec.id);
        assert_eq!(row["prompt_tok"], usage["prompt_tokens"], "stream {stream}");
        assert_eq!(
            row["compl_tok"], usage["completion_tokens"],
            "stream {stream}"
        );
        assert_eq!(row["usage_estimated"], false, "stream {stream}");
    }
    gate.stop().await;
}

async fn round_trip_tools(spec: &Spec) {
    let (gate, up, _spare) = start(spec).await;
    up.script([raw_sse(spec.tool_stream), raw_json(200, spec.tool_whole)]);
    // A turn replaying earlier tool calls and their results, offering 12 tools (streamed).
    let mut body = tool_replay();
    body["model"] = json!(spec.id);
    let resp = gate.chat(&body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("\"tool_calls\""), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    let a = assemble(&events_of(&text));
    assert_eq!(a.content, spec.tool_stream_content);
    assert_eq!(a.finish_reason.as_deref(), Some("tool_calls"));
    assert_calls(&a.tool_calls, spec.tool_stream_calls);
    let sent = up.received()[0].json();
    assert_eq!((spec.sent_tools)(&sent), 12);
    (spec.sent_replay)(&sent);
    // The same turn answered whole.
    body["stream"] = json!(false);
    let v: Value = gate.chat(&body).await.json().await.unwrap();
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], json!(spec.tool_whole_content));
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    // Arguments are compared as JSON: a translator writes them anew.
    let canonical = |args: &str| parse(args).to_string();
    let calls: Vec<(String, String, String)> = msg["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["type"], "function");
            let f = &c["function"];
            let args = canonical(f["arguments"].as_str().unwrap());
            (str_of(&c["id"]), str_of(&f["name"]), args)
        })
        .collect();
    let want: Vec<(&str, &str, String)> = spec
        .tool_whole_calls
        .iter()
        .map(|&(id, name, args)| (id, name, canonical(args)))
        .collect();
    let want: Vec<(&str, &str, &str)> = want.iter().map(|(i, n, a)| (*i, *n, a.as_str())).collect();
    assert_calls(&calls, &want);
    assert_eq!(v["usage"]["prompt_tokens"], spec.tool_whole_prompt_tokens);
    gate.stop().await;
}

fn streamed_tool_calls(spec: &Spec) {
    let input = fixture(spec.tool_stream);
    for &piece in PIECES {
        let run = drive(spec, Some(true), &input, piece);
        assert!(run.result.is_ok());
        let a = assemble(&run.events);
        assert_eq!(a.content, spec.tool_stream_content);
        assert_eq!(a.finish_reason.as_deref(), Some("tool_calls"));
        assert_calls(&a.tool_calls, spec.tool_stream_calls);
        let usage = a.usage.unwrap();
        assert_eq!(
            (
                usage["prompt_tokens"].as_u64(),
                usage["completion_tokens"].as_u64()
            ),
            (
                Some(spec.tool_stream_usage.0),
                Some(spec.tool_stream_usage.1)
            )
        );
    }
}

fn streamed_equals_whole(spec: &Spec) {
    let (whole, recorded) = spec.same_answer;
    let streamed = assemble(&drive(spec, Some(false), &fixture(recorded), 1).events);
    let completion = protocol(spec)
        .complete(&config(spec), None, Bytes::from(whole))
        .unwrap();
    let v: Value = serde_json::from_slice(&completion.body).unwrap();
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], streamed.content.as_str());
    assert_eq!(
        v["choices"][0]["finish_reason"],
        streamed.finish_reason.unwrap().as_str()
    );
    for (i, (id, name, args)) in streamed.tool_calls.iter().enumerate() {
        assert_eq!(msg["tool_calls"][i]["id"], id.as_str());
        assert_eq!(msg["tool_calls"][i]["function"]["name"], name.as_str());
        let b = msg["tool_calls"][i]["function"]["arguments"]
            .as_str()
            .unwrap();
        assert_eq!(parse(args), parse(b));
    }
}

async fn image(spec: &Spec) {
    let (gate, up, _spare) = start(spec).await;
    up.script([raw_json(200, spec.text_whole)]);
    let body = json!({"model": spec.id, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}}
    ]}]});
    let resp = gate.chat(&body).await;
    assert_eq!(resp.status(), 200);
    (spec.sent_image)(&up.received()[0].json());
    gate.stop().await;
}

async fn json_mode(spec: &Spec) {
    let (gate, up, _spare) = start(spec).await;
    up.script([raw_json(200, spec.text_whole)]);
    let mut body = chat(spec, false);
    body["response_format"] = json!({"type": "json_object"});
    let resp = gate.chat(&body).await;
    assert_eq!(resp.status(), 200);
    (spec.sent_json_mode)(&up.received()[0].json());
    gate.stop().await;
}

fn error_table(spec: &Spec) {
    let protocol = protocol(spec);
    for &(status, body, kind, want_status, prefix) in spec.error_table {
        let status_code = http::StatusCode::from_u16(status).unwrap();
        match protocol.error_answer(status_code, None, Bytes::from(body)) {
            Ok(refusal) => {
                // Passed on to the client as it came.
                assert!(!spec.translated && kind == FailureKind::Client, "{body}");
                assert_eq!(refusal.status.as_u16(), want_status, "{body}");
                assert_eq!(refusal.body, body.as_bytes(), "{body}");
            }
            Err(f) => {
                assert_eq!((f.kind, f.status), (kind, want_status), "{body}");
                assert!(f.message.starts_with(prefix), "{} vs {prefix}", f.message);
            }
        }
    }
}

async fn failures_fall_through(spec: &Spec) {
    let (gate, up, spare) = start(spec).await;
    let mut cases: Vec<(String, Behavior, &str)> = Vec::new();
    for &(class, status, path, needle) in spec.fall_through {
        cases.push((class.into(), raw_json(status, path), needle));
    }
    cases.push(("timeout".into(), Behavior::Hang, "within"));
    cases.push((
        "malformed".into(),
        Behavior::Malformed,
        spec.malformed_needle,
    ));
    for stream in [false, true] {
        for (class, behavior, needle) in &cases {
            if stream && class == "malformed" {
                continue; // a stream's own malformations are below
            }
            let name = format!("{class}, stream {stream}");
            let hits = spare.hits();
            up.script([behavior.clone()]);
            fell_back(spec, gate.chat(&chat(spec, stream)).await, stream, &name).await;
            assert_eq!(spare.hits(), hits + 1, "{name}");
            let health = gate.get_json("/health").await;
            let last = health["providers"][spec.id]["last_error"].as_str().unwrap();
            assert!(last.contains(needle), "{name}: {last}");
            assert!(
                !health.to_string().contains(spec.key),
                "{name}: the key leaked"
            );
        }
    }
    gate.stop().await;
}

async fn bad_request(spec: &Spec) {
    let (gate, up, spare) = start(spec).await;
    for stream in [false, true] {
        up.script([raw_json(400, spec.bad_request)]);
        let resp = gate.chat(&chat(spec, stream)).await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        if spec.translated {
            assert_eq!(body["error"]["type"], "invalid_request_error");
            let message = body["error"]["message"].as_str().unwrap();
            let prefix = format!("{} cannot take this request", spec.id);
            assert!(message.starts_with(&prefix), "{message}");
        } else {
            assert_eq!(
                body,
                parse(&String::from_utf8(fixture(spec.bad_request)).unwrap())
            );
        }
    }
    assert_eq!(
        spare.hits(),
        0,
        "a client error must not be retried elsewhere"
    );
    let health = gate.get_json("/health").await;
    assert_eq!(health["providers"][spec.id]["consecutive_failures"], 0);
    gate.stop().await;
}

async fn stream_fails_before_first_byte(spec: &Spec) {
    let (gate, up, spare) = start(spec).await;
    let cases = [
        ("an error event first", raw_sse(spec.stream_error_first)),
        (
            "broken before any event",
            Behavior::RawCut {
                content_type: "text/event-stream",
                chunks: Vec::new(),
            },
        ),
        (
            "ended before any event",
            Behavior::Raw {
                status: 200,
                content_type: "text/event-stream",
                chunks: Vec::new(),
            },
        ),
    ];
    for (n, (name, behavior)) in cases.into_iter().enumerate() {
        up.script([behavior]);
        fell_back(spec, gate.chat(&chat(spec, true)).await, true, name).await;
        assert_eq!(spare.hits(), n + 1, "{name}");
    }
    gate.stop().await;
}

async fn stream_fails_after_first_byte(spec: &Spec) {
    let (gate, up, spare) = start(spec).await;
    let events = fixture_events(spec.text_stream);
    let (error_after, partial, code) = spec.stream_error_after;
    let (cut, cut_text, _) = spec.stream_cut;
    let cases = [
        (
            "broken after the first words",
            Behavior::RawCut {
                content_type: "text/event-stream",
                chunks: events[..spec.text_stream_first_words].to_vec(),
            },
            "Hello",
            "stream_interrupted",
        ),
        ("ended midway", raw_sse(cut), cut_text, "stream_interrupted"),
        ("an error event midway", raw_sse(error_after), partial, code),
    ];
    for (name, behavior, text, code) in cases {
        up.script([behavior]);
        let resp = gate.chat(&chat(spec, true)).await;
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(
            header(&resp, "x-clawgate-provider"),
            Some(spec.id),
            "{name}"
        );
        let body = resp.text().await.unwrap();
        let events = events_of(&body);
        assert_eq!(assemble(&events).content, text, "{name}: {body}");
        let last = events.last().unwrap();
        assert_eq!(last["error"]["code"], code, "{name}: {body}");
        if code == "stream_interrupted" {
            let message = last["error"]["message"].as_str().unwrap();
            assert!(message.starts_with(&format!("{}: ", spec.id)), "{message}");
        }
        assert!(!body.contains("[DONE]"), "{name}");
    }
    assert_eq!(spare.hits(), 0, "no fallback once the client has bytes");
    gate.stop().await;
}

fn stream_cut_midway(spec: &Spec) {
    let (cut, text, needle) = spec.stream_cut;
    for piece in [6, 9] {
        let run = drive(spec, Some(true), &fixture(cut), piece);
        let err = run.result.unwrap_err();
        assert_eq!(err.kind, FailureKind::Stream);
        assert!(err.message.contains(needle), "{}", err.message);
        let a = assemble(&run.events);
        assert_eq!(a.content, text);
        assert!(a.finish_reason.is_none());
    }
    // Nothing at all: no event for the client, and a failure (the relay's, for a
    // pass-through stream, which has nothing to say about an empty one).
    let run = drive(spec, Some(true), b"", 1);
    assert!(run.events.is_empty());
    if spec.translated {
        assert_eq!(run.result.unwrap_err().kind, FailureKind::Stream);
    }
}

// ---------------------------------------------------------------------------------------
// One backend's own stream behaviour.

mod gemini_only {
    use super::*;

    #[test]
    fn error_event_mid_stream_fails_the_feed() {
        let input = fixture("gemini/stream-error.sse");
        let run = drive(&GEMINI, Some(true), &input, 4);
        let err = run.result.unwrap_err();
        assert_eq!((err.kind, err.status), (FailureKind::Status, 503));
        assert!(err.message.starts_with("UNAVAILABLE"));
    }

    #[test]
    fn blocked_prompt_streams_a_content_filter_finish() {
        let input = fixture("gemini/stream-prompt-blocked.sse");
        let run = drive(&GEMINI, Some(false), &input, 3);
        assert!(run.result.is_ok());
        let a = assemble(&run.events);
        assert!(a.role_first && a.done_last);
        assert_eq!(a.finish_reason.as_deref(), Some("content_filter"));
    }

    #[test]
    fn malformed_call_before_any_output_fails_the_stream_so_it_can_fall_back() {
        let event = br#"data: {"candidates":[{"content":{},"finishReason":"MALFORMED_FUNCTION_CALL","index":0}]}

"#;
        let run = drive(&GEMINI, Some(false), event, 7);
        assert!(run.events.is_empty());
        assert_eq!(run.result.unwrap_err().kind, FailureKind::Malformed);
    }

    #[test]
    fn several_candidates_stream_as_separate_choices() {
        let input = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"A\"}]},\"index\":0},{\"content\":{\"parts\":[{\"text\":\"B\"}]},\"index\":1}]}\n\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"finishReason\":\"STOP\",\"index\":0},{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"MAX_TOKENS\",\"index\":1}]}\n\n",
        );
        let run = drive(&GEMINI, Some(false), input.as_bytes(), 11);
        assert!(run.result.is_ok());
        let mut text = [String::new(), String::new()];
        let mut finish = [None, None];
        for e in &run.events {
            for c in e["choices"].as_array().into_iter().flatten() {
                let i = c["index"].as_u64().unwrap() as usize;
                text[i].push_str(c["delta"]["content"].as_str().unwrap_or(""));
                if let Some(r) = c["finish_reason"].as_str() {
                    finish[i] = Some(r.to_owned());
                }
            }
        }
        assert_eq!(text, ["Aa", "Bb"]);
        assert_eq!(finish, [Some("stop".to_owned()), Some("length".to_owned())]);
    }
}

mod anthropic_only {
    use super::*;

    #[test]
    fn error_event_before_any_content_fails_with_nothing_sent() {
        let input = fixture("anthropic/stream-error-overloaded.sse");
        for &piece in PIECES {
            let run = drive(&ANTHROPIC, Some(true), &input, piece);
            assert!(
                run.events.is_empty(),
                "nothing reached the client, so the dispatcher can fall back"
            );
            let err = run.result.unwrap_err();
            assert_eq!((err.kind, err.status), (FailureKind::Status, 529));
            assert_eq!(err.message, "overloaded_error: Overloaded");
        }
        let bad = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}\n\n";
        assert_eq!(
            drive(&ANTHROPIC, Some(false), bad, 5)
                .result
                .unwrap_err()
                .kind,
            FailureKind::Client
        );
    }
}

// ---------------------------------------------------------------------------------------
// Set-up: a gate with the backend under test and a spare OpenAI-compatible provider to fall
// back to.

/// The config for `spec` at `addr`, with the spare at `spare`.
fn yaml(spec: &Spec, addr: &str, spare: &str) -> String {
    format!(
        "health:
  consecutive_failures_before_skip: 1000
providers:
  {id}:
    backend: {backend}
    base_url: http://{addr}{base_path}
    api_key: {key}
    model: {model}
    max_tokens: {max_tokens}
    timeout: {{ connect_s: 1, read_s: 2, first_byte_s: 1, idle_s: 1 }}
  spare:
    backend: openai-compat
    base_url: http://{spare}/v1
    api_key: sk-spare
    model: spare-model
fallback_chain: [spare]
",
        id = spec.id,
        backend = spec.backend,
        base_path = spec.base_path,
        key = spec.key,
        model = spec.model,
        max_tokens = spec.max_tokens,
    )
}

async fn start(spec: &Spec) -> (Gate, MockUpstream, MockUpstream) {
    let up = MockUpstream::start(spec.id).await;
    let spare = MockUpstream::start("spare").await;
    let empty = tempfile::tempdir().unwrap();
    let cfg = yaml(spec, &up.addr.to_string(), &spare.addr.to_string());
    let gate = Gate::start_with_rules(&cfg, Some(empty.path())).await;
    (gate, up, spare)
}

/// The backend's provider config, for driving its protocol directly.
fn config(spec: &Spec) -> ProviderConfig {
    let yaml = yaml(spec, "127.0.0.1:9", "127.0.0.1:9");
    let config = Config::from_str(&yaml, Path::new("conformance.yaml"), &|_| None).unwrap();
    config
        .providers
        .into_iter()
        .find(|p| p.id == spec.id)
        .unwrap()
}

fn protocol(spec: &Spec) -> &'static dyn Protocol {
    protocol_for(config(spec).backend)
}

/// A small chat request for the backend.
fn chat(spec: &Spec, stream: bool) -> Value {
    support::chat_body(spec.id, "hi", stream)
}

/// The turn of tests/fixtures/openclaw-tool-replay.json: earlier tool calls and their
/// results, and 12 tools.
fn tool_replay() -> Value {
    serde_json::from_slice(&fixture("openclaw-tool-replay.json")).unwrap()
}

fn raw_json(status: u16, path: &str) -> Behavior {
    Behavior::Raw {
        status,
        content_type: "application/json",
        chunks: vec![fixture(path)],
    }
}

/// A recorded stream in small pieces, as a network would deliver it.
fn raw_sse(path: &str) -> Behavior {
    Behavior::Raw {
        status: 200,
        content_type: "text/event-stream",
        chunks: fixture(path).chunks(37).map(<[u8]>::to_vec).collect(),
    }
}

/// A recorded stream's events, each with its blank line (`\n\n` or `\r\n\r\n`).
fn fixture_events(path: &str) -> Vec<Vec<u8>> {
    let bytes = fixture(path);
    let mut events = Vec::new();
    let mut start = 0;
    for end in 2..=bytes.len() {
        let seen = &bytes[start..end];
        if seen.ends_with(b"\n\n") || seen.ends_with(b"\r\n\r\n") {
            events.push(seen.to_vec());
            start = end;
        }
    }
    events
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The spare answered, after the backend failed.
async fn fell_back(spec: &Spec, resp: reqwest::Response, stream: bool, name: &str) {
    assert_eq!(resp.status(), 200, "{name}");
    assert_eq!(
        header(&resp, "x-clawgate-provider"),
        Some("spare"),
        "{name}"
    );
    let attempts = format!("{},spare", spec.id);
    assert_eq!(
        header(&resp, "x-clawgate-attempts"),
        Some(attempts.as_str())
    );
    assert_eq!(
        answer_text(resp, stream).await,
        "Hello from spare",
        "{name}"
    );
}

/// The answer's text, streamed or whole.
async fn answer_text(resp: reqwest::Response, stream: bool) -> String {
    if stream {
        let (text, done) = support::sse_text(&resp.text().await.unwrap());
        assert!(done);
        return text;
    }
    let v: Value = resp.json().await.unwrap();
    str_of(&v["choices"][0]["message"]["content"])
}

fn parse(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Tool calls as (id, name, arguments) against the expected ones, where an expected id
/// ending in `*` is a prefix (the backend mints ids) and minted ids are distinct.
fn assert_calls(got: &[(String, String, String)], want: &[(&str, &str, &str)]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((id, name, args), &(want_id, want_name, want_args)) in got.iter().zip(want) {
        match want_id.strip_suffix('*') {
            Some(prefix) => assert!(id.starts_with(prefix), "{id}"),
            None => assert_eq!(id, want_id),
        }
        assert_eq!((name.as_str(), args.as_str()), (want_name, want_args));
    }
    for (i, (id, _, _)) in got.iter().enumerate() {
        assert!(got[..i].iter().all(|(other, _, _)| other != id), "{got:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Driving a protocol's stream decoder directly, and reading OpenAI SSE back.

/// The split points every stream check uses: byte by byte, odd sizes, and all at once.
const PIECES: &[usize] = &[1, 2, 3, 7, 64, 1000, usize::MAX];

/// What a stream decoder wrote, and how it ended.
struct Run {
    /// Every SSE event written, as JSON (`[DONE]` as the string `"[DONE]"`).
    events: Vec<Value>,
    result: Result<(), UpstreamFailure>,
}

/// Feed `input` to the backend's stream decoder in pieces of `piece` bytes, then finish
/// (unless a feed failed). `include_usage`: the client's `stream_options.include_usage`
/// (`None`: no `stream_options`).
fn drive(spec: &Spec, include_usage: Option<bool>, input: &[u8], piece: usize) -> Run {
    let mut body =
        json!({"model": spec.id, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    if let Some(include) = include_usage {
        body["stream_options"] = json!({"include_usage": include});
    }
    let body = serde_json::to_vec(&body).unwrap();
    let req = ChatRequest::parse(&body).unwrap();
    let (_, mut decoder) = protocol(spec).stream(&config(spec), &req, None);
    let mut out = Events::new();
    let mut result = Ok(());
    for chunk in input.chunks(piece.max(1)) {
        result = decoder.feed(Bytes::copy_from_slice(chunk), &mut out);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = decoder.finish(&mut out);
    }
    let mut text = String::new();
    for events in &out {
        let events = std::str::from_utf8(events).expect("events are UTF-8");
        assert!(
            events.ends_with("\n\n") || events.ends_with("\r\n\r\n"),
            "not whole SSE events: {events:?}"
        );
        text.push_str(events);
    }
    Run {
        events: events_of(&text),
        result,
    }
}

/// The `data:` of every event of an OpenAI SSE body, as JSON (`[DONE]` as a string).
fn events_of(body: &str) -> Vec<Value> {
    let body = body.replace("\r\n", "\n");
    let mut events = Vec::new();
    for event in body.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) else {
            continue;
        };
        let data = data.trim();
        if data == "[DONE]" {
            events.push(Value::String("[DONE]".into()));
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        if v.get("error").is_none() {
            assert_eq!(v["object"], "chat.completion.chunk");
            assert!(v["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("chatcmpl-")));
        }
        events.push(v);
    }
    events
}

/// The events with per-run values (ids, timestamps) blanked, for comparing runs.
fn normalized(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(o) = e.as_object_mut() {
                o.remove("id");
                o.remove("created");
            }
            if let Some(choices) = e.get_mut("choices").and_then(Value::as_array_mut) {
                for c in choices {
                    if let Some(calls) = c
                        .pointer_mut("/delta/tool_calls")
                        .and_then(Value::as_array_mut)
                    {
                        for call in calls {
                            if call.get("id").is_some() {
                                call["id"] = Value::String("<id>".into());
                            }
                        }
                    }
                }
            }
            e
        })
        .collect()
}

/// A stream's answer for choice 0, put back together as a client SDK would.
#[derive(Debug, Default, PartialEq)]
struct Assembled {
    role_first: bool,
    content: String,
    /// (id, name, arguments) per tool call index.
    tool_calls: Vec<(String, String, String)>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    done_last: bool,
}

fn assemble(events: &[Value]) -> Assembled {
    let mut a = Assembled {
        done_last: events.last() == Some(&Value::String("[DONE]".into())),
        ..Default::default()
    };
    for (n, e) in events.iter().enumerate() {
        if e.get("usage").is_some_and(|u| !u.is_null()) {
            assert_eq!(e["choices"], json!([]), "usage chunk has no choices");
            a.usage = Some(e["usage"].clone());
        }
        let Some(choice) = e
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            continue;
        };
        let delta = &choice["delta"];
        if n == 0 {
            a.role_first = delta["role"] == "assistant";
        }
        if let Some(t) = delta["content"].as_str() {
            a.content.push_str(t);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = call["index"].as_u64().expect("tool call index") as usize;
            if a.tool_calls.len() <= i {
                a.tool_calls.resize(i + 1, Default::default());
            }
            let slot = &mut a.tool_calls[i];
            if let Some(id) = call["id"].as_str() {
                slot.0 = id.into();
            }
            if let Some(name) = call["function"]["name"].as_str() {
                slot.1 = name.into();
            }
            if let Some(args) = call["function"]["arguments"].as_str() {
                slot.2.push_str(args);
            }
        }
        if let Some(r) = choice["finish_reason"].as_str() {
            assert!(a.finish_reason.is_none(), "one finish reason per choice");
            a.finish_reason = Some(r.into());
        }
    }
    a
}
