//! The rule language, table-driven: what `clawgate check` reports for a source (code and
//! position), and how compiled rules decide requests.

use crate::support::{header_map, stock_providers as providers};
use clawgate::request::ChatRequest;
use clawgate::router::{Layer, RouteTable};
use clawgate::rules::{self, SourceMap};

/// `code@line:col` of every diagnostic for `src` (a `default` is added unless `src` has one).
fn diagnostics(src: &str) -> Vec<String> {
    let text = if src.contains("default") {
        src.to_owned()
    } else {
        format!("{src}\ndefault route deepseek-chat\n")
    };
    let mut sources = SourceMap::new();
    let id = sources.add("t.rules", text);
    let (_, diags) = rules::build(&sources, &[id], &providers());
    diags
        .iter()
        .map(|d| match d.span {
            Some(s) => format!("{}@{}:{}", d.code, s.line, s.col),
            None => d.code.to_owned(),
        })
        .collect()
}

/// A literal the parser cannot read is one error: not also an "empty keyword", and no
/// warning drawn from the placeholder value (an oversized integer read as 0 made the default
/// look unreachable).
#[test]
fn one_unreadable_literal_is_one_diagnostic() {
    for (src, expected) in [
        (
            "keywords k { \"\\u{d800}\" }\nlayer static { rule a when score(k) >= 1 route deepseek-chat }",
            "E011@1:14",
        ),
        (
            r#"layer static { rule a when tokens > 99999999999999999999 route deepseek-chat }"#,
            "E011@1:37",
        ),
    ] {
        assert_eq!(diagnostics(src), [expected], "{src}");
    }
}

