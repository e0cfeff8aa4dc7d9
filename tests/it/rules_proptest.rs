//! Parsing, checking and deciding never panic: on random bytes, on mutations of the stock
//! rules, and on random request texts against the stock rules.

use clawgate::request::ChatRequest;
use clawgate::rules::{self, Providers, SourceMap};
use proptest::prelude::*;

fn providers() -> Providers {
    Providers::all_loaded(&[
        "deepseek-chat",
        "deepseek-reasoner",
        "gemini-flash-lite",
        "gemini-flash",
        "openrouter-fallback",
    ])
}

fn stock_source() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rules"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn build(text: &str) {
    let mut sources = SourceMap::new();
    let id = sources.add("fuzz.rules", text.to_owned());
    let (table, diags) = rules::build(&sources, &[id], &providers());
    // Rendering touches every span: it must not panic either.
    let report = rules::Report {
        sources,
        diagnostics: diags,
        root: None,
    };
    let _ = report.render_text();
    let _ = report.diagnostics_json();
    if let Some(t) = table {
        let body = br#"{"model":"auto","messages":[{"role":"user","content":"Prove \u00fcber this \\frac theorem step by step"}],"tools":[{"type":"function"}]}"#;
        let req = ChatRequest::parse(body).unwrap();
        let _ = t.decide(&req, &http::HeaderMap::new());
        let _ = clawgate::router::explain::explain(&t, &req, &http::HeaderMap::new());
    }
}

/// A piece of the language to splice into valid files.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just("\"".to_owned()),
        Just(" and ".to_owned()),
        Just(" or ".to_owned()),
        Just(" not ".to_owned()),
        Just(" rule x when ".to_owned()),
        Just(" route ".to_owned()),
        Just(" layer ".to_owned()),
        Just(" == ".to_owned()),
        Just(" >= 99999999999999999999k ".to_owned()),
        Just("/(/".to_owned()),
        Just("score(".to_owned()),
        Just("header(".to_owned()),
        Just("\\".to_owned()),
        Just("\n".to_owned()),
        Just("#".to_owned()),
        Just("证明".to_owned()),
        Just("\u{FEFF}".to_owned()),
        "[a-z_-]{1,8}".prop_map(|s| s),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        build(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        build(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_stock_rules_never_panic(
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..40), 0..4),
        inserts in proptest::collection::vec((any::<prop::sample::Index>(), token()), 0..6),
    ) {
        let mut text = stock_source();
        for (at, len) in cuts {
            let start = floor_char(&text, at.index(text.len() + 1));
            let end = floor_char(&text, (start + len).min(text.len()));
            text.replace_range(start..end, "");
        }
        for (at, tok) in inserts {
            let at = floor_char(&text, at.index(text.len() + 1));
            text.insert_str(at, &tok);
        }
        build(&text);
    }

    #[test]
    fn stock_rules_decide_any_text_without_panicking(text in "\\PC{0,300}", model in "[a-zA-Z0-9-]{0,12}") {
        let table = stock_table();
        let body = serde_json::to_vec(&serde_json::json!({
            "model": model,
            "messages": [{"role": "system", "content": &text}, {"role": "user", "content": &text}],
        })).unwrap();
        let req = ChatRequest::parse(&body).unwrap();
        let d = table.decide(&req, &http::HeaderMap::new());
        let t = clawgate::router::explain::explain(table, &req, &http::HeaderMap::new());
        prop_assert_eq!(d, t.decision);
    }
}

fn stock_table() -> &'static clawgate::router::RouteTable {
    static TABLE: std::sync::OnceLock<clawgate::router::RouteTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let (sources, files) =
            rules::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/rules").as_ref()).unwrap();
        rules::build(&sources, &files, &providers()).0.unwrap()
    })
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
