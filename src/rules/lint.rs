//! Rules that can never match, and rules an earlier rule always wins over.
//!
//! Conditions are normalised into [`N`] (integer tests become ranges, `!=` becomes `not ==`,
//! lists become `or`s, text is lowercased) and reasoned about conservatively: a warning is
//! only given when it is certain, so some dead rules go unreported but none is reported
//! wrongly. The obvious cases are covered: contradictory ranges (`tokens < 10 and tokens >
//! 100`), scores above the sum of their set's weights, a condition identical to an earlier
//! one, a narrower version of an earlier condition (`tokens > 100k` after `tokens > 50k`), and
//! anything after a rule without `when`.

use std::collections::HashMap;

use super::ast::{CmpOp, RegexLit, Span, TextOp, Value};
use super::diag::{codes, Diagnostic, SourceMap};
use super::fields::{IntOperand, Resolved};
use crate::router::program::{BoolField, TextField};

/// A normalised condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum N {
    Always,
    And(Vec<N>),
    Or(Vec<N>),
    Not(Box<N>),
    /// `lo <= operand <= hi`
    Int {
        src: IntOperand,
        lo: u64,
        hi: u64,
    },
    Text {
        field: TextField,
        op: TOp,
        val: String,
    },
    Regex {
        field: TextField,
        src: String,
    },
    Bool(BoolField),
}

/// Text tests, on lowercased values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TOp {
    Eq,
    Contains,
    Prefix,
    Suffix,
}

/// A rule as the linter sees it.
pub struct LintRule<'a> {
    pub name: &'a str,
    pub span: Span,
    pub when_span: Span,
    pub cond: N,
}

/// The normal form of a comparison, `in` list or regex test.
pub fn test_node(r: &Resolved, cmp: Option<CmpOp>, vals: &[Value], re: Option<&RegexLit>) -> N {
    if let (Resolved::Text(field), Some(re)) = (r, re) {
        return N::Regex {
            field: field.clone(),
            src: re.source(),
        };
    }
    match r {
        Resolved::Int(src) => {
            let ints: Vec<u64> = vals
                .iter()
                .filter_map(|v| match v {
                    Value::Int(n) => Some(*n),
                    _ => None,
                })
                .collect();
            match (cmp, ints.as_slice()) {
                (Some(c), [v]) => int_node(src, c, *v),
                (_, list) => N::Or(list.iter().map(|v| int_node(src, CmpOp::Eq, *v)).collect()),
            }
        }
        Resolved::Text(field) => {
            let eqs: Vec<N> = vals
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(N::Text {
                        field: field.clone(),
                        op: TOp::Eq,
                        val: s.trim().to_lowercase(),
                    }),
                    _ => None,
                })
                .collect();
            match cmp {
                Some(CmpOp::Ne) => N::Not(Box::new(one_or_any(eqs))),
                _ => one_or_any(eqs),
            }
        }
        Resolved::Bool(f) => {
            let want = matches!(vals.first(), Some(Value::Bool(true)));
            let positive = want == (cmp != Some(CmpOp::Ne));
            if positive {
                N::Bool(*f)
            } else {
                N::Not(Box::new(N::Bool(*f)))
            }
        }
    }
}

/// The normal form of `contains`/`starts_with`/`ends_with` (with one value or `any` list).
pub fn text_node(r: &Resolved, op: TextOp, vals: &[Value]) -> N {
    let Resolved::Text(field) = r else {
        return N::Always;
    };
    let op = match op {
        TextOp::Contains => TOp::Contains,
        TextOp::StartsWith => TOp::Prefix,
        TextOp::EndsWith => TOp::Suffix,
    };
    let nodes: Vec<N> = vals
        .iter()
        .filter_map(|v| match v {
            Value::Str(s) => Some(if s.is_empty() {
                N::Always
            } else {
                N::Text {
                    field: field.clone(),
                    op,
                    val: s.to_lowercase(),
                }
            }),
            _ => None,
        })
        .collect();
    one_or_any(nodes)
}

fn one_or_any(mut nodes: Vec<N>) -> N {
    if nodes.len() == 1 {
        nodes.pop().unwrap_or(N::Or(vec![]))
    } else {
        N::Or(nodes)
    }
}

fn int_node(src: &IntOperand, c: CmpOp, v: u64) -> N {
    let (lo, hi) = match c {
        CmpOp::Eq | CmpOp::Ne => (v, v),
        CmpOp::Lt => match v.checked_sub(1) {
            Some(h) => (0, h),
            None => (1, 0),
        },
        CmpOp::Le => (0, v),
        CmpOp::Gt => match v.checked_add(1) {
            Some(l) => (l, u64::MAX),
            None => (1, 0),
        },
        CmpOp::Ge => (v, u64::MAX),
    };
    let n = N::Int {
        src: src.clone(),
        lo,
        hi,
    };
    if c == CmpOp::Ne {
        N::Not(Box::new(n))
    } else {
        n
    }
}

