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

/// A [`Trace`] that keeps every step, and what the rules read of the request.
#[derive(Debug, Clone, Default)]
pub struct Steps {
    pub steps: Vec<Step>,
    /// Recorded when the walk ends.
    pub facts: Option<Facts>,
}

impl Trace for Steps {
    fn request(&mut self, features: &mut Features<'_, '_>) {
        self.facts = Some(Facts::of(features));
    }

    fn rule(&mut self, rule: &CompiledRule, matched: bool, features: &mut Features<'_, '_>) {
        let why = match &rule.explain {
            None => "no condition: always matches".to_owned(),
            Some(x) => describe(x, features).1,
        };
        self.steps.push(Step {
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
        self.steps.push(Step {
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
    /// `last_user` (envelope peeled), shown cut to its first 60 characters.
    pub last_user: String,
    /// `last_user` in full.
    pub last_user_full: String,
    /// The envelopes peeled off the last person message, by name.
    pub peeled: Vec<String>,
    /// The request's lane, and why.
    pub lane: String,
    pub lane_why: String,
    /// The conversation key (hex) and where it came from.
    pub conversation: String,
    pub key_source: String,
    /// The conversation's previous provider and rule, when remembered.
    pub previous: Option<(String, String)>,
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
    pub fn of(features: &mut Features<'_, '_>) -> Self {
        let last_user = features.last_user().into_owned();
        let n = features.persons().len();
        let table = features.table();
        let peeled = n
            .checked_sub(1)
            .and_then(|i| features.peeled(i))
            .map(|p| {
                p.found
                    .iter()
                    .filter_map(|(i, _)| table.envelopes.get(usize::from(*i)))
                    .map(|e| e.name.to_string())
                    .collect()
            })
            .unwrap_or_default();
        let lane = features.lane().to_string();
        let lane_why = match features.lane_index() {
            Some(i) => match table
                .lanes
                .get(usize::from(i))
                .and_then(|l| l.explain.as_ref())
            {
                Some(x) => describe(x, features).1,
                None => String::new(),
            },
            None if table.lanes.is_empty() => "no lanes are defined".to_owned(),
            None => "no lane's condition holds".to_owned(),
        };
        let (key, source) = features.conversation();
        let previous = features
            .previous()
            .map(|p| (p.provider.to_string(), p.rule.to_string()));
        let view = *features.view();
        Facts {
            last_user: show_text(&last_user),
            last_user_full: last_user.clone(),
            peeled,
            lane,
            lane_why,
            conversation: format!("{key:016x}"),
            key_source: source.as_str().to_owned(),
            previous,
            tokens: features.int(IntSource::Tokens),
            last_user_tokens: features.int(IntSource::LastUserTokens),
            user_turns: n,
            messages: view.messages.len(),
            tools: view.tools,
            tool_loop: view.continues_tool_loop(),
            images: view.has_image(),
            stream: view.stream,
        }
    }

    /// The lane line: `subagent (envelope("runtime") = "…" (contains ":subagent:"))`.
    pub fn lane_line(&self) -> String {
        if self.lane_why.is_empty() {
            self.lane.clone()
        } else {
            format!("{} ({})", self.lane, self.lane_why)
        }
    }

    /// The conversation line: `key 9f3c… from runtime, previous deepseek-chat (rule sticky)`.
    pub fn conversation_line(&self) -> String {
        let previous = match &self.previous {
            Some((p, r)) => format!("previous {p} (rule {r})"),
            None => "no previous decision".to_owned(),
        };
        format!(
            "key {} from {}, {previous}",
            self.conversation, self.key_source
        )
    }

    /// The peeled line: what came off the last person message.
    pub fn peeled_line(&self) -> String {
        if self.peeled.is_empty() {
            "nothing".to_owned()
        } else {
            self.peeled.join(", ")
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
            "lane": self.lane,
            "lane_why": self.lane_why,
            "peeled": self.peeled,
            "conversation": self.conversation,
            "key_source": self.key_source,
            "previous": self.previous.as_ref().map(|(p, r)| serde_json::json!({"provider": p, "rule": r})),
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
        steps: steps.steps,
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
