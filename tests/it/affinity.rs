//! Sticky routing end to end: a replayed 20-request OpenClaw conversation through the stock
//! rules against providers that cache prompt prefixes, with stickiness on and off; a hot
//! reload that keeps conversations on their providers; the `X-ClawGate-Affinity` and
//! `X-ClawGate-Lane` headers and what metrics record of them.
//!
//! The conversation is `tests/fixtures/openclaw/conversation-20.jsonl`: one line per request,
//! `add` the messages that appeared since the request before, in the shape of the routing
//! corpus's `build.py` (`["u", text]` a person's message, `["a", text]` the assistant's answer,
//! `["call", tool, arguments, result]` an assistant tool call and its result). It is built into
//! the requests OpenClaw sends with the system prompt, tools and internal-context message of the
//! real capture `turn-local-main.json`, a timestamp on every person message and the Runtime line
//! on the first.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use clawgate::metrics::{Metrics, RequestEvent, Window};
use serde_json::{json, Value};
use support::metrics;
use support::{Behavior, Gate, MockUpstream};

/// The stock providers the stock rules route to (OpenRouter has no key in the stock setup).
const PROVIDERS: [&str; 4] = [
    "deepseek-chat",
    "deepseek-reasoner",
    "gemini-flash-lite",
    "gemini-flash",
];

/// What every mock answers (its words are the completion tokens).
const REPLY: &str = "Working on it: I read the file, ran the command and here is what I found, \
                     with the next step I suggest and why it should fix the problem for good.";

/// Whether the stock rules route follow-ups to the conversation's previous provider.
fn stock_rules_are_sticky() -> bool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("route previous"))
            })
        })
        .unwrap_or(false)
}

/// The requests of the 20-request conversation, session `session_id`.
pub fn conversation(session_id: &str) -> Vec<Value> {
    let capture = support::openclaw_body("turn-local-main");
    let messages = capture["messages"].as_array().expect("messages");
    let system: Vec<Value> = messages
        .iter()
        .filter(|m| m["role"] == "system" || m["role"] == "developer")
        .cloned()
        .collect();
    let internal = messages.last().expect("internal context").clone();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openclaw/conversation-20.jsonl"),
    )
    .expect("conversation fixture");
    let runtime = format!(
        "\n\nRuntime: agent=main | session=agent:main:main | sessionId={session_id} | host=vm | \
         os=Linux 6.18.44 (x64) | node=v26.10.0 | active_node=unknown | model=clawgate/auto | \
         default_model=clawgate/auto | shell=bash"
    );
    let mut history = system;
    let (mut person, mut calls) = (0, 0);
    let mut requests = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let step: Value = serde_json::from_str(line).expect("a JSON line");
        for item in step["add"].as_array().expect("add") {
            match item[0].as_str() {
                Some("u") => {
                    let minute = 20 + 3 * person;
                    let mut text = format!(
                        "[Fri 2026-12-04 {:02}:{:02} UTC] {}",
                        23 + minute / 60,
                        minute % 60,
                        item[1].as_str().unwrap_or_default()
                    );
                    if person == 0 {
                        text.push_str(&runtime);
                    }
                    person += 1;
                    history.push(json!({"role": "user", "content": text}));
                }
                Some("a") => history.push(json!({"role": "assistant", "content": item[1]})),
                Some("call") => {
                    calls += 1;
                    let id = format!("call_{:012x}", 0x5eed_0000_u64 + calls);
                    history.push(
                        json!({"role": "assistant", "content": null, "tool_calls": [{
                            "id": id, "type": "function",
                            "function": {"name": item[1], "arguments": item[2].to_string()}
                        }]}),
                    );
                    history.push(json!({"role": "tool", "tool_call_id": id, "content": item[3]}));
                }
                other => panic!("unknown conversation item {other:?}"),
            }
        }
        let mut body = capture.clone();
        let mut messages = history.clone();
        messages.push(internal.clone());
        body["model"] = json!("auto");
        body["messages"] = Value::Array(messages);
        requests.push(body);
    }
    assert_eq!(requests.len(), 20);
    requests
}

