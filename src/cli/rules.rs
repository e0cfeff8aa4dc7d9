//! The rule commands: `check`, `route --explain`, `import-config`. Each writes to `out` and
//! returns the process exit code, so `main.rs` only parses arguments.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::ruletest::{self, Routing};
use super::{Format, EXIT_CANNOT_RUN, EXIT_ERRORS, EXIT_OK};
use crate::classifier::{Asker, Classifier};
use crate::config::{Config, ProviderConfig};
use crate::ingress::openai_chat;
use crate::providers::capable::{self, Needs, Unfit};
use crate::request::ChatRequest;
use crate::router::explain::Steps;
use crate::router::route::{Answer, ClassifierUse};
use crate::router::{Layer, RouteTable, RouteView, Routed, Router};
use crate::router::{Previous, Remembered};
use crate::rules::diag::{codes, Report};
use crate::rules::{build, read_dir, LoadError, Providers};

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

/// How `route --explain` routes.
#[derive(Debug, Clone, Default)]
pub struct ExplainOptions {
    /// Really ask the classifier when the request reaches it.
    pub classify: bool,
    /// The conversation's previous decision, as the server would remember it
    /// (`--previous PROVIDER[:RULE]`); `None`: a conversation's first request.
    pub previous: Option<Previous>,
}

