//! `route --explain`: the decision for a request and, for every rule tried before the winner,
//! the first condition that failed with the value it saw (`score(math) = 1, needs >= 2`).
//!
//! Explaining re-evaluates conditions through their tree form; deciding uses the flat
//! programs. Both read the same [`Features`], so they cannot disagree.

use std::sync::Arc;

use http::HeaderMap;

use crate::request::ChatRequest;
use crate::router::features::Features;
use crate::router::program::{BoolField, Cond, IntSource, Slot};
use crate::router::{Decision, Layer, RouteTable};

/// A condition's shape, kept for explanations.
#[derive(Debug, Clone)]
pub enum XCond {
    And(Vec<XCond>),
    Or(Vec<XCond>),
    Not(Box<XCond>),
    Test {
        cond: Cond,
        operand: XOperand,
        /// The operator and right-hand side as written (`None` for a bare boolean).
        op: Option<String>,
    },
}

/// What a test looked at, to show its value.
#[derive(Debug, Clone)]
pub enum XOperand {
    Text(Slot, String),
    Int(IntSource, String),
    Bool(BoolField),
    Unknown,
}

/// One rule tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub layer: Layer,
    pub rule: Arc<str>,
    pub matched: bool,
    /// For a rule that did not match, the first condition that failed and the value it saw;
    /// for the winner, what matched.
    pub why: String,
}

/// The decision and the rules tried on the way to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub decision: Decision,
    pub steps: Vec<Step>,
}

/// Decide like [`RouteTable::decide`], recording why each earlier rule did not match.
pub fn explain(table: &RouteTable, req: &ChatRequest<'_>, headers: &HeaderMap) -> Trace {
    let (decided, steps) = explain_rules(table, req, headers, "", 0..table.rules().len());
    Trace {
        decision: decided.unwrap_or_else(|| table.default_decision()),
        steps,
    }
}

/// Try the rules `range` of [`RouteTable::rules`] with `label` as the classifier's answer:
/// the first matching rule's decision (or `None`) and every rule tried.
pub fn explain_rules(
    table: &RouteTable,
    req: &ChatRequest<'_>,
    headers: &HeaderMap,
    label: &str,
    range: std::ops::Range<usize>,
) -> (Option<Decision>, Vec<Step>) {
    let mut f = Features::new(table, req, headers).with_label(label);
    let mut steps = Vec::new();
    for rule in &table.rules()[range] {
        let matched = f.run(table.program(rule));
        let why = match &rule.explain {
            None => "no condition: always matches".to_owned(),
            Some(x) => describe(x, &mut f).1,
        };
        steps.push(Step {
            layer: rule.layer,
            rule: rule.name.clone(),
            matched,
            why,
        });
        if matched {
            let decision = Decision {
                layer: rule.layer,
                rule: rule.name.clone(),
                targets: rule.targets.clone(),
            };
            return (Some(decision), steps);
        }
    }
    (None, steps)
}

fn eval(c: &Cond, f: &mut Features<'_, '_>) -> bool {
    match c {
        Cond::Atom(a) => f.atom(*a),
        Cond::And(xs) => xs.iter().all(|x| eval(x, f)),
        Cond::Or(xs) => xs.iter().any(|x| eval(x, f)),
        Cond::Not(x) => !eval(x, f),
    }
}

/// The value of a condition and why.
fn describe(x: &XCond, f: &mut Features<'_, '_>) -> (bool, String) {
    match x {
        XCond::And(parts) => {
            let mut held = Vec::new();
            for p in parts {
                let (v, why) = describe(p, f);
                if !v {
                    return (false, why);
                }
                held.push(why);
            }
            (true, held.join(" and "))
        }
        XCond::Or(parts) => {
            let mut failed = Vec::new();
            for p in parts {
                let (v, why) = describe(p, f);
                if v {
                    return (true, why);
                }
                failed.push(why);
            }
            (false, failed.join("; "))
        }
        XCond::Not(inner) => {
            let (v, why) = describe(inner, f);
            if v {
                (false, format!("{why}, needs the opposite (`not`)"))
            } else {
                (true, format!("not ({why})"))
            }
        }
        XCond::Test { cond, operand, op } => {
            let v = eval(cond, f);
            let value = match operand {
                XOperand::Text(slot, name) => format!("{name} = {}", show_text(f.text(*slot))),
                XOperand::Int(src, name) => format!("{name} = {}", f.int(*src)),
                XOperand::Bool(b) => format!("{} = {}", b.as_str(), f.boolean(*b)),
                XOperand::Unknown => "unknown field".to_owned(),
            };
            let op = op.as_deref().unwrap_or("true");
            let why = if v {
                format!("{value} ({op})")
            } else {
                format!("{value}, needs {op}")
            };
            (v, why)
        }
    }
}

/// A text value for a trace: quoted, newlines escaped, long values cut with their length.
fn show_text(s: &str) -> String {
    const MAX: usize = 60;
    let n = s.chars().count();
    if n <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{:?}… ({n} chars)", head)
    }
}
