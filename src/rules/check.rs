//! Semantic checks over parsed rule files: names, types, providers, duplicates, and rules that
//! can never match or are shadowed. Every finding is a [`Diagnostic`]; nothing stops at the
//! first error.

use std::collections::HashMap;

use super::ast::*;
use super::diag::{codes, did_you_mean, Diagnostic, SourceMap};
use super::fields::{resolve, IntOperand, Names, Resolved};
use super::lint::{self, N};
use crate::router::program::TextField;
use crate::router::Layer;

/// The provider ids rules may route to.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    /// Every provider `config.yaml` defines.
    pub defined: Vec<String>,
    /// The defined providers that are loaded (have a key).
    pub loaded: Vec<String>,
    /// `llm_classifier.enabled`.
    pub classifier_enabled: bool,
    /// The labels the classifier can answer (`llm_classifier.category_routing`'s keys).
    pub labels: Vec<String>,
    /// What each defined provider can take (`capabilities`), by id.
    pub capabilities: Vec<(String, crate::config::Capabilities)>,
    /// `fallback_chain`: the providers tried after a route's own.
    pub fallback_chain: Vec<String>,
}

impl Providers {
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Providers {
            defined: cfg.providers.iter().map(|p| p.id.clone()).collect(),
            loaded: cfg.loaded_providers().map(|p| p.id.clone()).collect(),
            classifier_enabled: cfg.classifier.enabled,
            labels: cfg.classifier.labels().map(str::to_owned).collect(),
            capabilities: cfg
                .providers
                .iter()
                .map(|p| (p.id.clone(), p.capabilities))
                .collect(),
            fallback_chain: cfg.fallback_chain.clone(),
        }
    }

    /// Every id defined and loaded (for tests and benches).
    pub fn all_loaded(ids: &[&str]) -> Self {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        Providers {
            defined: ids.clone(),
            loaded: ids,
            ..Providers::default()
        }
    }
}

/// The rules of all files, in evaluation order.
pub struct Collected<'a> {
    /// Keyword sets by name (the first definition of a name).
    pub sets: HashMap<String, &'a KeywordSet>,
    /// Envelopes in file and declaration order (the first definition of a name).
    pub envelopes: Vec<&'a EnvelopeDef>,
    /// Lanes in file and declaration order (the first definition of a name).
    pub lanes: Vec<&'a LaneDef>,
    /// Rules in evaluation order: static, heuristic, classifier; file order; declaration order.
    pub rules: Vec<(Layer, &'a Rule)>,
    /// The first `default`.
    pub default: Option<&'a DefaultRoute>,
}

/// Gather the files' items in evaluation order. Layers with unknown names are left out.
pub fn collect(files: &[RulesFile]) -> Collected<'_> {
    let mut sets = HashMap::new();
    let mut envelopes: Vec<&EnvelopeDef> = Vec::new();
    let mut lanes: Vec<&LaneDef> = Vec::new();
    let mut default = None;
    for f in files {
        for item in &f.items {
            match item {
                Item::Keywords(k) => {
                    sets.entry(k.name.name.clone()).or_insert(k);
                }
                Item::Envelope(e) => {
                    if !envelopes.iter().any(|x| x.name.name == e.name.name) {
                        envelopes.push(e);
                    }
                }
                Item::Lane(l) => {
                    if !lanes.iter().any(|x| x.name.name == l.name.name) {
                        lanes.push(l);
                    }
                }
                Item::Default(d) => {
                    default.get_or_insert(d);
                }
                Item::Layer(_) => {}
            }
        }
    }
    let mut rules = Vec::new();
    for layer in Layer::RULE_LAYERS {
        for f in files {
            for item in &f.items {
                if let Item::Layer(l) = item {
                    if Layer::from_rule_layer_name(&l.name.name) == Some(layer) {
                        rules.extend(l.rules.iter().map(|r| (layer, r)));
                    }
                }
            }
        }
    }
    Collected {
        sets,
        envelopes,
        lanes,
        rules,
        default,
    }
}