/// A config with the stock providers (their ids, pricing and fallback chain from config.yaml),
/// each an OpenAI-compatible mock with a prompt cache; `affinity.enabled` as given.
async fn stock_shaped(sticky: bool) -> (String, BTreeMap<&'static str, MockUpstream>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stock = clawgate::config::Config::load_with(&root.join("config.yaml"), &|name| {
        name.ends_with("_API_KEY").then(|| "x".to_owned())
    })
    .expect("stock config");
    let mut mocks = BTreeMap::new();
    for id in PROVIDERS {
        let m = MockUpstream::start(id).await;
        m.set_default(Behavior::PrefixCache(REPLY.into()));
        mocks.insert(id, m);
    }
    let mut y =
        String::from("server:\n  host: 127.0.0.1\n  port: 0\n  log_level: debug\nproviders:\n");
    for p in &stock.providers {
        // The others (OpenRouter) are defined without a key, as in the stock setup.
        let (url, key) = match mocks.get(p.id.as_str()) {
            Some(m) => (m.base_url(), "k"),
            None => ("http://127.0.0.1:9/v1".to_owned(), ""),
        };
        let pr = p.pricing;
        y.push_str(&format!(
            "  {id}:\n    backend: openai-compat\n    base_url: \"{url}\"\n    api_key: \"{key}\"\n    \
             model: {model}\n    pricing: {{ input: {}, output: {}, cache_read: {} }}\n",
            pr.input,
            pr.output,
            pr.cache_read.unwrap_or(pr.input),
            id = p.id,
            model = p.model,
        ));
    }
    y.push_str("fallback_chain:\n");
    for id in &stock.fallback_chain {
        y.push_str(&format!("  - {id}\n"));
    }
    y.push_str(&format!(
        "affinity:\n  enabled: {sticky}\n  max_entries: 1000\n  ttl_s: 3600\n"
    ));
    (y, mocks)
}

/// What one replay of the conversation came to.
struct Run {
    providers: Vec<String>,
    rules: Vec<String>,
    affinity: Vec<String>,
    lanes: Vec<String>,
    prompt: u64,
    cached: u64,
    cost_usd: f64,
    stats: Value,
}

impl Run {
    fn switches(&self) -> usize {
        self.providers.windows(2).filter(|w| w[0] != w[1]).count()
    }

    fn share(&self) -> f64 {
        self.cached as f64 / self.prompt.max(1) as f64
    }

    fn print(&self, name: &str) {
        println!(
            "stickiness {name}: {} provider switches, cache hits {:.2}% of {} prompt tokens \
             ({} cached), cost ${:.5} at stock prices",
            self.switches(),
            self.share() * 100.0,
            self.prompt,
            self.cached,
            self.cost_usd
        );
        for (i, ((p, r), a)) in self
            .providers
            .iter()
            .zip(&self.rules)
            .zip(&self.affinity)
            .enumerate()
        {
            println!("  {:>2} {p:<18} {r:<20} {a}", i + 1);
        }
    }
}

/// Serve the conversation through a gate with the stock rules, streamed as OpenClaw does.
async fn replay(sticky: bool, requests: &[Value]) -> Run {
    let (yaml, _mocks) = stock_shaped(sticky).await;
    let gate = Gate::start(&yaml).await;
    let mut run = Run {
        providers: Vec::new(),
        rules: Vec::new(),
        affinity: Vec::new(),
        lanes: Vec::new(),
        prompt: 0,
        cached: 0,
        cost_usd: 0.0,
        stats: Value::Null,
    };
    for body in requests {
        let resp = gate.chat(body).await;
        assert_eq!(resp.status(), 200);
        let h = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        run.providers.push(h("x-clawgate-provider"));
        run.rules.push(h("x-clawgate-rule"));
        run.affinity.push(h("x-clawgate-affinity"));
        run.lanes.push(h("x-clawgate-lane"));
        let (text, done) = support::sse_text(&resp.text().await.unwrap());
        assert!(done && text == REPLY, "{text}");
    }
    // The stream's metrics event is recorded as it ends: all of them, then the totals.
    let rows = gate.recent(requests.len()).await;
    for r in &rows {
        run.prompt += r["prompt_tok"].as_u64().unwrap();
        run.cached += r["cache_hit"].as_u64().unwrap();
        run.cost_usd += r["cost_usd"].as_f64().unwrap();
    }
    gate.state.metrics.flush();
    run.stats = gate.state.metrics.stats(Window::All);
    gate.stop().await;
    run
}

