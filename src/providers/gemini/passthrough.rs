//! Gemini clients on a `google-genai` backend: `generateContent` passed through.
//!
//! The request is the client's body as it is, sent to the provider's own model's URL (see
//! [`crate::providers::native`]), so thought signatures, safety settings, built-in tools,
//! cached content and fields ClawGate has never heard of reach Google untouched. Answers come
//! back as they came: a whole answer byte for byte once one parse has checked it and read its
//! `usageMetadata`; a stream event for event, its usage read off each event. An error before
//! anything was forwarded falls back; the client's own errors (400 `INVALID_ARGUMENT` about
//! the request) are returned as Google wrote them.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use super::response::{classify_error, GenerateResponse};
use super::Gemini;
use crate::config::ProviderConfig;
use crate::metrics::Usage;
use crate::providers::openai_compat::stream::Framer;
use crate::providers::protocol::{
    read_json, Completion, Events, FailureKind, Protocol, Refusal, StreamDecoder, UpstreamFailure,
    EVENT_STREAM, JSON,
};
use crate::providers::translate::openai::CompletionUsage;
use crate::providers::translate::sse::SseDecoder;
use crate::providers::translate::{ReadResponse, WriteRequest};
use crate::request::{ChatRequest, InvalidRequest};

/// The Gemini API spoken to a `google-genai` backend by a Gemini client.
#[derive(Debug, Clone, Copy, Default)]
pub struct GeminiNative;

impl Protocol for GeminiNative {
    fn url(&self, config: &ProviderConfig, stream: bool) -> String {
        Gemini.endpoint(config, stream)
    }

    fn headers(&self, config: &ProviderConfig) -> Vec<(HeaderName, String, bool)> {
        Gemini.api_headers(config)
    }

    /// Never called: a passed-through body is the client's own.
    fn body(
        &self,
        _config: &ProviderConfig,
        _req: &ChatRequest<'_>,
    ) -> Result<Vec<u8>, InvalidRequest> {
        Err(InvalidRequest {
            message: "a Gemini pass-through needs the client's own generateContent body".into(),
            param: None,
            code: "invalid_request",
        })
    }

    fn complete(
        &self,
        _config: &ProviderConfig,
        content_type: Option<HeaderValue>,
        body: Bytes,
    ) -> Result<Completion, UpstreamFailure> {
        let resp: GenerateResponse = read_json(&body, &"Gemini response")?;
        if let Some(error) = &resp.error {
            return Err(classify_error(error.code.unwrap_or(500), error));
        }
        let blocked = resp
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some());
        if resp.candidates.is_empty() && !blocked {
            return Err(UpstreamFailure::of(
                FailureKind::Malformed,
                "Gemini returned no candidates",
            ));
        }
        let usage = resp
            .usage_metadata
            .as_ref()
            .map(|u| u.to_openai().to_usage());
        Ok(Completion {
            content_type: content_type.unwrap_or(JSON),
            body,
            usage,
        })
    }

    fn error_answer(
        &self,
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    ) -> Result<Refusal, UpstreamFailure> {
        let failure = Gemini.failure(status.as_u16(), &body);
        if failure.kind != FailureKind::Client {
            return Err(failure);
        }
        Ok(Refusal {
            status,
            content_type: content_type.unwrap_or(JSON),
            body,
        })
    }

    fn stream(
        &self,
        _config: &ProviderConfig,
        _req: &ChatRequest<'_>,
        content_type: Option<HeaderValue>,
    ) -> (HeaderValue, Box<dyn StreamDecoder>) {
        let ct = content_type.unwrap_or(EVENT_STREAM);
        (ct, Box::<NativeStream>::default())
    }
}

/// Forwards a Gemini stream whole events at a time, reading its usage and errors.
#[derive(Default)]
pub struct NativeStream {
    framer: Framer,
    sse: SseDecoder,
    /// Something went to the client: errors no longer fall back.
    started: bool,
    /// A candidate finished.
    finished: bool,
    /// The upstream's own error went to the client (no second one is added).
    forwarded_error: bool,
    usage: Option<CompletionUsage>,
}

