//! The rule commands of the CLI: `check`, `route --explain`, `import-config`. Each writes to
//! `out` and returns the process exit code, so `main.rs` only parses arguments.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::diag::{codes, Report};
use super::ruletest::{self, Routing};
use super::{build, read_dir, LoadError, Providers};
use crate::config::Config;
use crate::request::ChatRequest;
use crate::router::Decision;

/// Output format of the commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Exit codes: as DESIGN.md specifies for `check`.
pub const EXIT_OK: i32 = 0;
pub const EXIT_ERRORS: i32 = 1;
pub const EXIT_CANNOT_RUN: i32 = 2;

/// `clawgate check`: parse and check every rule file, run `RULES/tests/*.yaml`, print every
/// diagnostic. Exit 0 when valid (warnings allowed), 1 when there are errors, 2 when it could
/// not run (unreadable config or rules directory).
pub fn check_cmd(config: &Path, rules: &Path, format: Format, out: &mut dyn Write) -> i32 {
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => return cannot_run(out, format, &format!("cannot load config: {e}")),
    };
    let (mut sources, files) = match read_dir(rules) {
        Ok(x) => x,
        Err(e) => return cannot_run(out, format, &e.to_string()),
    };
    let providers = Providers::from_config(&cfg);
    let (table, mut diagnostics) = build(&sources, &files, &providers);
    let rule_count = table.as_ref().map(|t| t.rule_count());
    let tests = match &table {
        Some(table) => {
            let routing = Routing {
                table,
                defined: &providers.defined,
                fallback_chain: &cfg.fallback_chain,
            };
            let outcome = ruletest::run_dir(&rules.join("tests"), &routing, &mut sources);
            diagnostics.extend(outcome.diagnostics.iter().cloned());
            Some(outcome)
        }
        None => None,
    };
    let report = Report {
        sources,
        diagnostics,
        root: Some(rules.to_owned()),
    };
    let errors = report.errors();
    let warnings = report.warnings();
    let result = match format {
        Format::Json => {
            let v = json!({
                "ok": errors == 0,
                "errors": errors,
                "warnings": warnings,
                "diagnostics": report.diagnostics_json(),
                "files": files.len(),
                "rules": rule_count,
                "tests": tests.as_ref().map(|t| json!({"passed": t.passed, "failed": t.failed})),
            });
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            )
        }
        Format::Text => {
            let mut text = report.render_text();
            let tests_line = match &tests {
                Some(t) if t.files > 0 => {
                    format!(", {} rule tests passed, {} failed", t.passed, t.failed)
                }
                Some(_) => String::new(),
                None => ", rule tests not run (fix the errors first)".into(),
            };
            let rules_part = match rule_count {
                Some(n) => format!("{n} rules"),
                None => "rules not compiled".into(),
            };
            text.push_str(&format!(
                "{}: {} files, {rules_part}{tests_line}; {errors} error{}, {warnings} warning{}\n",
                if errors == 0 { "ok" } else { "failed" },
                files.len(),
                if errors == 1 { "" } else { "s" },
                if warnings == 1 { "" } else { "s" },
            ));
            out.write_all(text.as_bytes())
        }
    };
    if result.is_err() {
        return EXIT_CANNOT_RUN;
    }
    if errors > 0 {
        EXIT_ERRORS
    } else {
        EXIT_OK
    }
}

fn cannot_run(out: &mut dyn Write, format: Format, message: &str) -> i32 {
    let _ = match format {
        Format::Json => {
            let d = json!({
                "severity": "error", "code": codes::CANNOT_RUN, "message": message,
                "file": null, "line": null, "column": null, "help": null,
            });
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&json!({
                    "ok": false, "errors": 1, "warnings": 0, "diagnostics": [d],
                }))
                .unwrap_or_default()
            )
        }
        Format::Text => writeln!(out, "error[{}]: {message}", codes::CANNOT_RUN),
    };
    EXIT_CANNOT_RUN
}

