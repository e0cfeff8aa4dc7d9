//! The seam between the dispatcher and backends that do not speak OpenAI chat completions.
//!
//! A translating backend turns the client's OpenAI request into its own wire request, its
//! non-streamed answer back into an OpenAI `chat.completion`, and its stream into OpenAI
//! `chat.completion.chunk` SSE events. The dispatcher owns the HTTP call, timeouts, fallback
//! and health; a backend only translates.

pub mod gemini_schema;
pub mod openai;
pub mod sse;
#[cfg(test)]
pub(crate) mod testing;

use bytes::Bytes;

use crate::config::ProviderConfig;
use crate::request::{ChatRequest, InvalidRequest};

/// An upstream HTTP request, ready to send (POST).
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub url: String,
    /// Headers to send, secrets included (never logged).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: Vec<u8>,
}

/// How a failed upstream response should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The request itself is wrong (bad schema, unsupported content): the client's 4xx, not retried.
    Client,
    /// Rate limits, overload, server errors, auth, unknown model: fall through to the next provider.
    Provider,
}

/// A translated upstream error, in terms the dispatcher can act on.
#[derive(Debug, Clone)]
pub struct UpstreamFailure {
    pub kind: FailureKind,
    /// HTTP status to report to the client when `kind` is `Client`.
    pub status: u16,
    /// Short description, free of secrets (e.g. `RESOURCE_EXHAUSTED: quota exceeded`).
    pub message: String,
}

/// Translates one provider's SSE stream into OpenAI SSE events.
pub trait StreamTranslator: Send {
    /// Feed upstream bytes (arbitrary chunk boundaries); push complete OpenAI SSE events
    /// (`data: {...}\n\n`) to `out`.
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure>;
    /// The upstream stream ended: flush, emit the final chunk(s) and `data: [DONE]\n\n`.
    fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure>;
}

/// A backend that translates to and from a non-OpenAI API.
pub trait Translate: Send + Sync {
    /// Build the upstream request. `stream` says whether the client asked for a stream.
    fn request(
        &self,
        provider: &ProviderConfig,
        req: &ChatRequest<'_>,
    ) -> Result<UpstreamRequest, InvalidRequest>;

    /// Translate a successful (2xx) non-streamed response body into an OpenAI
    /// `chat.completion` JSON body.
    fn response(
        &self,
        provider: &ProviderConfig,
        req: &ChatRequest<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, UpstreamFailure>;

    /// Classify a non-2xx response.
    fn failure(&self, status: u16, body: &[u8]) -> UpstreamFailure;

    /// A translator for a streamed 2xx response.
    fn stream(&self, provider: &ProviderConfig, req: &ChatRequest<'_>)
        -> Box<dyn StreamTranslator>;
}

/// Headers for a translated request: JSON content type, the backend's own headers (its
/// credentials, marked sensitive so they are never logged), then the provider's extra
/// headers from the config.
pub fn upstream_headers(
    provider: &ProviderConfig,
    own: &[(&'static str, &str, bool)],
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, InvalidRequest> {
    let bad = |what: String| InvalidRequest {
        message: format!("provider `{}` is misconfigured: {what}", provider.id),
        param: None,
        code: "provider_config",
    };
    let mut headers = Vec::with_capacity(2 + own.len() + provider.headers.len());
    headers.push((
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    ));
    for &(name, value, sensitive) in own {
        let mut v = http::HeaderValue::from_str(value).map_err(|_| {
            bad(format!(
                "the value for `{name}` has characters not allowed in a header"
            ))
        })?;
        v.set_sensitive(sensitive);
        headers.push((http::HeaderName::from_static(name), v));
    }
    for (name, value) in &provider.headers {
        let n = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("invalid header name `{name}`")))?;
        let v = http::HeaderValue::from_str(value)
            .map_err(|_| bad(format!("invalid value for header `{name}`")))?;
        headers.push((n, v));
    }
    Ok(headers)
}