#[tokio::test]
async fn stickiness_keeps_a_replayed_openclaw_conversation_on_its_prompt_cache() {
    let requests = conversation("7b1e9c52-0f3a-4d6e-9a85-2c4f1d0b6e37");
    let on = replay(true, &requests).await;
    let off = replay(false, &requests).await;
    on.print("on");
    off.print("off");
    println!(
        "with stickiness: {} fewer switches, cache-hit share {:.2}% vs {:.2}%, cost {:.1}% of \
         the cost without",
        off.switches() as i64 - on.switches() as i64,
        on.share() * 100.0,
        off.share() * 100.0,
        on.cost_usd * 100.0 / off.cost_usd
    );

    // Headers on every answer.
    assert!(
        off.affinity.iter().all(|a| a == "off"),
        "{:?}",
        off.affinity
    );
    assert!(on.lanes.iter().chain(&off.lanes).all(|l| l == "main"));
    // /api/stats agrees with the rows it is made of.
    for run in [&on, &off] {
        let t = &run.stats["totals"];
        assert_eq!(t["total_requests"], 20);
        assert_eq!(t["total_prompt_tokens"], run.prompt);
        let pct = t["prompt_cache_hit_pct"].as_f64().unwrap();
        assert!((pct - run.share() * 100.0).abs() < 0.06, "{pct}");
        assert_eq!(run.stats["lanes"][0]["lane"], "main");
        assert_eq!(run.stats["lanes"][0]["requests"], 20);
    }
    let count = |run: &Run, value: &str| run.affinity.iter().filter(|a| *a == value).count();
    assert_eq!(off.stats["affinity"].as_array().map(Vec::len), Some(1));
    assert_eq!(off.stats["affinity"][0]["affinity"], "off");
    assert_eq!(off.stats["affinity"][0]["requests"], 20);
    assert!(
        stock_rules_are_sticky(),
        "the stock rules have no `route previous`: stickiness would change nothing"
    );
    // Stickiness on: a conversation from its first request, every later one a hit or a switch.
    assert_eq!(on.affinity[0], "miss", "{:?}", on.affinity);
    assert!(
        on.affinity[1..].iter().all(|a| a == "hit" || a == "switch"),
        "{:?}",
        on.affinity
    );
    assert_eq!(count(&on, "switch"), on.switches());
    assert!(
        on.switches() <= off.switches(),
        "switches with stickiness {} vs without {}",
        on.switches(),
        off.switches()
    );
    assert!(on.share() >= off.share());
    // What stickiness changed was decided by the sticky rules.
    for (i, (a, b)) in on.providers.iter().zip(&off.providers).enumerate() {
        if a != b {
            assert!(
                ["sticky", "tool-loop"].contains(&on.rules[i].as_str()),
                "request {}: {} by {} vs {} by {}",
                i + 1,
                a,
                on.rules[i],
                b,
                off.rules[i]
            );
        }
    }
}

/// Rules that keep a conversation where it was, then send new ones to `to`.
fn sticky_rules(to: &str) -> String {
    format!(
        "layer heuristic {{\n  rule sticky when previous_provider != \"\" route previous\n}}\n\
         default route {to}\n"
    )
}

/// A two-message conversation opened by `first`, and its first request only.
fn turns(first: &str) -> (Value, Value) {
    let one = json!({"model": "auto", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": first}
    ]});
    let mut two = one.clone();
    let msgs = two["messages"].as_array_mut().unwrap();
    msgs.push(json!({"role": "assistant", "content": "Sure, here it is."}));
    msgs.push(json!({"role": "user", "content": "and once more, shorter"}));
    (one, two)
}

async fn ask(gate: &Gate, body: &Value) -> (String, String, String) {
    let resp = gate.chat(body).await;
    assert_eq!(resp.status(), 200);
    let h = |n: &str| resp.headers()[n].to_str().unwrap().to_owned();
    (
        h("x-clawgate-provider"),
        h("x-clawgate-affinity"),
        h("x-clawgate-rule"),
    )
}

