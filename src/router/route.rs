//! The routing walk: one function from a request's view to a [`Decision`], shared by the
//! server, `route --explain` and rule tests, so what they report cannot drift apart.
//!
//! The walk, in order:
//! 1. a `model` that names a loaded provider goes straight to it (layer `direct`);
//! 2. the static and heuristic rules, first match wins;
//! 3. with the classifier enabled, a request that reaches the classifier layer is classified
//!    (when there is a message to classify and something routes on the answer) and the
//!    classifier rules run with `label` set, or `category_routing` when none are written; no
//!    usable answer goes to `fallback_on_timeout`; with the classifier disabled, classifier
//!    rules run with `label` empty;
//! 4. the rules' `default`, else the fallback chain alone (`no-match`).
//!
//! Asking the classifier is the caller's part ([`Classify`]: the server asks a model,
//! `route --explain` may or may not), and so is recording the walk ([`Trace`]: the server
//! records nothing and pays nothing; `route --explain` records why each rule did or did not
//! match).

use std::future::Future;
use std::sync::Arc;

use super::features::Features;
use super::view::RouteView;
use super::{CompiledRule, Decision, Layer, RouteTable};
use crate::config::ClassifierConfig;

/// What the classifier said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A known label, upper case.
    Label(Arc<str>),
    /// No usable answer: an unknown label, an error, a timeout. Short, secret-free reason.
    Failed(Arc<str>),
    /// The caller chose not to ask (`route --explain` without `--classify`); routed as a
    /// failure.
    NotAsked,
}

/// Asks the classifier about the last message a person wrote.
pub trait Classify {
    fn classify(&self, text: &str) -> impl Future<Output = Answer> + Send;
}

/// Never asks: the route taken when the classifier gives no answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoClassifier;

impl Classify for NoClassifier {
    fn classify(&self, _text: &str) -> impl Future<Output = Answer> + Send {
        std::future::ready(Answer::NotAsked)
    }
}

/// Receives the walk as it happens.
pub trait Trace {
    /// A rule was tried; `features` can evaluate its condition again to say why.
    fn rule(&mut self, rule: &CompiledRule, matched: bool, features: &mut Features<'_, '_>);
    /// The classifier (`provider`) was asked, or would have been.
    fn classifier(&mut self, provider: &str, answer: &Answer);
    /// The walk ended; `features` holds what the rules read of the request.
    fn request(&mut self, _features: &mut Features<'_, '_>) {}
}

/// Records nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn rule(&mut self, _: &CompiledRule, _: bool, _: &mut Features<'_, '_>) {}
    #[inline(always)]
    fn classifier(&mut self, _: &str, _: &Answer) {}
    #[inline(always)]
    fn request(&mut self, _: &mut Features<'_, '_>) {}
}

/// Remembers one decision for every conversation (`route --explain --previous`, rule tests).
#[derive(Debug, Clone, Default)]
pub struct Remembered(pub Option<Previous>);

impl Recall for Remembered {
    fn recall(&self, _key: u64) -> Option<Previous> {
        self.0.clone()
    }
}

/// How the classifier took part in a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassifierUse {
    /// Disabled, or an earlier rule decided.
    NotReached,
    /// Reached but not asked, and why.
    Skipped(&'static str),
    /// Asked (or, for [`Answer::NotAsked`], would have been).
    Asked(Answer),
}

/// A conversation's last answered request: the provider that answered it and the rule that
/// sent it there. What `previous_provider`, `previous_rule` and the target `previous` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub provider: Arc<str>,
    pub rule: Arc<str>,
}

/// Remembers each conversation's previous decision (sticky routing's memory). The server
/// passes its conversation store; offline commands pass [`NoRecall`] or a fixed answer.
pub trait Recall: Sync {
    /// The previous decision of conversation `key` (see [`Conversation::key`]), if remembered.
    fn recall(&self, key: u64) -> Option<Previous>;
}

/// Remembers nothing: every request is a conversation's first.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRecall;

impl Recall for NoRecall {
    fn recall(&self, _key: u64) -> Option<Previous> {
        None
    }
}

/// Where a conversation key came from, in order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The body's `prompt_cache_key` (OpenClaw sends its session id there when configured).
    PromptCacheKey,
    /// The body's `user`.
    User,
    /// `metadata.user_id` (Anthropic clients; Claude Code puts its session there).
    MetadataUserId,
    /// What an envelope marked `key` matched (OpenClaw's Runtime line), by envelope name.
    Envelope(Arc<str>),
    /// A hash of the start of the system prompt and of the first message a person wrote.
    Hash,
}

