//! Routes whose providers cannot take the requests they get, judged from the providers'
//! `capabilities` in config.yaml (undeclared = capable, so nothing here fires without them):
//!
//! - W009: a rule whose condition only lets through requests with images (or tools, or a
//!   prompt of at least N tokens) while every one of its own targets has `vision: false` (or
//!   `tools: false`, or a `context_window` under N). The dispatcher skips them all for the
//!   fallback chain, so the rule does not do what it says.
//! - W010: a route (a rule, or the `default`) that may get images (or tools), whose whole
//!   chain, its targets then `fallback_chain`, has `vision: false` (`tools: false`) on every
//!   provider: such a request is sent to a provider that cannot take it. When no provider of
//!   config.yaml has the capability, this is said once rather than on every route.
//!
//! Conditions are read in the linter's normal form ([`N`]): "only lets through requests with
//! images" means every way the condition can be true has `images` true (`images and x`,
//! `images or (images and y)`); `not images` (or `images == false`) keeps images out.

use super::ast::{Ident, Span};
use super::check::{Collected, Providers};
use super::diag::{codes, Diagnostic};
use super::fields::IntOperand;
use super::lint::N;
use crate::config::Capabilities;
use crate::router::program::BoolField;
use crate::router::{Decision, Layer};
use std::sync::Arc;

/// A capability a request may need that a provider declares as true or false.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cap {
    Vision,
    Tools,
}

impl Cap {
    /// The request field that needs it.
    fn field(self) -> BoolField {
        match self {
            Cap::Vision => BoolField::Images,
            Cap::Tools => BoolField::Tools,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Cap::Vision => "vision",
            Cap::Tools => "tools",
        }
    }

    fn requests(self) -> &'static str {
        match self {
            Cap::Vision => "requests with images",
            Cap::Tools => "requests with tools",
        }
    }

    fn of(self, c: &Capabilities) -> Option<bool> {
        match self {
            Cap::Vision => c.vision,
            Cap::Tools => c.tools,
        }
    }
}

/// One route: a rule (with its condition) or the `default`.
struct Route<'a> {
    /// "rule `x`" or "the `default` route".
    what: String,
    /// `None` for the `default`: it takes any request.
    cond: Option<&'a N>,
    targets: &'a [Ident],
}