#[tokio::test]
async fn a_hot_reload_keeps_conversations_on_their_providers() {
    let a = MockUpstream::start("alpha").await;
    let b = MockUpstream::start("beta").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        support::alpha_beta_config(&a, &b),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    let rules = dir.path().join("rules/10-sticky.rules");
    std::fs::write(&rules, sticky_rules("alpha")).unwrap();
    let gate = Gate::start_watching(dir).await;

    let (one, two) = turns("write a haiku about the sea");
    assert_eq!(
        ask(&gate, &one).await,
        ("alpha".into(), "miss".into(), "default".into())
    );
    let generation = gate.get_json("/health").await["rules"]["generation"].clone();
    std::fs::write(&rules, sticky_rules("beta")).unwrap();
    // The new rules serve once a new conversation goes to beta.
    let started = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let (fresh, _) = turns(&format!("write haiku number {n}"));
        if ask(&gate, &fresh).await.0 == "beta" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the rules were not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_ne!(
        gate.get_json("/health").await["rules"]["generation"],
        generation
    );
    // The conversation from before the reload is still remembered, and stays.
    assert_eq!(
        ask(&gate, &two).await,
        ("alpha".into(), "hit".into(), "sticky".into())
    );
    assert_eq!(gate.state.affinity.len(), n + 1);
    gate.stop().await;
}

#[tokio::test]
async fn answers_name_their_lane_and_affinity_and_metrics_record_them() {
    for enabled in [true, false] {
        let a = MockUpstream::start("alpha").await;
        let b = MockUpstream::start("beta").await;
        let yaml = format!(
            "{}affinity:\n  enabled: {enabled}\n",
            support::alpha_beta_config(&a, &b)
        );
        let empty = tempfile::tempdir().unwrap();
        let gate = Gate::start_with_rules(&yaml, Some(empty.path())).await;
        let (one, two) = turns("hello there, general question");
        let mut seen = Vec::new();
        for body in [&one, &two, &one] {
            let resp = gate.chat(body).await;
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["x-clawgate-lane"], "main");
            seen.push(
                resp.headers()["x-clawgate-affinity"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        // With no rules at all the default decides, the same provider each time: a hit.
        let want = if enabled {
            vec!["miss", "hit", "hit"]
        } else {
            vec!["off"; 3]
        };
        assert_eq!(seen, want, "enabled: {enabled}");
        assert_eq!(gate.state.affinity.len(), usize::from(enabled));

        let rows = gate.recent(3).await;
        let got: Vec<(&str, &str)> = rows
            .iter()
            .rev()
            .map(|r| (r["lane"].as_str().unwrap(), r["affinity"].as_str().unwrap()))
            .collect();
        let expect: Vec<(&str, &str)> = want.iter().map(|a| ("main", *a)).collect();
        assert_eq!(got, expect);
        gate.state.metrics.flush();
        let stats = gate.state.metrics.stats(Window::All);
        let by: BTreeMap<String, u64> = stats["affinity"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["affinity"].as_str().unwrap().to_owned(),
                    r["requests"].as_u64().unwrap(),
                )
            })
            .collect();
        let mut counted: BTreeMap<String, u64> = BTreeMap::new();
        for (_, a) in &expect {
            *counted.entry((*a).to_owned()).or_default() += 1;
        }
        assert_eq!(by, counted);
        let text = gate.get_text("/metrics").await;
        for (result, n) in &counted {
            assert!(
                text.contains(&format!(
                    "clawgate_affinity_total{{result=\"{result}\"}} {n}\n"
                )),
                "{text}"
            );
        }
        assert!(
            text.contains("clawgate_lane_total{lane=\"main\"} 3\n"),
            "{text}"
        );
        let remembered = usize::from(enabled);
        assert!(
            text.contains(&format!("clawgate_affinity_conversations {remembered}\n")),
            "{text}"
        );
        gate.stop().await;
    }
}

/// An answered request in `lane` with this affinity, `prompt` tokens of which `hit` cached.
fn event(ts_ms: u64, lane: &str, affinity: &str, prompt: u64, hit: u64) -> RequestEvent {
    let mut ev = metrics::cached(ts_ms, "deepseek-chat", prompt, 10, hit, prompt - hit);
    ev.lane = lane.into();
    ev.affinity = affinity.into();
    ev
}