impl KeySource {
    pub fn as_str(&self) -> &str {
        match self {
            KeySource::PromptCacheKey => "prompt_cache_key",
            KeySource::User => "user",
            KeySource::MetadataUserId => "metadata.user_id",
            KeySource::Envelope(name) => name,
            KeySource::Hash => "hash",
        }
    }
}

/// The conversation a request continues, as routing saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The conversation key combined with the request's lane: a heartbeat in the main session
    /// is remembered apart from the person's turns, so it never moves them.
    pub key: u64,
    pub source: KeySource,
    /// Its previous decision, when the [`Recall`] remembered one.
    pub previous: Option<Previous>,
}

/// A decision and how it was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub decision: Decision,
    pub classifier: ClassifierUse,
    /// The request's lane (`main` unless a `lane` item claimed it).
    pub lane: Arc<str>,
    /// The conversation, when the router was given a [`Recall`] (the server) or asked for it
    /// (`route --explain`); `None` for a request that named its provider directly.
    pub conversation: Option<Conversation>,
}

impl Routed {
    /// The classifier's label, when it gave one.
    pub fn label(&self) -> Option<&Arc<str>> {
        match &self.classifier {
            ClassifierUse::Asked(Answer::Label(l)) => Some(l),
            _ => None,
        }
    }
}

/// The rule name of decisions made by `category_routing` (`classified-as-REASONING`).
pub fn category_rule(label: &str) -> String {
    format!("classified-as-{label}")
}

/// The rule name of decisions sent to `fallback_on_timeout`.
pub const FALLBACK_RULE: &str = "classifier-fallback";

/// Why a request that reached the classifier layer was not classified: no message.
pub const NOTHING_TO_CLASSIFY: &str = "not asked: the request has no user message to classify";
/// Why a request that reached the classifier layer was not classified: no answer would
/// change its route.
pub const NOTHING_ROUTES_ON_IT: &str = "not asked: no classifier rules and no category_routing";

/// A provider id for a requested model, when the model names a loaded provider.
pub type ProviderLookup<'a> = &'a (dyn Fn(&str) -> Option<Arc<str>> + Sync);

/// The compiled rules with what routing needs around them.
#[derive(Clone, Copy)]
pub struct Router<'a> {
    table: &'a RouteTable,
    classifier: &'a ClassifierConfig,
    provider: ProviderLookup<'a>,
    /// The conversations' previous decisions; `None`: not tracked (no `conversation` in
    /// [`Routed`], `previous_*` read `""`).
    recall: Option<&'a dyn Recall>,
}

impl<'a> Router<'a> {
    pub fn new(
        table: &'a RouteTable,
        classifier: &'a ClassifierConfig,
        provider: ProviderLookup<'a>,
    ) -> Self {
        Router {
            table,
            classifier,
            provider,
            recall: None,
        }
    }

    /// The router with a memory of conversations: `previous_provider`, `previous_rule` and the
    /// target `previous` read it, and [`Routed::conversation`] says which conversation the
    /// request continues.
    pub fn with_recall(self, recall: &'a dyn Recall) -> Self {
        Router {
            recall: Some(recall),
            ..self
        }
    }

    /// Where a request goes.
    pub async fn route<C: Classify, T: Trace>(
        &self,
        view: RouteView<'_>,
        classify: &C,
        trace: &mut T,
    ) -> Routed {
        match self.start(view, trace) {
            Walk::Decided(routed) => routed,
            Walk::Classify {
                features,
                text,
                rules,
            } => {
                let answer = classify.classify(&text).await;
                self.finish(features, rules, answer, trace)
            }
        }
    }

    /// [`route`](Self::route) without asking the classifier: a request that reaches it takes
    /// the route for no answer.
    pub fn route_now<T: Trace>(&self, view: RouteView<'_>, trace: &mut T) -> Routed {
        match self.start(view, trace) {
            Walk::Decided(routed) => routed,
            Walk::Classify {
                features, rules, ..
            } => self.finish(features, rules, Answer::NotAsked, trace),
        }
    }