/// `clawgate route --explain`: where `request_json` would go and why, without any network.
/// `request_json` is a chat-completion body, or a recording `{"headers": {...}, "body": {...}}`
/// (like `tests/fixtures/openclaw/*.json`). The chain lists loaded providers only. Exit 0 with
/// a decision, 1 when the rules have errors, 2 when the config, rules or request are unusable.
pub fn route_explain_cmd(
    config: &Path,
    rules: &Path,
    format: Format,
    request_json: &[u8],
    classify: bool,
    out: &mut dyn Write,
) -> i32 {
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => return cannot_run(out, format, &format!("cannot load config: {e}")),
    };
    let table = match super::load_dir(rules, &cfg) {
        Ok(l) => l.table,
        Err(LoadError::Invalid(report)) => {
            let _ = write!(out, "{}", report.render_errors());
            let _ = writeln!(out, "the rules have errors; run `clawgate check`");
            return EXIT_ERRORS;
        }
        Err(e) => return cannot_run(out, format, &e.to_string()),
    };
    let value: serde_json::Value = match serde_json::from_slice(request_json) {
        Ok(v) => v,
        Err(e) => return cannot_run(out, format, &format!("the request is not JSON: {e}")),
    };
    let (body, recorded_headers) = ruletest::split_recording(value);
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let req = match ChatRequest::parse(&bytes) {
        Ok(r) => r,
        Err(e) => return cannot_run(out, format, &format!("invalid request: {}", e.message)),
    };
    let mut headers = http::HeaderMap::new();
    for (k, v) in &recorded_headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            headers.insert(n, v);
        }
    }
    let loaded: Vec<&str> = cfg.loaded_providers().map(|p| p.id.as_str()).collect();
    let mut classifier_note: Option<String> = None;
    let (decision, steps) = if loaded.contains(&req.model.as_ref()) {
        (Decision::direct(req.model.as_ref().into()), Vec::new())
    } else if !cfg.classifier.enabled {
        let t = super::explain::explain(&table, &req, &headers);
        (t.decision, t.steps)
    } else {
        let (d, steps, note) = explain_with_classifier(&cfg, &table, &req, &headers, classify);
        classifier_note = note;
        (d, steps)
    };
    let chain = decision.chain(&cfg.fallback_chain, |id| loaded.contains(&id));
    let provider = chain.first().copied();
    let result = match format {
        Format::Json => {
            let v = json!({
                "provider": provider,
                "chain": chain,
                "layer": decision.layer.as_str(),
                "rule": &*decision.rule,
                "targets": decision.targets.iter().map(|t| &**t).collect::<Vec<_>>(),
                "trace": steps.iter().map(|s| json!({
                    "layer": s.layer.as_str(), "rule": &*s.rule, "matched": s.matched, "why": s.why,
                })).collect::<Vec<_>>(),
                "classifier": classifier_note,
            });
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            )
        }
        Format::Text => {
            let mut s = String::new();
            s.push_str(&format!(
                "provider: {}\n",
                provider.unwrap_or("none (no provider in the chain is loaded; set API keys)")
            ));
            s.push_str(&format!(
                "chain:    {}\n",
                if chain.is_empty() {
                    "(empty)".into()
                } else {
                    chain.join(" -> ")
                }
            ));
            s.push_str(&format!("layer:    {}\n", decision.layer.as_str()));
            s.push_str(&format!("rule:     {}\n", decision.rule));
            if decision.layer == crate::router::Layer::Direct {
                s.push_str(
                    "\nthe model names a loaded provider, so the rules were not consulted\n",
                );
            } else if !steps.is_empty() {
                s.push_str("\nrules tried:\n");
                let width = steps.iter().map(|st| st.rule.len()).max().unwrap_or(0);
                for st in &steps {
                    s.push_str(&format!(
                        "  {:<10} {:<width$}  {}  {}\n",
                        st.layer.as_str(),
                        st.rule,
                        if st.matched { "match" } else { "no   " },
                        st.why,
                    ));
                }
            }
            if let Some(note) = &classifier_note {
                s.push_str(&format!("\nclassifier: {note}\n"));
            }
            out.write_all(s.as_bytes())
        }
    };
    if result.is_err() {
        EXIT_CANNOT_RUN
    } else {
        EXIT_OK
    }
}