/// Check parsed files against the providers. Diagnostics come sorted by file and position.
pub fn check(files: &[RulesFile], providers: &Providers, sources: &SourceMap) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let col = collect(files);
    let set_spans = Names::of(&col);
    let mut set_totals: HashMap<String, u64> = HashMap::new();

    // Keyword sets: duplicates, empty or repeated keywords.
    let mut seen_sets: HashMap<&str, Span> = HashMap::new();
    for f in files {
        for item in &f.items {
            let Item::Keywords(k) = item else { continue };
            if let Some(first) = seen_sets.get(k.name.name.as_str()) {
                out.push(
                    Diagnostic::error(
                        codes::DUPLICATE_KEYWORD_SET,
                        format!("keyword set `{}` is defined twice", k.name.name),
                        Some(k.name.span),
                    )
                    .with_help(format!("the first definition is at {}", sources.at(*first))),
                );
                continue;
            }
            seen_sets.insert(&k.name.name, k.name.span);
            let mut words: HashMap<String, Span> = HashMap::new();
            let mut total = 0u64;
            for e in &k.entries {
                let folded = e.text.trim().to_lowercase();
                if folded.is_empty() {
                    out.push(
                        Diagnostic::error(codes::INVALID_LITERAL, "empty keyword", Some(e.span))
                            .with_help("a keyword is a word or a phrase"),
                    );
                    continue;
                }
                if let Some(first) = words.get(&folded) {
                    out.push(
                        Diagnostic::warning(
                            codes::UNUSED_KEYWORD,
                            format!(
                                "keyword {:?} is listed twice in set `{}`",
                                e.text, k.name.name
                            ),
                            Some(e.span),
                        )
                        .with_help(format!(
                            "keywords count once however often they occur; the first is at {}",
                            sources.at(*first)
                        )),
                    );
                    continue;
                }
                words.insert(folded, e.span);
                total = total.saturating_add(e.weight.max(0).unsigned_abs());
            }
            set_totals.insert(k.name.name.clone(), total);
        }
    }

    // Layers with unknown names.
    for f in files {
        for item in &f.items {
            if let Item::Layer(l) = item {
                if Layer::from_rule_layer_name(&l.name.name).is_none() {
                    let d = Diagnostic::error(
                        codes::UNKNOWN_LAYER,
                        format!("unknown layer `{}`", l.name.name),
                        Some(l.name.span),
                    );
                    let names = ["static", "heuristic", "classifier"];
                    out.push(match did_you_mean(&l.name.name, names) {
                        Some(h) => d.with_help(h),
                        None => d.with_help("layers are `static`, `heuristic` and `classifier`, tried in that order"),
                    });
                    // Still check its rules, so every mistake shows in one run.
                    for r in &l.rules {
                        let mut used = Vec::new();
                        if let Some(w) = &r.when {
                            check_expr(w, &set_spans, &mut out, &mut used);
                        }
                    }
                }
            }
        }
    }

    // Rules: names, conditions, targets.
    let mut names: HashMap<&str, Span> = HashMap::new();
    let mut used_sets: Vec<String> = Vec::new();
    let mut lintable: Vec<Option<N>> = Vec::new();
    let mut targets_seen: Vec<&Ident> = Vec::new();
    for (_, r) in &col.rules {
        if let Some(first) = names.get(r.name.name.as_str()) {
            out.push(
                Diagnostic::error(
                    codes::DUPLICATE_RULE,
                    format!("rule `{}` is defined twice", r.name.name),
                    Some(r.name.span),
                )
                .with_help(format!(
                    "rule names appear in X-ClawGate-Rule and in metrics, so they must be unique; the first is at {}",
                    sources.at(*first)
                )),
            );
        } else {
            names.insert(&r.name.name, r.name.span);
        }
        let n = match &r.when {
            None => Some(N::Always),
            Some(w) => check_expr(w, &set_spans, &mut out, &mut used_sets),
        };
        lintable.push(n);
        targets_seen.extend(r.route.iter());
    }

    check_classifier(&col, providers, &set_spans, &mut out);
    check_lanes(files, &col, &set_spans, sources, &mut out, &mut used_sets);
    super::capabilities::check(&col, &lintable, providers, &mut out);

    // Defaults.
    let mut defaults = files.iter().flat_map(|f| {
        f.items.iter().filter_map(|i| match i {
            Item::Default(d) => Some(d),
            _ => None,
        })
    });
    match defaults.next() {
        None => out.push(
            Diagnostic::warning(codes::MISSING_DEFAULT, "no `default` route", None).with_help(
                "requests no rule matches go to the first loaded provider of fallback_chain (layer `fallback`, rule `no-match`); add `default route PROVIDER` to say so explicitly",
            ),
        ),
        Some(first) => {
            targets_seen.extend(first.route.iter());
            for extra in defaults {
                out.push(
                    Diagnostic::error(
                        codes::DUPLICATE_DEFAULT,
                        "more than one `default` route",
                        Some(extra.span),
                    )
                    .with_help(format!("the first is at {}", sources.at(first.span))),
                );
                targets_seen.extend(extra.route.iter());
            }
        }
    }

    // Targets: unknown providers are errors; defined-but-not-loaded ones a warning, once each.
    let mut warned_unloaded: Vec<&str> = Vec::new();
    for t in targets_seen {
        if t.name == PREVIOUS {
            continue;
        }
        if !providers.defined.contains(&t.name) {
            let d = Diagnostic::error(
                codes::UNKNOWN_PROVIDER,
                format!("unknown provider `{}`", t.name),
                Some(t.span),
            );
            out.push(
                match did_you_mean(&t.name, providers.defined.iter().map(String::as_str)) {
                    Some(h) => d.with_help(h),
                    None if providers.defined.is_empty() => {
                        d.with_help("config.yaml defines no providers")
                    }
                    None => d.with_help(format!(
                        "providers defined in config.yaml: {}",
                        providers.defined.join(", ")
                    )),
                },
            );
        } else if !providers.loaded.contains(&t.name) && !warned_unloaded.contains(&t.name.as_str())
        {
            warned_unloaded.push(&t.name);
            out.push(
                Diagnostic::warning(
                    codes::PROVIDER_NOT_LOADED,
                    format!("provider `{}` is defined but not loaded", t.name),
                    Some(t.span),
                )
                .with_label("requests will skip it")
                .with_help("its api_key expands to empty; set the key (e.g. in .env) to use it"),
            );
        }
    }

    // Keyword sets no rule uses.
    for f in files {
        for item in &f.items {
            if let Item::Keywords(k) = item {
                if !used_sets.contains(&k.name.name)
                    && seen_sets.get(k.name.name.as_str()) == Some(&k.name.span)
                {
                    out.push(
                        Diagnostic::warning(
                            codes::UNUSED_KEYWORD,
                            format!("keyword set `{}` is never used", k.name.name),
                            Some(k.name.span),
                        )
                        .with_help(format!("use it in a rule: `score({}) >= 1`", k.name.name)),
                    );
                }
            }
        }
    }

    // Rules that can never match, or never get the chance.
    let rules: Vec<lint::LintRule<'_>> = col
        .rules
        .iter()
        .zip(lintable)
        .filter_map(|((_, r), n)| {
            n.map(|n| lint::LintRule {
                name: &r.name.name,
                span: r.name.span,
                when_span: r.when.as_ref().map(Expr::span).unwrap_or(r.name.span),
                cond: n,
            })
        })
        .collect();
    out.extend(lint::lint(&rules, col.default, &set_totals, sources));

    out.sort_by_key(|d| match d.span {
        Some(s) => (0, s.file, s.start),
        None => (1, 0, 0),
    });
    out
}

