//! Rule tests: `rules/tests/*.yaml`, run by `clawgate check`.
//!
//! Each file is a list of cases; a case is a request and the expected outcome:
//!
//! ```yaml
//! - name: a proof goes to the reasoner
//!   user: "Prove the theorem step by step using induction"   # or messages: [...]
//!   # repeat: 1000   (repeats `user`, for size thresholds)
//!   # model: auto   system: "..."   tools: 2   stream: true   max_tokens: 100
//!   # headers: { x-openclaw-source: subagent-42 }
//!   # request: { ...a whole request body... }
//!   # request_file: ../../tests/fixtures/openclaw/heartbeat.json   (relative to this file;
//!   #   a body, or a recording with "headers" and "body")
//!   expect: { rule: math-reasoning, layer: heuristic, provider: deepseek-reasoner }
//! ```
//!
//! Tests describe the rules, not the keys of the machine they run on: `provider` is the first
//! of the rule's targets and the fallback chain among providers *defined* in config.yaml,
//! loaded or not, and a `model` equal to a defined provider id is a direct request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::ClassifierConfig;
use crate::request::ChatRequest;
use crate::router::explain::Steps;
use crate::router::{Layer, Previous, Remembered, RouteTable, RouteView, Router};
use crate::rules::ast::{FileId, Span};
use crate::rules::diag::{codes, did_you_mean, Diagnostic, SourceMap};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    user: Option<String>,
    /// Repeat `user` this many times (to test size thresholds without a huge file).
    #[serde(default)]
    repeat: Option<usize>,
    #[serde(default)]
    messages: Option<serde_json::Value>,
    #[serde(default)]
    tools: Option<ToolsSpec>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    request: Option<serde_json::Value>,
    #[serde(default)]
    request_file: Option<String>,
    /// The conversation's previous decision (`{provider, rule}`), as the server remembers it.
    #[serde(default)]
    previous: Option<PreviousSpec>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviousSpec {
    provider: String,
    #[serde(default)]
    rule: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ToolsSpec {
    Flag(bool),
    Count(u32),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    layer: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    /// The request's lane.
    #[serde(default)]
    lane: Option<String>,
    /// `last_user` after the envelope is peeled.
    #[serde(default)]
    last_user: Option<String>,
}

/// What running the rule tests found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub files: usize,
    pub passed: usize,
    pub failed: usize,
    /// A diagnostic per failing case or unusable file.
    pub diagnostics: Vec<Diagnostic>,
}

/// Where a request's routing context comes from.
pub struct Routing<'a> {
    pub table: &'a RouteTable,
    /// Provider ids defined in config.yaml (tests treat them all as loaded).
    pub defined: &'a [String],
    pub fallback_chain: &'a [String],
}

/// Run every `*.yaml` / `*.yml` in `dir` (a missing directory means no tests).
pub fn run_dir(dir: &Path, routing: &Routing<'_>, sources: &mut SourceMap) -> Outcome {
    let mut out = Outcome::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    for p in paths {
        out.files += 1;
        match std::fs::read_to_string(&p) {
            Ok(text) => {
                let id = sources.add(p.clone(), text);
                run_file(id, routing, sources, &mut out);
            }
            Err(e) => {
                out.failed += 1;
                out.diagnostics.push(Diagnostic::error(
                    codes::INVALID_TEST,
                    format!("cannot read rule test file {}: {e}", p.display()),
                    None,
                ));
            }
        }
    }
    out
}

fn run_file(id: FileId, routing: &Routing<'_>, sources: &SourceMap, out: &mut Outcome) {
    let Some(file) = sources.get(id) else { return };
    let whole = sources.span(id, 0, file.text.len().min(1));
    let cases: Vec<Case> = match serde_yaml_ng::from_str::<Option<Vec<Case>>>(&file.text) {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => {
            out.failed += 1;
            let span = e
                .location()
                .map(|l| sources.span(id, l.index(), l.index() + 1))
                .unwrap_or(whole);
            let msg = e.to_string();
            let msg = msg
                .rsplit_once(" at line ")
                .map(|(m, _)| m.to_owned())
                .unwrap_or(msg);
            out.diagnostics.push(
                Diagnostic::error(codes::INVALID_TEST, format!("invalid rule test file: {msg}"), Some(span))
                    .with_help("a rule test file is a list of cases: `- name: ...` with `user:` or `messages:` and `expect: { rule: ... }`"),
            );
            return;
        }
    };
    let spans = case_spans(sources, id);
    let base = file
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for (i, case) in cases.iter().enumerate() {
        let span = spans.get(i).copied().unwrap_or(whole);
        match run_case(case, &base, routing) {
            Ok(()) => out.passed += 1,
            Err((msg, help)) => {
                out.failed += 1;
                let d = Diagnostic::error(codes::TEST_FAILED, msg, Some(span));
                out.diagnostics.push(match help {
                    Some(h) => d.with_help(h),
                    None => d,
                });
            }
        }
    }
}

