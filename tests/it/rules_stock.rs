//! The stock rules in `rules/` against the stock `config.yaml`: they check clean, their rule
//! tests pass, and they route the original ClawGate's test cases (its tests/test_routing.py)
//! and the real OpenClaw requests as intended.

use std::path::Path;

use clawgate::cli::{check_cmd, Format};
use clawgate::request::ChatRequest;
use clawgate::router::{Layer, RouteTable};
use clawgate::rules::{self, Providers};

const PROVIDERS: &[&str] = &[
    "deepseek-chat",
    "deepseek-reasoner",
    "gemini-flash-lite",
    "gemini-flash",
    "openrouter-fallback",
];
const FALLBACK_CHAIN: &[&str] = &[
    "deepseek-chat",
    "deepseek-reasoner",
    "gemini-flash",
    "openrouter-fallback",
];

fn stock() -> RouteTable {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let (sources, files) = rules::read_dir(&dir).unwrap();
    let (table, diags) = rules::build(&sources, &files, &Providers::all_loaded(PROVIDERS));
    table.unwrap_or_else(|| panic!("{diags:?}"))
}

/// (provider, layer, rule) for a request, as the server would route it with every key set.
fn route(
    t: &RouteTable,
    body: serde_json::Value,
    headers: &[(&str, &str)],
) -> (String, &'static str, String) {
    let bytes = serde_json::to_vec(&body).unwrap();
    let req = ChatRequest::parse(&bytes).unwrap();
    let d = t.decide(&req, &crate::support::header_map(headers));
    let chain: Vec<String> = FALLBACK_CHAIN.iter().map(|s| s.to_string()).collect();
    let provider = d
        .chain(&chain, |_| true)
        .first()
        .map(|s| s.to_string())
        .unwrap_or_default();
    (provider, d.layer.as_str(), d.rule.to_string())
}

fn req(model: &str, system: Option<&str>, user: &str, tools: bool) -> serde_json::Value {
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(serde_json::json!({"role": "system", "content": s}));
    }
    messages.push(serde_json::json!({"role": "user", "content": user}));
    let mut body = serde_json::json!({"model": model, "messages": messages});
    if tools {
        body["tools"] = serde_json::json!([{"type": "function", "function": {"name": "search", "parameters": {}}}]);
    }
    body
}

#[test]
fn stock_rules_check_clean_and_their_rule_tests_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let code = check_cmd(
        &root.join("config.yaml"),
        &root.join("rules"),
        Format::Text,
        &mut out,
    );
    let text = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("error["), "{text}");
    // Only "provider not loaded" warnings may appear (when this machine has no keys).
    for line in text.lines().filter(|l| l.starts_with("warning[")) {
        assert!(line.starts_with("warning[W001]"), "{text}");
    }
}