struct Cx<'a> {
    totals: &'a HashMap<String, u64>,
}

impl Cx<'_> {
    /// The values an integer operand can take.
    fn domain(&self, src: &IntOperand) -> (u64, u64) {
        match src {
            // The estimate is at least 1, and a request has at least one message.
            IntOperand::Tokens | IntOperand::Messages => (1, u64::MAX),
            IntOperand::MaxTokens | IntOperand::LastUserTokens | IntOperand::UserTurns => {
                (0, u64::MAX)
            }
            IntOperand::Score { set, .. } => (0, self.totals.get(set).copied().unwrap_or(0)),
        }
    }

    /// `Some(reason)` when `n` is false for every request.
    fn never(&self, n: &N) -> Option<String> {
        match n {
            N::Always | N::Text { .. } | N::Regex { .. } | N::Bool(_) => None,
            N::Int { src, lo, hi } => {
                let (dlo, dhi) = self.domain(src);
                if (*lo).max(dlo) > (*hi).min(dhi) {
                    Some(match src {
                        IntOperand::Score { set, .. } => format!(
                            "`{}` is at most {dhi} (the sum of set `{set}`'s weights), so it is never {}",
                            src.display(),
                            range_text(*lo, *hi)
                        ),
                        _ => format!("`{}` is never {}", src.display(), range_text(*lo, *hi)),
                    })
                } else {
                    None
                }
            }
            N::Not(inner) => self
                .always(inner)
                .then(|| "its condition is negated but always true".to_owned()),
            N::Or(parts) => {
                if parts.is_empty() {
                    return Some("an empty list matches nothing".into());
                }
                let reasons: Option<Vec<String>> = parts.iter().map(|p| self.never(p)).collect();
                reasons.map(|r| r.join("; "))
            }
            N::And(parts) => {
                if let Some(r) = parts.iter().find_map(|p| self.never(p)) {
                    return Some(r);
                }
                self.contradiction(parts)
            }
        }
    }

    /// Conjuncts that cannot hold together.
    fn contradiction(&self, parts: &[N]) -> Option<String> {
        let mut ranges: HashMap<&IntOperand, (u64, u64)> = HashMap::new();
        let mut eqs: HashMap<&TextField, &str> = HashMap::new();
        for p in parts {
            match p {
                N::Int { src, lo, hi } => {
                    let r = ranges.entry(src).or_insert_with(|| self.domain(src));
                    r.0 = r.0.max(*lo);
                    r.1 = r.1.min(*hi);
                    if r.0 > r.1 {
                        return Some(format!(
                            "the conditions on `{}` contradict each other",
                            src.display()
                        ));
                    }
                }
                N::Text {
                    field,
                    op: TOp::Eq,
                    val,
                } => {
                    if let Some(prev) = eqs.insert(field, val) {
                        if prev != val {
                            return Some(format!(
                                "`{}` cannot equal both {prev:?} and {val:?}",
                                field.display()
                            ));
                        }
                    }
                }
                _ => {}
            }
            let negated = N::Not(Box::new(p.clone()));
            if parts.contains(&negated) {
                return Some("it requires a condition and its negation".into());
            }
        }
        None
    }

    /// Whether `n` is true for every request.
    fn always(&self, n: &N) -> bool {
        match n {
            N::Always => true,
            N::Int { src, lo, hi } => {
                let (dlo, dhi) = self.domain(src);
                *lo <= dlo && *hi >= dhi
            }
            N::Text { .. } | N::Regex { .. } | N::Bool(_) => false,
            N::Not(inner) => self.never(inner).is_some(),
            N::Or(parts) => parts.iter().any(|p| self.always(p)),
            N::And(parts) => parts.iter().all(|p| self.always(p)),
        }
    }

    /// Whether every request matching `a` also matches `b` (conservative: `false` when unsure).
    fn implies(&self, a: &N, b: &N) -> bool {
        if a == b || self.always(b) {
            return true;
        }
        match (a, b) {
            (N::Or(xs), _) => !xs.is_empty() && xs.iter().all(|x| self.implies(x, b)),
            (_, N::And(ys)) => ys.iter().all(|y| self.implies(a, y)),
            (_, N::Or(ys)) if ys.iter().any(|y| self.implies(a, y)) => true,
            (N::And(xs), _) => xs.iter().any(|x| self.implies(x, b)),
            (N::Not(x), N::Not(y)) => self.implies(y, x),
            (
                N::Int {
                    src: s1,
                    lo: l1,
                    hi: h1,
                },
                N::Int {
                    src: s2,
                    lo: l2,
                    hi: h2,
                },
            ) => {
                let (dlo, dhi) = self.domain(s1);
                s1 == s2 && (*l1).max(dlo) >= (*l2).max(dlo) && (*h1).min(dhi) <= (*h2).min(dhi)
            }
            (
                N::Text {
                    field: f1,
                    op: o1,
                    val: v1,
                },
                N::Text {
                    field: f2,
                    op: o2,
                    val: v2,
                },
            ) if f1 == f2 => match (o1, o2) {
                (TOp::Eq, TOp::Contains) | (TOp::Contains, TOp::Contains) => {
                    v1.contains(v2.as_str())
                }
                (TOp::Eq | TOp::Prefix, TOp::Prefix) => v1.starts_with(v2.as_str()),
                (TOp::Eq | TOp::Suffix, TOp::Suffix) => v1.ends_with(v2.as_str()),
                (TOp::Prefix | TOp::Suffix, TOp::Contains) => v1.contains(v2.as_str()),
                _ => false,
            },
            _ => false,
        }
    }
}

