//! Gemini's own tests: the request it is sent, its answers and its finish reasons. What every
//! backend must do (answers, streams, usage, errors) is the conformance suite's,
//! tests/backends.rs.

use serde_json::{json, Value};

use super::request::REPLAYED_CALL_SIGNATURE;
use super::response::finish_reason;
use super::Gemini;
use crate::config::{Backend, ProviderConfig};
use crate::providers::protocol::{FailureKind, UpstreamFailure};
use crate::providers::translate::testing::{body_of, provider, respond_with, translate_with, Sent};
use crate::request::InvalidRequest;

const OPENCLAW: &[u8] = include_bytes!("../../../tests/fixtures/openclaw-tool-replay.json");

fn gemini() -> ProviderConfig {
    provider(Backend::GoogleGenai, "gemini-2.5-flash", Some(8000))
}

fn translate(body: &[u8]) -> Result<(Sent, Value), InvalidRequest> {
    translate_with(&gemini(), body)
}

fn respond(fixture: &str) -> Result<Value, UpstreamFailure> {
    respond_with(&Gemini, &gemini(), fixture)
}

#[test]
fn openclaw_turn_with_tool_replay_translates_field_by_field() {
    let (up, body) = translate(OPENCLAW).unwrap();
    assert_eq!(
        up.url,
        "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert!(
        !up.url.contains("sk-test-secret"),
        "the key never goes in the URL"
    );
    let header = |name: &str| up.header(name);
    assert_eq!(header("x-goog-api-key").as_deref(), Some("sk-test-secret"));
    assert!(up
        .headers
        .iter()
        .any(|(n, v)| n == "x-goog-api-key" && v.is_sensitive()));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(header("x-extra").as_deref(), Some("1"));

    let system = body["systemInstruction"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(system.starts_with("<!-- openclaw:attempt:STABLE -->"));

    let contents = body["contents"].as_array().unwrap();
    let roles: Vec<&str> = contents
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "model", "user", "model", "user"]);
    assert!(contents[0]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .contains("Say hello"));
    let calls = contents[1]["parts"].as_array().unwrap();
    assert_eq!(
        calls[0]["functionCall"],
        json!({"name":"ls","args":{"path":"."}})
    );
    assert_eq!(calls[0]["thoughtSignature"], REPLAYED_CALL_SIGNATURE);
    assert_eq!(
        calls[1]["functionCall"],
        json!({"name":"read","args":{"path":"README.md"}})
    );
    let results = contents[2]["parts"].as_array().unwrap();
    assert_eq!(
        results[0]["functionResponse"],
        json!({"name":"ls","response":{"content":"\"README.md\"\n\"src/\""}})
    );
    assert_eq!(
        results[1]["functionResponse"],
        json!({"name":"read","response":{"content":"# Project\nHello."}})
    );
    assert_eq!(
        contents[3]["parts"],
        json!([{"text":"The workspace has a README."}])
    );
    assert!(contents[4]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>"));

    let decls = body["tools"][0]["functionDeclarations"].as_array().unwrap();
    assert_eq!(decls.len(), 12);
    for d in decls {
        let name = d["name"].as_str().unwrap();
        assert!(d["description"].is_string(), "{name}");
        if let Some(p) = d.get("parameters") {
            let text = p.to_string();
            for banned in [
                "$schema",
                "additionalProperties",
                "patternProperties",
                "const",
                "\"properties\":{}",
            ] {
                assert!(!text.contains(banned), "{name}: {banned} in {text}");
            }
        }
    }
    let exec = decls.iter().find(|d| d["name"] == "exec").unwrap();
    assert_eq!(
        exec["parametersJsonSchema"]["properties"]["env"]["additionalProperties"],
        json!({"type":"string"})
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig":{"mode":"AUTO"}})
    );
    assert_eq!(body["generationConfig"], json!({"maxOutputTokens": 8192}));
}

#[test]
fn non_streamed_requests_use_generate_content() {
    let (up, body) = translate(&body_of(json!({}))).unwrap();
    assert_eq!(
        up.url,
        "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        body["contents"],
        json!([{"role":"user","parts":[{"text":"hi"}]}])
    );
    assert!(body.get("systemInstruction").is_none());
    assert!(body.get("tools").is_none());
}