/// Type-check a condition; `Some` lint form when it has no errors.
fn check_expr(
    e: &Expr,
    sets: &Names,
    out: &mut Vec<Diagnostic>,
    used: &mut Vec<String>,
) -> Option<N> {
    match e {
        Expr::Or(parts, _) | Expr::And(parts, _) => {
            let lowered: Vec<Option<N>> = parts
                .iter()
                .map(|p| check_expr(p, sets, out, used))
                .collect();
            let lowered: Option<Vec<N>> = lowered.into_iter().collect();
            let lowered = lowered?;
            Some(if matches!(e, Expr::Or(..)) {
                N::Or(lowered)
            } else {
                N::And(lowered)
            })
        }
        Expr::Not(inner, _) => check_expr(inner, sets, out, used).map(|n| N::Not(Box::new(n))),
        Expr::Test(t) => check_test(t, sets, out, used),
    }
}

/// Classifier rules while the classifier is off, and `label` compared with a label the
/// classifier cannot answer.
fn check_classifier(
    col: &Collected<'_>,
    providers: &Providers,
    sets: &Names,
    out: &mut Vec<Diagnostic>,
) {
    for (layer, rule) in &col.rules {
        if *layer == Layer::Classifier && !providers.classifier_enabled {
            out.push(
                Diagnostic::warning(
                    codes::CLASSIFIER_DISABLED,
                    format!(
                        "rule `{}` is in layer classifier, but the classifier is disabled",
                        rule.name.name
                    ),
                    Some(rule.name.span),
                )
                .with_label("`label` is always \"\" here")
                .with_help("set `llm_classifier.enabled: true` in config.yaml"),
            );
        }
        if let Some(w) = &rule.when {
            label_literals(
                w,
                &mut |lit| {
                    let Value::Str(text) = &lit.value else { return };
                    let upper = text.trim().to_uppercase();
                    if upper.is_empty() || providers.labels.contains(&upper) {
                        return;
                    }
                    if *layer != Layer::Classifier && !providers.classifier_enabled {
                        return;
                    }
                    let d = Diagnostic::warning(
                        codes::UNKNOWN_LABEL,
                        format!("no classifier category produces the label {text:?}"),
                        Some(lit.span),
                    )
                    .with_label("this comparison is never true");
                    out.push(
                        match did_you_mean(&upper, providers.labels.iter().map(String::as_str)) {
                            Some(h) => d.with_help(h),
                            None if providers.labels.is_empty() => d.with_help(
                                "llm_classifier.category_routing in config.yaml lists no labels",
                            ),
                            None => d.with_help(format!(
                                "the classifier answers one of: {}",
                                providers.labels.join(", ")
                            )),
                        },
                    );
                },
                sets,
            );
        }
    }
}

