//! A client request that did not come in the hub's API (OpenAI chat), as the dispatcher sees
//! it: the client's own body, passed through to every provider whose backend speaks the
//! client's API, and what may be adjusted in its hub translation for the others.
//!
//! Same protocol in and out means pass-through: the client's bytes go upstream with only
//! `model` replaced (and the client's API headers forwarded, e.g. `anthropic-beta`), and the
//! upstream's answer comes back as it is, in the client's API ([`Reply::native`]). Any other
//! provider gets the hub translation and answers in the hub's API, which the ingress then
//! translates back. So one chain can mix both, and fallback may cross protocols.
//!
//! [`Reply::native`]: super::dispatch::Reply::native

use std::borrow::Cow;
use std::ops::Range;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::protocol::Protocol;
use super::{Provider, UpstreamRequest};
use crate::config::Backend;

/// The client's request in its own API.
#[derive(Debug, Clone)]
pub struct Native<'a> {
    /// The backend whose API the body is written in.
    pub backend: Backend,
    /// The body as the client sent it.
    pub body: &'a [u8],
    /// Byte range of the `model` value (quotes included) in `body`, when it has one.
    pub model_span: Option<Range<usize>>,
    /// The client's API headers to forward (they replace the provider's own of that name).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Where the hub translation's `max_tokens` value starts, when it is the body's last
    /// member (`…,"max_tokens":N}`): the client's API required one, so a provider's own
    /// `max_tokens` caps it (see [`Native::capped_hub`]).
    pub hub_max_tokens: Option<(usize, u64)>,
}

/// The protocol that passes a body written in `backend`'s API through to it, when that API is
/// not the hub's own (OpenAI-compatible providers take hub bodies as they are).
pub fn passthrough_for(backend: Backend) -> Option<&'static dyn Protocol> {
    match backend {
        Backend::Anthropic => Some(&super::anthropic::passthrough::AnthropicNative),
        Backend::GoogleGenai => Some(&super::gemini::passthrough::GeminiNative),
        Backend::OpenAiCompat => None,
    }
}

impl Native<'_> {
    /// The pass-through protocol for `provider`, if it speaks the client's API.
    pub fn passthrough(&self, provider: &Provider) -> Option<&'static dyn Protocol> {
        if provider.config.backend == self.backend {
            passthrough_for(self.backend)
        } else {
            None
        }
    }

    /// The body with its `model` replaced by `model`, every other byte the client's.
    pub fn with_model(&self, model: &str) -> Vec<u8> {
        let quoted = serde_json::to_string(model).unwrap_or_else(|_| "\"\"".into());
        let body = self.body;
        let mut out = Vec::with_capacity(body.len() + quoted.len() + 10);
        match &self.model_span {
            Some(span) => {
                out.extend_from_slice(&body[..span.start]);
                out.extend_from_slice(quoted.as_bytes());
                out.extend_from_slice(&body[span.end..]);
            }
            None => {
                let open = body.iter().position(|&b| b == b'{').unwrap_or(0);
                out.extend_from_slice(&body[..=open]);
                out.extend_from_slice(b"\"model\":");
                out.extend_from_slice(quoted.as_bytes());
                let empty = body[open + 1..]
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_none_or(|&b| b == b'}');
                if !empty {
                    out.push(b',');
                }
                out.extend_from_slice(&body[open + 1..]);
            }
        }
        out
    }

    /// The hub body `hub` with its `max_tokens` lowered to `provider`'s own limit, when that
    /// is lower than the client's; `None` when the hub body can go as it is.
    pub fn capped_hub(&self, provider: &Provider, hub: &[u8]) -> Option<Vec<u8>> {
        let (at, value) = self.hub_max_tokens?;
        let cap = provider.config.max_tokens?;
        if cap >= value || at > hub.len() {
            return None;
        }
        let mut out = Vec::with_capacity(at + 24);
        out.extend_from_slice(&hub[..at]);
        out.extend_from_slice(cap.to_string().as_bytes());
        out.push(b'}');
        Some(out)
    }
}

impl Provider {
    /// The upstream request for a client body already in this provider's API: the body with
    /// `model` replaced, the provider's headers with the client's API headers over them.
    pub fn native_request(&self, native: &Native<'_>, stream: bool) -> UpstreamRequest<'_> {
        let headers = if native.headers.is_empty() {
            Cow::Borrowed(&self.headers)
        } else {
            let mut h: HeaderMap = self.headers.clone();
            for (name, value) in &native.headers {
                h.insert(name.clone(), value.clone());
            }
            Cow::Owned(h)
        };
        UpstreamRequest {
            url: &self.urls[usize::from(stream)],
            headers,
            // Gemini names the model in the URL (the provider's own), not in the body.
            body: match native.backend {
                Backend::GoogleGenai => native.body.to_vec(),
                _ => native.with_model(&self.config.model),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(body: &[u8], span: Option<Range<usize>>) -> Native<'_> {
        Native {
            backend: Backend::Anthropic,
            body,
            model_span: span,
            headers: Vec::new(),
            hub_max_tokens: None,
        }
    }

    #[test]
    fn only_the_model_changes_in_a_passed_through_body() {
        let body =
            br#"{"model" : "claude-x","max_tokens":5, "cache_control":{"type":"ephemeral"}}"#;
        let at = memchr::memmem::find(body, b"\"claude-x\"").unwrap();
        let n = native(body, Some(at..at + 10));
        assert_eq!(
            std::str::from_utf8(&n.with_model("claude-sonnet-4-5")).unwrap(),
            r#"{"model" : "claude-sonnet-4-5","max_tokens":5, "cache_control":{"type":"ephemeral"}}"#
        );
        let body = br#" {"max_tokens":5}"#;
        assert_eq!(
            std::str::from_utf8(&native(body, None).with_model("m")).unwrap(),
            r#" {"model":"m","max_tokens":5}"#
        );
        assert_eq!(
            std::str::from_utf8(&native(b"{ }", None).with_model("m")).unwrap(),
            r#"{"model":"m" }"#
        );
    }
}
