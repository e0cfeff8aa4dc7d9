//! A streamed answer on its way from the upstream to the client: the protocol's decoder, the
//! idle timeout, and an error event if the stream breaks.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use tokio::time::Sleep;

use super::protocol::{Events, FailureKind, StreamDecoder, UpstreamFailure};
use super::transport::{root_cause, secs, BoxError};
use super::Provider;
use crate::metrics::Usage;

/// The client's side of an upstream stream: complete OpenAI SSE events, then, should the
/// upstream fail after the first one, an error event. Its usage is the decoder's.
pub struct EventStream {
    upstream: BoxStream<'static, Result<Bytes, BoxError>>,
    decoder: Box<dyn StreamDecoder>,
    pending: Events,
    provider: Arc<Provider>,
    /// Fires when the upstream has been quiet for the provider's idle timeout.
    idle: Pin<Box<Sleep>>,
    /// Waiting for the upstream (the idle timer runs).
    waiting: bool,
    finished: bool,
}

impl EventStream {
    pub(super) fn new(
        upstream: BoxStream<'static, Result<Bytes, BoxError>>,
        decoder: Box<dyn StreamDecoder>,
        provider: &Arc<Provider>,
    ) -> Self {
        EventStream {
            upstream,
            decoder,
            pending: Events::new(),
            idle: Box::pin(tokio::time::sleep(provider.config.timeouts.idle)),
            provider: Arc::clone(provider),
            waiting: false,
            finished: false,
        }
    }

    /// Read until the first event is ready; a failure up to here still falls back.
    pub(super) async fn first_event(mut self) -> Result<Self, UpstreamFailure> {
        while self.pending.is_empty() {
            if self.finished {
                return Err(UpstreamFailure::of(
                    FailureKind::Malformed,
                    "stream ended without any event",
                ));
            }
            match self.upstream.next().await {
                Some(Err(e)) => {
                    return Err(UpstreamFailure::of(
                        FailureKind::Stream,
                        format!("stream broke before the first event: {}", root_cause(&*e)),
                    ))
                }
                item => self.on_read(item)?,
            }
        }
        Ok(self)
    }

    /// What the upstream reported it used, once it has.
    pub fn usage(&self) -> Option<Usage> {
        self.decoder.usage()
    }

    /// One read from the upstream: bytes, a break, or its end.
    fn on_read(&mut self, item: Option<Result<Bytes, BoxError>>) -> Result<(), UpstreamFailure> {
        match item {
            Some(Ok(chunk)) => self.decoder.feed(chunk, &mut self.pending),
            Some(Err(e)) => Err(UpstreamFailure::of(
                FailureKind::Stream,
                format!("stream broke: {}", root_cause(&*e)),
            )),
            None => {
                self.finished = true;
                self.decoder.finish(&mut self.pending)
            }
        }
    }

    /// End the stream with an error event, after what was already sent.
    fn fail(&mut self, message: &str) {
        let message = self.provider.redact(message);
        tracing::warn!(provider = %self.provider.id, error = %message, "stream failed after its first byte");
        self.provider
            .health
            .record_failure(&message, Instant::now());
        let event = self
            .decoder
            .error_event(&format!("{}: {message}", self.provider.id));
        if !event.is_empty() {
            self.pending.push_back(event);
        }
        self.finished = true;
    }
}

impl Stream for EventStream {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(b)));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            let idle = this.provider.config.timeouts.idle;
            if !this.waiting {
                this.waiting = true;
                this.idle.as_mut().reset(tokio::time::Instant::now() + idle);
            }
            match this.upstream.poll_next_unpin(cx) {
                Poll::Ready(item) => {
                    this.waiting = false;
                    if let Err(f) = this.on_read(item) {
                        this.fail(&f.message);
                    }
                }
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.waiting = false;
                    this.fail(&format!("no data for {}s (idle timeout)", secs(idle)));
                }
            }
        }
    }
}