/// Calls `f` on every literal a `label ==`, `!=` or `in` test compares with.
fn label_literals(e: &Expr, f: &mut dyn FnMut(&Literal), sets: &Names) {
    field_literals(e, &TextField::Label, f, sets)
}

/// Calls `f` on every literal a `field ==`, `!=` or `in` test compares with.
fn field_literals(e: &Expr, field: &TextField, f: &mut dyn FnMut(&Literal), sets: &Names) {
    match e {
        Expr::Or(v, _) | Expr::And(v, _) => {
            v.iter().for_each(|e| field_literals(e, field, f, sets))
        }
        Expr::Not(inner, _) => field_literals(inner, field, f, sets),
        Expr::Test(t) => {
            let is_label =
                matches!(resolve(&t.operand, sets), Ok(Resolved::Text(ref x)) if x == field);
            match &t.op {
                Some((Op::Cmp(CmpOp::Eq | CmpOp::Ne, lit), _)) if is_label => f(lit),
                Some((Op::In(list), _)) if is_label => list.iter().for_each(f),
                _ => {}
            }
        }
    }
}

fn check_test(
    t: &Test,
    sets: &Names,
    out: &mut Vec<Diagnostic>,
    used: &mut Vec<String>,
) -> Option<N> {
    let resolved = match resolve(&t.operand, sets) {
        Ok(r) => r,
        Err(d) => {
            out.push(d);
            return None;
        }
    };
    if let Resolved::Int(IntOperand::Score { set, .. }) = &resolved {
        if !used.contains(set) {
            used.push(set.clone());
        }
    }
    let name = resolved.display();
    let type_err = |msg: String, span: Span, help: String| {
        Diagnostic::error(codes::TYPE, msg, Some(span)).with_help(help)
    };
    let Some((op, op_span)) = &t.op else {
        return match resolved {
            Resolved::Bool(b) => Some(N::Bool(b)),
            Resolved::Text(_) => {
                out.push(type_err(
                    format!("`{name}` is text, not a condition"),
                    t.span,
                    format!("test it, e.g. `{name} contains \"...\"` or `{name} != \"\"`"),
                ));
                None
            }
            Resolved::Int(_) => {
                out.push(type_err(
                    format!("`{name}` is an integer, not a condition"),
                    t.span,
                    format!("compare it, e.g. `{name} >= 2`"),
                ));
                None
            }
        };
    };
    // Literals must have the operand's type.
    let want = match &resolved {
        Resolved::Text(_) => "text",
        Resolved::Int(_) => "integer",
        Resolved::Bool(_) => "boolean",
    };
    let check_lit = |lit: &Literal, out: &mut Vec<Diagnostic>| -> bool {
        if lit.value.type_name() == want {
            return true;
        }
        let example = match want {
            "text" => "\"...\"",
            "integer" => "100 or 30k",
            _ => "true or false",
        };
        out.push(type_err(
            format!(
                "`{name}` is {}, but {} is {}",
                resolved.type_name(),
                lit.value,
                match lit.value.type_name() {
                    "integer" => "an integer",
                    "boolean" => "a boolean",
                    _ => "text",
                }
            ),
            lit.span,
            format!("compare `{name}` with {want} values like {example}"),
        ));
        false
    };
    match (&resolved, op) {
        (Resolved::Text(_), Op::Cmp(c, _)) if !matches!(c, CmpOp::Eq | CmpOp::Ne) => {
            out.push(type_err(
                format!("`{}` does not apply to text", c.as_str()),
                *op_span,
                "text is compared with `==`, `!=`, `in`, `contains`, `starts_with`, `ends_with` or `matches`".into(),
            ));
            None
        }
        (Resolved::Bool(_), Op::Cmp(c, _)) if !matches!(c, CmpOp::Eq | CmpOp::Ne) => {
            out.push(type_err(
                format!("`{}` does not apply to a boolean", c.as_str()),
                *op_span,
                format!("use `{name}` or `not {name}`"),
            ));
            None
        }
        (Resolved::Int(_) | Resolved::Bool(_), Op::Text(o, _) | Op::TextAny(o, _)) => {
            out.push(type_err(
                format!(
                    "`{}` needs text, but `{name}` is {}",
                    o.as_str(),
                    resolved.type_name()
                ),
                *op_span,
                match resolved {
                    Resolved::Int(_) => {
                        format!("compare numbers with `==`, `<`, `>=`, ...: `{name} > 1000`")
                    }
                    _ => format!("use `{name}` or `not {name}`"),
                },
            ));
            None
        }
        (Resolved::Int(_) | Resolved::Bool(_), Op::Matches(_)) => {
            out.push(type_err(
                format!(
                    "`matches` needs text, but `{name}` is {}",
                    resolved.type_name()
                ),
                *op_span,
                "regexes apply to model, user, last_user, system, label and header(...)".into(),
            ));
            None
        }
        (Resolved::Bool(_), Op::In(_)) => {
            out.push(type_err(
                "`in` does not apply to a boolean".into(),
                *op_span,
                format!("use `{name}` or `not {name}`"),
            ));
            None
        }
        (_, Op::Cmp(c, lit)) => {
            if !check_lit(lit, out) {
                return None;
            }
            Some(lint::test_node(
                &resolved,
                Some(*c),
                std::slice::from_ref(&lit.value),
                None,
            ))
        }
        (_, Op::In(list)) => {
            let mut ok = true;
            for l in list {
                ok &= check_lit(l, out);
            }
            if !ok {
                return None;
            }
            let vals: Vec<Value> = list.iter().map(|l| l.value.clone()).collect();
            Some(lint::test_node(&resolved, None, &vals, None))
        }
        (_, Op::Text(o, lit)) => {
            if !check_lit(lit, out) {
                return None;
            }
            Some(lint::text_node(
                &resolved,
                *o,
                std::slice::from_ref(&lit.value),
            ))
        }
        (_, Op::TextAny(o, list)) => {
            let mut ok = true;
            for l in list {
                ok &= check_lit(l, out);
            }
            if !ok {
                return None;
            }
            let vals: Vec<Value> = list.iter().map(|l| l.value.clone()).collect();
            Some(lint::text_node(&resolved, *o, &vals))
        }
        (_, Op::Matches(re)) => match validate_regex(re) {
            Ok(_) => Some(lint::test_node(&resolved, None, &[], Some(re))),
            Err(d) => {
                out.push(d);
                None
            }
        },
    }
}

