//! The LLM classifier layer through the real server: a mock classifier provider answers
//! labels, and requests that no static or heuristic rule decided go where the label says.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{config_yaml, Behavior, Gate, MockUpstream, P};

/// Mocks: `judge` classifies; `thinker`, `cheap` and `everyday` answer.
struct World {
    gate: Gate,
    judge: MockUpstream,
    thinker: MockUpstream,
    cheap: MockUpstream,
    everyday: MockUpstream,
    _rules: tempfile::TempDir,
}

const RULES: &str = r#"
layer static {
  rule pinned when model == "pinned" route cheap
}
layer heuristic {
  rule tool-use when tools route everyday
}
default route everyday
"#;

/// `classifier` is the `llm_classifier` section's body (indented by two spaces).
async fn world(classifier: &str, extra_rules: &str) -> World {
    let judge = MockUpstream::start("judge").await;
    let thinker = MockUpstream::start("thinker").await;
    let cheap = MockUpstream::start("cheap").await;
    let everyday = MockUpstream::start("everyday").await;
    let p = |id, m: &MockUpstream, extra| P {
        id,
        base_url: m.base_url(),
        extra,
    };
    // The judge's own timeouts are long: only llm_classifier.timeout_ms may cut it short.
    let slow = "    timeout: { connect_s: 1, read_s: 30, first_byte_s: 30, idle_s: 30 }\n";
    let cfg = config_yaml(
        &[
            p("judge", &judge, slow),
            p("thinker", &thinker, ""),
            p("cheap", &cheap, ""),
            p("everyday", &everyday, ""),
        ],
        &["everyday"],
        &format!("llm_classifier:\n{classifier}"),
    )
    // config_yaml puts the provider `timeout` after the default one; drop the default for judge.
    .replace(
        "    timeout: { connect_s: 1, read_s: 2, first_byte_s: 1, idle_s: 1 }\n    timeout: { connect_s: 1, read_s: 30",
        "    timeout: { connect_s: 1, read_s: 30",
    );
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("rules.rules"),
        format!("{RULES}\n{extra_rules}"),
    )
    .unwrap();
    let gate = Gate::start_with_rules(&cfg, Some(rules.path())).await;
    World {
        gate,
        judge,
        thinker,
        cheap,
        everyday,
        _rules: rules,
    }
}

const ENABLED: &str = "  enabled: true
  classifier_provider: judge
  timeout_ms: 400
  category_routing:
    REASONING: thinker
    SIMPLE: cheap
";

fn ask(text: &str) -> Value {
    json!({"model": "auto", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": text},
    ]})
}

struct Routed {
    status: u16,
    provider: String,
    layer: String,
    rule: String,
    label: Option<String>,
}

async fn send(gate: &Gate, body: &Value) -> Routed {
    let r = gate.chat(body).await;
    let h = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let routed = Routed {
        status: r.status().as_u16(),
        provider: h("x-clawgate-provider").unwrap_or_default(),
        layer: h("x-clawgate-layer").unwrap_or_default(),
        rule: h("x-clawgate-rule").unwrap_or_default(),
        label: h("x-clawgate-label"),
    };
    let _ = r.bytes().await;
    routed
}

#[tokio::test]
async fn each_label_routes_to_the_provider_its_category_names() {
    let w = world(ENABLED, "").await;
    w.judge.script([
        Behavior::Answer("REASONING".into()),
        Behavior::Answer("  simple.\n".into()),
    ]);
    let r = send(
        &w.gate,
        &ask("Is every even number above 2 a sum of two primes?"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.provider.as_str(), r.layer.as_str(), r.rule.as_str()),
        ("thinker", "classifier", "classified-as-REASONING")
    );
    assert_eq!(r.label.as_deref(), Some("REASONING"));
    let r = send(&w.gate, &ask("Good morning, how are you doing today?")).await;
    assert_eq!(
        (r.provider.as_str(), r.rule.as_str()),
        ("cheap", "classified-as-SIMPLE")
    );
    assert_eq!(w.thinker.hits(), 1);
    assert_eq!(w.cheap.hits(), 1);
    assert_eq!(w.everyday.hits(), 0);
}

