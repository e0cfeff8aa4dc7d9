//! The rule commands as a user runs them: `check` (exit codes, text and JSON, rule tests),
//! `route --explain` (text and JSON, on real OpenClaw requests), `import-config`.

use std::path::{Path, PathBuf};

use clawgate::cli::{check_cmd, import_config_cmd, route_explain_cmd, ExplainOptions, Format};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A config whose providers are all loaded (`api_key: none`), whatever the environment holds.
fn loaded_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo("config.yaml"))
        .unwrap()
        .replace("\"${DEEPSEEK_API_KEY}\"", "none")
        .replace("\"${GEMINI_API_KEY}\"", "none")
        .replace("\"${OPENROUTER_API_KEY}\"", "none");
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(f: impl FnOnce(&mut Vec<u8>) -> i32) -> (i32, String) {
    let mut out = Vec::new();
    let code = f(&mut out);
    (code, String::from_utf8(out).unwrap())
}

fn rules_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn check_exits_0_on_the_stock_rules_with_all_keys_set() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = loaded_config(tmp.path());
    let (code, out) = run(|o| check_cmd(&cfg, &repo("rules"), Format::Text, o));
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: 6 files, 17 rules, "), "{out}");
    assert!(out.contains("0 failed; 0 errors, 0 warnings"), "{out}");
}

#[test]
fn check_exits_1_and_reports_every_error_of_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = loaded_config(tmp.path());
    let dir = rules_dir(&[
        (
            "10-a.rules",
            "layer static { rule a when model = \"x\" route deepseek-chat }\n",
        ),
        (
            "20-b.rules",
            "layer heuristic {\n  rule b when tokens contains \"x\" route gemini-flsh\n}\n",
        ),
    ]);
    let (code, out) = run(|o| check_cmd(&cfg, dir.path(), Format::Text, o));
    assert_eq!(code, 1, "{out}");
    for needle in [
        "error[E001]",
        "10-a.rules:1:34",
        "error[E006]",
        "20-b.rules:2:22",
        "error[E002]",
        "did you mean `gemini-flash`?",
        "warning[W004]",
        "rule tests not run",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
}

#[test]
fn check_exits_2_when_the_rules_directory_or_config_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = loaded_config(tmp.path());
    let (code, out) = run(|o| check_cmd(&cfg, &tmp.path().join("nope"), Format::Text, o));
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("error[E000]: cannot read"), "{out}");
    let (code, out) = run(|o| {
        check_cmd(
            &tmp.path().join("nope.yaml"),
            &repo("rules"),
            Format::Json,
            o,
        )
    });
    assert_eq!(code, 2, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["diagnostics"][0]["code"], "E000");
}

#[test]
fn check_json_lists_diagnostics_with_positions_and_help() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = loaded_config(tmp.path());
    let dir = rules_dir(&[(
        "a.rules",
        "layer static { rule a when tools route gemini-flsh }\n",
    )]);
    let (code, out) = run(|o| check_cmd(&cfg, dir.path(), Format::Json, o));
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            v["ok"].as_bool(),
            v["errors"].as_u64(),
            v["warnings"].as_u64()
        ),
        (Some(false), Some(1), Some(1))
    );
    let d = &v["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["code"], "E002");
    assert_eq!(d["message"], "unknown provider `gemini-flsh`");
    assert!(d["file"].as_str().unwrap().ends_with("a.rules"));
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(1), Some(40))
    );
    assert_eq!(d["help"], "did you mean `gemini-flash`?");
    assert_eq!(v["diagnostics"][1]["code"], "W004");
    assert_eq!(v["diagnostics"][1]["line"], serde_json::Value::Null);
}

#[test]
fn check_warns_about_providers_without_keys_but_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(loaded_config(tmp.path()))
        .unwrap()
        .replacen("api_key: none", "api_key: \"\"", 1); // deepseek-chat has no key
    let cfg = tmp.path().join("partial.yaml");
    std::fs::write(&cfg, text).unwrap();
    let (code, out) = run(|o| check_cmd(&cfg, &repo("rules"), Format::Text, o));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning[W001]: provider `deepseek-chat` is defined but not loaded"),
        "{out}"
    );
    assert_eq!(
        out.matches("warning[W001]").count(),
        1,
        "one warning per provider:\n{out}"
    );
}

