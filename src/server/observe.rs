//! Accounting for streamed answers: the bytes pass through untouched while errors and timing
//! are read off the side, and the usage is the one the upstream stream reported; the
//! request's metrics event is recorded when the stream ends, or when the client goes away.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::config::Pricing;
use crate::metrics::{usage, Metrics, RequestEvent};
use crate::providers::relay::EventStream;

/// Bytes of JSON framing around each streamed delta, for estimating completion tokens when
/// the upstream reports no usage.
const EVENT_OVERHEAD: usize = 150;

/// A stream on its way to the client, and the event to record when it ends.
pub struct ObservedStream {
    inner: EventStream,
    event: Option<RequestEvent>,
    metrics: Metrics,
    pricing: Pricing,
    started: Instant,
    prompt_chars: usize,
    data_bytes: usize,
    events: usize,
    error: Option<String>,
    /// Run once when the stream ends without an error.
    on_success: Option<Box<dyn FnOnce() + Send>>,
}

impl ObservedStream {
    pub fn new(
        inner: EventStream,
        event: RequestEvent,
        metrics: Metrics,
        pricing: Pricing,
        started: Instant,
        prompt_chars: usize,
    ) -> Self {
        ObservedStream {
            inner,
            event: Some(event),
            metrics,
            pricing,
            started,
            prompt_chars,
            data_bytes: 0,
            events: 0,
            error: None,
            on_success: None,
        }
    }

    /// Run `f` when the stream has been relayed to its end with no error event (sticky
    /// routing remembers the provider only then).
    pub fn on_success(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_success = Some(Box::new(f));
        self
    }

    fn inspect(&mut self, chunk: &[u8]) {
        self.data_bytes += chunk.len();
        self.events += memchr::memmem::find_iter(chunk, b"data:").count();
        if memchr::memmem::find(chunk, b"{\"error\"").is_none()
            && memchr::memmem::find(chunk, ANTHROPIC_ERROR).is_none()
        {
            return;
        }
        let mut anthropic_error = false;
        for line in chunk.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line == ANTHROPIC_ERROR {
                anthropic_error = true;
                continue;
            }
            let Some(data) = line.strip_prefix(b"data:") else {
                continue;
            };
            let data = data.strip_prefix(b" ").unwrap_or(data);
            if data.starts_with(b"{\"error\"") || std::mem::take(&mut anthropic_error) {
                self.error = Some(stream_error(data));
            }
        }
    }

    fn finish(&mut self, error: Option<String>) {
        let Some(mut ev) = self.event.take() else {
            return;
        };
        ev.latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let usage = self.inner.usage().unwrap_or_else(|| {
            let completion = self.data_bytes.saturating_sub(self.events * EVENT_OVERHEAD);
            usage::estimate(self.prompt_chars, completion)
        });
        ev.set_usage(&usage, &self.pricing);
        ev.error = self.error.take().or(error);
        if ev.error.is_none() {
            if let Some(f) = self.on_success.take() {
                f();
            }
        }
        self.metrics.record(ev);
    }
}

/// The line that names an Anthropic stream's `error` event (passed through from an
/// `anthropic` provider, or written by the relay for one).
const ANTHROPIC_ERROR: &[u8] = b"event: error";

/// `code: message` of an error event, OpenAI's (`error.code`) or Anthropic's (`error.type`).
fn stream_error(data: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
    let error = &v["error"];
    let code = match (error["code"].as_str(), v["type"].as_str()) {
        (Some(code), _) => code,
        (None, Some("error")) => error["type"].as_str().unwrap_or("stream_error"),
        (None, _) => "stream_error",
    };
    let message = error["message"].as_str().unwrap_or("");
    format!("{code}: {message}")
}

impl Stream for ObservedStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.inspect(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(Some(format!("stream_error: {e}")));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ObservedStream {
    fn drop(&mut self) {
        // Dropped before its end: the client went away.
        self.finish(Some(
            "client_closed: the client disconnected before the stream ended".into(),
        ));
    }
}