impl ExplainOptions {
    /// `PROVIDER` or `PROVIDER:RULE` (the rule defaults to `default`).
    pub fn parse_previous(text: &str) -> Option<Previous> {
        let (provider, rule) = text.split_once(':').unwrap_or((text, "default"));
        let provider = provider.trim();
        (!provider.is_empty()).then(|| Previous {
            provider: Arc::from(provider),
            rule: Arc::from(rule.trim()),
        })
    }
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
    options: ExplainOptions,
    out: &mut dyn Write,
) -> i32 {
    let ExplainOptions { classify, previous } = options;
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => return cannot_run(out, format, &format!("cannot load config: {e}")),
    };
    let table = match crate::rules::load_dir(rules, &cfg) {
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
    let mut headers = http::HeaderMap::new();
    for (k, v) in &recorded_headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            headers.insert(n, v);
        }
    }
    // The same ingress as the server's: the body checked and parsed, its routing view.
    let inbound = match openai_chat::parse(&headers, &bytes) {
        Ok(i) => i,
        Err(e) => return cannot_run(out, format, &format!("invalid request: {}", e.message)),
    };
    let loaded: Vec<&str> = cfg.loaded_providers().map(|p| p.id.as_str()).collect();
    let view = inbound.view(&headers);
    let recall = Remembered(previous);
    let (routed, Steps { steps, facts }) =
        match explain_route(&cfg, &table, &loaded, view, classify, &recall) {
            Ok(x) => x,
            Err(e) => return cannot_run(out, format, &e),
        };
    let Some(facts) = facts else {
        return cannot_run(out, format, "the walk recorded no request facts");
    };
    let classifier_note = classifier_note(&cfg.classifier.provider, &routed.classifier);
    let decision = routed.decision;
    let chain = decision.chain(&cfg.fallback_chain, |id| loaded.contains(&id));
    let skips = Skips::of(&cfg, &chain, &inbound.request);
    let provider = skips.provider;
    let result = match format {
        Format::Json => {
            let mut v = json!({
                "provider": provider,
                "chain": chain,
                "layer": decision.layer.as_str(),
                "rule": &*decision.rule,
                "targets": decision.targets.iter().map(|t| &**t).collect::<Vec<_>>(),
                "request": facts.json(),
                "trace": steps.iter().map(|s| json!({
                    "layer": s.layer.as_str(), "rule": &*s.rule, "matched": s.matched, "why": s.why,
                })).collect::<Vec<_>>(),
                "classifier": classifier_note,
            });
            skips.json(&mut v);
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
            s.push_str(&skips.text());
            s.push_str(&format!("layer:    {}\n", decision.layer.as_str()));
            s.push_str(&format!("rule:     {}\n", decision.rule));
            s.push_str(&format!("lane:     {}\n", facts.lane_line()));
            s.push_str(&format!("peeled:   {}\n", facts.peeled_line()));
            s.push_str(&format!("conversation: {}\n", facts.conversation_line()));
            s.push_str(&format!("request:  {}\n", facts.line()));
            if decision.layer == Layer::Direct {
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

/// What `route --explain` says about capabilities: the chain members the dispatcher would skip
/// for this request, and so the provider it would use first.
struct Skips<'a> {
    /// The first provider of the chain that is not skipped.
    provider: Option<&'a str>,
    /// Each skipped provider, why (`vision`, `tools`, `context`) and the detail.
    skipped: Vec<(&'a str, Unfit, String)>,
    /// When every member cannot take the request: why, for the note that none is skipped.
    none_fit: Option<String>,
}

impl<'a> Skips<'a> {
    fn of(cfg: &'a Config, chain: &[&'a str], req: &ChatRequest<'_>) -> Skips<'a> {
        let config = |id: &str| -> &'a ProviderConfig {
            cfg.providers
                .iter()
                .find(|p| p.id == id)
                .expect("a chain holds loaded providers")
        };
        let needs = Needs::of(req);
        let why = |id: &&'a str, unfit: Unfit| {
            let p = config(id);
            let caps = p.capabilities;
            match unfit {
                Unfit::Vision => "the request has images; `vision: false`".to_owned(),
                Unfit::Tools => "the request has tools; `tools: false`".to_owned(),
                Unfit::Context => format!(
                    "about {} prompt tokens + {} for the answer > `context_window: {}`",
                    needs.prompt_tokens,
                    needs.answer_tokens(p),
                    caps.context_window.unwrap_or(0)
                ),
            }
        };
        let unfit = capable::unfit(chain, || needs, |id| config(id));
        let skipped: Vec<_> = chain
            .iter()
            .zip(&unfit)
            .filter_map(|(id, u)| u.map(|u| (*id, u, why(id, u))))
            .collect();
        let none_fit = (!chain.is_empty() && skipped.is_empty())
            .then(|| {
                chain
                    .iter()
                    .map(|id| {
                        needs
                            .unfit_for(config(id))
                            .map(|u| format!("{id}: {}", u.as_str()))
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .flatten()
            .map(|all| {
                format!(
                    "no provider of the chain can take this request ({}), so it is tried as it is",
                    all.join(", ")
                )
            });
        let provider = chain
            .iter()
            .zip(&unfit)
            .find(|(_, u)| u.is_none())
            .map(|(id, _)| *id);
        Skips {
            provider,
            skipped,
            none_fit,
        }
    }

    /// `skipped:` lines under `chain:` (nothing when no provider is skipped).
    fn text(&self) -> String {
        let mut s = String::new();
        for (i, (id, unfit, why)) in self.skipped.iter().enumerate() {
            let head = if i == 0 { "skipped:  " } else { "          " };
            s.push_str(&format!("{head}{id} ({}: {why})\n", unfit.as_str()));
        }
        if let Some(note) = &self.none_fit {
            s.push_str(&format!("skipped:  none: {note}\n"));
        }
        s
    }

    /// `"skipped"`: `[{"provider", "reason", "why"}]`; `"skip_note"`: why none is skipped
    /// although every provider is unfit (or null).
    fn json(&self, v: &mut serde_json::Value) {
        let skipped: Vec<_> = self
            .skipped
            .iter()
            .map(|(id, unfit, why)| json!({"provider": id, "reason": unfit.as_str(), "why": why}))
            .collect();
        v["skipped"] = json!(skipped);
        v["skip_note"] = json!(self.none_fit);
    }
}

/// The serving walk over `view` with every step recorded. With `classify`, a request that
/// reaches the classifier layer really asks the classifier (one call to its provider);
/// otherwise the route taken when it gives no answer is shown.
fn explain_route(
    cfg: &Config,
    table: &RouteTable,
    loaded: &[&str],
    view: RouteView<'_>,
    classify: bool,
    recall: &Remembered,
) -> Result<(Routed, Steps), String> {
    let lookup = |model: &str| loaded.contains(&model).then(|| Arc::from(model));
    let router = Router::new(table, &cfg.classifier, &lookup).with_recall(recall);
    let mut steps = Steps::default();
    if !classify || !cfg.classifier.enabled {
        let routed = router.route_now(view, &mut steps);
        return Ok((routed, steps));
    }
    let providers = crate::providers::ProviderSet::build(cfg, None).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let classifier = Classifier::new();
    let metrics = crate::metrics::Metrics::disabled();
    let asker = Asker {
        classifier: &classifier,
        cfg: &cfg.classifier,
        provider: providers.get(&cfg.classifier.provider),
        metrics: &metrics,
    };
    let routed = runtime.block_on(router.route(view, &asker, &mut steps));
    Ok((routed, steps))
}

/// The `classifier:` line of an explanation.
fn classifier_note(provider: &str, used: &ClassifierUse) -> Option<String> {
    match used {
        ClassifierUse::NotReached => None,
        ClassifierUse::Skipped(why) => Some((*why).to_owned()),
        ClassifierUse::Asked(Answer::NotAsked) => Some(format!(
            "would ask `{provider}`; shown: the route when it gives no answer"
        )),
        ClassifierUse::Asked(Answer::Label(l)) => Some(format!("`{provider}` answered {l}")),
        ClassifierUse::Asked(Answer::Failed(e)) => {
            Some(format!("`{provider}` gave no answer: {e}"))
        }
    }
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