/// The span of each top-level `- ` item of a YAML list.
fn case_spans(sources: &SourceMap, id: FileId) -> Vec<Span> {
    let Some(file) = sources.get(id) else {
        return vec![];
    };
    let mut items = Vec::new();
    let mut indent = None;
    let mut offset = 0;
    for line in file.text.split_inclusive('\n') {
        let trimmed = line.trim_start_matches(' ');
        let ind = line.len() - trimmed.len();
        if trimmed.starts_with("- ") || trimmed.trim_end() == "-" {
            let top = *indent.get_or_insert(ind);
            if ind == top {
                let start = offset + ind;
                let end = offset + line.trim_end().len();
                items.push(sources.span(id, start, end));
            }
        }
        offset += line.len();
    }
    items
}

type Failure = (String, Option<String>);

fn run_case(case: &Case, base: &Path, routing: &Routing<'_>) -> Result<(), Failure> {
    let (body, headers) = build_request(case, base)?;
    let bytes =
        serde_json::to_vec(&body).map_err(|e| (format!("case `{}`: {e}", case.name), None))?;
    let req = ChatRequest::parse(&bytes).map_err(|e| {
        (
            format!("case `{}`: invalid request: {}", case.name, e.message),
            None,
        )
    })?;
    let mut map = http::HeaderMap::new();
    for (k, v) in &headers {
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            (
                format!("case `{}`: invalid header name `{k}`", case.name),
                None,
            )
        })?;
        let value = http::HeaderValue::from_str(v).map_err(|_| {
            (
                format!("case `{}`: invalid value for header `{k}`", case.name),
                None,
            )
        })?;
        map.insert(name, value);
    }
    if let Some(rule) = &case.expect.rule {
        let known = rule == "explicit-model"
            || rule == "default"
            || rule == "no-match"
            || routing.table.rules().iter().any(|r| *r.name == **rule);
        if !known {
            let names = routing.table.rules().iter().map(|r| r.name.as_ref());
            return Err((
                format!("case `{}` expects unknown rule `{rule}`", case.name),
                did_you_mean(rule, names),
            ));
        }
    }
    // Rule tests run with the classifier disabled: they describe the rules alone.
    let disabled = ClassifierConfig::disabled();
    let defined = |model: &str| {
        routing
            .defined
            .iter()
            .any(|p| p == model)
            .then(|| std::sync::Arc::from(model))
    };
    let mut steps = Steps::default();
    let recall = Remembered(case.previous.as_ref().map(|p| Previous {
        provider: Arc::from(p.provider.as_str()),
        rule: Arc::from(p.rule.as_deref().unwrap_or("default")),
    }));
    let routed = Router::new(routing.table, disabled, &defined)
        .with_recall(&recall)
        .route_now(RouteView::chat(&req, &map), &mut steps);
    let facts = steps.facts.take();
    let decision = routed.decision;
    let trace = (decision.layer != Layer::Direct).then_some(steps.steps);
    let chain = decision.chain(routing.fallback_chain, |id| {
        routing.defined.iter().any(|p| p == id)
    });
    let provider = chain.first().copied().unwrap_or("(none)");
    let mut wrong = Vec::new();
    if let Some(r) = &case.expect.rule {
        if **r != *decision.rule {
            wrong.push(format!("rule `{r}`"));
        }
    }
    if let Some(l) = &case.expect.layer {
        if l != decision.layer.as_str() {
            wrong.push(format!("layer `{l}`"));
        }
    }
    if let Some(p) = &case.expect.provider {
        if p != provider {
            wrong.push(format!("provider `{p}`"));
        }
    }
    let mut got_more = String::new();
    if let Some(l) = &case.expect.lane {
        if **l != *routed.lane {
            wrong.push(format!("lane `{l}`"));
            got_more.push_str(&format!(", lane `{}`", routed.lane));
        }
    }
    if let (Some(want), Some(facts)) = (&case.expect.last_user, &facts) {
        let got = facts.last_user_full.as_str();
        if want.trim() != got {
            wrong.push(format!("last_user {want:?}"));
            got_more.push_str(&format!(", last_user {got:?}"));
        }
    }
    if wrong.is_empty() {
        return Ok(());
    }
    let msg = format!(
        "rule test `{}` failed: expected {}, got rule `{}` (layer `{}`, provider `{provider}`{got_more})",
        case.name,
        wrong.join(", "),
        decision.rule,
        decision.layer.as_str()
    );
    // Say why the expected rule did not win, from the trace.
    let help = trace.and_then(|t| {
        let expected = case.expect.rule.as_deref()?;
        match t.iter().find(|s| &*s.rule == expected) {
            Some(s) if !s.matched => Some(format!("`{expected}` did not match: {}", s.why)),
            Some(_) => None,
            None => t
                .last()
                .filter(|s| s.matched)
                .map(|s| format!("`{}` matched first: {}", s.rule, s.why)),
        }
    });
    Err((msg, help))
}