#[test]
fn check_runs_rule_tests_and_reports_failures_where_the_case_is() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = loaded_config(tmp.path());
    let dir = rules_dir(&[
        ("a.rules", "layer static { rule tiny when tokens < 10 route gemini-flash-lite }\ndefault route deepseek-chat\n"),
        ("tests/a.yaml", "- name: short goes to tiny\n  user: hi\n  expect: { rule: tiny, provider: gemini-flash-lite }\n\n- name: wrong expectation\n  user: hi\n  expect: { rule: default }\n\n- name: typo in the rule\n  user: hi\n  expect: { rule: tinny }\n"),
    ]);
    let (code, out) = run(|o| check_cmd(&cfg, dir.path(), Format::Text, o));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error[E012]: rule test `wrong expectation` failed: expected rule `default`, got rule `tiny` (layer `static`, provider `gemini-flash-lite`)"), "{out}");
    assert!(out.contains("a.yaml:5:1"), "{out}");
    assert!(
        out.contains("= help: `tiny` matched first: tokens = 1 (< 10)"),
        "{out}"
    );
    assert!(out.contains("expects unknown rule `tinny`"), "{out}");
    assert!(out.contains("did you mean `tiny`?"), "{out}");
    assert!(out.contains("1 rule tests passed, 2 failed"), "{out}");
}

#[test]
fn explain_shows_the_lane_the_peeled_task_and_why_earlier_rules_failed_for_the_openclaw_subagent() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = loaded_config(tmp.path());
    let body = std::fs::read(repo("tests/fixtures/openclaw/subagent-child.json")).unwrap();
    let (code, out) = run(|o| {
        route_explain_cmd(
            &cfg,
            &repo("rules"),
            Format::Text,
            &body,
            ExplainOptions::default(),
            o,
        )
    });
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("provider: gemini-flash-lite\nchain:    gemini-flash-lite -> deepseek-chat -> deepseek-reasoner -> gemini-flash -> openrouter-fallback\nlayer:    heuristic\nrule:     trivial-task\n"), "{out}");
    // The lane comes from the Runtime line's session, and says so.
    assert!(
        out.contains("lane:     subagent (envelope(\"runtime\") = \"\\nRuntime: agent=main | session=agent:main:subagent:"),
        "{out}"
    );
    // OpenClaw's wrapper is peeled: the rules read the task alone.
    assert!(
        out.contains("peeled:   timestamp, runtime, subagent-task, subagent-begin\n"),
        "{out}"
    );
    assert!(
        out.contains("last_user \"SUBTASK: reply with the single word pong\" (10 of "),
        "{out}"
    );
    assert!(out.contains("conversation: key "), "{out}");
    assert!(out.contains(" from runtime, no previous decision"), "{out}");
    assert!(out.contains("model = \"auto\", needs == \"lite\""), "{out}");
    assert!(
        out.contains("lane = \"subagent\" (in [\"subagent\", \"cron\"])"),
        "{out}"
    );
}

/// Before the rules, explain shows what they read of the request: the person's last message
/// and its size against the whole prompt's, the turns, tools and tool loop.
#[test]
fn explain_shows_what_the_rules_read_of_an_openclaw_turn() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = loaded_config(tmp.path());
    let body = std::fs::read(repo("tests/fixtures/openclaw/turn-local-main.json")).unwrap();
    let (code, out) = run(|o| {
        route_explain_cmd(
            &cfg,
            &repo("rules"),
            Format::Json,
            &body,
            ExplainOptions::default(),
            o,
        )
    });
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = &v["request"];
    assert_eq!(
        (r["user_turns"].as_u64(), r["tools"].as_u64()),
        (Some(1), Some(12)),
        "{r}"
    );
    assert_eq!(r["tool_loop"], false, "{r}");
    let (mine, all) = (
        r["last_user_tokens"].as_u64().unwrap(),
        r["tokens"].as_u64().unwrap(),
    );
    assert!(mine > 0 && mine < 200 && all > 5_000, "{r}");
    let (_, text) = run(|o| {
        route_explain_cmd(
            &cfg,
            &repo("rules"),
            Format::Text,
            &body,
            ExplainOptions::default(),
            o,
        )
    });
    let line = text
        .lines()
        .find(|l| l.starts_with("request:  "))
        .unwrap_or_default();
    assert!(
        line.contains(&format!("({mine} of {all} tokens)")),
        "{text}"
    );
    assert!(
        line.contains("user_turns 1") && line.contains("tools 12"),
        "{text}"
    );
}

