//! What the translating protocols share: the [`Translator`] traits (the parts of a
//! [`Protocol`] that differ between translated APIs, one per side: [`WriteRequest`],
//! [`ReadResponse`], [`ReadStream`]; every translator is a protocol through the impl below),
//! the client's OpenAI request as they read it, the OpenAI answers they write back, and an
//! incremental SSE decoder for upstream streams.

pub mod openai;
pub mod sse;
#[cfg(test)]
pub(crate) mod testing;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::config::ProviderConfig;
use crate::providers::protocol::{
    Completion, Protocol, Refusal, StreamDecoder, UpstreamFailure, EVENT_STREAM,
};
use crate::request::{ChatRequest, InvalidRequest};
use openai::OpenAiRequest;
use sse::{EventTranslator, SseTranslator};

/// How a translated API is written to (a backend's `request` module).
pub trait WriteRequest: Send + Sync {
    /// The URL requests go to; `stream` says whether the client asked for a stream.
    fn endpoint(&self, config: &ProviderConfig, stream: bool) -> String;

    /// The API's own headers, as `(name, value, sensitive)`: credentials are sensitive.
    fn api_headers(&self, config: &ProviderConfig) -> Vec<(HeaderName, String, bool)>;

    /// The upstream request body for the client's request `oa` (`stream`: the client asked
    /// for a stream). An error is the client's.
    fn request(
        &self,
        config: &ProviderConfig,
        oa: &OpenAiRequest<'_>,
        stream: bool,
    ) -> Result<Vec<u8>, InvalidRequest>;
}

/// How a translated API's whole answers are read (a backend's `response` module).
pub trait ReadResponse: Send + Sync {
    /// A successful (2xx) non-streamed answer as an OpenAI `chat.completion`.
    fn response(&self, config: &ProviderConfig, body: &[u8])
        -> Result<Completion, UpstreamFailure>;

    /// A non-2xx answer as a fallback decision.
    fn failure(&self, status: u16, body: &[u8]) -> UpstreamFailure;
}

/// How a translated API's streams are read (a backend's `stream` module).
pub trait ReadStream: Send + Sync {
    /// Translates a 2xx stream's events.
    type Events: EventTranslator + 'static;

    /// The translator of a stream answering for `config.model`; `include_usage`: the client
    /// asked for a usage chunk.
    fn events(&self, config: &ProviderConfig, include_usage: bool) -> Self::Events;
}

/// A translated API: its three sides make it a [`Protocol`].
pub trait Translator: WriteRequest + ReadResponse + ReadStream {}

impl<T: WriteRequest + ReadResponse + ReadStream> Translator for T {}

impl<T: Translator> Protocol for T {
    fn url(&self, config: &ProviderConfig, stream: bool) -> String {
        self.endpoint(config, stream)
    }

    fn headers(&self, config: &ProviderConfig) -> Vec<(HeaderName, String, bool)> {
        self.api_headers(config)
    }

    fn body(
        &self,
        config: &ProviderConfig,
        req: &ChatRequest<'_>,
    ) -> Result<Vec<u8>, InvalidRequest> {
        // `ChatRequest` decodes only what routing needs; a translator needs every field.
        self.request(config, &OpenAiRequest::parse(req.body())?, req.stream)
    }

    fn complete(
        &self,
        config: &ProviderConfig,
        _content_type: Option<HeaderValue>,
        body: Bytes,
    ) -> Result<Completion, UpstreamFailure> {
        self.response(config, &body)
    }

    fn error_answer(
        &self,
        status: StatusCode,
        _content_type: Option<HeaderValue>,
        body: Bytes,
    ) -> Result<Refusal, UpstreamFailure> {
        Err(self.failure(status.as_u16(), &body))
    }

    fn stream(
        &self,
        config: &ProviderConfig,
        req: &ChatRequest<'_>,
        _content_type: Option<HeaderValue>,
    ) -> (HeaderValue, Box<dyn StreamDecoder>) {
        let events = self.events(config, req.wants_stream_usage());
        (EVENT_STREAM, Box::new(SseTranslator::new(events)))
    }
}