#[test]
fn sampling_options_map_to_generation_config() {
    let schema =
        json!({"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false});
    let cases: Vec<(Value, Value)> = vec![
        (json!({}), json!({"maxOutputTokens":8000})),
        (json!({"max_tokens":100}), json!({"maxOutputTokens":100})),
        (
            json!({"max_tokens":100,"max_completion_tokens":50}),
            json!({"maxOutputTokens":50}),
        ),
        (
            json!({"temperature":0.2,"top_p":0.9}),
            json!({"maxOutputTokens":8000,"temperature":0.2,"topP":0.9}),
        ),
        (
            json!({"stop":"END"}),
            json!({"maxOutputTokens":8000,"stopSequences":["END"]}),
        ),
        (
            json!({"stop":["a","b","c","d","e","f"]}),
            json!({"maxOutputTokens":8000,"stopSequences":["a","b","c","d","e"]}),
        ),
        (
            json!({"n":2,"seed":7}),
            json!({"maxOutputTokens":8000,"candidateCount":2,"seed":7}),
        ),
        (json!({"n":1}), json!({"maxOutputTokens":8000})),
        (
            json!({"presence_penalty":0.5,"frequency_penalty":0.1}),
            json!({"maxOutputTokens":8000,"presencePenalty":0.5,"frequencyPenalty":0.1}),
        ),
        (
            json!({"reasoning_effort":"low"}),
            json!({"maxOutputTokens":8000,"thinkingConfig":{"thinkingBudget":1024}}),
        ),
        (
            json!({"response_format":{"type":"text"}}),
            json!({"maxOutputTokens":8000}),
        ),
        (
            json!({"response_format":{"type":"json_object"}}),
            json!({"maxOutputTokens":8000,"responseMimeType":"application/json"}),
        ),
        (
            json!({"response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":schema}}}),
            json!({"maxOutputTokens":8000,"responseMimeType":"application/json",
                   "responseSchema":{"type":"object","properties":{"a":{"type":"string"}}}}),
        ),
    ];
    for (extra, want) in cases {
        let (_, body) = translate(&body_of(extra.clone())).unwrap();
        assert_eq!(body["generationConfig"], want, "{extra}");
    }
    let err = translate(&body_of(json!({"response_format":{"type":"yaml"}}))).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("response_format.type"));
}

#[test]
fn tool_choice_maps_to_function_calling_config() {
    let tools = json!([{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"type":"string"}}}}}]);
    let cases: Vec<(Value, Option<Value>)> = vec![
        (Value::Null, None),
        (json!("auto"), Some(json!({"mode":"AUTO"}))),
        (json!("none"), Some(json!({"mode":"NONE"}))),
        (json!("required"), Some(json!({"mode":"ANY"}))),
        (
            json!({"type":"function","function":{"name":"f"}}),
            Some(json!({"mode":"ANY","allowedFunctionNames":["f"]})),
        ),
    ];
    for (choice, want) in cases {
        let (_, body) = translate(&body_of(json!({"tools":tools,"tool_choice":choice}))).unwrap();
        assert_eq!(
            body["toolConfig"].get("functionCallingConfig").cloned(),
            want,
            "{choice}"
        );
    }
    let err = translate(&body_of(json!({"tools":tools,"tool_choice":"sometimes"}))).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("tool_choice"));
}

#[test]
fn parameterless_tools_are_declared_without_parameters() {
    let tools = json!([{"type":"function","function":{"name":"now","description":"time","parameters":{"type":"object","properties":{}}}},
                       {"type":"function","function":{"name":"ping"}}]);
    let (_, body) = translate(&body_of(json!({"tools":tools}))).unwrap();
    assert_eq!(
        body["tools"][0]["functionDeclarations"],
        json!([{"name":"now","description":"time"},{"name":"ping"}])
    );
}