/// The route target that names the conversation's previous provider.
pub const PREVIOUS: &str = "previous";

/// Envelopes and lanes: names unique, regexes valid and never matching only the empty text,
/// lane conditions well typed and independent of the lane and of routing's own answers, and
/// `lane` compared only with lanes that exist.
fn check_lanes(
    files: &[RulesFile],
    col: &Collected<'_>,
    names: &Names,
    sources: &SourceMap,
    out: &mut Vec<Diagnostic>,
    used: &mut Vec<String>,
) {
    let mut envelopes: HashMap<&str, Span> = HashMap::new();
    let mut lanes: HashMap<&str, Span> = HashMap::new();
    for f in files {
        for item in &f.items {
            match item {
                Item::Envelope(e) => {
                    if let Some(first) = envelopes.get(e.name.name.as_str()) {
                        out.push(
                            Diagnostic::error(
                                codes::LANE,
                                format!("envelope `{}` is defined twice", e.name.name),
                                Some(e.name.span),
                            )
                            .with_help(format!(
                                "the first definition is at {}",
                                sources.at(*first)
                            )),
                        );
                        continue;
                    }
                    envelopes.insert(&e.name.name, e.name.span);
                    match build_regex(&e.regex) {
                        Err(d) => out.push(d),
                        Ok(re) if re.is_match("") => out.push(
                            Diagnostic::error(
                                codes::LANE,
                                format!("envelope `{}` matches an empty text", e.name.name),
                                Some(e.regex.span),
                            )
                            .with_help("an envelope must match some text: use `+` rather than `*` for its body"),
                        ),
                        Ok(_) => {}
                    }
                }
                Item::Lane(l) => {
                    if l.name.name == crate::router::route::MAIN_LANE {
                        out.push(
                            Diagnostic::error(
                                codes::LANE,
                                "lane `main` is every request no other lane claims",
                                Some(l.name.span),
                            )
                            .with_help("give this lane another name"),
                        );
                    } else if let Some(first) = lanes.get(l.name.name.as_str()) {
                        out.push(
                            Diagnostic::error(
                                codes::LANE,
                                format!("lane `{}` is defined twice", l.name.name),
                                Some(l.name.span),
                            )
                            .with_help(format!(
                                "the first lane that matches wins; the first definition is at {}",
                                sources.at(*first)
                            )),
                        );
                        continue;
                    }
                    lanes.insert(&l.name.name, l.name.span);
                    check_expr(&l.when, names, out, used);
                    lane_reads(&l.when, names, out);
                }
                _ => {}
            }
        }
    }
    // `lane == "x"` / `lane in [...]` with a lane that does not exist.
    let conds = col
        .rules
        .iter()
        .filter_map(|(_, r)| r.when.as_ref())
        .chain(col.lanes.iter().map(|l| &l.when));
    for w in conds {
        field_literals(
            w,
            &TextField::Lane,
            &mut |lit| {
                let Value::Str(text) = &lit.value else { return };
                let text = text.trim();
                if text == crate::router::route::MAIN_LANE || lanes.contains_key(text) {
                    return;
                }
                let d = Diagnostic::error(
                    codes::LANE,
                    format!("no lane is called {text:?}"),
                    Some(lit.span),
                )
                .with_label("this comparison is never true");
                let known = names.lanes.iter().map(String::as_str).chain(["main"]);
                out.push(match did_you_mean(text, known) {
                    Some(h) => d.with_help(h),
                    None => d.with_help(format!(
                        "lanes are: {}",
                        names
                            .lanes
                            .iter()
                            .map(String::as_str)
                            .chain(["main"])
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                });
            },
            names,
        );
    }
}

/// A lane's condition reads the request only: not the lane (which it decides), the
/// classifier's label or the conversation's previous decision (which depend on it).
fn lane_reads(e: &Expr, names: &Names, out: &mut Vec<Diagnostic>) {
    match e {
        Expr::Or(v, _) | Expr::And(v, _) => v.iter().for_each(|e| lane_reads(e, names, out)),
        Expr::Not(inner, _) => lane_reads(inner, names, out),
        Expr::Test(t) => {
            let Ok(Resolved::Text(field)) = resolve(&t.operand, names) else {
                return;
            };
            let why = match field {
                TextField::Lane => "a lane condition decides the lane, so it cannot read it",
                TextField::Label => "lanes are decided before the classifier is asked",
                TextField::PreviousProvider | TextField::PreviousRule => {
                    "the conversation's previous decision is remembered per lane, so a lane cannot depend on it"
                }
                _ => return,
            };
            out.push(
                Diagnostic::error(
                    codes::LANE,
                    format!("a lane condition cannot read `{}`", field.display()),
                    Some(t.operand.span()),
                )
                .with_help(why),
            );
        }
    }
}

/// Check a regex's flags and syntax (cheap: parsing only; [`build_regex`] builds it).
pub fn validate_regex(re: &RegexLit) -> Result<(), Diagnostic> {
    check_flags(re)?;
    regex_syntax::ParserBuilder::new()
        .build()
        .parse(&re.source())
        .map(|_| ())
        .map_err(|e| {
            let msg = e.to_string();
            let msg = msg
                .lines()
                .rev()
                .find(|l| l.starts_with("error:"))
                .map(|l| l.trim_start_matches("error:").trim().to_owned())
                .unwrap_or(msg);
            regex_error(re, &msg)
        })
}

fn check_flags(re: &RegexLit) -> Result<(), Diagnostic> {
    match re.flags.chars().find(|c| !"imsxU".contains(*c)) {
        Some(bad) => Err(Diagnostic::error(
            codes::INVALID_REGEX,
            format!("unknown regex flag `{bad}`"),
            Some(re.span),
        )
        .with_help("flags are i (case-insensitive), m (multi-line), s (dot matches newline), x (verbose), U (lazy)")),
        None => Ok(()),
    }
}

fn regex_error(re: &RegexLit, msg: &str) -> Diagnostic {
    Diagnostic::error(
        codes::INVALID_REGEX,
        format!("invalid regex: {msg}"),
        Some(re.span),
    )
    .with_help("the syntax is Rust's `regex` crate: https://docs.rs/regex/#syntax")
}

/// Build a regex literal, or explain why it cannot be built.
pub fn build_regex(re: &RegexLit) -> Result<regex::Regex, Diagnostic> {
    validate_regex(re)?;
    regex::RegexBuilder::new(&re.source())
        .size_limit(1 << 20)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => regex_error(re, "the regex is too large"),
            other => regex_error(re, &other.to_string()),
        })
}