#[test]
fn explain_json_names_the_failed_condition_and_the_values_it_saw() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = loaded_config(tmp.path());
    let body = br#"{"model":"auto","messages":[{"role":"user","content":"Prove it, please: the integral is finite."}]}"#;
    let (code, out) = run(|o| {
        route_explain_cmd(
            &cfg,
            &repo("rules"),
            Format::Json,
            body,
            ExplainOptions::default(),
            o,
        )
    });
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["provider"], "deepseek-reasoner");
    assert_eq!(v["chain"][0], "deepseek-reasoner");
    assert_eq!(v["chain"][1], "deepseek-chat");
    assert_eq!(
        (v["layer"].as_str(), v["rule"].as_str()),
        (Some("heuristic"), Some("reasoning"))
    );
    let trace = v["trace"].as_array().unwrap();
    assert_eq!(
        trace.len(),
        12,
        "eight static rules, vision, long-context, tool-loop, then the winner"
    );
    assert_eq!(trace[8]["why"], "images = false, needs true");
    assert_eq!(
        trace[11],
        serde_json::json!({"layer": "heuristic", "rule": "reasoning", "matched": true, "why": "score(reasoning) = 3 (>= 3)"})
    );
    assert_eq!(v["request"]["lane"], "main");

    let body =
        br#"{"model":"auto","messages":[{"role":"user","content":"Here is my proof, is it ok?"}]}"#;
    let (_, out) = run(|o| {
        route_explain_cmd(
            &cfg,
            &repo("rules"),
            Format::Json,
            body,
            ExplainOptions::default(),
            o,
        )
    });
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let math = v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rule"] == "reasoning")
        .unwrap();
    assert_eq!(math["why"], "score(reasoning) = 2, needs >= 3");
}

#[test]
fn explain_a_provider_id_as_model_is_direct() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = loaded_config(tmp.path());
    let body = br#"{"model":"gemini-flash","messages":[{"role":"user","content":"hi"}]}"#;
    let (code, out) = run(|o| {
        route_explain_cmd(
            &cfg,
            &repo("rules"),
            Format::Json,
            body,
            ExplainOptions::default(),
            o,
        )
    });
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            v["layer"].as_str(),
            v["rule"].as_str(),
            v["provider"].as_str()
        ),
        (Some("direct"), Some("explicit-model"), Some("gemini-flash"))
    );
    assert_eq!(v["trace"], serde_json::json!([]));
}

/// The stock `explicit-chat` rule sends the `ds` alias to deepseek-chat, images or not: the
/// explanation shows the text-only providers the dispatcher skips and the one it then uses.
#[test]
fn explain_shows_each_capability_skip_and_the_provider_used_after_them() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = loaded_config(tmp.path());
    let body = br#"{"model":"ds","messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}"#;
    let (code, out) = run(|o| {
        route_explain_cmd(
            &cfg,
            &repo("rules"),
            Format::Text,
            body,
            ExplainOptions::default(),
            o,
        )
    });
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(
            "provider: gemini-flash\n\
             chain:    deepseek-chat -> deepseek-reasoner -> gemini-flash -> openrouter-fallback\n\
             skipped:  deepseek-chat (vision: the request has images; `vision: false`)\n          \
             deepseek-reasoner (vision: the request has images; `vision: false`)\n          \
             openrouter-fallback (vision: the request has images; `vision: false`)\n\
             layer:    static\n\
             rule:     explicit-chat\n"
        ),
        "{out}"
    );

    let (_, out) = run(|o| {
        route_explain_cmd(
            &cfg,
            &repo("rules"),
            Format::Json,
            body,
            ExplainOptions::default(),
            o,
        )
    });
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["provider"], "gemini-flash");
    assert_eq!(v["chain"][0], "deepseek-chat", "the chain is shown whole");
    assert_eq!(
        v["skipped"],
        serde_json::json!([
            {"provider": "deepseek-chat", "reason": "vision", "why": "the request has images; `vision: false`"},
            {"provider": "deepseek-reasoner", "reason": "vision", "why": "the request has images; `vision: false`"},
            {"provider": "openrouter-fallback", "reason": "vision", "why": "the request has images; `vision: false`"},
        ])
    );

    // A prompt past DeepSeek's 128k window (with the 8000 tokens kept for the answer).
    let long = serde_json::json!({"model": "ds", "messages": [{"role": "user", "content": "word ".repeat(100_000)}]});
    let body = serde_json::to_vec(&long).unwrap();
    let (_, out) = run(|o| {
        route_explain_cmd(
            &cfg,
            &repo("rules"),
            Format::Text,
            &body,
            ExplainOptions::default(),
            o,
        )
    });
    assert!(out.starts_with("provider: gemini-flash\n"), "{out}");
    assert!(
        out.contains("skipped:  deepseek-chat (context: about 125000 prompt tokens + 8000 for the answer > `context_window: 128000`)"),
        "{out}"
    );

    // Too long for every provider: none is skipped, and the explanation says why.
    let huge = serde_json::json!({"model": "ds", "messages": [{"role": "user", "content": "word ".repeat(850_000)}]});
    let body = serde_json::to_vec(&huge).unwrap();
    let (_, out) = run(|o| {
        route_explain_cmd(
            &cfg,
            &repo("rules"),
            Format::Text,
            &body,
            ExplainOptions::default(),
            o,
        )
    });
    assert!(out.starts_with("provider: deepseek-chat\n"), "{out}");
    assert!(
        out.contains("skipped:  none: no provider of the chain can take this request (deepseek-chat: context, deepseek-reasoner: context, gemini-flash: context, openrouter-fallback: context), so it is tried as it is\n"),
        "{out}"
    );

    // A text request skips nothing.
    let body = br#"{"model":"ds","messages":[{"role":"user","content":"hello"}]}"#;
    let (_, out) = run(|o| {
        route_explain_cmd(
            &cfg,
            &repo("rules"),
            Format::Json,
            body,
            ExplainOptions::default(),
            o,
        )
    });
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["provider"], "deepseek-chat");
    assert_eq!(v["skipped"], serde_json::json!([]));
    assert_eq!(v["skip_note"], serde_json::Value::Null);
}