#[tokio::test]
async fn the_classifier_is_asked_once_at_temperature_zero_with_the_last_user_message() {
    let w = world(ENABLED, "").await;
    w.judge.script([Behavior::Answer("SIMPLE".into())]);
    let long = format!("{}{}", "a".repeat(500), "TAIL-NOT-SENT");
    let body = json!({"model": "auto", "stream": true, "messages": [
        {"role": "user", "content": "an earlier question"},
        {"role": "assistant", "content": "an earlier answer"},
        {"role": "user", "content": long},
    ]});
    let r = send(&w.gate, &body).await;
    assert_eq!(r.provider, "cheap");
    let got = w.judge.received();
    assert_eq!(got.len(), 1);
    let sent = got[0].json();
    assert_eq!(sent["temperature"], 0);
    assert_eq!(sent["max_tokens"], 50);
    assert_ne!(sent["stream"], true, "the classification is not streamed");
    let prompt = sent["messages"][0]["content"].as_str().unwrap();
    assert!(prompt.contains(&"a".repeat(500)));
    assert!(!prompt.contains("TAIL"), "only the first 500 characters");
    assert!(!prompt.contains("earlier question"));
    assert!(prompt.contains("Category:"), "the stock prompt");
    // The client's own request reached the chosen provider untouched by the classification.
    assert_eq!(w.cheap.received()[0].json()["stream"], true);
}

#[tokio::test]
async fn an_unknown_answer_falls_through_to_the_default_without_failing() {
    let w = world(ENABLED, "").await;
    w.judge.script([Behavior::Answer("BANANA".into())]);
    let r = send(
        &w.gate,
        &ask("Something the classifier cannot place at all"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.provider.as_str(), r.layer.as_str(), r.rule.as_str()),
        ("everyday", "default", "default")
    );
    assert_eq!(r.label, None);
}

#[tokio::test]
async fn a_classifier_error_goes_to_fallback_on_timeout() {
    let cfg = format!("{ENABLED}  fallback_on_timeout: cheap\n");
    let w = world(&cfg, "").await;
    w.judge.script([Behavior::Status(
        500,
        json!({"error": {"message": "boom", "type": "server_error"}}),
    )]);
    let r = send(&w.gate, &ask("A question while the classifier is down")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.provider.as_str(), r.layer.as_str(), r.rule.as_str()),
        ("cheap", "classifier", "classifier-fallback")
    );
}

#[tokio::test]
async fn a_hanging_classifier_is_given_up_after_timeout_ms() {
    let w = world(ENABLED, "").await;
    w.judge.set_default(Behavior::Hang);
    let started = Instant::now();
    let r = send(&w.gate, &ask("A question while the classifier hangs")).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.provider, "everyday");
    // timeout_ms is 400 and the judge's own read timeout 30 s: the request must not wait for
    // the latter. The bound is loose on purpose (a busy machine), far below 30 s.
    assert!(
        took < Duration::from_secs(5),
        "the request waited {took:?} for a classifier with timeout_ms 400"
    );
}

#[tokio::test]
async fn an_identical_prompt_is_answered_from_the_cache() {
    let w = world(ENABLED, "").await;
    w.judge.set_default(Behavior::Answer("REASONING".into()));
    for _ in 0..3 {
        let r = send(
            &w.gate,
            &ask("Prove that the square root of two is irrational"),
        )
        .await;
        assert_eq!(r.provider, "thinker");
    }
    assert_eq!(w.judge.hits(), 1, "the second and third were cached");
    let health = w.gate.get_json("/health").await;
    assert_eq!(health["classifier"]["enabled"], true);
    assert_eq!(health["classifier"]["provider"], "judge");
    assert_eq!(health["classifier"]["cached_answers"], 1);
    send(&w.gate, &ask("A different question entirely, please")).await;
    assert_eq!(w.judge.hits(), 2);
}