/// (test name, request, headers, expected (provider, layer, rule))
type Case = (
    &'static str,
    serde_json::Value,
    &'static [(&'static str, &'static str)],
    (&'static str, &'static str, &'static str),
);

#[test]
fn original_clawgate_routing_cases_route_as_it_intended() {
    let t = stock();
    let reasoner_system = "You are an expert in theorem proving, step by step derivations, induction, debugging and race conditions.";
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        // TestStaticRouting
        ("test_heartbeat",              req("auto", Some("heartbeat check"), "ok", false),              &[], ("gemini-flash-lite", "static", "heartbeat")),
        ("test_explicit_reasoner",      req("r1", None, "hello", false),                                &[], ("deepseek-reasoner", "static", "explicit-reasoner")),
        ("test_explicit_flash",         req("flash", None, "hello", false),                             &[], ("gemini-flash", "static", "explicit-flash")),
        ("test_subagent_header",        req("auto", None, "process file", false),                       &[("x-openclaw-source", "subagent-42")], ("deepseek-chat", "heuristic", "subagent")),
        // TestHeuristicRouting
        ("test_math_reasoning",         req("auto", None, "Prove the theorem step by step using induction", false), &[], ("deepseek-reasoner", "heuristic", "reasoning")),
        ("test_complex_code",           req("auto", None, "debug this race condition and refactor the architecture", false), &[], ("deepseek-reasoner", "heuristic", "reasoning")),
        ("test_tool_use",               req("auto", None, "search files", true),                        &[], ("deepseek-chat", "default", "default")),
        ("test_simple_query_de",        req("auto", None, "Was ist ein Monad?", false),                 &[], ("gemini-flash-lite", "heuristic", "simple-query")),
        ("test_simple_query_zh",        req("auto", None, "你好", false),                               &[], ("gemini-flash-lite", "heuristic", "simple-query")),
        ("test_short_message_fallback", req("auto", None, "ok", false),                                 &[], ("deepseek-chat", "default", "default")),
        ("test_system_prompt_not_scored", req("auto", Some(reasoner_system), "find my file", false),    &[], ("deepseek-chat", "default", "default")),
        // The substring flaw, fixed: these were simple-query -> gemini-flash-lite in the original.
        ("is this correct",             req("auto", None, "Is this correct?", false),                   &[], ("deepseek-chat", "default", "default")),
        ("i know the answer now",       req("auto", None, "I know the answer now", false),              &[], ("deepseek-chat", "default", "default")),
        ("tool request with this",      req("auto", None, "search this folder", true),                  &[], ("deepseek-chat", "default", "default")),
        // TestNoneContentHandling: null contents route without trouble.
        ("null contents",               serde_json::json!({"model": "auto", "messages": [
                                            {"role": "system", "content": null}, {"role": "user", "content": "hi"},
                                            {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                                            {"role": "tool", "content": "r", "tool_call_id": "1"}, {"role": "user", "content": null}]}),
                                                                                                        &[], ("deepseek-chat", "default", "default")),
    ];
    let mut failures = Vec::new();
    for (name, body, headers, (provider, layer, rule)) in cases {
        let got = route(&t, body, headers);
        if (got.0.as_str(), got.1, got.2.as_str()) != (provider, layer, rule) {
            failures.push(format!(
                "{name}: expected {provider}/{layer}/{rule}, got {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn openclaw(name: &str) -> (serde_json::Value, Vec<(String, String)>) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/openclaw/{name}.json"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let headers = v["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    (v["body"].clone(), headers)
}

#[test]
fn heartbeat_goes_to_cheapest_provider() {
    let (body, headers) = openclaw("heartbeat");
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        route(&stock(), body, &h),
        ("gemini-flash-lite".into(), "static", "heartbeat".into())
    );
}

#[test]
fn openclaw_subagent_goes_to_the_chat_model() {
    let (mut body, _) = openclaw("subagent-child");
    // Its task is "reply with the single word pong": trivial, no work, the cheapest model.
    assert_eq!(
        route(&stock(), body.clone(), &[]),
        (
            "gemini-flash-lite".into(),
            "heuristic",
            "trivial-task".into()
        )
    );
    // The same sub-agent given real work gets the chat model.
    let task = body["messages"][1]["content"].to_string();
    assert!(task.contains("pong"), "{task}");
    let text = serde_json::from_str::<String>(&task)
        .unwrap_or_default()
        .replace(
            "reply with the single word pong",
            "rename the config loader and update every caller in src/",
        );
    body["messages"][1]["content"] = text.into();
    assert_eq!(
        route(&stock(), body, &[]),
        ("deepseek-chat".into(), "heuristic", "subagent".into())
    );
}

#[test]
fn ordinary_openclaw_turns_are_neither_heartbeats_nor_subagents() {
    let t = stock();
    let (mut body, _) = openclaw("turn-local-main");
    assert_eq!(
        route(&t, body.clone(), &[]),
        ("deepseek-chat".into(), "static", "explicit-chat".into())
    );
    body["model"] = "auto".into();
    // "Say hello" is a greeting: the original's simple-query, now judged on the person's text.
    assert_eq!(
        route(&t, body.clone(), &[]),
        (
            "gemini-flash-lite".into(),
            "heuristic",
            "simple-query".into()
        )
    );
    let messages = body["messages"].as_array_mut().unwrap();
    messages[1]["content"] =
        "[Thu 2026-11-26 03:39 UTC] Rename the config loader and update its callers".into();
    assert_eq!(
        route(&t, body, &[]),
        ("deepseek-chat".into(), "default", "default".into())
    );
}

/// The words that mark a lane elsewhere in OpenClaw's request never make one: the heartbeat
/// capture without its heartbeat prompt (its system prompt names "heartbeat", its tool
/// results and internal context name `agent:main:subagent:` sessions) is an ordinary turn.
#[test]
fn lane_words_in_the_system_prompt_tool_results_or_context_never_make_a_lane() {
    let t = stock();
    let (mut body, _) = openclaw("heartbeat");
    let text = body.to_string();
    assert!(text.contains("agent:main:subagent:") && text.contains("Heartbeat"));
    let messages = body["messages"].as_array_mut().unwrap();
    let prompt = messages
        .iter_mut()
        .rev()
        .find(|m| {
            m["role"] == "user"
                && m["content"]
                    .to_string()
                    .contains("Follow the heartbeat monitor")
        })
        .expect("the heartbeat prompt");
    prompt["content"] =
        "[Thu 2026-11-26 03:40 UTC] Rename the config loader and update its callers".into();
    let (provider, _, rule) = route(&t, body, &[]);
    assert_eq!(
        (provider.as_str(), rule.as_str()),
        ("deepseek-chat", "default")
    );
}

#[test]
fn stock_rules_keep_the_original_rule_names_lanes_first() {
    let t = stock();
    let names: Vec<(Layer, &str)> = t.rules().iter().map(|r| (r.layer, &*r.name)).collect();
    use Layer::*;
    assert_eq!(
        names,
        [
            (Static, "heartbeat"),
            (Static, "compaction"),
            (Static, "utility"),
            (Static, "explicit-reasoner"),
            (Static, "explicit-flash"),
            (Static, "explicit-chat"),
            (Static, "lite"),
            (Static, "or"),
            (Heuristic, "vision"),
            (Heuristic, "long-context"),
            (Heuristic, "tool-loop"),
            (Heuristic, "reasoning"),
            (Heuristic, "sticky"),
            (Heuristic, "simple-query"),
            (Heuristic, "trivial-task"),
            (Heuristic, "follow-up-reasoning"),
            (Heuristic, "subagent"),
        ]
    );
    assert_eq!(
        t.default_targets()
            .map(|d| d.iter().map(|s| &**s).collect::<Vec<_>>()),
        Some(vec!["deepseek-chat"])
    );
}
