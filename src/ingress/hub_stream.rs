//! The one loop every client API's stream translation runs: read the hub's stream (OpenAI SSE
//! events, as the dispatcher brings them), hand each event to the API's translator, and give
//! out what it wrote, until it has said its last event; then keep reading the hub stream to its
//! end, so that its end is observed (and recorded) too. Each API's `stream.rs` keeps only what
//! its events say (`on_event`, `end`).

use std::collections::VecDeque;
use std::io;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::providers::translate::sse::{SseDecoder, SseEvent};

/// A client API's translation of the hub stream.
pub(crate) trait HubEvents {
    type Inner: Stream<Item = Result<Bytes, io::Error>> + Unpin;
    /// The hub stream.
    fn inner(&mut self) -> &mut Self::Inner;
    /// Its SSE decoder.
    fn sse(&mut self) -> &mut SseDecoder;
    /// What the translation wrote and the client has not read yet.
    fn out(&mut self) -> &mut VecDeque<Bytes>;
    /// The translation said its last event: nothing more goes out.
    fn ended(&self) -> bool;
    /// Translate one hub event.
    fn on_event(&mut self, event: &SseEvent);
    /// The hub stream ended: say what the client API says at the end.
    fn end(&mut self);
}

/// Feed a chunk of the hub stream to the translation.
fn feed<T: HubEvents>(t: &mut T, chunk: &[u8]) {
    let mut events = Vec::new();
    let _ = t.sse().feed(chunk, |e| {
        events.push(e);
        Ok::<(), ()>(())
    });
    for e in &events {
        t.on_event(e);
    }
}

/// `Stream::poll_next` of a translation.
pub(crate) fn poll<T: HubEvents>(
    t: &mut T,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Bytes, io::Error>>> {
    loop {
        if let Some(b) = t.out().pop_front() {
            return Poll::Ready(Some(Ok(b)));
        }
        if t.ended() {
            // Drain the hub stream, so that its end is observed (and recorded) too.
            return match t.inner().poll_next_unpin(cx) {
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
        match t.inner().poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => feed(t, &chunk),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {
                let mut rest = Vec::new();
                let _ = t.sse().finish(|e| {
                    rest.push(e);
                    Ok::<(), ()>(())
                });
                for e in &rest {
                    t.on_event(e);
                }
                t.end();
                if t.out().is_empty() {
                    return Poll::Ready(None);
                }
            }
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// `HubEvents` and `Stream` for a translation struct with the fields `inner`, `sse`, `out` and
/// `ended` and the methods `on_event` and `end`.
macro_rules! hub_events {
    ($name:ident) => {
        impl<S> $crate::ingress::hub_stream::HubEvents for $name<S>
        where
            S: ::futures_util::Stream<Item = Result<::bytes::Bytes, ::std::io::Error>> + Unpin,
        {
            type Inner = S;
            fn inner(&mut self) -> &mut S {
                &mut self.inner
            }
            fn sse(&mut self) -> &mut $crate::providers::translate::sse::SseDecoder {
                &mut self.sse
            }
            fn out(&mut self) -> &mut ::std::collections::VecDeque<::bytes::Bytes> {
                &mut self.out
            }
            fn ended(&self) -> bool {
                self.ended
            }
            fn on_event(&mut self, event: &$crate::providers::translate::sse::SseEvent) {
                $name::on_event(self, event)
            }
            fn end(&mut self) {
                $name::end(self)
            }
        }

        impl<S> ::futures_util::Stream for $name<S>
        where
            S: ::futures_util::Stream<Item = Result<::bytes::Bytes, ::std::io::Error>> + Unpin,
        {
            type Item = Result<::bytes::Bytes, ::std::io::Error>;

            fn poll_next(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<Option<Self::Item>> {
                $crate::ingress::hub_stream::poll(&mut *self, cx)
            }
        }
    };
}
pub(crate) use hub_events;
