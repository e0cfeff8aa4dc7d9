//! Routing decision and compile time for the rule engine.
//!
//! Targets (DESIGN.md): stock rules on a 2 KB prompt ≤ 5 µs; 1,000 generated rules (keywords,
//! substrings, regexes, comparisons, model/header equality) on a 32 KB prompt ≤ 50 µs, close to
//! flat from 10 to 100 to 1,000 rules; compiling 1,000 rules ≤ 50 ms.
//! Run: `cargo bench --bench rules -- --warm-up-time 1 --measurement-time 3`

use std::fmt::Write as _;
use std::hint::black_box;

use clawgate::config::ClassifierConfig;
use clawgate::request::ChatRequest;
use clawgate::router::{NoTrace, Previous, Remembered, RouteTable, RouteView, Router};
use clawgate::rules::{self, Providers};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const PROVIDERS: &[&str] = &[
    "deepseek-chat",
    "deepseek-reasoner",
    "gemini-flash-lite",
    "gemini-flash",
    "openrouter-fallback",
];

fn stock_table() -> RouteTable {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let (sources, files) = rules::read_dir(dir.as_ref()).expect("stock rules");
    let (table, diags) = rules::build(&sources, &files, &Providers::all_loaded(PROVIDERS));
    table.unwrap_or_else(|| panic!("stock rules do not compile: {diags:?}"))
}

/// English-looking prose of about `bytes` bytes that triggers no stock keyword.
fn prose(bytes: usize) -> String {
    const TEXT: &str =
        "The committee met on Tuesday to review the quarterly figures for the northern \
        region. Sales of garden furniture rose after a mild spring, while orders for heating \
        equipment fell as expected. Several members asked whether the warehouse in the harbour \
        district could be rented out during the summer months, and the treasurer agreed to \
        prepare a short note on the likely income before the next meeting. ";
    let mut s = String::with_capacity(bytes + TEXT.len());
    while s.len() < bytes {
        s.push_str(TEXT);
    }
    s.truncate(bytes);
    s
}

fn body(system: &str, user: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "model": "auto",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
    }))
    .expect("json")
}

/// Pseudo-words built from common syllables: made of common letters (so no prefilter can
/// skip ahead on a rare byte) but not occurring in the prose.
fn word(rng: &mut u64) -> String {
    const SYL: &[&str] = &[
        "ta", "re", "mi", "so", "la", "ki", "no", "ve", "du", "pa", "ser", "tin", "mor", "gal",
        "ben", "cu", "dre", "fo", "hal", "jun",
    ];
    let mut w = String::new();
    for _ in 0..3 {
        *rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        w.push_str(SYL[((*rng >> 33) % SYL.len() as u64) as usize]);
    }
    w
}

/// `n` rules of mixed kinds, none of which matches the bench request, then a default.
fn generated_rules(n: usize) -> String {
    let mut rng = 42u64;
    let mut src = String::new();
    let sets = (n / 10).max(1);
    for s in 0..sets {
        let words: Vec<String> = (0..8).map(|_| format!("\"{}\"", word(&mut rng))).collect();
        let _ = writeln!(src, "keywords set{s} {{ {} }}", words.join(", "));
    }
    src.push_str("layer heuristic {\n");
    for i in 0..n {
        let cond = match i % 10 {
            0..=2 => format!("score(set{}) >= 2", i % sets),
            3 | 4 => format!(
                "last_user contains any [\"{}\", \"{}\", \"{}\"]",
                word(&mut rng),
                word(&mut rng),
                word(&mut rng)
            ),
            5 => format!("tokens > {}m and messages < {}", 10 + i, 3 + i % 5),
            6 => format!("last_user matches /{}[0-9]{{3}}{}/", word(&mut rng), i),
            7 => format!("model in [\"m{i}\", \"alias-{i}\"]"),
            8 => format!("header(\"x-tenant\") == \"tenant-{i}\""),
            _ => format!("system contains \"{}\" and not tools", word(&mut rng)),
        };
        let _ = writeln!(src, "  rule r{i} when {cond} route deepseek-chat");
    }
    src.push_str("}\ndefault route deepseek-chat\n");
    src
}