#[test]
fn explain_rejects_a_broken_request_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = loaded_config(tmp.path());
    let (code, out) = run(|o| {
        route_explain_cmd(
            &cfg,
            &repo("rules"),
            Format::Text,
            b"{\"messages\": []}",
            ExplainOptions::default(),
            o,
        )
    });
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("invalid request"), "{out}");
}

#[test]
fn import_config_converts_the_original_rules_with_warnings_and_they_check_clean() {
    let (code, rules) =
        run(|o| import_config_cmd(&repo("tests/fixtures/original-clawgate-config.yaml"), o));
    assert_eq!(code, 0, "{rules}");
    insta::assert_snapshot!("import_original_clawgate_config", rules);
    for needle in [
        "rule heartbeat when system contains any [\"heartbeat\"",
        "# WARNING: OpenClaw's own system prompt names \"heartbeat\"",
        "keywords math-reasoning { \"prove\", \"beweis\"",
        "\"\\\\boxed\"",
        "rule math-reasoning when score(math-reasoning) >= 2",
        "# WARNING: keywords now match whole words",
        "rule tool-use when tools",
        "rule short-message when tokens < 100",
        "rule general-default route deepseek-chat",
        "# layer classifier {",
    ] {
        assert!(rules.contains(needle), "missing {needle:?} in\n{rules}");
    }
    // The converted file passes `check` (warnings about unreachable rules are expected:
    // the original's general-default catches everything after it).
    let tmp = tempfile::tempdir().unwrap();
    let cfg = loaded_config(tmp.path());
    let dir = rules_dir(&[("imported.rules", &rules)]);
    let (code, out) = run(|o| check_cmd(&cfg, dir.path(), Format::Text, o));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn import_config_exits_2_on_a_file_without_routing_sections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "providers:\n  a:\n    base_url: http://127.0.0.1:9\n    api_key: k\n    model: m\nfallback_chain: [a]\n").unwrap();
    let (code, out) = run(|o| import_config_cmd(&path, o));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("no static_rules, heuristic_rules or llm_classifier"),
        "{out}"
    );
}

/// `--previous` routes as a follow-up turn whose conversation the server remembers: the
/// stock `sticky` rule keeps it on its provider, and explain names the conversation.
#[test]
fn explain_with_previous_shows_the_conversation_staying_on_its_provider() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = loaded_config(tmp.path());
    let body = br#"{"model":"auto","messages":[
        {"role":"user","content":"[Fri 2026-12-04 23:20 UTC] Rename the config loader and update its callers\n\nRuntime: agent=main | session=agent:main:main | sessionId=abc | shell=bash"},
        {"role":"assistant","content":"Done."},
        {"role":"user","content":"[Fri 2026-12-04 23:25 UTC] thanks!"}]}"#;
    let (_, first) = run(|o| {
        route_explain_cmd(
            &cfg,
            &repo("rules"),
            Format::Text,
            body,
            ExplainOptions::default(),
            o,
        )
    });
    assert!(first.contains("rule:     simple-query\n"), "{first}");
    assert!(
        first.contains(" from runtime, no previous decision"),
        "{first}"
    );
    let options = ExplainOptions {
        previous: ExplainOptions::parse_previous("deepseek-chat:default"),
        ..ExplainOptions::default()
    };
    let (code, out) =
        run(|o| route_explain_cmd(&cfg, &repo("rules"), Format::Text, body, options.clone(), o));
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("provider: deepseek-chat\n"), "{out}");
    assert!(out.contains("rule:     sticky\n"), "{out}");
    assert!(
        out.contains(" from runtime, previous deepseek-chat (rule default)"),
        "{out}"
    );
    assert!(out.contains("last_user \"thanks!\""), "{out}");
}
