//! Anthropic's own tests: the request it is sent, its answers and its stop reasons. What every
//! backend must do (answers, streams, usage, errors) is the conformance suite's,
//! tests/backends.rs.

use serde_json::{json, Value};

use super::response::finish_reason;
use super::{Anthropic, DEFAULT_MAX_TOKENS};
use crate::config::{Backend, ProviderConfig};
use crate::providers::protocol::UpstreamFailure;
use crate::providers::translate::testing::{body_of, provider, respond_with, translate_with, Sent};
use crate::request::InvalidRequest;

const OPENCLAW: &[u8] = include_bytes!("../../../tests/fixtures/openclaw-tool-replay.json");

fn claude(max_tokens: Option<u64>) -> ProviderConfig {
    provider(Backend::Anthropic, "claude-sonnet-4-5", max_tokens)
}

fn translate(body: &[u8]) -> Result<(Sent, Value), InvalidRequest> {
    translate_with(&claude(Some(8000)), body)
}

fn respond(fixture: &str) -> Result<Value, UpstreamFailure> {
    respond_with(&Anthropic, &claude(None), fixture)
}

#[test]
fn openclaw_turn_with_tool_replay_translates_field_by_field() {
    let (up, body) = translate(OPENCLAW).unwrap();
    assert_eq!(up.url, "http://127.0.0.1:9/v1beta/messages");
    let header = |name: &str| up.header(name);
    assert_eq!(header("x-api-key").as_deref(), Some("sk-test-secret"));
    assert!(up
        .headers
        .iter()
        .any(|(n, v)| n == "x-api-key" && v.is_sensitive()));
    assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(header("x-extra").as_deref(), Some("1"));

    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["max_tokens"], 8192);
    assert_eq!(body["stream"], true);
    let system = &body["system"][0];
    assert!(system["text"]
        .as_str()
        .unwrap()
        .starts_with("<!-- openclaw:attempt:STABLE -->"));
    assert_eq!(system["cache_control"], json!({"type":"ephemeral"}));

    let messages = body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);
    assert_eq!(
        messages[1]["content"],
        json!([{"type":"tool_use","id":"call_ls_01","name":"ls","input":{"path":"."}},
               {"type":"tool_use","id":"call_read_02","name":"read","input":{"path":"README.md"}}])
    );
    assert_eq!(
        messages[2]["content"],
        json!([{"type":"tool_result","tool_use_id":"call_ls_01","content":"\"README.md\"\n\"src/\""},
               {"type":"tool_result","tool_use_id":"call_read_02","content":"# Project\nHello."}])
    );
    assert_eq!(
        messages[3]["content"],
        json!([{"type":"text","text":"The workspace has a README."}])
    );
    let last = &messages[4]["content"][0];
    assert!(last["text"]
        .as_str()
        .unwrap()
        .starts_with("<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>"));
    assert_eq!(last["cache_control"], json!({"type":"ephemeral"}));

    let tools = body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 12);
    let exec = tools.iter().find(|t| t["name"] == "exec").unwrap();
    assert_eq!(
        exec["input_schema"]["properties"]["env"]["patternProperties"],
        json!({"^.*$":{"type":"string"}})
    );
    assert!(tools
        .iter()
        .all(|t| t["input_schema"]["type"] == "object" && t["description"].is_string()));
    assert_eq!(body["tool_choice"], json!({"type":"auto"}));
}

#[test]
fn max_tokens_is_always_sent() {
    let cases: Vec<(Option<u64>, Value, u64)> = vec![
        (Some(8000), json!({"max_tokens":100}), 100),
        (
            Some(8000),
            json!({"max_completion_tokens":50,"max_tokens":100}),
            50,
        ),
        (Some(8000), json!({}), 8000),
        (None, json!({}), DEFAULT_MAX_TOKENS),
    ];
    for (config, extra, want) in cases {
        let (up, body) = translate_with(&claude(config), &body_of(extra.clone())).unwrap();
        assert_eq!(body["max_tokens"], want, "{extra}");
        assert!(body.get("stream").is_none());
        assert!(up.url.ends_with("/messages"));
    }
}

