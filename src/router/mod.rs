//! Routing, the second stage of a request: from a [`RouteView`] to a [`Decision`] (layer,
//! rule, provider targets).
//!
//! An ingress fills the view ([`view`]); [`Router::route`] ([`route`]) walks the compiled
//! [`RouteTable`] for it, asking the classifier when the request reaches that layer; the
//! dispatcher then tries the decision's targets followed by the config's `fallback_chain`
//! ([`Decision::chain`]). `route --explain` runs the same walk with a recording
//! [`route::Trace`] ([`explain`]).
//!
//! A table is built by [`crate::rules`] (the compiler) and never changes: rules are tried in
//! evaluation order (static, heuristic, classifier; file order, then declaration order), each
//! a flat program over [`program::Atom`]s that read the request's lazily computed
//! [`features::Features`] (texts scanned once by [`scan`]). The first rule whose program
//! yields true wins; then the `default`; then layer `fallback`, rule `no-match`.

pub mod envelope;
pub mod explain;
pub mod features;
pub mod program;
pub mod route;
pub mod scan;
pub mod view;

use std::sync::Arc;

use http::HeaderMap;

use crate::config::ClassifierConfig;
use crate::request::ChatRequest;
use program::{Atom, Instr, RegexAtom, ScoreSet, TextIndex};
pub use route::{
    Answer, Classify, Conversation, KeySource, NoClassifier, NoRecall, NoTrace, Previous, Recall,
    Remembered, Routed, Router,
};
pub use view::RouteView;

/// The layer that produced a decision; shown in `X-ClawGate-Layer` and recorded in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The request named a loaded provider id.
    Direct,
    Static,
    Heuristic,
    Classifier,
    /// The rules' `default` (or, without rules, the fallback chain).
    Default,
    /// No rule matched and there is no `default`.
    Fallback,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Direct => "direct",
            Layer::Static => "static",
            Layer::Heuristic => "heuristic",
            Layer::Classifier => "classifier",
            Layer::Default => "default",
            Layer::Fallback => "fallback",
        }
    }

    /// The layers rules can be written in, in evaluation order.
    pub const RULE_LAYERS: [Layer; 3] = [Layer::Static, Layer::Heuristic, Layer::Classifier];

    /// A rule layer by the name used in `layer NAME { ... }`.
    pub fn from_rule_layer_name(name: &str) -> Option<Layer> {
        match name {
            "static" => Some(Layer::Static),
            "heuristic" => Some(Layer::Heuristic),
            "classifier" => Some(Layer::Classifier),
            _ => None,
        }
    }
}

/// Where a request goes: the winning layer and rule, and the providers to try first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub layer: Layer,
    pub rule: Arc<str>,
    /// The rule's own targets, in order; the fallback chain is appended by the dispatcher.
    pub targets: Vec<Arc<str>>,
}

impl Decision {
    /// The decision for a request that named a loaded provider id.
    pub fn direct(provider: Arc<str>) -> Self {
        Decision {
            layer: Layer::Direct,
            rule: Arc::from("explicit-model"),
            targets: vec![provider],
        }
    }

    /// No rule matched and there is no `default`: the fallback chain alone.
    pub fn no_match() -> Self {
        Decision {
            layer: Layer::Fallback,
            rule: Arc::from("no-match"),
            targets: Vec::new(),
        }
    }

    /// The providers to try, in order: the decision's targets, then `fallback`, each id once,
    /// keeping what `get` finds (the loaded ones). The one way a chain is formed: the
    /// dispatcher's ([`crate::providers::ProviderSet::chain`]) and the offline commands' (ids,
    /// [`Decision::chain`]) both come from here.
    pub fn chain_with<'a, T, F>(&'a self, fallback: F, get: impl Fn(&'a str) -> Option<T>) -> Vec<T>
    where
        F: Iterator<Item = &'a str> + Clone,
    {
        let ids = self.targets.iter().map(|t| t.as_ref()).chain(fallback);
        let mut out = Vec::with_capacity(ids.size_hint().0);
        for (i, id) in ids.clone().enumerate() {
            // A repeat is dropped whether or not its first place was loaded: the answer for
            // an id is the same both times.
            if ids.clone().take(i).any(|earlier| earlier == id) {
                continue;
            }
            if let Some(x) = get(id) {
                out.push(x);
            }
        }
        out
    }

    /// `targets ++ fallback_chain` as ids, without duplicates, keeping only providers
    /// `is_loaded` accepts.
    pub fn chain<'a>(
        &'a self,
        fallback_chain: &'a [String],
        is_loaded: impl Fn(&str) -> bool,
    ) -> Vec<&'a str> {
        self.chain_with(fallback_chain.iter().map(String::as_str), |id| {
            is_loaded(id).then_some(id)
        })
    }
}

/// One compiled rule.
#[derive(Debug)]
pub struct CompiledRule {
    pub layer: Layer,
    pub name: Arc<str>,
    pub targets: Vec<Arc<str>>,
    /// The condition as a flat program (empty: always matches): its range in
    /// [`RouteTable::code`], where all rules' programs lie back to back, so trying a thousand
    /// rules reads memory in order instead of chasing a pointer per rule.
    pub(crate) prog: std::ops::Range<u32>,
    /// Literals one of which the condition needs (see [`program::need`]).
    pub(crate) need: Option<program::Need>,
    /// The condition's shape with each test's source text, for `route --explain`.
    pub(crate) explain: Option<explain::XCond>,
    /// A target is `previous`: the rule only matches when the conversation has a previous
    /// provider, which takes that target's place.
    pub(crate) uses_previous: bool,
}