#[test]
fn images_go_inline_and_remote_urls_are_refused() {
    let msg = |url: &str| {
        json!({"messages":[{"role":"user","content":[
        {"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":url,"detail":"high"}}]}]})
    };
    let (_, body) = translate(&body_of(msg("data:image/png;base64,iVBORw0KGgo="))).unwrap();
    assert_eq!(
        body["contents"][0]["parts"],
        json!([{"text":"what is this?"},{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}}])
    );
    let err = translate(&body_of(msg("https://example.com/cat.png"))).unwrap_err();
    assert!(
        err.message.contains("remote image URLs are not fetched"),
        "{}",
        err.message
    );
    assert_eq!(err.param.as_deref(), Some("messages[0].content"));
}

#[test]
fn consecutive_turns_of_one_role_are_merged_and_empty_ones_dropped() {
    let (_, body) = translate(&body_of(json!({"messages":[
        {"role":"system","content":"be brief"},
        {"role":"user","content":"one"},
        {"role":"assistant","content":""},
        {"role":"user","content":[{"type":"text","text":"two"}]},
        {"role":"developer","content":"and kind"},
        {"role":"assistant","content":"ok"},
        {"role":"assistant","content":null},
        {"role":"assistant","content":"more"}]})))
    .unwrap();
    assert_eq!(
        body["systemInstruction"],
        json!({"parts":[{"text":"be brief\n\nand kind"}]})
    );
    assert_eq!(
        body["contents"],
        json!([{"role":"user","parts":[{"text":"one"},{"text":"two"}]},{"role":"model","parts":[{"text":"ok"},{"text":"more"}]}])
    );
}

#[test]
fn system_only_requests_send_the_system_text_as_the_prompt() {
    let (_, body) = translate(&body_of(
        json!({"messages":[{"role":"system","content":"say hi"}]}),
    ))
    .unwrap();
    assert_eq!(
        body["contents"],
        json!([{"role":"user","parts":[{"text":"say hi"}]}])
    );
    assert!(body.get("systemInstruction").is_none());
}

#[test]
fn tool_results_need_a_matching_call() {
    let err = translate(&body_of(json!({"messages":[{"role":"user","content":"x"},
        {"role":"tool","tool_call_id":"nope","content":"r"}]})))
    .unwrap_err();
    assert_eq!(err.param.as_deref(), Some("messages[1].tool_call_id"));
    // A JSON object result is passed as the response itself.
    let (_, body) = translate(&body_of(json!({"messages":[{"role":"user","content":"x"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":""}}]},
        {"role":"tool","tool_call_id":"c1","content":"{\"ok\":true}"}]}))).unwrap();
    assert_eq!(
        body["contents"][1]["parts"][0]["functionCall"],
        json!({"name":"f","args":{}})
    );
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"],
        json!({"name":"f","response":{"ok":true}})
    );
}

#[test]
fn finish_reasons_map_to_openai() {
    let cases = [
        ("STOP", false, "stop"),
        ("STOP", true, "tool_calls"),
        ("MAX_TOKENS", false, "length"),
        ("MAX_TOKENS", true, "length"),
        ("SAFETY", false, "content_filter"),
        ("RECITATION", false, "content_filter"),
        ("PROHIBITED_CONTENT", false, "content_filter"),
        ("OTHER", false, "stop"),
        ("FINISH_REASON_UNSPECIFIED", false, "stop"),
    ];
    for (reason, calls, want) in cases {
        assert_eq!(finish_reason(reason, calls), want, "{reason} {calls}");
    }
}

#[test]
fn safety_blocks_become_content_filter_not_errors() {
    for fixture in [
        include_str!("../../../tests/fixtures/gemini/response-safety.json"),
        include_str!("../../../tests/fixtures/gemini/response-prompt-blocked.json"),
    ] {
        let v = respond(fixture).unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(v["choices"][0]["message"]["content"], "");
    }
}

#[test]
fn a_malformed_function_call_with_no_output_is_a_provider_failure() {
    let err = respond(include_str!(
        "../../../tests/fixtures/gemini/response-malformed-call.json"
    ))
    .unwrap_err();
    assert_eq!(err.kind, FailureKind::Malformed);
    assert!(err.message.contains("MALFORMED_FUNCTION_CALL"));
    let err = respond("<html>oops</html>").unwrap_err();
    assert_eq!(err.kind, FailureKind::Malformed);
}
