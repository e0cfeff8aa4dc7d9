//! The stock rules in `rules/` against the stock `config.yaml`: they check clean, their rule
//! tests pass, and they route the original ClawGate's test cases as it intended.

use std::path::Path;

use clawgate::rules::cmd::{check_cmd, Format};

#[test]
fn stock_rules_check_clean_and_their_rule_tests_pass() {
    let mut out = Vec::new();
    let code = check_cmd(
        Path::new("config.yaml"),
        Path::new("rules"),
        Format::Text,
        &mut out,
    );
    let text = String::from_utf8_lossy(&out);
    println!("{text}");
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("error["), "{text}");
}