#[test]
fn sampling_options_map_to_messages_fields() {
    let cases: Vec<(Value, &str, Option<Value>)> = vec![
        (json!({"temperature":0.3}), "temperature", Some(json!(0.3))),
        (json!({"temperature":1.7}), "temperature", Some(json!(1.0))),
        (json!({"top_p":0.9}), "top_p", Some(json!(0.9))),
        (json!({"temperature":0.3,"top_p":0.9}), "top_p", None),
        (
            json!({"stop":"END"}),
            "stop_sequences",
            Some(json!(["END"])),
        ),
        (
            json!({"stop":["a"," ","","b"]}),
            "stop_sequences",
            Some(json!(["a", "b"])),
        ),
        (json!({"stop":["\n"]}), "stop_sequences", None),
        (
            json!({"user":"u-1"}),
            "metadata",
            Some(json!({"user_id":"u-1"})),
        ),
    ];
    for (extra, field, want) in cases {
        let (_, body) = translate(&body_of(extra.clone())).unwrap();
        assert_eq!(body.get(field).cloned(), want, "{extra}");
    }
}

#[test]
fn tool_choice_and_parallel_calls_map_to_tool_choice() {
    let tools = json!([{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}]);
    let cases: Vec<(Value, Value, Option<Value>)> = vec![
        (Value::Null, Value::Null, None),
        (json!("auto"), Value::Null, Some(json!({"type":"auto"}))),
        (json!("none"), Value::Null, Some(json!({"type":"none"}))),
        (json!("required"), Value::Null, Some(json!({"type":"any"}))),
        (
            json!({"type":"function","function":{"name":"f"}}),
            Value::Null,
            Some(json!({"type":"tool","name":"f"})),
        ),
        (
            Value::Null,
            json!(false),
            Some(json!({"type":"auto","disable_parallel_tool_use":true})),
        ),
        (
            json!("required"),
            json!(false),
            Some(json!({"type":"any","disable_parallel_tool_use":true})),
        ),
        (json!("none"), json!(false), Some(json!({"type":"none"}))),
        (json!("auto"), json!(true), Some(json!({"type":"auto"}))),
    ];
    for (choice, parallel, want) in cases {
        let (_, body) = translate(&body_of(
            json!({"tools":tools,"tool_choice":choice,"parallel_tool_calls":parallel}),
        ))
        .unwrap();
        assert_eq!(
            body.get("tool_choice").cloned(),
            want,
            "{choice} {parallel}"
        );
    }
    // No tools, no tool_choice.
    let (_, body) = translate(&body_of(json!({"tool_choice":"auto"}))).unwrap();
    assert!(body.get("tool_choice").is_none() && body.get("tools").is_none());
    // A tool without parameters still gets an object schema.
    let (_, body) = translate(&body_of(
        json!({"tools":[{"type":"function","function":{"name":"ping"}}]}),
    ))
    .unwrap();
    assert_eq!(
        body["tools"],
        json!([{"name":"ping","input_schema":{"type":"object","properties":{}}}])
    );
}