fn range_text(lo: u64, hi: u64) -> String {
    match (lo, hi) {
        (l, h) if l > h => "in an empty range".into(),
        (l, u64::MAX) => format!(">= {l}"),
        (0, h) => format!("<= {h}"),
        (l, h) if l == h => format!("== {l}"),
        (l, h) => format!("between {l} and {h}"),
    }
}

/// What a condition looks at, for pairing rules that might shadow each other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Int(IntOperand),
    Text(TextField),
    Bool(BoolField),
}

fn keys(n: &N, out: &mut Vec<Key>) {
    match n {
        N::Always => {}
        N::And(xs) | N::Or(xs) => xs.iter().for_each(|x| keys(x, out)),
        N::Not(x) => keys(x, out),
        N::Int { src, .. } => out.push(Key::Int(src.clone())),
        N::Text { field, .. } | N::Regex { field, .. } => out.push(Key::Text(field.clone())),
        N::Bool(b) => out.push(Key::Bool(*b)),
    }
}

/// Warnings for rules that never match or are shadowed, and for an unreachable `default`.
pub fn lint(
    rules: &[LintRule<'_>],
    default: Option<&super::ast::DefaultRoute>,
    totals: &HashMap<String, u64>,
    sources: &SourceMap,
) -> Vec<Diagnostic> {
    let cx = Cx { totals };
    let mut out = Vec::new();
    // Earlier live rules, indexed by what they look at; `catch_all` always match.
    let mut by_key: HashMap<Key, Vec<usize>> = HashMap::new();
    let mut catch_all: Option<usize> = None;
    let mut candidates: Vec<usize> = Vec::new();
    let mut ks = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        if let Some(reason) = cx.never(&r.cond) {
            out.push(
                Diagnostic::warning(
                    codes::NEVER_MATCHES,
                    format!("rule `{}` can never match", r.name),
                    Some(r.when_span),
                )
                .with_help(reason),
            );
            continue;
        }
        let shadowed_by = match catch_all {
            Some(j) => Some(j),
            None => {
                ks.clear();
                keys(&r.cond, &mut ks);
                candidates.clear();
                for k in &ks {
                    if let Some(v) = by_key.get(k) {
                        candidates.extend_from_slice(v);
                    }
                }
                candidates.sort_unstable();
                candidates.dedup();
                candidates
                    .iter()
                    .copied()
                    .find(|&j| cx.implies(&r.cond, &rules[j].cond))
            }
        };
        if let Some(j) = shadowed_by {
            let e = &rules[j];
            let how = if cx.always(&e.cond) {
                format!(
                    "rule `{}` at {} matches every request",
                    e.name,
                    sources.at(e.span)
                )
            } else if e.cond == r.cond {
                format!(
                    "rule `{}` at {} has the same condition and comes first",
                    e.name,
                    sources.at(e.span)
                )
            } else {
                format!(
                    "rule `{}` at {} matches every request this one does and comes first",
                    e.name,
                    sources.at(e.span)
                )
            };
            out.push(
                Diagnostic::warning(
                    codes::SHADOWED,
                    format!("rule `{}` is never reached", r.name),
                    Some(r.span),
                )
                .with_help(how),
            );
        }
        if cx.always(&r.cond) {
            catch_all.get_or_insert(i);
        } else {
            ks.clear();
            keys(&r.cond, &mut ks);
            ks.sort_by_key(|k| format!("{k:?}"));
            ks.dedup();
            for k in ks.drain(..) {
                by_key.entry(k).or_default().push(i);
            }
        }
    }
    if let (Some(d), Some(j)) = (default, catch_all) {
        out.push(
            Diagnostic::warning(codes::SHADOWED, "`default` is never used", Some(d.span))
                .with_help(format!(
                    "rule `{}` at {} matches every request",
                    rules[j].name,
                    sources.at(rules[j].span)
                )),
        );
    }
    out
}