fn decisions(c: &mut Criterion) {
    let stock = stock_table();
    let headers = http::HeaderMap::new();

    let two_kb = body(&prose(500), &prose(1_548));
    let req = ChatRequest::parse(&two_kb).expect("request");
    let d = stock.decide(&req, &headers);
    assert_eq!(
        &*d.rule, "default",
        "the 2 KB prompt must reach the default"
    );
    c.bench_function("stock rules, 2 KB prompt (all rules tried)", |b| {
        b.iter(|| black_box(stock.decide(black_box(&req), &headers)))
    });

    for (name, model) in [
        ("turn-local-main", None),
        ("turn-local-main", Some("auto")),
        ("heartbeat", None),
        ("subagent-child", None),
    ] {
        let path = format!(
            "{}/tests/fixtures/openclaw/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let recorded: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json");
        let mut body = recorded["body"].clone();
        if let Some(m) = model {
            body["model"] = m.into();
        }
        let bytes = serde_json::to_vec(&body).expect("json");
        let req = ChatRequest::parse(&bytes).expect("request");
        let label = format!(
            "stock rules, OpenClaw {name} (model {}, {} KB) -> {}",
            req.model,
            bytes.len() / 1024,
            stock.decide(&req, &headers).rule
        );
        c.bench_function(&label, |b| {
            b.iter(|| black_box(stock.decide(black_box(&req), &headers)))
        });
        c.bench_function(
            &format!("parse + decide, OpenClaw {name} (model {})", req.model),
            |b| {
                b.iter(|| {
                    let req = ChatRequest::parse(black_box(&bytes)).expect("request");
                    black_box(stock.decide(&req, &headers))
                })
            },
        );
    }

    // The server's path: lanes, the envelope peeled, the conversation key and a remembered
    // previous decision, on a first turn and on the 20th turn of the same conversation.
    let previous = Remembered(Some(Previous {
        provider: "deepseek-chat".into(),
        rule: "default".into(),
    }));
    let disabled = ClassifierConfig::disabled();
    let path = format!(
        "{}/tests/fixtures/openclaw/turn-local-main.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json");
    let mut first = recorded["body"].clone();
    first["model"] = "auto".into();
    let mut long = first.clone();
    {
        let messages = long["messages"].as_array_mut().expect("messages");
        let internal = messages.pop().expect("internal context");
        for turn in 1..20 {
            messages.push(serde_json::json!({"role": "assistant", "content": format!("Step {turn} done: the tests pass and the diff is small.")}));
            messages.push(serde_json::json!({"role": "user", "content": format!("[Thu 2026-11-26 04:{turn:02} UTC] ok, now step {}", turn + 1)}));
        }
        messages.push(internal);
    }
    for (label, body) in [("first turn", &first), ("20th turn", &long)] {
        let bytes = serde_json::to_vec(body).expect("json");
        let req = ChatRequest::parse(&bytes).expect("request");
        let router = Router::new(&stock, disabled, &|_| None).with_recall(&previous);
        let routed = router.route_now(RouteView::chat(&req, &headers), &mut NoTrace);
        c.bench_function(
            &format!(
                "stock rules with conversations, OpenClaw {label} ({} KB) -> {} (lane {})",
                bytes.len() / 1024,
                routed.decision.rule,
                routed.lane
            ),
            |b| {
                b.iter(|| {
                    black_box(router.route_now(
                        RouteView::chat(black_box(&req), &headers),
                        &mut NoTrace,
                    ))
                })
            },
        );
    }

    let big = body(&prose(2_000), &prose(32 * 1024));
    let req = ChatRequest::parse(&big).expect("request");
    let providers = Providers::all_loaded(PROVIDERS);
    let mut group = c.benchmark_group("generated rules, 32 KB prompt");
    for n in [10usize, 100, 1_000] {
        let table = rules::compile_str(&generated_rules(n), &providers)
            .unwrap_or_else(|r| panic!("generated rules do not compile:\n{r}"));
        assert_eq!(&*table.decide(&req, &headers).rule, "default");
        group.bench_with_input(BenchmarkId::from_parameter(n), &table, |b, t| {
            b.iter(|| black_box(t.decide(black_box(&req), &headers)))
        });
    }
    group.finish();
}

fn compile_time(c: &mut Criterion) {
    let providers = Providers::all_loaded(PROVIDERS);
    let src = generated_rules(1_000);
    c.bench_function("parse + check + compile 1,000 rules", |b| {
        b.iter(|| black_box(rules::compile_str(black_box(&src), &providers).is_ok()))
    });

    // Where that time goes.
    let mut sources = rules::diag::SourceMap::new();
    let id = sources.add("generated.rules", src.clone());
    let mut group = c.benchmark_group("1,000 rules, by phase");
    group.bench_function("parse", |b| {
        b.iter(|| black_box(rules::parse::parse(&sources, id)))
    });
    let parsed = vec![rules::parse::parse(&sources, id).0];
    group.bench_function("check", |b| {
        b.iter(|| black_box(rules::check::check(&parsed, &providers, &sources)))
    });
    group.bench_function("compile", |b| {
        b.iter(|| black_box(rules::compile::compile(&parsed, Default::default()).is_ok()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = decisions, compile_time
}
criterion_main!(benches);