/// W009 and W010 for every rule (`conds` in the order of `col.rules`; `None` where the
/// condition has errors) and the `default`.
pub fn check(
    col: &Collected<'_>,
    conds: &[Option<N>],
    providers: &Providers,
    out: &mut Vec<Diagnostic>,
) {
    if providers.capabilities.iter().all(|(_, c)| c.is_unknown()) {
        return;
    }
    let mut routes: Vec<Route<'_>> = col
        .rules
        .iter()
        .zip(conds)
        .filter_map(|((_, rule), cond)| {
            Some(Route {
                what: format!("rule `{}`", rule.name.name),
                cond: Some(cond.as_ref()?),
                targets: &rule.route,
            })
        })
        .collect();
    if let Some(d) = col.default {
        routes.push(Route {
            what: "the `default` route".into(),
            cond: None,
            targets: &d.route,
        });
    }
    let caps = |id: &str| {
        providers
            .capabilities
            .iter()
            .find(|(p, _)| p == id)
            .map(|(_, c)| *c)
    };
    for cap in [Cap::Vision, Cap::Tools] {
        let mut lacking: Vec<(&Route<'_>, Vec<String>)> = Vec::new();
        for route in &routes {
            let targets: Vec<&str> = route
                .targets
                .iter()
                .map(|t| t.name.as_str())
                .filter(|id| caps(id).is_some())
                .collect();
            if targets.is_empty() {
                continue;
            }
            let chain = chain(&targets, &providers.fallback_chain, |id| caps(id).is_some());
            let lacks = |ids: &[&str]| {
                ids.iter()
                    .all(|id| caps(id).is_some_and(|c| cap.of(&c) == Some(false)))
            };
            let chain_ids: Vec<&str> = chain.iter().map(String::as_str).collect();
            let needed = route.cond.is_none_or(|c| !forces(c, cap.field(), false));
            if needed && lacks(&chain_ids) {
                lacking.push((route, chain));
            } else if route.cond.is_some_and(|c| forces(c, cap.field(), true)) && lacks(&targets) {
                out.push(targets_warning(
                    route, cap, &targets, &chain, providers, &caps,
                ));
            }
        }
        chain_warnings(cap, &lacking, providers, &caps, out);
    }
    for route in &routes {
        let Some(cond) = route.cond else { continue };
        let least = min_tokens(cond);
        let windows: Vec<(&str, Option<u64>)> = route
            .targets
            .iter()
            .filter_map(|t| Some((t.name.as_str(), caps(&t.name)?.context_window)))
            .collect();
        if least <= 1
            || windows.is_empty()
            || !windows.iter().all(|(_, w)| w.is_some_and(|w| w < least))
        {
            continue;
        }
        let listed: Vec<String> = windows
            .iter()
            .map(|(id, w)| format!("{id} {}", w.unwrap_or(0)))
            .collect();
        let targets: Vec<&str> = windows.iter().map(|(id, _)| *id).collect();
        let chain = chain(&targets, &providers.fallback_chain, |id| caps(id).is_some());
        let big_enough = |id: &&String| {
            !targets.contains(&id.as_str())
                && caps(id).is_some_and(|c| c.context_window.is_some_and(|w| w >= least))
        };
        let bigger = chain.iter().find(big_enough).or_else(|| {
            providers
                .capabilities
                .iter()
                .map(|(id, _)| id)
                .find(big_enough)
        });
        let them = if targets.len() == 1 { "it" } else { "them" };
        let d = Diagnostic::warning(
            codes::TARGETS_CANNOT_TAKE,
            format!(
                "{} matches only prompts of at least {least} tokens, more than the context window of any provider it routes to",
                route.what
            ),
            Some(targets_span(route.targets)),
        )
        .with_label(format!("context_window: {}", listed.join(", ")))
        .with_help(match bigger {
            Some(id) => format!(
                "the dispatcher skips {them} for fallback_chain; add `{id}`, whose context_window is {}, to the route",
                caps(id).and_then(|c| c.context_window).unwrap_or(0)
            ),
            None => format!("the dispatcher skips {them} for fallback_chain; no provider in config.yaml declares a context_window that large"),
        });
        out.push(d);
    }
}

/// W009 for a rule that only takes requests needing `cap` and routes only to providers
/// without it (while its chain has one that may take them).
fn targets_warning(
    route: &Route<'_>,
    cap: Cap,
    targets: &[&str],
    chain: &[String],
    providers: &Providers,
    caps: &dyn Fn(&str) -> Option<Capabilities>,
) -> Diagnostic {
    let d = Diagnostic::warning(
        codes::TARGETS_CANNOT_TAKE,
        format!(
            "{} matches only {}, but none of its providers has {}",
            route.what,
            cap.requests(),
            cap.key()
        ),
        Some(targets_span(route.targets)),
    )
    .with_label(format!("`{}: false`", cap.key()));
    match capable_provider(cap, providers, caps, targets, chain) {
        Some(id) => d.with_help(format!(
            "the dispatcher skips {} for fallback_chain; add `{id}`, which has {}, to the route",
            if targets.len() == 1 { "it" } else { "them" },
            cap.key()
        )),
        None => d.with_help(format!(
            "the dispatcher skips {} for fallback_chain; route to a provider with `{}: true`",
            if targets.len() == 1 { "it" } else { "them" },
            cap.key()
        )),
    }
}

/// W010 for each route whose whole chain lacks `cap`, or once when no provider has it.
fn chain_warnings(
    cap: Cap,
    lacking: &[(&Route<'_>, Vec<String>)],
    providers: &Providers,
    caps: &dyn Fn(&str) -> Option<Capabilities>,
    out: &mut Vec<Diagnostic>,
) {
    let Some((first, _)) = lacking.first() else {
        return;
    };
    let anywhere = providers
        .capabilities
        .iter()
        .any(|(_, c)| cap.of(c) != Some(false));
    if !anywhere {
        let others = lacking.len() - 1;
        out.push(
            Diagnostic::warning(
                codes::CHAIN_LACKS_CAPABILITY,
                format!(
                    "no provider in config.yaml has {}: {} go to providers that cannot take them",
                    cap.key(),
                    cap.requests()
                ),
                Some(targets_span(first.targets)),
            )
            .with_label(match others {
                0 => "this route may get them".to_owned(),
                1 => "this route and 1 other may get them".to_owned(),
                n => format!("this route and {n} others may get them"),
            })
            .with_help(format!(
                "add a provider with `capabilities: {{ {}: true }}` and route {} to it, or keep them out with `not {}`",
                cap.key(),
                cap.requests(),
                cap.field().as_str()
            )),
        );
        return;
    }
    for (route, chain) in lacking {
        let d = Diagnostic::warning(
            codes::CHAIN_LACKS_CAPABILITY,
            format!(
                "{} may get {}, but no provider of its chain has {}",
                route.what,
                cap.requests(),
                cap.key()
            ),
            Some(targets_span(route.targets)),
        )
        .with_label(format!("{}: all `{}: false`", chain.join(", "), cap.key()));
        let chain: Vec<&str> = chain.iter().map(String::as_str).collect();
        out.push(match capable_provider(cap, providers, caps, &chain, &[]) {
            Some(id) => d.with_help(format!(
                "add `{id}`, which has {}, to the route or to fallback_chain, or keep {} out with `not {}`",
                cap.key(),
                cap.requests(),
                cap.field().as_str()
            )),
            None => d.with_help(format!(
                "route to a provider with `{}: true`, or keep {} out with `not {}`",
                cap.key(),
                cap.requests(),
                cap.field().as_str()
            )),
        });
    }
}

/// A provider outside `except` that declares `cap`, to suggest: one of `prefer` (the route's
/// chain) if it has one, else the first defined.
fn capable_provider<'p>(
    cap: Cap,
    providers: &'p Providers,
    caps: &dyn Fn(&str) -> Option<Capabilities>,
    except: &[&str],
    prefer: &[String],
) -> Option<&'p str> {
    let ok = |id: &&str| !except.contains(id) && caps(id).is_some_and(|c| cap.of(&c) == Some(true));
    let defined = || providers.defined.iter().map(String::as_str);
    defined()
        .filter(|id| prefer.iter().any(|p| p == id))
        .find(ok)
        .or_else(|| defined().find(ok))
}

/// `targets` then `fallback`, each once, keeping what `keep` accepts: the chain as the
/// dispatcher forms it ([`Decision::chain_with`]), over the defined providers.
fn chain(targets: &[&str], fallback: &[String], keep: impl Fn(&str) -> bool) -> Vec<String> {
    let decision = Decision {
        layer: Layer::Static,
        rule: Arc::from(""),
        targets: targets.iter().map(|t| Arc::from(*t)).collect(),
    };
    decision.chain_with(fallback.iter().map(String::as_str), |id| {
        keep(id).then(|| id.to_owned())
    })
}

/// From the first target to the last (on the first's line when they span several).
fn targets_span(targets: &[Ident]) -> Span {
    match (targets.first(), targets.last()) {
        (Some(first), Some(last)) if last.span.file == first.span.file => Span {
            end: last.span.end.max(first.span.end),
            ..first.span
        },
        (Some(first), _) => first.span,
        _ => Span::default(),
    }
}

/// Whether every request `n` is true for has `field == want`.
fn forces(n: &N, field: BoolField, want: bool) -> bool {
    match n {
        N::Bool(f) => want && *f == field,
        N::Not(inner) => implied_by(inner, field, !want),
        N::And(v) => v.iter().any(|x| forces(x, field, want)),
        N::Or(v) => !v.is_empty() && v.iter().all(|x| forces(x, field, want)),
        _ => false,
    }
}

/// Whether `n` is true for every request with `field == value`.
fn implied_by(n: &N, field: BoolField, value: bool) -> bool {
    match n {
        N::Always => true,
        N::Bool(f) => value && *f == field,
        N::Not(inner) => forces(inner, field, !value),
        N::Or(v) => v.iter().any(|x| implied_by(x, field, value)),
        N::And(v) => v.iter().all(|x| implied_by(x, field, value)),
        _ => false,
    }
}

/// The fewest `tokens` a request `n` is true for can have (1: no bound found).
fn min_tokens(n: &N) -> u64 {
    match n {
        N::Int {
            src: IntOperand::Tokens,
            lo,
            ..
        } => (*lo).max(1),
        N::Not(inner) => match inner.as_ref() {
            N::Int {
                src: IntOperand::Tokens,
                lo: 0 | 1,
                hi,
            } => hi.saturating_add(1),
            _ => 1,
        },
        N::And(v) => v.iter().map(min_tokens).max().unwrap_or(1),
        N::Or(v) => v.iter().map(min_tokens).min().unwrap_or(1),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(lo: u64, hi: u64) -> N {
        N::Int {
            src: IntOperand::Tokens,
            lo,
            hi,
        }
    }

    #[test]
    fn a_condition_forces_images_when_every_way_it_is_true_has_them() {
        let images = || N::Bool(BoolField::Images);
        let tools = || N::Bool(BoolField::Tools);
        let not = |n: N| N::Not(Box::new(n));
        let yes = [
            images(),
            N::And(vec![tools(), images()]),
            N::Or(vec![images(), N::And(vec![images(), tools()])]),
            not(not(images())),
        ];
        for n in &yes {
            assert!(forces(n, BoolField::Images, true), "{n:?}");
            assert!(!forces(n, BoolField::Images, false), "{n:?}");
        }
        let no = [
            N::Or(vec![images(), tools()]),
            not(images()),
            tools(),
            N::Always,
        ];
        for n in &no {
            assert!(!forces(n, BoolField::Images, true), "{n:?}");
        }
        // Kept out: `not images`, `not (images or tools)`, `tools and not images`.
        for n in [
            not(images()),
            not(N::Or(vec![images(), tools()])),
            N::And(vec![tools(), not(images())]),
        ] {
            assert!(forces(&n, BoolField::Images, false), "{n:?}");
        }
        assert!(!forces(
            &not(N::And(vec![images(), tools()])),
            BoolField::Images,
            false
        ));
    }

    #[test]
    fn the_fewest_tokens_a_condition_lets_through() {
        assert_eq!(min_tokens(&tokens(200_001, u64::MAX)), 200_001);
        assert_eq!(min_tokens(&N::Not(Box::new(tokens(0, 99)))), 100);
        assert_eq!(min_tokens(&tokens(0, 99)), 1);
        assert_eq!(
            min_tokens(&N::And(vec![
                tokens(50_001, u64::MAX),
                tokens(100_000, u64::MAX)
            ])),
            100_000
        );
        assert_eq!(
            min_tokens(&N::Or(vec![
                tokens(50_001, u64::MAX),
                tokens(100_000, u64::MAX)
            ])),
            50_001
        );
        assert_eq!(
            min_tokens(&N::Or(vec![
                tokens(50_001, u64::MAX),
                N::Bool(BoolField::Images)
            ])),
            1
        );
    }
}