/// The static and heuristic rules; then, if the request reaches the classifier layer, where
/// the classifier is asked: with `classify`, really (one call to the classifier provider),
/// else the route taken when it gives no answer. Also a line about the classifier, if reached.
fn explain_with_classifier(
    cfg: &Config,
    table: &crate::router::RouteTable,
    req: &ChatRequest<'_>,
    headers: &http::HeaderMap,
    classify: bool,
) -> (Decision, Vec<super::explain::Step>, Option<String>) {
    use crate::classifier::{self, Answer};
    use crate::router::Layer;
    let c = &cfg.classifier;
    let start = table.classifier_start();
    let (decided, mut steps) = super::explain::explain_rules(table, req, headers, "", 0..start);
    if let Some(d) = decided {
        return (d, steps, None);
    }
    let text = crate::router::features::last_user_text(req);
    if !classifier::worth_asking(table, c, &text) {
        let why = if text.trim().is_empty() {
            "not asked: the request has no user message to classify"
        } else {
            "not asked: no classifier rules and no category_routing"
        };
        let (d, more) =
            super::explain::explain_rules(table, req, headers, "", start..table.rules().len());
        steps.extend(more);
        let d = d.unwrap_or_else(|| table.default_decision());
        return (d, steps, Some(why.to_owned()));
    }
    let mut step = |matched: bool, why: String| {
        steps.push(super::explain::Step {
            layer: Layer::Classifier,
            rule: std::sync::Arc::from("llm-classifier"),
            matched,
            why,
        })
    };
    if !classify {
        let answer = Answer::Failed("not asked".into());
        let d = classifier::decide_with(table, c, req, headers, &answer);
        step(
            false,
            format!(
                "`{}` would be asked here (run with --classify to ask it)",
                c.provider
            ),
        );
        let note = format!(
            "would ask `{}`; shown: the route when it gives no answer",
            c.provider
        );
        return (d, steps, Some(note));
    }
    let answer = ask_classifier(cfg, &text);
    let (label, why) = match &answer {
        Answer::Label(l) => (l.to_string(), format!("`{}` answered {l}", c.provider)),
        Answer::Failed(e) => (
            String::new(),
            format!("`{}` gave no answer: {e}", c.provider),
        ),
    };
    step(!label.is_empty(), why.clone());
    let d = if matches!(answer, Answer::Label(_)) && table.has_classifier_rules() {
        let (d, more) =
            super::explain::explain_rules(table, req, headers, &label, start..table.rules().len());
        steps.extend(more);
        d.unwrap_or_else(|| table.default_decision())
    } else {
        classifier::decide_with(table, c, req, headers, &answer)
    };
    (d, steps, Some(why))
}

/// One real classification for `route --explain --classify`.
fn ask_classifier(cfg: &Config, text: &str) -> crate::classifier::Answer {
    use crate::classifier::{Answer, Classifier};
    let providers = match crate::providers::ProviderSet::build(cfg, None) {
        Ok(p) => p,
        Err(e) => return Answer::Failed(e.to_string().into()),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Answer::Failed(e.to_string().into()),
    };
    let metrics = crate::metrics::Metrics::disabled();
    let provider = providers.get(&cfg.classifier.provider);
    rt.block_on(Classifier::new().classify(&cfg.classifier, provider, text, &metrics))
}

/// `clawgate import-config OLD_CONFIG.yaml`: print the `.rules` equivalent of an original
/// ClawGate config's routing sections. Exit 0 on success, 2 when the file cannot be read or
/// holds nothing to import.
pub fn import_config_cmd(old_config: &Path, out: &mut dyn Write) -> i32 {
    let text = match std::fs::read_to_string(old_config) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(out, "error: cannot read {}: {e}", old_config.display());
            return EXIT_CANNOT_RUN;
        }
    };
    match super::import::import(&text) {
        Ok(rules) => {
            if out.write_all(rules.as_bytes()).is_err() {
                return EXIT_CANNOT_RUN;
            }
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(out, "error: {}: {e}", old_config.display());
            EXIT_CANNOT_RUN
        }
    }
}
