//! How `clawgate check` renders diagnostics, snapshotted: a change in wording or layout is a
//! reviewed diff (`cargo insta review`, or `INSTA_UPDATE=always` then read the .snap files).

use crate::support::stock_providers;
use clawgate::rules::{self, Report, SourceMap};

fn report(files: &[(&str, &str)]) -> Report {
    let providers = stock_providers();
    let mut sources = SourceMap::new();
    let ids: Vec<_> = files
        .iter()
        .map(|(name, text)| sources.add(format!("rules/{name}"), text.to_string()))
        .collect();
    let (_, diagnostics) = rules::build(&sources, &ids, &providers);
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