impl NativeStream {
    fn pass(&mut self, events: Bytes, out: &mut Events) -> Result<(), UpstreamFailure> {
        let mut parsed = Vec::new();
        self.sse.feed(&events, |e| {
            parsed.push(e);
            Ok::<(), UpstreamFailure>(())
        })?;
        self.sse.finish(|e| {
            parsed.push(e);
            Ok::<(), UpstreamFailure>(())
        })?;
        let mut failed = None;
        for event in &parsed {
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            let resp: GenerateResponse = read_json(data.as_bytes(), &"Gemini stream event")?;
            if let Some(error) = &resp.error {
                let failure = classify_error(error.code.unwrap_or(500), error);
                if !self.started {
                    return Err(failure);
                }
                failed = Some(failure);
                continue;
            }
            if resp.candidates.iter().any(|c| c.finish_reason.is_some())
                || resp
                    .prompt_feedback
                    .as_ref()
                    .is_some_and(|f| f.block_reason.is_some())
            {
                self.finished = true;
            }
            if let Some(u) = &resp.usage_metadata {
                self.usage = Some(u.to_openai());
            }
        }
        self.started = true;
        out.push_back(events);
        match failed {
            Some(failure) => {
                self.forwarded_error = true;
                Err(failure)
            }
            None => Ok(()),
        }
    }
}

impl StreamDecoder for NativeStream {
    fn feed(&mut self, chunk: Bytes, out: &mut Events) -> Result<(), UpstreamFailure> {
        match self.framer.push(chunk) {
            Some(events) => self.pass(events, out),
            None => Ok(()),
        }
    }

    fn finish(&mut self, out: &mut Events) -> Result<(), UpstreamFailure> {
        let rest = self.framer.take_rest();
        if !rest.iter().all(u8::is_ascii_whitespace) {
            let mut last = rest.to_vec();
            last.extend_from_slice(b"\r\n\r\n");
            self.pass(Bytes::from(last), out)?;
        }
        if self.finished {
            return Ok(());
        }
        Err(UpstreamFailure::of(
            FailureKind::Stream,
            if self.started {
                "Gemini stream ended before its finish reason (cut off midway)"
            } else {
                "Gemini stream ended without an answer"
            },
        ))
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().map(CompletionUsage::to_usage)
    }

    fn error_event(&self, message: &str) -> Bytes {
        if self.forwarded_error {
            return Bytes::new();
        }
        let body = serde_json::json!({
            "error": { "code": 500, "message": message, "status": "INTERNAL" },
        });
        Bytes::from(format!("data: {body}\r\n\r\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\", \"thoughtSignature\": \"c2ln\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 12,\"candidatesTokenCount\": 1},\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n";
    const TWO: &str = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 12,\"candidatesTokenCount\": 4,\"totalTokenCount\": 16}}\r\n\r\n";

    #[test]
    fn a_stream_passes_byte_for_byte_and_its_usage_is_read() {
        let joined = [ONE, TWO].concat();
        let mut d = NativeStream::default();
        let mut out = Events::new();
        for piece in joined.as_bytes().chunks(29) {
            d.feed(Bytes::copy_from_slice(piece), &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        let sent: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(String::from_utf8(sent).unwrap(), joined);
        let u = d.usage().unwrap();
        assert_eq!((u.prompt, u.completion), (12, 4));
    }

    #[test]
    fn an_error_before_anything_falls_back_and_a_cut_stream_fails() {
        let error = "data: {\"error\": {\"code\": 503, \"message\": \"overloaded\", \"status\": \"UNAVAILABLE\"}}\r\n\r\n";
        let mut d = NativeStream::default();
        let mut out = Events::new();
        assert_eq!(
            d.feed(Bytes::from(error), &mut out).unwrap_err().status,
            503
        );
        assert!(out.is_empty());
        let mut d = NativeStream::default();
        d.feed(Bytes::from(ONE), &mut out).unwrap();
        assert_eq!(d.finish(&mut out).unwrap_err().kind, FailureKind::Stream);
    }
}
