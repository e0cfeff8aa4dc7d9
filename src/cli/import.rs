//! `clawgate import-config`: the original ClawGate's `static_rules`, `heuristic_rules` and
//! `llm_classifier` sections → an equivalent `.rules` file, with `# WARNING` comments wherever
//! the meaning changes.
//!
//! The original's semantics, and how they map:
//! - static `match`: the keys of one block are OR-ed and `any:` short-circuits (other keys
//!   beside `any` were ignored) → `or`; `model_requested` was a substring test of the
//!   lowercased model → `model contains any [...]`; `system_prompt_contains` looked at the
//!   last system message → `system contains any [...]` (all system messages now).
//! - heuristic `match`: only the first present key counted, in the order `fallthrough`,
//!   `has_tools`, `estimated_tokens`, `message_keywords` → that key alone; `fallthrough` → a
//!   rule without `when`; keywords were substrings → a keyword set, matched as whole words.
//! - `llm_classifier.category_routing` → `layer classifier` rules on `label`.

use std::fmt::Write as _;

use serde_yaml_ng::Value;

/// Why a file could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not valid YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("the file has no static_rules, heuristic_rules or llm_classifier section")]
    NothingToImport,
}

/// Convert an original ClawGate config's text.
pub fn import(yaml: &str) -> Result<String, ImportError> {
    let root: Value = serde_yaml_ng::from_str(yaml)?;
    let get = |k: &str| root.get(k);
    if get("static_rules").is_none()
        && get("heuristic_rules").is_none()
        && get("llm_classifier").is_none()
    {
        return Err(ImportError::NothingToImport);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported from an original ClawGate config by `clawgate import-config`.\n\
         # Review every `# WARNING`, then run `clawgate check`.\n"
    );
    let mut names: Vec<String> = Vec::new();
    let mut has_catch_all = false;
    if let Some(s) = get("static_rules") {
        import_static(s, &mut out, &mut names);
    }
    if let Some(h) = get("heuristic_rules") {
        has_catch_all = import_heuristic(h, &mut out, &mut names);
    }
    if let Some(c) = get("llm_classifier") {
        import_classifier(c, &mut out, &mut names);
    }
    let first_fallback = root
        .get("fallback_chain")
        .and_then(Value::as_sequence)
        .and_then(|s| s.first())
        .and_then(Value::as_str)
        .map(str::to_owned);
    if has_catch_all {
        out.push_str(
            "# No `default`: the heuristic layer's fallthrough rule already matches every request.\n",
        );
    } else {
        let target = first_fallback.unwrap_or_else(|| "deepseek-chat".into());
        let _ = writeln!(
            out,
            "# The original sent unmatched requests to fallback_chain[0] (layer `fallback`, rule\n\
             # `no-match`); this default does the same but reports layer `default`, rule `default`.\n\
             default route {}",
            ident(&target)
        );
    }
    Ok(out)
}

