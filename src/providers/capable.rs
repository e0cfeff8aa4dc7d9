//! What a request needs of a provider, and which providers of a chain cannot take it.
//!
//! A provider's `capabilities` (config.yaml) say what its model takes. The dispatcher skips a
//! provider that certainly cannot take a request: images for a model without `vision`, tool
//! definitions for one without `tools`, or a prompt that, with room for the answer, does not
//! fit its `context_window`. Each skip is recorded with its reason ([`Unfit::reason`]) and the
//! next provider is tried; a skip is not a failure (the provider's health is untouched). What is
//! not declared is unknown and never a reason to skip, and when every provider of a chain would
//! be skipped none is: an estimate must never turn a servable request into an error.
//!
//! `route --explain` asks the same question of the same chain ([`unfit`]).

use http::HeaderMap;

use crate::config::ProviderConfig;
use crate::request::ChatRequest;
use crate::router::RouteView;

/// What a request needs of the provider that answers it, computed once per request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Some message has an image part.
    pub images: bool,
    /// The request carries tool definitions.
    pub tools: bool,
    /// The prompt's size, as the router's `tokens` estimates it.
    pub prompt_tokens: u64,
    /// The answer-length limit the client set, if any.
    pub max_tokens: Option<u64>,
}

impl Needs {
    /// What `req` needs, read through the same view the rules read (so `prompt_tokens` is
    /// the `tokens` a rule compares).
    pub fn of(req: &ChatRequest<'_>) -> Needs {
        let headers = HeaderMap::new();
        let view = RouteView::chat(req, &headers);
        Needs {
            images: view.has_image(),
            tools: view.tools > 0,
            prompt_tokens: view.estimate_tokens(),
            max_tokens: req.max_tokens,
        }
    }

    /// The room kept for the answer on `provider`: the client's limit, else the provider's
    /// `max_tokens` (which it is sent), at most its `max_output`; 0 when neither sets one.
    pub fn answer_tokens(&self, provider: &ProviderConfig) -> u64 {
        let limit = self.max_tokens.or(provider.max_tokens).unwrap_or(0);
        match provider.capabilities.max_output {
            Some(most) => limit.min(most),
            None => limit,
        }
    }

    /// Why `provider` cannot take this request, if it certainly cannot.
    pub fn unfit_for(&self, provider: &ProviderConfig) -> Option<Unfit> {
        let caps = &provider.capabilities;
        if self.images && caps.vision == Some(false) {
            return Some(Unfit::Vision);
        }
        if self.tools && caps.tools == Some(false) {
            return Some(Unfit::Tools);
        }
        let window = caps.context_window?;
        let total = self
            .prompt_tokens
            .saturating_add(self.answer_tokens(provider));
        (total > window).then_some(Unfit::Context)
    }
}

/// Why a provider was skipped for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    /// The request has images; the provider has `vision: false`.
    Vision,
    /// The request has tool definitions; the provider has `tools: false`.
    Tools,
    /// The prompt and the room for the answer exceed the provider's `context_window`.
    Context,
}

impl Unfit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unfit::Vision => "vision",
            Unfit::Tools => "tools",
            Unfit::Context => "context",
        }
    }

    /// The attempt's error text: `skipped: vision`, `skipped: tools` or `skipped: context`.
    pub fn reason(self) -> &'static str {
        match self {
            Unfit::Vision => "skipped: vision",
            Unfit::Tools => "skipped: tools",
            Unfit::Context => "skipped: context",
        }
    }
}

