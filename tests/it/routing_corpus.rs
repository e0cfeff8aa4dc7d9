//! Routing quality on the labeled corpus of OpenClaw-shaped requests
//! (`../shared/reference/routing-corpus`, beside the checkout; `CLAWGATE_ROUTING_CORPUS` names
//! another folder, `ROUTING_SET` another case file in it). Every case is built into the
//! request OpenClaw would send by the corpus's own `build.py`, routed with the stock
//! `config.yaml` (every provider loaded) and `rules/` through the serving walk, and compared
//! with its labeled tier. Prints the accuracy per tier, the confusion matrix and every miss.
//!
//! A severe miss sends a default, reasoning, vision or long case to the cheap tier, or an
//! image to a text-only (DeepSeek) provider. The test holds the stock rules to [`FLOOR`] and
//! no severe misroute, so routing quality can only go up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use clawgate::config::Config;
use clawgate::ingress::openai_chat;
use clawgate::router::{NoTrace, Router};
use serde_json::Value;

/// Least share of cases routed to their labeled tier, in percent.
const FLOOR: usize = 90;

/// The stock provider of each tier.
const TIERS: &[(&str, &str)] = &[
    ("cheap", "gemini-flash-lite"),
    ("default", "deepseek-chat"),
    ("reasoning", "deepseek-reasoner"),
    ("vision", "gemini-flash"),
    ("long", "gemini-flash"),
];

fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("CLAWGATE_ROUTING_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/routing-corpus"),
    };
    dir.join("build.py").exists().then_some(dir)
}

#[test]
fn the_stock_rules_route_the_labeled_corpus_no_worse_than_the_floor() {
    let set = std::env::var("ROUTING_SET").unwrap_or_else(|_| "dev.jsonl".into());
    route_set(Path::new(&set));
}

/// 60 more cases written to the corpus's label policy while the stock rules were drafted
/// (`tests/fixtures/routing/held-out.jsonl`; other wordings, languages and traps than the
/// corpus's): guards against rules that fit the 54 corpus cases and nothing else. The same
/// hands wrote these cases and the rules, so this is an optimistic measure of the unseen set.
#[test]
fn the_stock_rules_route_held_out_cases_written_to_the_same_policy() {
    route_set(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/routing/held-out.jsonl"));
}

/// Build every case of `set` (a file of the corpus folder, or any path) with the corpus's
/// builder, route it with the stock rules, print per-tier accuracy, the confusion matrix and
/// the misses, and hold the result to the floor.
fn route_set(set: &Path) {
    let set = set.display().to_string();
    let Some(dir) = corpus_dir() else {
        // CI has shared/ beside the checkout; elsewhere the corpus may simply not be there.
        assert!(
            std::env::var_os("CI").is_none(),
            "the routing corpus is missing: expected ../shared/reference/routing-corpus"
        );
        eprintln!("skipping: no routing corpus beside the checkout");
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let built = Command::new("python3")
        .arg(dir.join("build.py"))
        .arg(dir.join(&set))
        .arg(out.path())
        .output()
        .expect("python3 runs build.py");
    assert!(
        built.status.success(),
        "build.py failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // As `score.py` runs it: the stock config with every key set.
    let config = Config::load_with(&root.join("config.yaml"), &|name| {
        name.ends_with("_API_KEY").then(|| "x".to_owned())
    })
    .expect("stock config");
    let table = clawgate::rules::load_dir(&root.join("rules"), &config)
        .expect("stock rules")
        .table;
    let loaded: Vec<&str> = config.loaded_providers().map(|p| p.id.as_str()).collect();
    let lookup = |model: &str| loaded.contains(&model).then(|| Arc::from(model));
    let router = Router::new(&table, &config.classifier, &lookup);

    let cases = std::fs::read_to_string(dir.join(&set)).unwrap();
    let mut confusion: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut per_tier: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut total, mut hits, mut severe) = (0, 0, 0);
    let mut misses = Vec::new();
    for line in cases.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let id = case["id"].as_str().unwrap();
        let tier = case["tier"].as_str().unwrap();
        let image = case["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "image"));
        let body = std::fs::read(out.path().join(format!("{id}.json"))).unwrap();
        let headers = http::HeaderMap::new();
        let inbound = openai_chat::parse(&headers, &body).unwrap_or_else(|e| panic!("{id}: {e:?}"));
        let routed = router.route_now(inbound.view(&headers), &mut NoTrace);
        let chain = routed
            .decision
            .chain(&config.fallback_chain, |p| loaded.contains(&p));
        let provider = chain.first().copied().unwrap_or("none");
        let expected = TIERS.iter().find(|(t, _)| *t == tier).map(|(_, p)| *p);
        total += 1;
        *confusion
            .entry((tier.to_owned(), provider.to_owned()))
            .or_default() += 1;
        let row = per_tier.entry(tier.to_owned()).or_default();
        row.1 += 1;
        if Some(provider) == expected {
            hits += 1;
            row.0 += 1;
            continue;
        }
        let bad = (tier != "cheap" && provider == "gemini-flash-lite")
            || (image && provider.starts_with("deepseek"));
        severe += usize::from(bad);
        misses.push(format!(
            "{}{id}: {tier} -> {provider} ({}/{})",
            if bad { "SEVERE " } else { "" },
            routed.decision.layer.as_str(),
            routed.decision.rule
        ));
    }

    let providers: Vec<&str> = {
        let mut p: Vec<&str> = confusion.keys().map(|(_, p)| p.as_str()).collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    println!("routing corpus {set}: {total} cases");
    println!(
        "{:<10} {} accuracy",
        "tier",
        providers
            .iter()
            .map(|p| format!("{p:>18}"))
            .collect::<String>()
    );
    for (tier, _) in TIERS {
        let (ok, n) = per_tier.get(*tier).copied().unwrap_or_default();
        let cells: String = providers
            .iter()
            .map(|p| {
                let n = confusion
                    .get(&(tier.to_string(), p.to_string()))
                    .copied()
                    .unwrap_or(0);
                format!("{n:>18}")
            })
            .collect();
        println!("{tier:<10} {cells} {ok}/{n}");
    }
    for m in &misses {
        println!("miss {m}");
    }
    let accuracy = 100 * hits / total.max(1);
    println!("accuracy {accuracy}% ({hits}/{total}), severe {severe}");
    assert!(total > 0, "no cases in {set}");
    assert!(
        accuracy >= FLOOR && severe == 0,
        "routing quality fell: accuracy {accuracy}% (floor {FLOOR}%), severe {severe} (none allowed)"
    );
}