fn build_request(
    case: &Case,
    base: &Path,
) -> Result<(serde_json::Value, BTreeMap<String, String>), Failure> {
    let fail = |m: String| (format!("case `{}`: {m}", case.name), None);
    let mut headers = BTreeMap::new();
    let mut body = if let Some(file) = &case.request_file {
        let path = base.join(file);
        let text = std::fs::read(&path)
            .map_err(|e| fail(format!("cannot read request_file {}: {e}", path.display())))?;
        let v: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| fail(format!("request_file {} is not JSON: {e}", path.display())))?;
        let (body, recorded) = split_recording(v);
        headers.extend(recorded);
        body
    } else if let Some(r) = &case.request {
        r.clone()
    } else {
        let messages = match &case.messages {
            Some(m) => m.clone(),
            None => {
                let mut m = Vec::new();
                if let Some(s) = &case.system {
                    m.push(serde_json::json!({"role": "system", "content": s}));
                }
                if let Some(u) = &case.user {
                    let u = u.repeat(case.repeat.unwrap_or(1).clamp(1, 100_000));
                    m.push(serde_json::json!({"role": "user", "content": u}));
                }
                if m.is_empty() {
                    return Err(fail(
                        "needs `user`, `messages`, `request` or `request_file`".into(),
                    ));
                }
                serde_json::Value::Array(m)
            }
        };
        serde_json::json!({ "messages": messages })
    };
    let obj = body
        .as_object_mut()
        .ok_or_else(|| fail("the request must be a JSON object".into()))?;
    if let Some(m) = &case.model {
        obj.insert("model".into(), m.clone().into());
    }
    if let Some(s) = case.stream {
        obj.insert("stream".into(), s.into());
    }
    if let Some(n) = case.max_tokens {
        obj.insert("max_tokens".into(), n.into());
    }
    let n_tools = match case.tools {
        Some(ToolsSpec::Flag(true)) => 1,
        Some(ToolsSpec::Flag(false)) | None => 0,
        Some(ToolsSpec::Count(n)) => n,
    };
    if n_tools > 0 {
        let tools: Vec<serde_json::Value> = (0..n_tools)
            .map(|i| {
                serde_json::json!({"type": "function", "function": {
                    "name": format!("tool_{i}"), "parameters": {"type": "object"}}})
            })
            .collect();
        obj.insert("tools".into(), tools.into());
    }
    headers.extend(
        case.headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
    );
    Ok((body, headers))
}

/// A recorded request (`{"headers": {...}, "body": {...}}`) or a bare body.
pub fn split_recording(v: serde_json::Value) -> (serde_json::Value, BTreeMap<String, String>) {
    let mut headers = BTreeMap::new();
    match v {
        serde_json::Value::Object(mut o)
            if o.get("body").is_some_and(|b| b.is_object()) && !o.contains_key("messages") =>
        {
            if let Some(serde_json::Value::Object(h)) = o.remove("headers") {
                for (k, v) in h {
                    if let serde_json::Value::String(s) = v {
                        headers.insert(k.to_ascii_lowercase(), s);
                    }
                }
            }
            (o.remove("body").unwrap_or_default(), headers)
        }
        other => (other, headers),
    }
}