/// For each member of `chain` (in order), why it is skipped; `None` for the members that are
/// tried. Every entry is `None` when every member would be skipped, and `needs` is only
/// computed when some member declares a capability.
pub fn unfit<T>(
    chain: &[T],
    needs: impl FnOnce() -> Needs,
    config: impl Fn(&T) -> &ProviderConfig,
) -> Vec<Option<Unfit>> {
    let mut out = vec![None; chain.len()];
    if chain.iter().all(|p| config(p).capabilities.is_unknown()) {
        return out;
    }
    let needs = needs();
    for (slot, p) in out.iter_mut().zip(chain) {
        *slot = needs.unfit_for(config(p));
    }
    if out.iter().all(Option::is_some) {
        out.fill(None);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Backend, Capabilities};
    use crate::providers::translate::testing::provider;

    fn with(caps: Capabilities, max_tokens: Option<u64>) -> ProviderConfig {
        ProviderConfig {
            capabilities: caps,
            ..provider(Backend::OpenAiCompat, "m", max_tokens)
        }
    }

    fn needs(body: &str) -> Needs {
        Needs::of(&ChatRequest::parse(body.as_bytes()).unwrap())
    }

    const TEXT_ONLY: Capabilities = Capabilities {
        context_window: Some(1000),
        max_output: Some(100),
        vision: Some(false),
        tools: Some(false),
        reasoning: None,
    };

    #[test]
    fn needs_are_read_from_the_request() {
        let n = needs(
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],"tools":[{"type":"function","function":{"name":"f"}}],"max_tokens":50}"#,
        );
        assert!(n.images && n.tools);
        assert_eq!(n.max_tokens, Some(50));
        assert!(n.prompt_tokens >= 1);
        let plain = needs(r#"{"messages":[{"role":"user","content":"hi"}]}"#);
        assert_eq!(
            plain,
            Needs {
                prompt_tokens: 1,
                ..Needs::default()
            }
        );
    }

    #[test]
    fn a_provider_is_unfit_only_for_what_it_declares_it_cannot_take() {
        let p = with(TEXT_ONLY, None);
        let unknown = with(Capabilities::default(), None);
        let images = Needs {
            images: true,
            tools: true,
            prompt_tokens: 5000,
            ..Needs::default()
        };
        assert_eq!(images.unfit_for(&p), Some(Unfit::Vision));
        assert_eq!(images.unfit_for(&unknown), None);
        let tools = Needs {
            tools: true,
            ..Needs::default()
        };
        assert_eq!(tools.unfit_for(&p), Some(Unfit::Tools));
        assert_eq!(Needs::default().unfit_for(&p), None);
    }

    #[test]
    fn the_context_check_keeps_room_for_the_answer_up_to_max_output() {
        let long = |prompt_tokens, max_tokens| Needs {
            prompt_tokens,
            max_tokens,
            ..Needs::default()
        };
        // No limit anywhere: only the prompt counts.
        let p = with(TEXT_ONLY, None);
        assert_eq!(long(1000, None).unfit_for(&p), None);
        assert_eq!(long(1001, None).unfit_for(&p), Some(Unfit::Context));
        // The client's limit, capped at max_output (100).
        assert_eq!(long(900, Some(100)).unfit_for(&p), None);
        assert_eq!(long(901, Some(100)).unfit_for(&p), Some(Unfit::Context));
        assert_eq!(long(900, Some(5000)).unfit_for(&p), None);
        // The provider's max_tokens when the client sets none.
        let p = with(TEXT_ONLY, Some(50));
        assert_eq!(long(950, None).unfit_for(&p), None);
        assert_eq!(long(951, None).unfit_for(&p), Some(Unfit::Context));
    }

    #[test]
    fn when_every_member_is_unfit_none_is_skipped() {
        let chain = [with(TEXT_ONLY, None), with(Capabilities::default(), None)];
        let images = || Needs {
            images: true,
            ..Needs::default()
        };
        assert_eq!(unfit(&chain, images, |p| p), [Some(Unfit::Vision), None]);
        assert_eq!(unfit(&chain[..1], images, |p| p), [None]);
        let unknown = [with(Capabilities::default(), None)];
        assert_eq!(
            unfit(&unknown, || unreachable!("nothing declared"), |p| p),
            [None]
        );
    }

    #[test]
    fn metrics_do_not_count_a_skip_as_a_failed_attempt() {
        for unfit in [Unfit::Vision, Unfit::Tools, Unfit::Context] {
            let record = crate::metrics::AttemptRecord {
                provider: "p".into(),
                error: unfit.reason().into(),
            };
            assert!(!record.failed(), "{unfit:?}");
        }
    }
}
