//! Anthropic clients on an `anthropic` backend: the Messages API passed through.
//!
//! The request is the client's body with only `model` replaced (see
//! [`crate::providers::native`]), so `cache_control`, thinking blocks and their signatures,
//! betas and fields ClawGate has never heard of reach Anthropic untouched. Answers come back
//! as they came: a whole answer byte for byte once one parse has checked it and read its
//! usage; a stream event for event, its usage read off `message_start` and `message_delta`.
//! A stream's opening events are held back until the first content arrives, so an `error`
//! event right after `message_start` (an overloaded model) can still fall back. The client's
//! own errors (400, 413) are returned as Anthropic wrote them; the rest fall through.

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;

use super::response::{classify_error, AnthropicUsage, ErrorDetail};
use super::Anthropic;
use crate::config::ProviderConfig;
use crate::metrics::Usage;
use crate::providers::openai_compat::stream::Framer;
use crate::providers::protocol::{
    read_json, Completion, Events, FailureKind, Protocol, Refusal, StreamDecoder, UpstreamFailure,
    EVENT_STREAM, JSON,
};
use crate::providers::translate::sse::SseDecoder;
use crate::providers::translate::{ReadResponse, WriteRequest};
use crate::request::{ChatRequest, InvalidRequest};

/// The Messages API spoken to an `anthropic` backend by an Anthropic client.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnthropicNative;

impl Protocol for AnthropicNative {
    fn url(&self, config: &ProviderConfig, stream: bool) -> String {
        Anthropic.endpoint(config, stream)
    }

    fn headers(&self, config: &ProviderConfig) -> Vec<(HeaderName, String, bool)> {
        Anthropic.api_headers(config)
    }