#[test]
fn json_mode_becomes_a_system_instruction_after_the_cached_prompt() {
    let system = json!([{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]);
    let (_, body) = translate(&body_of(
        json!({"messages":system,"response_format":{"type":"json_object"}}),
    ))
    .unwrap();
    let blocks = body["system"].as_array().unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0]["text"], "be brief");
    assert!(blocks[0].get("cache_control").is_some());
    let rule = blocks[1]["text"].as_str().unwrap();
    assert!(
        rule.starts_with("Respond with a single valid JSON object"),
        "{rule}"
    );
    assert!(blocks[1].get("cache_control").is_none());

    let schema = json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false});
    let (_, body) = translate(&body_of(json!({"response_format":{"type":"json_schema",
        "json_schema":{"name":"place","schema":schema,"strict":true}}})))
    .unwrap();
    let blocks = body["system"].as_array().unwrap();
    assert_eq!(blocks.len(), 1);
    let rule = blocks[0]["text"].as_str().unwrap();
    assert!(rule.contains("(named `place`)"), "{rule}");
    let shown: Value = serde_json::from_str(rule.rsplit("JSON Schema:\n").next().unwrap()).unwrap();
    assert_eq!(shown, schema);

    let (_, body) = translate(&body_of(json!({"response_format":{"type":"text"}}))).unwrap();
    assert!(body.get("system").is_none());
    let err = translate(&body_of(json!({"response_format":{"type":"yaml"}}))).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("response_format.type"));
}

#[test]
fn images_become_image_blocks() {
    let msg = |url: &str| {
        json!({"messages":[{"role":"user","content":[
        {"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":url}}]}]})
    };
    let (_, body) = translate(&body_of(msg("data:image/jpeg;base64,/9j/4AAQ"))).unwrap();
    assert_eq!(
        body["messages"][0]["content"][1],
        json!({"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AAQ"},"cache_control":{"type":"ephemeral"}})
    );
    let (_, body) = translate(&body_of(msg("https://example.com/cat.png"))).unwrap();
    assert_eq!(
        body["messages"][0]["content"][1]["source"],
        json!({"type":"url","url":"https://example.com/cat.png"})
    );
    let err = translate(&body_of(msg("file:///etc/passwd"))).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("messages[0].content"));
}

#[test]
fn turns_are_merged_and_empty_text_dropped() {
    let (_, body) = translate(&body_of(json!({"messages":[
        {"role":"system","content":"be brief"},
        {"role":"user","content":"one"},
        {"role":"user","content":[{"type":"text","text":"  "},{"type":"text","text":"two"}]},
        {"role":"assistant","content":""},
        {"role":"developer","content":"and kind"},
        {"role":"assistant","content":"Sure: "}]})))
    .unwrap();
    assert_eq!(body["system"][0]["text"], "be brief\n\nand kind");
    assert_eq!(
        body["messages"],
        json!([{"role":"user","content":[{"type":"text","text":"one"},{"type":"text","text":"two"}]},
               {"role":"assistant","content":[{"type":"text","text":"Sure:","cache_control":{"type":"ephemeral"}}]}])
    );
}

#[test]
fn tool_ids_from_other_providers_are_made_valid_on_both_sides() {
    let (_, body) = translate(&body_of(json!({"messages":[{"role":"user","content":"x"},
        {"role":"assistant","content":"ok","tool_calls":[{"id":"call:a/1","type":"function","function":{"name":"f","arguments":"{bad"}}]},
        {"role":"tool","tool_call_id":"call:a/1","content":""}]}))).unwrap();
    let msgs = &body["messages"];
    assert_eq!(
        msgs[1]["content"][1],
        json!({"type":"tool_use","id":"call_a_1","name":"f","input":{}})
    );
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "call_a_1");
    assert!(msgs[2]["content"][0].get("content").is_none());
}

#[test]
fn stop_reasons_map_to_openai() {
    let cases = [
        (Some("end_turn"), false, "stop"),
        (Some("stop_sequence"), false, "stop"),
        (Some("max_tokens"), false, "length"),
        (Some("max_tokens"), true, "length"),
        (Some("tool_use"), true, "tool_calls"),
        (Some("refusal"), false, "content_filter"),
        (Some("pause_turn"), false, "stop"),
        (None, false, "stop"),
    ];
    for (reason, calls, want) in cases {
        assert_eq!(finish_reason(reason, calls), want, "{reason:?}");
    }
}

#[test]
fn a_refusal_finishes_with_content_filter() {
    let v = respond(include_str!(
        "../../../tests/fixtures/anthropic/response-refusal.json"
    ))
    .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
}
