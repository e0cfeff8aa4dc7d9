//! OpenAI-compatible upstreams (`openai-compat` backend): requests and answers pass through.
//!
//! The request is the client's body byte for byte with only `model` replaced (and
//! `max_tokens`, `stream_options.include_usage` added where the client left them out, see
//! [`ChatRequest::upstream_body`]); a whole answer is forwarded as it came once one parse has
//! checked its shape and read its usage; a stream is forwarded event by event, never
//! re-serialised.

pub mod response;
pub mod stream;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::config::ProviderConfig;
use crate::providers::protocol::{
    Completion, Protocol, Refusal, StreamDecoder, UpstreamFailure, EVENT_STREAM,
};
use crate::request::{ChatRequest, InvalidRequest};

/// The `openai-compat` backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiCompat;

impl Protocol for OpenAiCompat {
    fn url(&self, config: &ProviderConfig, _stream: bool) -> String {
        format!("{}/chat/completions", config.base_url)
    }

    fn headers(&self, config: &ProviderConfig) -> Vec<(HeaderName, String, bool)> {
        let key = config.api_key.as_deref();
        key.map(|k| (AUTHORIZATION, format!("Bearer {k}"), true))
            .into_iter()
            .collect()
    }

    fn body(
        &self,
        config: &ProviderConfig,
        req: &ChatRequest<'_>,
    ) -> Result<Vec<u8>, InvalidRequest> {
        Ok(req.upstream_body(&config.model, config.max_tokens))
    }

    fn complete(
        &self,
        _config: &ProviderConfig,
        content_type: Option<HeaderValue>,
        body: Bytes,
    ) -> Result<Completion, UpstreamFailure> {
        response::complete(content_type, body)
    }

    fn error_answer(
        &self,
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    ) -> Result<Refusal, UpstreamFailure> {
        response::error_answer(status, content_type, body)
    }

    fn stream(
        &self,
        _config: &ProviderConfig,
        req: &ChatRequest<'_>,
        content_type: Option<HeaderValue>,
    ) -> (HeaderValue, Box<dyn StreamDecoder>) {
        let decoder = stream::PassThrough::new(req.adds_stream_usage());
        (content_type.unwrap_or(EVENT_STREAM), Box::new(decoder))
    }
}