fn enabled(section: &Value) -> bool {
    section
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn rules_of(section: &Value) -> Vec<&Value> {
    section
        .get("rules")
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

/// Write the layer, commented out when the original had it disabled.
fn emit_layer(out: &mut String, layer: &str, enabled: bool, body: &str, why_disabled: &str) {
    if enabled {
        let _ = writeln!(out, "layer {layer} {{\n{body}}}\n");
    } else {
        let _ = writeln!(out, "# {why_disabled}");
        let _ = writeln!(out, "# layer {layer} {{");
        for line in body.lines() {
            let _ = writeln!(out, "# {line}");
        }
        let _ = writeln!(out, "# }}\n");
    }
}

fn import_static(section: &Value, out: &mut String, names: &mut Vec<String>) {
    let mut body = String::new();
    for rule in rules_of(section) {
        let (name, name_warning) = rule_name(rule, names);
        let mut warnings: Vec<String> = name_warning.into_iter().collect();
        let cond = rule
            .get("match")
            .map(|m| static_match(m, &mut warnings))
            .unwrap_or_else(|| {
                warnings.push("the rule had no `match`; the original never matched it".into());
                None
            });
        write_rule(&mut body, &name, cond, rule.get("route_to"), &warnings);
    }
    emit_layer(
        out,
        "static",
        enabled(section),
        &body,
        "WARNING: static_rules was disabled (`enabled: false`) in the original; kept as comments.",
    );
}

/// `Some(condition)`, or `None` when nothing in the block can match.
fn static_match(m: &Value, warnings: &mut Vec<String>) -> Option<String> {
    if let Some(any) = m.get("any") {
        let others: Vec<String> = m
            .as_mapping()
            .map(|map| {
                map.keys()
                    .filter_map(Value::as_str)
                    .filter(|k| *k != "any")
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if !others.is_empty() {
            warnings.push(format!(
                "the original ignored {} next to `any:`; they are left out",
                others
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let parts: Vec<String> = any
            .as_sequence()
            .map(|s| {
                s.iter()
                    .filter_map(|sub| static_match(sub, warnings))
                    .collect()
            })
            .unwrap_or_default();
        return join_or(parts);
    }
    let mut parts = Vec::new();
    let mut keys = 0;
    if let Some(v) = m.get("model_requested") {
        keys += 1;
        let list = strings(v);
        if list.iter().any(|s| s.chars().any(char::is_uppercase)) {
            warnings.push(
                "the original compared these to the lowercased model, so uppercase patterns never matched; `contains` ignores case"
                    .into(),
            );
        }
        parts.push(format!("model contains any {}", list_text(&list)));
    }
    if let Some(v) = m.get("system_prompt_contains") {
        keys += 1;
        let list = strings(v);
        warnings.push(
            "the original searched only the last system message; `system` is every system and developer message"
                .into(),
        );
        let noisy: Vec<&String> = list
            .iter()
            .filter(|s| {
                let s = s.to_lowercase();
                s.contains("heartbeat") || s.contains("subagent") || s.contains("sub-agent")
            })
            .collect();
        if !noisy.is_empty() {
            warnings.push(format!(
                "OpenClaw's own system prompt names {} in its tool descriptions, so this matches every OpenClaw request; see the stock rules/10-static.rules for what really marks heartbeats and sub-agents",
                noisy.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
            ));
        }
        parts.push(format!("system contains any {}", list_text(&list)));
    }
    if let Some(h) = m.get("header_contains").and_then(Value::as_mapping) {
        keys += 1;
        for (name, patterns) in h {
            let Some(name) = name.as_str() else { continue };
            parts.push(format!(
                "header({}) contains any {}",
                quote(&name.to_ascii_lowercase()),
                list_text(&strings(patterns))
            ));
        }
    }
    if keys > 1 {
        warnings.push(
            "the original OR-ed the keys of one match block (any key matching was enough); kept as `or`"
                .into(),
        );
    }
    if let Some(map) = m.as_mapping() {
        for k in map.keys().filter_map(Value::as_str) {
            if !matches!(
                k,
                "model_requested" | "system_prompt_contains" | "header_contains"
            ) {
                warnings.push(format!(
                    "unknown match key `{k}` was ignored by the original and is left out"
                ));
            }
        }
    }
    join_or(parts)
}

/// Returns whether the layer holds a rule that matches everything.
fn import_heuristic(section: &Value, out: &mut String, names: &mut Vec<String>) -> bool {
    let mut body = String::new();
    let mut sets = String::new();
    let mut catch_all = false;
    for rule in rules_of(section) {
        let (name, name_warning) = rule_name(rule, names);
        let mut warnings: Vec<String> = name_warning.into_iter().collect();
        let m = rule.get("match");
        let present: Vec<&str> = [
            "fallthrough",
            "has_tools",
            "estimated_tokens",
            "message_keywords",
        ]
        .into_iter()
        .filter(|k| m.and_then(|m| m.get(*k)).is_some())
        .collect();
        if present.len() > 1 {
            warnings.push(format!(
                "the original only evaluated `{}` (the first of fallthrough, has_tools, estimated_tokens, message_keywords); {} left out",
                present[0],
                present[1..].iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        let cond: Option<Option<String>> = match (m, present.first().copied()) {
            (Some(m), Some("fallthrough")) => {
                if m.get("fallthrough")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                {
                    catch_all = true;
                    Some(None)
                } else {
                    warnings.push("`fallthrough: false` never matched in the original".into());
                    None
                }
            }
            (Some(m), Some("has_tools")) => {
                let want = m.get("has_tools").and_then(Value::as_bool).unwrap_or(false);
                Some(Some(if want {
                    "tools".into()
                } else {
                    "not tools".into()
                }))
            }
            (Some(m), Some("estimated_tokens")) => {
                let t = m.get("estimated_tokens");
                let lt = t.and_then(|t| t.get("less_than")).and_then(Value::as_u64);
                let gt = t
                    .and_then(|t| t.get("greater_than"))
                    .and_then(Value::as_u64);
                warnings.push(
                    "`tokens` also counts tool definitions (the original counted only messages), so it runs higher for requests with tools"
                        .into(),
                );
                let parts: Vec<String> = lt
                    .map(|n| format!("tokens < {n}"))
                    .into_iter()
                    .chain(gt.map(|n| format!("tokens > {n}")))
                    .collect();
                join_or(parts).map(Some)
            }
            (Some(m), Some("message_keywords")) => {
                let kw = m.get("message_keywords");
                let words = kw
                    .and_then(|k| k.get("any_of"))
                    .map(strings)
                    .unwrap_or_default();
                let min = kw
                    .and_then(|k| k.get("min_matches"))
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                let _ = writeln!(
                    sets,
                    "keywords {name} {{ {} }}\n",
                    words
                        .iter()
                        .map(|w| quote(w))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                warnings.push(
                    "keywords now match whole words and phrases; the original matched substrings (so \"hi\" matched \"this\" and \"no\" matched \"know\")"
                        .into(),
                );
                let short: Vec<&String> = words
                    .iter()
                    .filter(|w| {
                        w.chars().count() <= 3
                            && w.chars().all(crate::router::program::is_word_char)
                    })
                    .collect();
                if !short.is_empty() {
                    warnings.push(format!(
                        "short keywords change the most: {}",
                        short
                            .iter()
                            .map(|s| format!("{s:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                Some(Some(format!("score({name}) >= {min}")))
            }
            _ => {
                warnings.push("no known match key; the original never matched this rule".into());
                None
            }
        };
        match cond {
            Some(c) => write_rule_opt(&mut body, &name, c, rule.get("route_to"), &warnings),
            None => write_rule(&mut body, &name, None, rule.get("route_to"), &warnings),
        }
    }
    out.push_str(&sets);
    emit_layer(
        out,
        "heuristic",
        enabled(section),
        &body,
        "WARNING: heuristic_rules was disabled (`enabled: false`) in the original; kept as comments.",
    );
    catch_all && enabled(section)
}

fn import_classifier(section: &Value, out: &mut String, names: &mut Vec<String>) {
    let Some(routing) = section.get("category_routing").and_then(Value::as_mapping) else {
        return;
    };
    let mut body = String::new();
    let _ = writeln!(
        body,
        "  # The classifier itself (provider, prompt, timeout) stays in config.yaml: copy the\n  \
         # llm_classifier section there as it is. These rules route on its answer.\n  \
         # (The original's classifier never ran: nothing set its classify function.)"
    );
    for (cat, target) in routing {
        let Some(cat) = cat.as_str() else { continue };
        let (name, w) = rule_name_from(&format!("classified-as-{cat}"), names);
        let warnings: Vec<String> = w.into_iter().collect();
        write_rule(
            &mut body,
            &name,
            Some(format!("label == {}", quote(&cat.to_uppercase()))),
            Some(target),
            &warnings,
        );
    }
    emit_layer(
        out,
        "classifier",
        enabled(section),
        &body,
        "WARNING: llm_classifier was disabled (`enabled: false`) in the original; kept as comments.",
    );
}

fn write_rule_opt(
    body: &mut String,
    name: &str,
    cond: Option<String>,
    target: Option<&Value>,
    warnings: &[String],
) {
    for w in warnings {
        let _ = writeln!(body, "  # WARNING: {w}");
    }
    let target = target.and_then(Value::as_str).unwrap_or("deepseek-chat");
    match cond {
        Some(c) => {
            let _ = writeln!(body, "  rule {name} when {c}\n    route {}", ident(target));
        }
        None => {
            let _ = writeln!(body, "  rule {name} route {}", ident(target));
        }
    }
}

/// A rule; `cond: None` means nothing can match it, so it is written commented out.
fn write_rule(
    body: &mut String,
    name: &str,
    cond: Option<String>,
    target: Option<&Value>,
    warnings: &[String],
) {
    match cond {
        Some(c) => write_rule_opt(body, name, Some(c), target, warnings),
        None => {
            for w in warnings {
                let _ = writeln!(body, "  # WARNING: {w}");
            }
            let target = target.and_then(Value::as_str).unwrap_or("deepseek-chat");
            let _ = writeln!(
                body,
                "  # rule {name} when ... route {} (never matched; left out)",
                ident(target)
            );
        }
    }
}

fn rule_name(rule: &Value, names: &mut Vec<String>) -> (String, Option<String>) {
    let raw = rule
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("unnamed");
    rule_name_from(raw, names)
}

/// A valid, unique rule name; a warning when it had to change.
fn rule_name_from(raw: &str, names: &mut Vec<String>) -> (String, Option<String>) {
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        name.insert_str(0, "rule-");
    }
    let base = name.clone();
    let mut n = 2;
    while names.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    names.push(name.clone());
    let warning = (name != raw).then(|| {
        format!("renamed from {raw:?} (rule names are letters, digits, `-` and `_`, and unique); headers and metrics will show the new name")
    });
    (name, warning)
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(s) => s
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

fn join_or(parts: Vec<String>) -> Option<String> {
    match parts.len() {
        0 => None,
        1 => parts.into_iter().next(),
        _ => Some(
            parts
                .into_iter()
                .map(|p| {
                    if p.contains(" or ") {
                        format!("({p})")
                    } else {
                        p
                    }
                })
                .collect::<Vec<_>>()
                .join("\n      or "),
        ),
    }
}

fn list_text(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A string literal of the rule language.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A provider id as a route target: bare when the grammar allows, quoted otherwise.
fn ident(id: &str) -> String {
    let bare = id.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    if bare {
        id.to_owned()
    } else {
        quote(id)
    }
}