    /// The walk up to the classifier: a decision, or the request's features and the text to
    /// classify.
    fn start<'v, T: Trace>(&self, view: RouteView<'v>, trace: &mut T) -> Walk<'a, 'v> {
        let table = self.table;
        let cfg = self.classifier;
        let mut features = Features::new(table, view).with_recall(self.recall);
        if let Some(id) = (self.provider)(view.model) {
            return Walk::Decided(self.routed(
                &mut features,
                Decision::direct(id),
                ClassifierUse::NotReached,
                trace,
            ));
        }
        let split = if cfg.enabled {
            table.classifier_start()
        } else {
            table.rules.len()
        };
        let (before, classifier_rules) = table.rules.split_at(split);
        if let Some(decision) = walk(&mut features, before, trace) {
            return Walk::Decided(self.routed(
                &mut features,
                decision,
                ClassifierUse::NotReached,
                trace,
            ));
        }
        if !cfg.enabled {
            let d = table.default_decision();
            return Walk::Decided(self.routed(&mut features, d, ClassifierUse::NotReached, trace));
        }
        let text = features.last_user();
        let skipped = if text.trim().is_empty() {
            Some(NOTHING_TO_CLASSIFY)
        } else if classifier_rules.is_empty() && cfg.category_routing.is_empty() {
            Some(NOTHING_ROUTES_ON_IT)
        } else {
            None
        };
        match skipped {
            // Nothing to classify: classifier rules still run, with `label` empty.
            Some(why) => {
                let decision = walk(&mut features, classifier_rules, trace)
                    .unwrap_or_else(|| table.default_decision());
                Walk::Decided(self.routed(
                    &mut features,
                    decision,
                    ClassifierUse::Skipped(why),
                    trace,
                ))
            }
            None => Walk::Classify {
                features,
                text,
                rules: classifier_rules,
            },
        }
    }

    /// The walk after the classifier answered: `classifier_rules` with its label.
    fn finish<T: Trace>(
        &self,
        mut features: Features<'a, '_>,
        classifier_rules: &'a [CompiledRule],
        answer: Answer,
        trace: &mut T,
    ) -> Routed {
        let table = self.table;
        let cfg = self.classifier;
        trace.classifier(&cfg.provider, &answer);
        let decided = match &answer {
            Answer::Label(label) if !classifier_rules.is_empty() => {
                features.set_label(Arc::clone(label));
                walk(&mut features, classifier_rules, trace)
            }
            Answer::Label(label) => cfg.route_for(label).map(|p| Decision {
                layer: Layer::Classifier,
                rule: Arc::from(category_rule(label)),
                targets: vec![Arc::from(p)],
            }),
            Answer::Failed(_) | Answer::NotAsked => {
                cfg.fallback_on_timeout.as_deref().map(|p| Decision {
                    layer: Layer::Classifier,
                    rule: Arc::from(FALLBACK_RULE),
                    targets: vec![Arc::from(p)],
                })
            }
        };
        let decision = decided.unwrap_or_else(|| table.default_decision());
        self.routed(&mut features, decision, ClassifierUse::Asked(answer), trace)
    }

    /// A decision with the request's lane and, when conversations are tracked, its
    /// conversation.
    fn routed<T: Trace>(
        &self,
        features: &mut Features<'_, '_>,
        decision: Decision,
        classifier: ClassifierUse,
        trace: &mut T,
    ) -> Routed {
        trace.request(features);
        let lane = features.lane();
        let conversation = self.recall.map(|_| {
            let (key, source) = features.conversation();
            Conversation {
                key,
                source,
                previous: features.previous().cloned(),
            }
        });
        Routed {
            decision,
            classifier,
            lane,
            conversation,
        }
    }
}

/// The lane of a request no `lane` item claimed.
pub const MAIN_LANE: &str = "main";

pub(crate) fn main_lane() -> Arc<str> {
    static MAIN: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    MAIN.get_or_init(|| Arc::from(MAIN_LANE)).clone()
}

/// Where [`Router::start`] stopped.
enum Walk<'t, 'v> {
    Decided(Routed),
    /// The request reached the classifier with something to classify.
    Classify {
        features: Features<'t, 'v>,
        text: std::borrow::Cow<'v, str>,
        /// The classifier layer's rules.
        rules: &'t [CompiledRule],
    },
}

/// The decision of the first of `rules` that matches, telling `trace` about each one tried.
/// A rule routed to `previous` matches only when the conversation has a previous provider.
fn walk<'t, T: Trace>(
    features: &mut Features<'t, '_>,
    rules: &'t [CompiledRule],
    trace: &mut T,
) -> Option<Decision> {
    for rule in rules {
        let matched =
            features.matches(rule) && (!rule.uses_previous || features.previous().is_some());
        trace.rule(rule, matched, features);
        if matched {
            let previous = if rule.uses_previous {
                features.previous().map(|p| p.provider.clone())
            } else {
                None
            };
            return Some(rule.decision(previous.as_ref()));
        }
    }
    None
}
