//! Explaining a decision: the same walk as serving ([`super::route`]) with a [`Trace`] that
//! records, for every rule tried, the first condition that failed and the value it saw
//! (`score(math) = 1, needs >= 2`), or what matched.
//!
//! Deciding runs the flat programs; explaining re-evaluates the tried rules' conditions
//! through their tree form on the same [`Features`], so the two cannot disagree.

use std::sync::Arc;

use http::HeaderMap;

use super::features::Features;
use super::program::{BoolField, Cond, IntSource, Slot};
use super::route::{Answer, Trace};
use super::view::RouteView;
use super::{CompiledRule, Decision, Layer, RouteTable};
use crate::request::ChatRequest;

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

/// One rule tried (or the classifier asked).
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
pub struct Explained {
    pub decision: Decision,
    pub steps: Vec<Step>,
}

/// A [`Trace`] that keeps every step.
#[derive(Debug, Clone, Default)]
pub struct Steps(pub Vec<Step>);

impl Trace for Steps {
    fn rule(&mut self, rule: &CompiledRule, matched: bool, features: &mut Features<'_, '_>) {
        let why = match &rule.explain {
            None => "no condition: always matches".to_owned(),
            Some(x) => describe(x, features).1,
        };
        self.0.push(Step {
            layer: rule.layer,
            rule: rule.name.clone(),
            matched,
            why,
        });
    }

    fn classifier(&mut self, provider: &str, answer: &Answer) {
        let (matched, why) = match answer {
            Answer::Label(l) => (true, format!("`{provider}` answered {l}")),
            Answer::Failed(e) => (false, format!("`{provider}` gave no answer: {e}")),
            Answer::NotAsked => (
                false,
                format!("`{provider}` would be asked here (run with --classify to ask it)"),
            ),
        };
        self.0.push(Step {
            layer: Layer::Classifier,
            rule: Arc::from("llm-classifier"),
            matched,
            why,
        });
    }
}

/// What the rules read of a request, as `route --explain` shows it before the rules tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// `last_user`, shown cut to its first 60 characters.
    pub last_user: String,
    pub tokens: u64,
    pub last_user_tokens: u64,
    pub user_turns: usize,
    pub messages: usize,
    pub tools: usize,
    pub tool_loop: bool,
    pub images: bool,
    pub stream: bool,
}

impl Facts {
    pub fn of(view: &RouteView<'_>) -> Self {
        let last_user = view.last_user();
        Facts {
            last_user: show_text(&last_user),
            tokens: view.estimate_tokens(),
            last_user_tokens: super::view::text_tokens(&last_user),
            user_turns: view.user_turns(),
            messages: view.messages.len(),
            tools: view.tools,
            tool_loop: view.continues_tool_loop(),
            images: view.has_image(),
            stream: view.stream,
        }
    }

    /// One line: `last_user "…" (3 of 13,421 tokens), 1 user turn, …`.
    pub fn line(&self) -> String {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        format!(
            "last_user {} ({} of {} tokens), user_turns {}, messages {}, tools {}, tool_loop {}, images {}, stream {}",
            self.last_user,
            self.last_user_tokens,
            self.tokens,
            self.user_turns,
            self.messages,
            self.tools,
            yes_no(self.tool_loop),
            yes_no(self.images),
            yes_no(self.stream),
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "last_user": self.last_user,
            "tokens": self.tokens,
            "last_user_tokens": self.last_user_tokens,
            "user_turns": self.user_turns,
            "messages": self.messages,
            "tools": self.tools,
            "tool_loop": self.tool_loop,
            "images": self.images,
            "stream": self.stream,
        })
    }
}

/// Where a chat request goes with the classifier disabled, and why: the serving walk with its
/// steps recorded (for rule tests and tools that have no config at hand).
pub fn explain(table: &RouteTable, req: &ChatRequest<'_>, headers: &HeaderMap) -> Explained {
    let disabled = crate::config::ClassifierConfig::disabled();
    let router = super::Router::new(table, disabled, &|_| None);
    let mut steps = Steps::default();
    let routed = router.route_now(RouteView::chat(req, headers), &mut steps);
    Explained {
        decision: routed.decision,
        steps: steps.0,
    }
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