#[test]
fn check_reports_each_mistake_with_its_code_and_position() {
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        // source                                                                                   expected
        (r#"layer static { rule a when model == "x" route deepseek-chat }"#,                         ""),
        (r#"layer static { rule a when model = "x" route deepseek-chat }"#,                          "E001@1:34"),
        (r#"layer static { rule a when tools }"#,                                                    "E001@1:34"),
        (r#"layer static { rule a when (tools route deepseek-chat }"#,                               "E001@1:35"),
        (r#"layer static { rule a when model == 'x' route deepseek-chat }"#,                         "E001@1:37"),
        (r#"layer static { rule a when tools && images route deepseek-chat }"#,                      "E001@1:34"),
        ("rule a when tools route deepseek-chat",                                                    "E001@1:1"),
        ("layer static {\n  rule a when tools route deepseek-chat\n",                                 "E001@1:7"),
        (r#"layer static { rule a when tools route gemini-flsh }"#,                                   "E002@1:40"),
        (r#"layer static { rule a when modle == "x" route deepseek-chat }"#,                         "E003@1:28"),
        (r#"layer static { rule a when lenght(user) > 3 route deepseek-chat }"#,                     "E003@1:28"),
        (r#"layer static { rule a when score(maths) >= 2 route deepseek-chat }"#,                    "E004@1:34"),
        (r#"layer statik { rule a when tools route deepseek-chat }"#,                                "E005@1:7"),
        (r#"layer static { rule a when tokens contains "x" route deepseek-chat }"#,                  "E006@1:35"),
        (r#"layer static { rule a when system route deepseek-chat }"#,                               "E006@1:28"),
        (r#"layer static { rule a when tokens route deepseek-chat }"#,                               "E006@1:28"),
        (r#"layer static { rule a when tools > 1 route deepseek-chat }"#,                            "E006@1:34"),
        (r#"layer static { rule a when model == 5 route deepseek-chat }"#,                           "E006@1:37"),
        (r#"layer static { rule a when tokens > "5" route deepseek-chat }"#,                         "E006@1:37"),
        (r#"layer static { rule a when model < "b" route deepseek-chat }"#,                          "E006@1:34"),
        (r#"layer static { rule a when header(x) == "b" route deepseek-chat }"#,                     "E006@1:35"),
        (r#"layer static { rule a when header == "b" route deepseek-chat }"#,                        "E006@1:28"),
        ("keywords k { \"a\" }\nlayer static { rule a when score(k, system) >= 1 route deepseek-chat }", "E006@2:37"),
        (r#"layer static { rule a when last_user matches /a(b/ route deepseek-chat }"#,              "E007@1:46"),
        (r#"layer static { rule a when last_user matches /ab/q route deepseek-chat }"#,              "E007@1:46"),
        ("layer static { rule a when tools route deepseek-chat\n  rule a when images route deepseek-chat }", "E008@2:8"),
        ("keywords k { \"a\" }\nkeywords k { \"b\" }\nlayer static { rule a when score(k) >= 1 route deepseek-chat }", "E009@2:10"),
        ("default route deepseek-chat\ndefault route gemini-flash",                                 "E010@2:1"),
        (r#"layer static { rule a when tokens > 99999999999999999999999 route deepseek-chat }"#,    "E011@1:37"),
        ("keywords k { \"\" }\nlayer static { rule a when score(k) >= 0 route deepseek-chat }", "E011@1:14"),
        (r#"layer static { rule a when tools route openrouter-fallback }"#,                          "W001@1:40"),
        (r#"layer static { rule a when tokens < 10 and tokens > 100 route deepseek-chat }"#,        "W002@1:28"),
        ("keywords k { \"a\", \"b\" = 2 }\nlayer static { rule a when score(k) >= 4 route deepseek-chat }", "W002@2:28"),
        (r#"layer static { rule a when messages < 1 route deepseek-chat }"#,                         "W002@1:28"),
        (r#"layer static { rule a when model contains any [] route deepseek-chat }"#,               "W002@1:28"),
        (r#"layer static { rule a when model == "x" and model == "y" route deepseek-chat }"#,       "W002@1:28"),
        (r#"layer static { rule a when tools and not tools route deepseek-chat }"#,                 "W002@1:28"),
        ("layer static { rule a when tools route deepseek-chat\n  rule b when tools route deepseek-chat }", "W003@2:8"),
        ("layer static { rule a route deepseek-chat\n  rule b when images route deepseek-chat }",   "W003@2:8"),
        ("layer static { rule a when tokens > 50k route deepseek-chat\n  rule b when tokens > 100k route deepseek-chat }", "W003@2:8"),
        ("layer static { rule a when model in [\"r1\", \"think\"] route deepseek-chat\n  rule b when model == \"R1\" and tools route deepseek-chat }", "W003@2:8"),
        ("layer static { rule a when last_user contains \"hello\" route deepseek-chat\n  rule b when last_user starts_with \"hello there\" route deepseek-chat }", "W003@2:8"),
        ("layer heuristic { rule a when tools and images route deepseek-chat }\nlayer static { rule b when tools route deepseek-chat }", "W003@1:24"),
        ("layer static { rule a route deepseek-chat }\ndefault route deepseek-chat",               "W003@2:1"),
        ("keywords k { \"a\", \"A\" }\nlayer static { rule a when score(k) >= 1 route deepseek-chat }", "W005@1:19"),
        ("keywords k { \"a\" }",                                                                    "W005@1:10"),
        (r#"layer heuristic { rule a when tools or images and stream route deepseek-chat }"#,       ""),
        // The classifier is disabled in these providers: a classifier rule is a warning.
        (r#"layer classifier { rule a when label == "REASONING" route deepseek-reasoner }"#,        "W007@1:25"),
        (r#"layer static { rule or when model == "or" route deepseek-chat }"#,                      ""),
        (r#"layer static { rule a when header("X-Tenant") in ["a", "b"] route "deepseek-chat" }"#, ""),
        ("layer static { rule a when last_user matches /^hi\\b/i route deepseek-chat }",           ""),
        ("keywords k { \"\\\\frac\", \"证明\" = 3 }\nlayer static { rule a when score(k, user) >= 3 route deepseek-chat }", ""),
    ];
    let mut failures = Vec::new();
    for (src, expected) in cases {
        let got = diagnostics(src);
        let ok = if expected.is_empty() {
            got.is_empty()
        } else {
            got.iter().any(|g| g == expected)
        };
        if !ok {
            failures.push(format!("{src:?}\n    expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn missing_default_is_a_warning_without_position() {
    let mut sources = SourceMap::new();
    let id = sources.add(
        "t.rules",
        "layer static { rule a when tools route deepseek-chat }".into(),
    );
    let (table, diags) = rules::build(&sources, &[id], &providers());
    assert!(table.is_some());
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, "W004");
    assert!(diags[0].span.is_none());
}

#[test]
fn every_broken_file_is_reported_in_one_run() {
    let mut sources = SourceMap::new();
    let a = sources.add(
        "a.rules",
        "layer static { rule a when model = \"x\" route deepseek-chat }\n".into(),
    );
    let b = sources.add("b.rules", "layer heuristic {\n  rule b when tokens contains \"x\" route nope\n}\ndefault route deepseek-chat\n".into());
    let (table, diags) = rules::build(&sources, &[a, b], &providers());
    assert!(table.is_none());
    let codes: Vec<(&str, u32)> = diags
        .iter()
        .map(|d| (d.code, d.span.map(|s| s.file).unwrap_or(99)))
        .collect();
    assert_eq!(codes, vec![("E001", a), ("E006", b), ("E002", b)]);
}

// ---- deciding ---------------------------------------------------------------------------------

fn table(src: &str) -> RouteTable {
    rules::compile_str(src, &providers()).unwrap_or_else(|r| panic!("{r}"))
}

fn decide(t: &RouteTable, body: serde_json::Value, headers: &[(&str, &str)]) -> String {
    let bytes = serde_json::to_vec(&body).unwrap();
    let req = ChatRequest::parse(&bytes).unwrap();
    t.decide(&req, &header_map(headers)).rule.to_string()
}

fn user(text: &str) -> serde_json::Value {
    serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": text}]})
}

#[test]
fn keywords_match_whole_words_and_phrases_case_insensitively() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, bool)] = &[
        // keyword        text                                  matches
        ("hi",            "hi there",                           true),
        ("hi",            "Hi!",                                true),
        ("hi",            "is this right?",                     false),
        ("hi",            "which one",                          false),
        ("no",            "I know it now",                      false),
        ("no",            "No.",                                true),
        ("ja",            "a ninja",                            false),
        ("yes",           "my eyes",                            false),
        ("r1",            "model r10",                          false),
        ("step by step",  "Go STEP BY STEP, please",            true),
        ("step by step",  "stepwise by stepping",               false),
        ("\\frac",        "$\\frac{1}{2}$",                     true),
        ("\\int",         "\\int_0^1 x dx",                     true),
        ("\\int",         "\\integral",                         false),
        ("证明",          "请证明这个定理",                     true),
        ("こんにちは",    "こんにちは世界",                     true),
        ("über",          "ÜBER alles",                         true),
        ("доказать",      "Нужно ДОКАЗАТЬ это",                 true),
        ("доказать",      "доказательство",                     false),
        ("what is",       "So, what  is it",                    false),
        ("what is",       "WHAT IS a monad",                    true),
    ];
    let mut failures = Vec::new();
    for (kw, text, want) in cases {
        let src = format!(
            "keywords k {{ \"{}\" }}\nlayer heuristic {{ rule hit when score(k) >= 1 route deepseek-chat }}\ndefault route gemini-flash",
            kw.replace('\\', "\\\\")
        );
        let got = decide(&table(&src), user(text), &[]) == "hit";
        if got != *want {
            failures.push(format!(
                "keyword {kw:?} in {text:?}: expected {want}, got {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn scores_sum_weights_of_distinct_keywords_only() {
    let t = table(
        "keywords k { \"alpha\", \"beta\" = 2, \"gamma\" = 3 }\nlayer heuristic {\n  rule five when score(k) >= 5 route deepseek-chat\n  rule three when score(k) == 3 route deepseek-chat\n}\ndefault route gemini-flash",
    );
    assert_eq!(decide(&t, user("beta gamma"), &[]), "five");
    assert_eq!(decide(&t, user("alpha alpha beta beta"), &[]), "three");
    assert_eq!(decide(&t, user("gamma"), &[]), "three");
    assert_eq!(decide(&t, user("alphabet"), &[]), "default");
}

#[test]
fn scores_count_what_a_person_wrote_not_the_system_prompt_or_client_context() {
    let t = table(
        "keywords k { \"prove\", \"theorem\" }\nlayer heuristic {\n  rule last when score(k) >= 2 route deepseek-chat\n  rule all when score(k, user) >= 2 route deepseek-chat\n}\ndefault route gemini-flash",
    );
    let body = serde_json::json!({"messages": [
        {"role": "system", "content": "prove theorem"},
        {"role": "user", "content": "prove it"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "the theorem"},
        {"role": "user", "content": [{"type": "text", "text": "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nprove theorem\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"}]},
    ]});
    assert_eq!(decide(&t, body, &[]), "all");
}

#[test]
fn text_fields_see_the_right_messages() {
    #[rustfmt::skip]
    let cases: &[(&str, serde_json::Value, bool)] = &[
        // condition                                 request                                                            matches
        (r#"last_user == "real question""#,          serde_json::json!([{"role":"user","content":"real question"},
                                                         {"role":"user","content":[{"type":"text","text":"<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>> data"}]}]), true),
        (r#"last_user == "second""#,                 serde_json::json!([{"role":"user","content":"first"},{"role":"user","content":" Second\n"}]), true),
        (r#"last_user == """#,                       serde_json::json!([{"role":"user","content":"<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>> only"}]), true),
        (r#"user contains "first""#,                 serde_json::json!([{"role":"user","content":"first"},{"role":"user","content":"second"}]), true),
        (r#"user contains "data""#,                  serde_json::json!([{"role":"user","content":"q"},{"role":"user","content":"<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>> data"}]), false),
        (r#"system contains "dev rules""#,           serde_json::json!([{"role":"developer","content":"dev rules"},{"role":"user","content":"q"}]), true),
        (r#"system contains "q""#,                   serde_json::json!([{"role":"user","content":"q"}]), false),
        (r#"last_user contains "hi""#,               serde_json::json!([{"role":"user","content":"this"}]), true),
        (r#"last_user starts_with "follow the""#,    serde_json::json!([{"role":"user","content":"\n  Follow THE heartbeat"}]), true),
        (r#"last_user ends_with "NO_REPLY.""#,       serde_json::json!([{"role":"user","content":"reply no_reply.\n"}]), true),
        (r#"last_user starts_with any ["x", "ab"]"#, serde_json::json!([{"role":"user","content":"abc"}]), true),
        (r#"last_user matches /^a.c$/"#,             serde_json::json!([{"role":"user","content":"abc"}]), true),
        (r#"last_user matches /^A/"#,                serde_json::json!([{"role":"user","content":"abc"}]), false),
        (r#"last_user matches /^A/i"#,               serde_json::json!([{"role":"user","content":"abc"}]), true),
        (r#"last_user contains "ÄRGER""#,            serde_json::json!([{"role":"user","content":"kein ärger"}]), true),
        (r#"images"#,                                serde_json::json!([{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"data:x"}}]}]), true),
        (r#"messages == 2"#,                         serde_json::json!([{"role":"system","content":"s"},{"role":"user","content":"q"}]), true),
        (r#"tokens < 2"#,                            serde_json::json!([{"role":"user","content":"abcd"}]), true),
        (r#"label == """#,                           serde_json::json!([{"role":"user","content":"q"}]), true),
        (r#"label == "REASONING""#,                  serde_json::json!([{"role":"user","content":"q"}]), false),
        (r#"max_tokens == 0"#,                       serde_json::json!([{"role":"user","content":"q"}]), true),
        (r#"not stream"#,                            serde_json::json!([{"role":"user","content":"q"}]), true),
        (r#"tools == false"#,                        serde_json::json!([{"role":"user","content":"q"}]), true),
        (r#"messages in [1, 3]"#,                    serde_json::json!([{"role":"user","content":"q"}]), true),
    ];
    conditions_hold(cases);
}

/// Each condition, as the only rule, matches the conversation `messages` exactly when `want`.
fn conditions_hold(cases: &[(&str, serde_json::Value, bool)]) {
    let mut failures = Vec::new();
    for (cond, messages, want) in cases {
        let t = table(&format!("layer static {{ rule hit when {cond} route deepseek-chat }}\ndefault route gemini-flash"));
        let got = decide(
            &t,
            serde_json::json!({"model": "auto", "messages": messages}),
            &[],
        ) == "hit";
        if got != *want {
            failures.push(format!("{cond} on {messages}: expected {want}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The conversation fields: the size of what the person wrote last (not the 50 KB request
/// around it), how many turns the person has written, and whether the request continues a
/// tool loop; client-internal context (OpenClaw's last message) counts for none of them.
#[test]
fn conversation_fields_read_what_the_person_wrote_and_where_the_turn_stands() {
    let internal = serde_json::json!({"role": "user", "content": [{"type": "text",
        "text": "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\ndata\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"}]});
    let call = serde_json::json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1",
        "type": "function", "function": {"name": "exec", "arguments": "{}"}}]});
    let result = serde_json::json!({"role": "tool", "tool_call_id": "c1", "content": "ok"});
    let user = |t: &str| serde_json::json!({"role": "user", "content": t});
    #[rustfmt::skip]
    let cases = [
        ("last_user_tokens == 3",  serde_json::json!([user("abcdefghi"), internal.clone()]), true),
        ("last_user_tokens == 0",  serde_json::json!([{"role": "system", "content": "s"}]), true),
        ("last_user_tokens == 2",  serde_json::json!([user("这是")]), true),
        ("user_turns == 2",        serde_json::json!([user("a"), {"role": "assistant", "content": "b"}, user("c"), internal.clone()]), true),
        ("user_turns == 0",        serde_json::json!([internal.clone()]), true),
        ("tool_loop",              serde_json::json!([user("list files"), call.clone(), result.clone(), internal.clone()]), true),
        ("tool_loop",              serde_json::json!([user("list files"), call, result, {"role": "assistant", "content": "done"}, user("thanks")]), false),
        ("tool_loop",              serde_json::json!([user("hi")]), false),
    ];
    conditions_hold(&cases);

    // A real OpenClaw turn: 12 tools and a 50 KB system prompt around a few words.
    let turn = crate::support::openclaw_body("turn-local-main");
    let t = table("layer static { rule short when last_user_tokens < 100 and tokens > 5000 and user_turns == 1 and not tool_loop route deepseek-chat }\ndefault route gemini-flash");
    assert_eq!(decide(&t, turn, &[]), "short");
}

#[test]
fn model_and_header_equality_ignore_case() {
    let t = table(
        "layer static {\n  rule m when model in [\"r1\", \"Think\"] route deepseek-chat\n  rule h when header(\"X-Tenant\") == \"acme\" route deepseek-chat\n  rule absent when header(\"x-none\") == \"\" and model == \"auto\" route deepseek-chat\n}\ndefault route gemini-flash",
    );
    let body =
        |m: &str| serde_json::json!({"model": m, "messages": [{"role": "user", "content": "q"}]});
    assert_eq!(decide(&t, body("R1"), &[]), "m");
    assert_eq!(decide(&t, body("think"), &[]), "m");
    assert_eq!(decide(&t, body("gpt"), &[("x-tenant", "ACME")]), "h");
    assert_eq!(decide(&t, body("auto"), &[]), "absent");
    assert_eq!(decide(&t, body("gpt"), &[]), "default");
}

#[test]
fn tokens_estimate_includes_tool_definitions() {
    let t = table("layer static { rule big when tokens > 100 route deepseek-chat }\ndefault route gemini-flash");
    let tool = serde_json::json!({"type": "function", "function": {"name": "x", "description": "d".repeat(500)}});
    let with_tools =
        serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "tools": [tool]});
    assert_eq!(decide(&t, with_tools, &[]), "big");
    assert_eq!(decide(&t, user("hi"), &[]), "default");
}

#[test]
fn operators_bind_not_then_and_then_or() {
    let t = table("layer static { rule hit when tools or images and stream route deepseek-chat }\ndefault route gemini-flash");
    // tools or (images and stream)
    let body = serde_json::json!({"messages": [{"role": "user", "content": "q"}], "tools": [{"type": "function"}]});
    assert_eq!(decide(&t, body, &[]), "hit");
    let t = table("layer static { rule hit when not tools and not stream route deepseek-chat }\ndefault route gemini-flash");
    assert_eq!(decide(&t, user("q"), &[]), "hit");
}

#[test]
fn static_beats_heuristic_whatever_the_file_order_and_first_match_wins() {
    let mut sources = SourceMap::new();
    let a = sources.add("10-h.rules", "layer heuristic { rule h1 when tokens > 0 route deepseek-chat\n rule h2 when tokens > 0 and tools route deepseek-chat }".into());
    let b = sources.add("20-s.rules", "layer static { rule s1 when model == \"x\" route gemini-flash\n rule s2 when model == \"x\" and tools route gemini-flash }\ndefault route deepseek-chat".into());
    let (t, _) = rules::build(&sources, &[a, b], &providers());
    let t = t.unwrap();
    let names: Vec<&str> = t.rules().iter().map(|r| &*r.name).collect();
    assert_eq!(names, ["s1", "s2", "h1", "h2"]);
    let body = serde_json::json!({"model": "x", "messages": [{"role": "user", "content": "q"}]});
    assert_eq!(decide(&t, body, &[]), "s1");
    assert_eq!(decide(&t, user("q"), &[]), "h1");
}

#[test]
fn no_match_without_default_falls_back_and_an_empty_table_uses_the_default() {
    let t = table("layer static { rule a when tools route deepseek-chat }");
    let bytes = serde_json::to_vec(&user("q")).unwrap();
    let req = ChatRequest::parse(&bytes).unwrap();
    let d = t.decide(&req, &http::HeaderMap::new());
    assert_eq!(
        (d.layer, &*d.rule, d.targets.len()),
        (Layer::Fallback, "no-match", 0)
    );
    let d = RouteTable::empty().decide(&req, &http::HeaderMap::new());
    assert_eq!(
        (d.layer, &*d.rule, d.targets.len()),
        (Layer::Default, "default", 0)
    );
}

#[test]
fn decision_holds_only_the_rules_own_targets_and_chain_appends_the_fallbacks() {
    let t = table("layer static { rule a when tokens > 0 route gemini-flash, deepseek-chat }");
    let bytes = serde_json::to_vec(&user("q")).unwrap();
    let req = ChatRequest::parse(&bytes).unwrap();
    let d = t.decide(&req, &http::HeaderMap::new());
    assert_eq!(
        d.targets.iter().map(|t| &**t).collect::<Vec<_>>(),
        ["gemini-flash", "deepseek-chat"]
    );
    let fallback_chain: Vec<String> = vec![
        "deepseek-chat".into(),
        "openrouter-fallback".into(),
        "deepseek-reasoner".into(),
    ];
    let chain = d.chain(&fallback_chain, |id| id != "openrouter-fallback");
    assert_eq!(
        chain,
        ["gemini-flash", "deepseek-chat", "deepseek-reasoner"]
    );
}

#[test]
fn table_reports_hash_file_and_rule_counts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.rules"),
        "layer static { rule a when tools route deepseek-chat }",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.rules"), "default route deepseek-chat").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let (sources, files) = rules::read_dir(dir.path()).unwrap();
    let (t, _) = rules::build(&sources, &files, &providers());
    let t = t.unwrap();
    assert_eq!((t.file_count(), t.rule_count()), (2, 1));
    assert_eq!(t.content_hash().len(), 12);
    let hash = t.content_hash().to_owned();
    std::fs::write(dir.path().join("b.rules"), "default route gemini-flash").unwrap();
    let (sources, files) = rules::read_dir(dir.path()).unwrap();
    let (t2, _) = rules::build(&sources, &files, &providers());
    assert_ne!(t2.unwrap().content_hash(), hash);
}

#[test]
fn keywords_that_prefix_each_other_all_count() {
    let t = table(
        "keywords k { \"step\", \"step by step\", \"beweis\", \"beweise\" }\nlayer heuristic {\n  rule two when score(k) == 2 route deepseek-chat\n  rule one when score(k) == 1 route deepseek-chat\n}\ndefault route gemini-flash",
    );
    assert_eq!(decide(&t, user("do it step by step"), &[]), "two");
    assert_eq!(decide(&t, user("die Beweise sind da"), &[]), "one");
    assert_eq!(decide(&t, user("kein Beweis"), &[]), "one");
    assert_eq!(decide(&t, user("steps"), &[]), "default");
}

#[test]
fn a_literal_can_be_both_a_substring_test_and_a_keyword() {
    let t = table(
        "keywords k { \"hi\" }\nlayer heuristic {\n  rule word when score(k) >= 1 route deepseek-chat\n  rule sub when last_user contains \"hi\" route deepseek-chat\n}\ndefault route gemini-flash",
    );
    assert_eq!(decide(&t, user("this"), &[]), "sub");
    assert_eq!(decide(&t, user("oh hi"), &[]), "word");
}

#[test]
fn regexes_match_with_and_without_a_literal_prefix() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, bool)] = &[
        // regex                       text                            matches
        ("/ticket-[0-9]+/",            "see ticket-4711 please",       true),
        ("/ticket-[0-9]+/",            "see TICKET-4711 please",       false),
        ("/ticket-[0-9]+/i",           "see TICKET-4711 please",       true),
        ("/ticket-[0-9]+/",            "see ticket-x please",          false),
        ("/(foo|bar)baz/",             "xbarbaz",                      true),
        ("/[0-9]{3}-[0-9]{4}/",        "call 555-1234",                true),
        ("/[0-9]{3}-[0-9]{4}/",        "call me",                      false),
        ("/^\\s*hello$/m",           "x\n  hello\ny",              true),
        ("/straße/i",                  "STRASSE oder Straße",          true),
        ("/a\\/b/",                  "path a/b",                     true),
    ];
    let mut failures = Vec::new();
    for (re, text, want) in cases {
        let t = table(&format!("layer static {{ rule hit when last_user matches {re} route deepseek-chat }}\ndefault route gemini-flash"));
        let got = decide(&t, user(text), &[]) == "hit";
        if got != *want {
            failures.push(format!("{re} on {text:?}: expected {want}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