#[test]
fn stats_count_requests_by_lane_and_affinity_with_the_cache_share_of_prompt_tokens() {
    let (_dir, path, m) = metrics::store(0);
    let t = metrics::now();
    m.record(event(t - 5 * metrics::MIN, "main", "miss", 1000, 0));
    m.record(event(t - 4 * metrics::MIN, "main", "hit", 1200, 960));
    m.record(event(t - 4 * metrics::MIN, "main", "hit", 1400, 1152));
    m.record(event(t - 3 * metrics::MIN, "heartbeat", "switch", 800, 0));
    m.record(event(t - 3 * metrics::MIN, "subagent", "off", 600, 0));
    // A provider that reports no cache figures: all of its prompt counts as not cached.
    let mut plain = metrics::ok(t - 2 * metrics::MIN, "gemini-flash");
    (plain.lane, plain.affinity) = ("main".into(), "hit".into());
    plain.prompt_tokens = 1000;
    m.record(plain);
    // Not routed (refused before routing): neither a lane nor an affinity.
    let mut refused = metrics::all_failed(t - metrics::MIN, &[]);
    refused.layer = String::new();
    m.record(refused);
    m.flush();

    for window in [Window::H1, Window::All] {
        let s = m.stats(window);
        let by = |list: &str, label: &str| -> BTreeMap<String, (u64, f64)> {
            s[list]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r[label].as_str().unwrap().to_owned(),
                        (
                            r["requests"].as_u64().unwrap(),
                            r["prompt_cache_hit_pct"].as_f64().unwrap(),
                        ),
                    )
                })
                .collect()
        };
        let lanes = by("lanes", "lane");
        assert_eq!(lanes.len(), 3, "{}", s["lanes"]);
        assert_eq!(lanes["main"], (4, 45.9)); // 2112 of 4600
        assert_eq!(lanes["heartbeat"], (1, 0.0));
        assert_eq!(lanes["subagent"], (1, 0.0));
        let affinity = by("affinity", "affinity");
        assert_eq!(affinity.len(), 4, "{}", s["affinity"]);
        assert_eq!(affinity["hit"], (3, 58.7)); // 2112 of 3600
        assert_eq!(affinity["miss"], (1, 0.0));
        assert_eq!(affinity["switch"], (1, 0.0));
        assert_eq!(affinity["off"], (1, 0.0));
        // Rows are ordered by requests, the busiest first.
        assert_eq!(s["affinity"][0]["affinity"], "hit");
        assert_eq!(s["lanes"][0]["lane"], "main");
        let totals = &s["totals"];
        assert_eq!(totals["total_requests"], 7);
        // 2112 cached of 6000 prompt tokens; of the prompt tokens with cache figures, 2112 of 5000.
        assert_eq!(totals["prompt_cache_hit_pct"], 35.2);
        assert_eq!(totals["cache_hit_pct"], 42.2);
    }
    let rows = m.recent(10)["requests"].as_array().cloned().unwrap();
    assert_eq!(rows[0]["lane"], "");
    assert_eq!(rows[1]["affinity"], "hit");
    assert_eq!(rows[6]["affinity"], "miss");

    // Reopened, the rows and rollups read the same.
    m.shutdown();
    drop(m);
    let again = Metrics::open_for_reading(&path).unwrap();
    assert_eq!(again.stats(Window::All)["affinity"][0]["requests"], 3);
    assert_eq!(again.counters().corrupt_rows, 0);
}

