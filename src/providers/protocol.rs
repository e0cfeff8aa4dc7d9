//! The seam between the dispatcher and the upstream APIs it speaks.
//!
//! A [`Protocol`] is one kind of upstream API: where a request goes and with which
//! credentials, the body the client's OpenAI chat request becomes, and how the upstream's
//! answers (whole, refused or streamed) become what the client gets (an OpenAI
//! `chat.completion` or `chat.completion.chunk` SSE events) together with the usage they
//! report. OpenAI-compatible pass-through is a protocol like the translating ones; it only
//! happens to leave the bytes as they are. The dispatcher owns the HTTP call, timeouts,
//! fallback and health.

use std::collections::VecDeque;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::config::ProviderConfig;
use crate::metrics::Usage;
use crate::request::{ChatRequest, InvalidRequest};

/// SSE events on their way to the client, each a whole event (`data: ...\n\n`) or several.
pub type Events = VecDeque<Bytes>;

pub const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");

/// One kind of upstream API.
pub trait Protocol: Send + Sync {
    /// The URL requests go to; `stream` says whether the client asked for a stream.
    fn url(&self, config: &ProviderConfig, stream: bool) -> String;

    /// The headers this API needs besides `Content-Type: application/json` and the config's
    /// own headers, as `(name, value, sensitive)`: credentials are sensitive (never logged).
    fn headers(&self, config: &ProviderConfig) -> Vec<(HeaderName, String, bool)>;

    /// The upstream request body for `req`. An error is the client's: the request cannot be
    /// said in this API.
    fn body(
        &self,
        config: &ProviderConfig,
        req: &ChatRequest<'_>,
    ) -> Result<Vec<u8>, InvalidRequest>;

    /// A 2xx answer to a request for a whole answer.
    fn complete(
        &self,
        config: &ProviderConfig,
        content_type: Option<HeaderValue>,
        body: Bytes,
    ) -> Result<Completion, UpstreamFailure>;

    /// A non-2xx answer: the upstream's refusal, to pass to the client as is, or why this
    /// provider failed (a [`FailureKind::Client`] failure is the client's error, described
    /// by ClawGate).
    fn error_answer(
        &self,
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    ) -> Result<Refusal, UpstreamFailure>;

    /// The client's content type and a decoder for a 2xx streamed answer.
    fn stream(
        &self,
        config: &ProviderConfig,
        req: &ChatRequest<'_>,
        content_type: Option<HeaderValue>,
    ) -> (HeaderValue, Box<dyn StreamDecoder>);
}

/// Turns one upstream's stream into OpenAI SSE events for the client, and keeps its usage.
pub trait StreamDecoder: Send {
    /// Feed upstream bytes (arbitrary chunk boundaries); push complete OpenAI SSE events to
    /// `out`.
    fn feed(&mut self, chunk: Bytes, out: &mut Events) -> Result<(), UpstreamFailure>;

    /// The upstream stream ended: flush, and push the last events.
    fn finish(&mut self, out: &mut Events) -> Result<(), UpstreamFailure>;

    /// The usage the stream reported, once it has.
    fn usage(&self) -> Option<Usage>;

    /// The event that ends a stream broken after its first event, in the client's API;
    /// `message` says what happened (OpenAI's error envelope unless the decoder passes another
    /// API through).
    fn error_event(&self, message: &str) -> Bytes {
        let body = serde_json::json!({
            "error": {
                "message": message,
                "type": "upstream_error",
                "param": null,
                "code": "stream_interrupted",
            }
        });
        Bytes::from(format!("data: {body}\n\n"))
    }
}

/// A whole answer as the client gets it: an OpenAI `chat.completion` body, and the usage it
/// reports (`None`: none was reported).
#[derive(Debug, Clone)]
pub struct Completion {
    pub content_type: HeaderValue,
    pub body: Bytes,
    pub usage: Option<Usage>,
}

/// An upstream's refusal of the request (the client's error), passed to the client as is.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub content_type: HeaderValue,
    pub body: Bytes,
}

/// Why a provider gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFailure {
    pub kind: FailureKind,
    /// The HTTP status this stands for: the upstream's own, the one to report to the client
    /// for [`FailureKind::Client`], else 502 (504 for a timeout).
    pub status: u16,
    /// Short description, free of secrets (e.g. `RESOURCE_EXHAUSTED: quota exceeded`).
    pub message: String,
}

/// What went wrong, and so what the dispatcher does about it: a [`FailureKind::Client`]
/// failure is returned to the client; the others fall through to the next provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The request itself is wrong for this provider (bad schema, unsupported content).
    Client,
    /// No connection, or it broke before an answer's head arrived.
    Connect,
    /// No connection, first event or whole answer within its timeout.
    Timeout,
    /// The upstream reported an error: a rate limit, overload, server error, auth, unknown
    /// model (as an HTTP status, or inside its answer).
    Status,
    /// A success answer that is not what the API promises.
    Malformed,
    /// The answer broke off, or a stream ended before its end.
    Stream,
    /// Not tried: the provider's circuit is open after repeated failures.
    Skipped,
    /// Not tried: the provider cannot take the request (see [`super::capable`]). Not a
    /// failure of the provider.
    Unfit,
}

impl UpstreamFailure {
    pub fn new(kind: FailureKind, status: u16, message: impl Into<String>) -> Self {
        UpstreamFailure {
            kind,
            status,
            message: message.into(),
        }
    }

    /// A failure with the status that kind stands for when the upstream gave none.
    pub fn of(kind: FailureKind, message: impl Into<String>) -> Self {
        let status = match kind {
            FailureKind::Client => 400,
            FailureKind::Timeout => 504,
            FailureKind::Skipped => 503,
            _ => 502,
        };
        UpstreamFailure::new(kind, status, message)
    }

    /// An error the upstream reported in its own terms, as `code: message` (`HTTP <status>`
    /// when it gave no code): the client's (reported as a 400, or a 413) or the provider's.
    pub fn reported(client: bool, status: u16, code: &str, message: &str) -> Self {
        let label = if code.is_empty() {
            format!("HTTP {status}")
        } else {
            code.to_owned()
        };
        let message = message.trim();
        let message = if message.is_empty() {
            label
        } else {
            format!("{label}: {}", short(message, 600))
        };
        match client {
            true if status == 413 => UpstreamFailure::new(FailureKind::Client, 413, message),
            true => UpstreamFailure::new(FailureKind::Client, 400, message),
            false => UpstreamFailure::new(FailureKind::Status, status, message),
        }
    }
}

/// An upstream's JSON answer (or event), `what` naming it should it be unreadable.
pub fn read_json<'a, T: serde::Deserialize<'a>>(
    data: &'a [u8],
    what: &dyn std::fmt::Display,
) -> Result<T, UpstreamFailure> {
    serde_json::from_slice(data)
        .map_err(|e| UpstreamFailure::of(FailureKind::Malformed, format!("unreadable {what}: {e}")))
}

/// An upstream message cut to `max` bytes (and trimmed), fit for a log line and an error body.
pub fn short(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.trim().to_owned();
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", message[..end].trim())
}