impl CompiledRule {
    /// The rule's decision; `previous` (the conversation's previous provider) stands for the
    /// target `previous`, which is dropped when there is none.
    fn decision(&self, previous: Option<&Arc<str>>) -> Decision {
        let targets = if self.uses_previous {
            self.targets
                .iter()
                .filter_map(|t| {
                    if t.as_ref() == PREVIOUS_TARGET {
                        previous.cloned()
                    } else {
                        Some(t.clone())
                    }
                })
                .collect()
        } else {
            self.targets.clone()
        };
        Decision {
            layer: self.layer,
            rule: self.name.clone(),
            targets,
        }
    }
}

/// The route target that names the conversation's previous provider.
pub const PREVIOUS_TARGET: &str = "previous";

/// A compiled `lane NAME when ...`.
#[derive(Debug)]
pub struct CompiledLane {
    pub name: Arc<str>,
    /// Its condition's program in [`RouteTable::code`].
    pub(crate) prog: std::ops::Range<u32>,
    pub(crate) explain: Option<explain::XCond>,
}

/// What `/health` shows about the loaded rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableInfo {
    /// Short hex hash of the rule files' names and contents (a reload with the same hash is skipped).
    pub hash: String,
    /// Number of `.rules` files.
    pub files: usize,
    /// Number of rules (the `default` not counted).
    pub rules: usize,
}

/// The compiled routing rules. Immutable; a reload builds a new one and swaps it in.
#[derive(Debug, Default)]
pub struct RouteTable {
    pub(crate) rules: Vec<CompiledRule>,
    /// The `default` route's targets; `None` when the rules have no `default`.
    pub(crate) default: Option<Vec<Arc<str>>>,
    /// Every rule's program (see [`CompiledRule::prog`]).
    pub(crate) code: Vec<Instr>,
    /// Every rule's necessary literals (see [`program::Need::lits`]).
    pub(crate) need_lits: Vec<u32>,
    pub(crate) atoms: Vec<Atom>,
    pub(crate) slots: Vec<TextIndex>,
    pub(crate) sets: Vec<ScoreSet>,
    pub(crate) regexes: Vec<RegexAtom>,
    /// Envelopes in declaration order.
    pub(crate) envelopes: Vec<envelope::Envelope>,
    /// Lanes in declaration order; the first that matches is the request's lane.
    pub(crate) lanes: Vec<CompiledLane>,
    pub(crate) info: TableInfo,
}

impl RouteTable {
    /// A table with no rules: every request follows the fallback chain.
    pub fn empty() -> Self {
        RouteTable {
            default: Some(Vec::new()),
            ..RouteTable::default()
        }
    }

    /// Where a chat request goes with the classifier disabled: [`Router::route`] with no
    /// provider named directly, nothing asked and nothing recorded (for tests, benches and
    /// tools that have a table but no config).
    pub fn decide(&self, req: &ChatRequest<'_>, headers: &HeaderMap) -> Decision {
        Router::new(self, ClassifierConfig::disabled(), &|_| None)
            .route_now(RouteView::chat(req, headers), &mut NoTrace)
            .decision
    }

    /// Where the classifier layer's rules start in [`rules`](Self::rules) (rules are sorted
    /// by layer, so they are the tail).
    pub fn classifier_start(&self) -> usize {
        self.rules.partition_point(|r| r.layer != Layer::Classifier)
    }

    /// Whether any rule is written in `layer classifier`.
    pub fn has_classifier_rules(&self) -> bool {
        self.classifier_start() < self.rules.len()
    }

    /// The `default` route's decision (layer `default`), or `no-match` when there is none.
    pub fn default_decision(&self) -> Decision {
        match &self.default {
            Some(targets) => Decision {
                layer: Layer::Default,
                rule: Arc::from("default"),
                targets: targets.clone(),
            },
            None => Decision::no_match(),
        }
    }

    /// Hash, file count and rule count, for `/health`.
    pub fn info(&self) -> &TableInfo {
        &self.info
    }

    /// Short hex hash of the rule files (see [`TableInfo::hash`]).
    pub fn content_hash(&self) -> &str {
        &self.info.hash
    }

    /// Number of `.rules` files the table was built from.
    pub fn file_count(&self) -> usize {
        self.info.files
    }

    /// Number of rules (the `default` not counted).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// A rule's program.
    pub(crate) fn program(&self, rule: &CompiledRule) -> &[Instr] {
        self.code_at(&rule.prog)
    }

    pub(crate) fn code_at(&self, prog: &std::ops::Range<u32>) -> &[Instr] {
        self.code
            .get(prog.start as usize..prog.end as usize)
            .unwrap_or(&[])
    }

    /// The envelopes, in declaration order.
    pub fn envelopes(&self) -> &[envelope::Envelope] {
        &self.envelopes
    }

    /// The lanes, in declaration order.
    pub fn lanes(&self) -> &[CompiledLane] {
        &self.lanes
    }

    /// The rules in evaluation order.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// The `default` route's targets, if the rules have one.
    pub fn default_targets(&self) -> Option<&[Arc<str>]> {
        self.default.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_is_the_targets_then_the_fallback_chain_each_loaded_provider_once() {
        let d = Decision {
            layer: Layer::Heuristic,
            rule: Arc::from("r"),
            targets: ["b", "gone", "a", "b"].map(Arc::from).to_vec(),
        };
        let fallback = ["a", "c", "gone", "d", "c"].map(String::from);
        let loaded = |id: &str| id != "gone";
        assert_eq!(d.chain(&fallback, loaded), ["b", "a", "c", "d"]);
        let upper = d.chain_with(fallback.iter().map(String::as_str), |id| {
            loaded(id).then(|| id.to_uppercase())
        });
        assert_eq!(upper, ["B", "A", "C", "D"]);
    }
}