#[tokio::test]
async fn fifty_concurrent_identical_prompts_cause_one_classifier_call() {
    let w = world(ENABLED, "").await;
    w.judge
        .set_default(Behavior::Delay(Duration::from_millis(200), "SIMPLE".into()));
    let body = ask("Hello there, what time is it in Tokyo right now?");
    let sends = (0..50).map(|_| send(&w.gate, &body));
    let all = futures_util::future::join_all(sends).await;
    assert!(all.iter().all(|r| r.status == 200 && r.provider == "cheap"));
    assert_eq!(w.judge.hits(), 1);
    assert_eq!(w.cheap.hits(), 50);
}

#[tokio::test]
async fn requests_decided_by_static_or_heuristic_rules_never_call_the_classifier() {
    let w = world(ENABLED, "").await;
    let mut pinned = ask("Anything at all goes here");
    pinned["model"] = json!("pinned");
    let r = send(&w.gate, &pinned).await;
    assert_eq!((r.layer.as_str(), r.rule.as_str()), ("static", "pinned"));
    let mut tools = ask("Please list the files in my home directory");
    tools["tools"] =
        json!([{"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}}}]);
    let r = send(&w.gate, &tools).await;
    assert_eq!(
        (r.layer.as_str(), r.rule.as_str()),
        ("heuristic", "tool-use")
    );
    let direct = json!({"model": "thinker", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(send(&w.gate, &direct).await.layer, "direct");
    assert_eq!(w.judge.hits(), 0);
}

#[tokio::test]
async fn classifier_rules_route_on_label_instead_of_category_routing() {
    let rules = r#"
layer classifier {
  rule deep-thought when label == "REASONING" and messages >= 1 route thinker, cheap
}
"#;
    let w = world(ENABLED, rules).await;
    w.judge.script([
        Behavior::Answer("REASONING".into()),
        Behavior::Answer("SIMPLE".into()),
    ]);
    let r = send(&w.gate, &ask("Why is the sky blue, in terms of physics?")).await;
    assert_eq!(
        (r.provider.as_str(), r.layer.as_str(), r.rule.as_str()),
        ("thinker", "classifier", "deep-thought")
    );
    // SIMPLE matches no classifier rule: category_routing is not consulted, the default is.
    let r = send(&w.gate, &ask("Hello, nice to meet you, my friend")).await;
    assert_eq!(
        (r.provider.as_str(), r.rule.as_str()),
        ("everyday", "default")
    );
}

#[tokio::test]
async fn a_request_without_a_user_message_skips_the_call_but_not_the_classifier_rules() {
    let rules = r#"
layer classifier {
  rule long-system when tokens > 2 route thinker
}
"#;
    let w = world(ENABLED, rules).await;
    let body = json!({"model": "auto", "messages": [
        {"role": "system", "content": "You are a very helpful assistant with a long system prompt."},
    ]});
    let r = send(&w.gate, &body).await;
    assert_eq!(
        (r.provider.as_str(), r.layer.as_str(), r.rule.as_str()),
        ("thinker", "classifier", "long-system")
    );
    assert_eq!(w.judge.hits(), 0);
}

#[tokio::test]
async fn a_disabled_classifier_is_never_called() {
    let cfg = ENABLED.replace("enabled: true", "enabled: false");
    let w = world(&cfg, "").await;
    let r = send(
        &w.gate,
        &ask("Is every even number above 2 a sum of two primes?"),
    )
    .await;
    assert_eq!(
        (r.provider.as_str(), r.layer.as_str()),
        ("everyday", "default")
    );
    assert_eq!(w.judge.hits(), 0);
}

#[tokio::test]
async fn the_classification_call_is_recorded_with_its_own_tokens_and_cost() {
    let w = world(ENABLED, "").await;
    w.judge.script([Behavior::Answer("REASONING".into())]);
    send(&w.gate, &ask("Derive the formula for the area of a circle")).await;
    let rows = w.gate.recent(2).await;
    let call = rows
        .iter()
        .find(|r| r["classification"] == true)
        .expect("a classification row");
    assert_eq!(call["layer"], "classification");
    assert_eq!(call["provider"], "judge");
    assert!(call["prompt_tok"].as_u64().unwrap() > 0);
    assert!(call["cost_usd"].as_f64().unwrap() > 0.0);
    let client = rows
        .iter()
        .find(|r| r["classification"] == false)
        .expect("the client's row");
    assert_eq!(client["rule_name"], "classified-as-REASONING");
    assert_eq!(client["provider"], "thinker");
}

// ---------------------------------------------------------------------------------------------
// clawgate check and route --explain

/// A config with providers `judge` and `thinker` (unreachable: nothing here calls them) and
/// this `llm_classifier` section, and a rules directory holding `rules`.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(classifier: &str, rules: &str) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let p = |id| P {
            id,
            base_url: "http://127.0.0.1:9".into(),
            extra: "",
        };
        let cfg = config_yaml(
            &[p("judge"), p("thinker")],
            &["thinker"],
            &format!("llm_classifier:\n{classifier}"),
        );
        std::fs::write(dir.path().join("config.yaml"), cfg).unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules").join("c.rules"), rules).unwrap();
        Files { dir }
    }

    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("config.yaml")
    }

    fn rules(&self) -> std::path::PathBuf {
        self.dir.path().join("rules")
    }
}

fn check(classifier: &str, rules: &str) -> (i32, Value) {
    let files = Files::new(classifier, rules);
    let mut out = Vec::new();
    let code = clawgate::cli::check_cmd(
        &files.config(),
        &files.rules(),
        clawgate::cli::Format::Json,
        &mut out,
    );
    (code, serde_json::from_slice(&out).unwrap())
}

fn codes(v: &Value) -> Vec<(String, String)> {
    v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_owned(),
                d["help"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn check_warns_about_a_label_no_category_produces() {
    let cfg = "  enabled: true\n  classifier_provider: judge\n  category_routing:\n    REASONING: thinker\n";
    let rules = "layer classifier {\n  rule r when label == \"REASONNG\" route thinker\n}\ndefault route thinker\n";
    let (code, v) = check(cfg, rules);
    assert_eq!(code, 0, "a warning, not an error: {v}");
    let found = codes(&v);
    assert!(
        found
            .iter()
            .any(|(c, help)| c == "W008" && help.contains("REASONING")),
        "{found:?}"
    );
}

#[test]
fn check_warns_about_classifier_rules_while_the_classifier_is_disabled() {
    let cfg = "  enabled: false\n  classifier_provider: judge\n  category_routing:\n    REASONING: thinker\n";
    let rules = "layer classifier {\n  rule r when label == \"REASONING\" route thinker\n}\ndefault route thinker\n";
    let (code, v) = check(cfg, rules);
    assert_eq!(code, 0);
    let found = codes(&v);
    assert!(found.iter().any(|(c, _)| c == "W007"), "{found:?}");
    assert!(!found.iter().any(|(c, _)| c == "W008"), "{found:?}");
}

#[test]
fn an_enabled_classifier_naming_an_unknown_provider_is_a_config_error() {
    let yaml = config_yaml(
        &[P {
            id: "thinker",
            base_url: "http://127.0.0.1:9".into(),
            extra: "",
        }],
        &["thinker"],
        "llm_classifier:\n  enabled: true\n  classifier_provider: jduge\n",
    );
    let err = clawgate::config::Config::from_str(&yaml, "c.yaml".as_ref(), &|_| None).unwrap_err();
    assert_eq!(err.key, "llm_classifier.classifier_provider");
    assert!(err.message.contains("jduge"), "{err}");
    // Disabled, the same mistake is only a warning: start-up must not fail on it.
    let yaml = yaml.replace("enabled: true", "enabled: false");
    let cfg = clawgate::config::Config::from_str(&yaml, "c.yaml".as_ref(), &|_| None).unwrap();
    assert!(cfg.warnings.iter().any(|w| w.contains("jduge")));
}

#[test]
fn explain_shows_where_the_classifier_would_be_asked() {
    let files = Files::new(
        "  enabled: true\n  classifier_provider: judge\n  category_routing:\n    REASONING: thinker\n",
        &RULES
            .replace("everyday", "thinker")
            .replace("cheap", "thinker"),
    );
    let body = serde_json::to_vec(&ask("How many primes are there below one hundred?")).unwrap();
    let mut out = Vec::new();
    let code = clawgate::cli::route_explain_cmd(
        &files.config(),
        &files.rules(),
        clawgate::cli::Format::Json,
        &body,
        clawgate::cli::ExplainOptions::default(),
        &mut out,
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_slice(&out).unwrap();
    let trace = v["trace"].as_array().unwrap();
    let last = trace.last().unwrap();
    assert_eq!(last["layer"], "classifier");
    assert!(last["why"].as_str().unwrap().contains("--classify"), "{v}");
    assert!(v["classifier"].as_str().unwrap().contains("judge"));
}

/// `route --explain` and the server run one routing walk: for recorded requests (real
/// OpenClaw turns, a pinned alias, a provider named directly, a question the classifier
/// labels, one with nothing to classify) explain, asking the same classifier, names the
/// provider, layer and rule the served request reports in its headers.
#[tokio::test]
async fn explain_and_a_served_request_agree_on_recorded_requests() {
    let extra = r#"
layer heuristic {
  rule greeting when last_user starts_with "hello" route cheap
}
layer classifier {
  rule deep when label == "REASONING" route thinker
}
"#;
    let w = world(ENABLED, extra).await;
    w.judge.set_default(Behavior::Answer("REASONING".into()));
    let config = w.gate.dir.path().join("config.yaml");
    let rules = w._rules.path().to_owned();
    let mut bodies: Vec<(&str, Value)> = ["heartbeat", "subagent-child", "turn-local-main"]
        .into_iter()
        .map(|n| (n, support::openclaw_body(n)))
        .collect();
    bodies.push((
        "pinned alias",
        json!({"model": "pinned", "messages": [
        {"role": "user", "content": "hello"}]}),
    ));
    bodies.push((
        "provider named",
        json!({"model": "cheap", "messages": [
        {"role": "user", "content": "anything"}]}),
    ));
    bodies.push(("heuristic", ask("hello there, how are you?")));
    bodies.push((
        "classified",
        ask("Is every even number above 2 a sum of two primes?"),
    ));
    bodies.push((
        "nothing to classify",
        json!({"model": "auto", "messages": [
        {"role": "system", "content": "You are terse."}]}),
    ));
    for (name, body) in bodies {
        let served = send(&w.gate, &body).await;
        assert_eq!(served.status, 200, "{name}");
        let (config, rules) = (config.clone(), rules.clone());
        let bytes = serde_json::to_vec(&body).unwrap();
        let explained = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let code = clawgate::cli::route_explain_cmd(
                &config,
                &rules,
                clawgate::cli::Format::Json,
                &bytes,
                clawgate::cli::ExplainOptions {
                    classify: true,
                    ..Default::default()
                },
                &mut out,
            );
            assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out));
            serde_json::from_slice::<Value>(&out).unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            (
                explained["provider"].as_str().unwrap_or(""),
                explained["layer"].as_str().unwrap_or(""),
                explained["rule"].as_str().unwrap_or("")
            ),
            (
                served.provider.as_str(),
                served.layer.as_str(),
                served.rule.as_str()
            ),
            "{name}: explain {explained}"
        );
    }
    assert!(
        w.thinker.hits() >= 1,
        "the classifier case was routed by its label"
    );
}