    /// Never called: a passed-through body is the client's own (see
    /// [`crate::providers::Provider::native_request`]).
    fn body(
        &self,
        _config: &ProviderConfig,
        _req: &ChatRequest<'_>,
    ) -> Result<Vec<u8>, InvalidRequest> {
        Err(InvalidRequest {
            message: "an Anthropic pass-through needs the client's own Messages body".into(),
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
        #[derive(Deserialize)]
        struct Probe {
            #[serde(rename = "type", default)]
            kind: String,
            #[serde(default)]
            content: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            usage: Option<AnthropicUsage>,
            #[serde(default)]
            error: Option<ErrorDetail>,
        }
        let probe: Probe = read_json(&body, &"Anthropic response")?;
        if let Some(error) = &probe.error {
            return Err(classify_error(None, error));
        }
        if probe.kind != "message" && probe.content.is_none() {
            return Err(UpstreamFailure::of(
                FailureKind::Malformed,
                "Anthropic answer is not a message",
            ));
        }
        let usage = probe
            .usage
            .filter(AnthropicUsage::is_reported)
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
        let failure = Anthropic.failure(status.as_u16(), &body);
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

/// Forwards a Messages API stream whole events at a time, reading its usage and errors.
#[derive(Default)]
pub struct NativeStream {
    framer: Framer,
    sse: SseDecoder,
    /// Events held back until the first content (`message_start`, pings).
    held: BytesMut,
    /// Content arrived: everything is forwarded as it comes from now on.
    started: bool,
    /// `message_stop` arrived.
    stopped: bool,
    /// The upstream's own `error` event went to the client (no second one is added).
    forwarded_error: bool,
    usage: AnthropicUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    MessageDelta {
        #[serde(default)]
        usage: Option<AnthropicUsage>,
    },
    MessageStop {},
    Ping {},
    Error {
        error: ErrorDetail,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

impl NativeStream {
    /// Read whole events, then forward them (or hold them while nothing was said yet).
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
        let mut opens = false;
        let mut failed = None;
        for event in &parsed {
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            let what = format_args!("Anthropic stream event {:?}", event.event);
            match read_json::<Event>(data.as_bytes(), &what)? {
                Event::MessageStart { message } => {
                    if let Some(u) = &message.usage {
                        self.usage.update(u);
                    }
                }
                Event::MessageDelta { usage } => {
                    if let Some(u) = &usage {
                        self.usage.update(u);
                    }
                    opens = true;
                }
                Event::MessageStop {} => {
                    self.stopped = true;
                    opens = true;
                }
                Event::Ping {} => {}
                // Before any content an error still falls back; after, it goes to the client
                // as Anthropic wrote it, and the stream has failed.
                Event::Error { error } if !self.started && !opens => {
                    return Err(classify_error(None, &error));
                }
                Event::Error { error } => {
                    failed = Some(classify_error(None, &error));
                    opens = true;
                }
                Event::Other => opens = true,
            }
        }
        if self.started {
            out.push_back(events);
        } else if opens {
            self.started = true;
            self.held.extend_from_slice(&events);
            out.push_back(self.held.split().freeze());
        } else {
            self.held.extend_from_slice(&events);
        }
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
            last.extend_from_slice(b"\n\n");
            self.pass(Bytes::from(last), out)?;
        }
        if self.stopped {
            return Ok(());
        }
        Err(UpstreamFailure::of(
            FailureKind::Stream,
            if self.started {
                "Anthropic stream ended before message_stop (cut off midway)"
            } else {
                "Anthropic stream ended without an answer"
            },
        ))
    }

    fn usage(&self) -> Option<Usage> {
        let usage = self.usage;
        usage.is_reported().then(|| usage.to_openai().to_usage())
    }

    fn error_event(&self, message: &str) -> Bytes {
        if self.forwarded_error {
            return Bytes::new();
        }
        let body = serde_json::json!({
            "type": "error",
            "error": { "type": "api_error", "message": message },
        });
        Bytes::from(format!("event: error\ndata: {body}\n\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&str]) -> (Result<(), UpstreamFailure>, String) {
        let mut d = NativeStream::default();
        let mut out = Events::new();
        let mut result = Ok(());
        for c in chunks {
            result = d.feed(Bytes::copy_from_slice(c.as_bytes()), &mut out);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = d.finish(&mut out);
        }
        let text = out
            .iter()
            .map(|b| std::str::from_utf8(b).unwrap().to_owned())
            .collect();
        (result, text)
    }

    const START: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n";

    #[test]
    fn a_stream_passes_byte_for_byte_and_its_usage_is_read() {
        let body = [
            START,
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQB\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ];
        // Split at odd places: what reaches the client is still the same bytes.
        let joined = body.concat();
        let pieces: Vec<&str> = (0..joined.len())
            .step_by(37)
            .map(|i| &joined[i..(i + 37).min(joined.len())])
            .collect();
        let mut d = NativeStream::default();
        let mut out = Events::new();
        for p in &pieces {
            d.feed(Bytes::copy_from_slice(p.as_bytes()), &mut out)
                .unwrap();
        }
        d.finish(&mut out).unwrap();
        let sent: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(String::from_utf8(sent).unwrap(), joined);
        let u = d.usage().unwrap();
        assert_eq!((u.prompt, u.completion, u.cache_hit), (112, 9, 100));
    }

    #[test]
    fn an_error_before_any_content_falls_back_and_after_it_reaches_the_client() {
        let overloaded = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let (r, sent) = run(&[START, overloaded]);
        assert_eq!(r.unwrap_err().status, 529);
        assert!(sent.is_empty());
        let block = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
        let mut d = NativeStream::default();
        let mut out = Events::new();
        for c in [START, block] {
            d.feed(Bytes::from(c), &mut out).unwrap();
        }
        let failure = d.feed(Bytes::from(overloaded), &mut out).unwrap_err();
        assert_eq!(failure.status, 529);
        let sent: String = out
            .iter()
            .map(|b| std::str::from_utf8(b).unwrap())
            .collect();
        assert!(sent.starts_with("event: message_start") && sent.ends_with(overloaded));
        assert!(d.error_event("x").is_empty(), "no second error event");
    }
}