#[test]
fn prometheus_counts_requests_by_lane_and_affinity_result() {
    let m = Metrics::disabled();
    let t = metrics::now();
    for (lane, affinity) in [
        ("main", "hit"),
        ("main", "hit"),
        ("main", "switch"),
        ("heartbeat", "miss"),
        ("cron", "off"),
    ] {
        m.record(event(t, lane, affinity, 100, 0));
    }
    let text = m.render("");
    for line in [
        "# TYPE clawgate_lane_total counter",
        "clawgate_lane_total{lane=\"cron\"} 1",
        "clawgate_lane_total{lane=\"heartbeat\"} 1",
        "clawgate_lane_total{lane=\"main\"} 3",
        "# TYPE clawgate_affinity_total counter",
        "clawgate_affinity_total{result=\"hit\"} 2",
        "clawgate_affinity_total{result=\"miss\"} 1",
        "clawgate_affinity_total{result=\"switch\"} 1",
        "clawgate_affinity_total{result=\"off\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    // Every result is rendered, 0 until seen.
    let empty = Metrics::disabled().render("");
    assert!(empty.contains("clawgate_affinity_total{result=\"switch\"} 0\n"));
    assert!(!empty.contains("clawgate_lane_total{"));
}

#[test]
fn clawgate_stats_prints_the_affinity_counts() {
    let (_dir, path, m) = metrics::store(0);
    let t = metrics::now();
    m.record(event(t - 2 * metrics::MIN, "main", "miss", 1000, 0));
    m.record(event(t - metrics::MIN, "main", "hit", 1000, 960));
    m.record(event(t, "main", "hit", 1000, 960));
    m.shutdown();
    drop(m);
    let server = clawgate::cli::RemoteServer {
        base_url: "http://127.0.0.1:9".into(),
        api_key: None,
    };
    let mut out = Vec::new();
    let code =
        clawgate::cli::stats_cmd_with(&path, &server, false, None, false, Window::All, &mut out);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("Sticky"))
        .unwrap_or_else(|| panic!("no Sticky line in\n{text}"));
    assert!(line.contains("hit 2 · miss 1"), "{line}");
    assert!(line.contains("cache hits 64.0% of prompt tokens"), "{line}");
}

/// A gate over `alpha` and `beta` with [`sticky_rules`] to alpha, and stickiness on.
async fn sticky_gate(a: &MockUpstream, b: &MockUpstream) -> (Gate, tempfile::TempDir) {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("10-sticky.rules"), sticky_rules("alpha")).unwrap();
    let gate = Gate::start_with_rules(&support::alpha_beta_config(a, b), Some(rules.path())).await;
    (gate, rules)
}

#[tokio::test]
async fn the_provider_that_answered_after_a_fallback_is_the_one_remembered() {
    let a = MockUpstream::start("alpha").await;
    let b = MockUpstream::start("beta").await;
    let (gate, _rules) = sticky_gate(&a, &b).await;
    a.script([Behavior::Status(
        503,
        json!({"error": {"message": "overloaded"}}),
    )]);
    let (one, two) = turns("summarise the meeting notes");
    assert_eq!(
        ask(&gate, &one).await,
        ("beta".into(), "miss".into(), "default".into())
    );
    // The next turn goes straight to beta, which holds the conversation's prompt cache.
    assert_eq!(
        ask(&gate, &two).await,
        ("beta".into(), "hit".into(), "sticky".into())
    );
    assert_eq!((a.hits(), b.hits()), (1, 2));
    gate.stop().await;
}

#[tokio::test]
async fn a_stream_is_remembered_when_it_ends_well_and_not_when_it_breaks() {
    let a = MockUpstream::start("alpha").await;
    let b = MockUpstream::start("beta").await;
    let (gate, _rules) = sticky_gate(&a, &b).await;
    let streamed = |v: &Value| {
        let mut v = v.clone();
        v["stream"] = json!(true);
        v
    };
    // Broken after its first events: already sent to the client, so no fallback, and the
    // conversation is not remembered.
    a.script([Behavior::CutStream { events: 2 }]);
    let (one, two) = turns("tell me a long story");
    let resp = gate.chat(&streamed(&one)).await;
    assert_eq!(resp.headers()["x-clawgate-affinity"], "miss");
    let _ = resp.text().await;
    gate.recent(1).await;
    assert!(gate.state.affinity.is_empty());
    // Asked again and streamed to the end: remembered once the stream ended.
    let resp = gate.chat(&streamed(&one)).await;
    assert_eq!(resp.headers()["x-clawgate-affinity"], "miss");
    let (_, done) = support::sse_text(&resp.text().await.unwrap());
    assert!(done);
    gate.recent(2).await;
    assert_eq!(gate.state.affinity.len(), 1);
    let resp = gate.chat(&streamed(&two)).await;
    assert_eq!(resp.headers()["x-clawgate-affinity"], "hit");
    assert_eq!(resp.headers()["x-clawgate-rule"], "sticky");
    let _ = resp.text().await;
    gate.stop().await;
}
