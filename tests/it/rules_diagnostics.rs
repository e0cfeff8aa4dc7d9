//! How `clawgate check` renders diagnostics, snapshotted: a change in wording or layout is a
//! reviewed diff (`cargo insta review`, or `INSTA_UPDATE=always` then read the .snap files).

use crate::support::stock_providers;
use clawgate::config::Config;
use clawgate::rules::{self, Providers, Report, SourceMap};

fn report(files: &[(&str, &str)]) -> Report {
    report_with(files, &stock_providers())
}

fn report_with(files: &[(&str, &str)], providers: &Providers) -> Report {
    let mut sources = SourceMap::new();
    let ids: Vec<_> = files
        .iter()
        .map(|(name, text)| sources.add(format!("rules/{name}"), text.to_string()))
        .collect();
    let (_, diagnostics) = rules::build(&sources, &ids, providers);
    Report {
        sources,
        diagnostics,
        root: Some("rules".into()),
    }
}

const BROKEN_STATIC: &str = r#"# static rules with mistakes
layer static {
  rule heartbeat when last_user starts_with "Follow the heartbeat" route gemini-flsh
  rule explicit-reasoner when model = "r1" route deepseek-reasoner
  rule explicit-flash when modle contains "flash" route gemini-flash
  rule tiny when tokens contains "x" route deepseek-chat
  rule heartbeat when model == "cheap" route gemini-flash-lite
  rule mirror when last_user matches /(unclosed/ route openrouter-fallback
}
"#;

const BROKEN_HEURISTIC: &str = r#"keywords math { "prove", "theorem" = 2, "prove" }

layer heuristics {
  rule math-reasoning when score(maths) >= 2 route deepseek-reasoner
}

layer heuristic {
  rule never when score(math) >= 10 route deepseek-reasoner
  rule tools-first when tools route deepseek-chat
  rule tools-again when tools route deepseek-chat
  rule rule-without-route when images
  rule after when stream route deepseek-chat
}
"#;

#[test]
fn rendered_diagnostics_read_like_rustc() {
    let r = report(&[
        ("10-static.rules", BROKEN_STATIC),
        ("20-heuristic.rules", BROKEN_HEURISTIC),
    ]);
    insta::assert_snapshot!("broken_rules_text", r.render_text());
}

#[test]
fn json_diagnostics_carry_file_line_column_and_help() {
    let r = report(&[
        ("10-static.rules", BROKEN_STATIC),
        ("20-heuristic.rules", BROKEN_HEURISTIC),
    ]);
    let json = serde_json::to_string_pretty(&r.diagnostics_json()).unwrap();
    insta::assert_snapshot!("broken_rules_json", json);
}

#[test]
fn a_clean_file_has_only_the_missing_default_warning() {
    let r = report(&[(
        "10-static.rules",
        "layer static {\n  rule a when tools route deepseek-chat\n}\n",
    )]);
    insta::assert_snapshot!("missing_default", r.render_text());
}

/// The stock config's providers, every key set: their capabilities and fallback chain.
fn stock_config_providers() -> Providers {
    let text = include_str!("../../config.yaml");
    let keys = |name: &str| name.ends_with("_API_KEY").then(|| "k".to_owned());
    let cfg = Config::from_str(text, "config.yaml".as_ref(), &keys).unwrap();
    Providers::from_config(&cfg)
}

/// Rules whose routes cannot take what they get, for the capability warnings (W009, W010).
const UNFIT_ROUTES: &str = r#"layer heuristic {
  rule screenshots when images and tokens > 10 route deepseek-chat, deepseek-reasoner
  rule whole-repo when tokens > 200k route deepseek-chat
  rule agents when tools and not images route deepseek-chat
}

default route deepseek-chat
"#;

#[test]
fn a_rule_whose_own_providers_cannot_take_what_it_matches_is_warned_about() {
    let r = report_with(
        &[("20-heuristic.rules", UNFIT_ROUTES)],
        &stock_config_providers(),
    );
    insta::assert_snapshot!("capability_targets", r.render_text());
}

#[test]
fn a_route_whose_whole_chain_cannot_see_images_is_warned_about() {
    let mut providers = stock_config_providers();
    providers.fallback_chain = vec!["deepseek-chat".into(), "deepseek-reasoner".into()];
    let r = report_with(&[("20-heuristic.rules", UNFIT_ROUTES)], &providers);
    insta::assert_snapshot!("capability_chain", r.render_text());
}

#[test]
fn when_no_provider_has_vision_it_is_said_once() {
    let mut providers = stock_config_providers();
    for (_, caps) in &mut providers.capabilities {
        caps.vision = Some(false);
    }
    let r = report_with(&[("20-heuristic.rules", UNFIT_ROUTES)], &providers);
    insta::assert_snapshot!("capability_nowhere", r.render_text());
}

#[test]
fn the_stock_rules_and_config_have_no_capability_warnings() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let (sources, files) = rules::read_dir(dir.as_ref()).unwrap();
    let (_, diagnostics) = rules::build(&sources, &files, &stock_config_providers());
    assert_eq!(
        diagnostics,
        [],
        "the stock rules check clean against the stock config"
    );
}

#[test]
fn a_tools_rule_routed_only_to_a_provider_without_tools_is_warned_about() {
    let mut providers = stock_config_providers();
    for (id, caps) in &mut providers.capabilities {
        if id == "deepseek-chat" {
            caps.tools = Some(false);
        }
    }
    let r = report_with(&[("20-heuristic.rules", UNFIT_ROUTES)], &providers);
    let text = r.render_text();
    assert!(
        text.contains("warning[W009]: rule `agents` matches only requests with tools, but none of its providers has tools"),
        "{text}"
    );
    assert!(
        text.contains("add `deepseek-reasoner`, which has tools, to the route"),
        "the chain's next provider with tools is suggested: {text}"
    );
    assert_eq!(r.warnings(), 3, "{text}");
}
