//! An incremental Server-Sent Events decoder for upstream streams.
//!
//! Upstream bytes arrive in arbitrary pieces: a frame, a line, even a UTF-8 character may be
//! split across reads. [`SseDecoder`] buffers the unfinished line and yields whole events
//! (`event:` name and joined `data:` lines) as soon as their terminating blank line arrives.
//! Lines may end in `\n`, `\r\n` or `\r` (the SSE specification allows all three).
//! [`SseTranslator`] is the stream decoder of every translating protocol: it decodes the
//! upstream's events and hands each to that protocol's [`EventTranslator`].

use bytes::Bytes;

use crate::metrics::Usage;
use crate::providers::protocol::{Events, StreamDecoder, UpstreamFailure};

/// Turns one upstream's SSE events into OpenAI SSE events, one event at a time.
pub trait EventTranslator: Send {
    /// One complete upstream event; push the OpenAI events it makes to `out`.
    fn on_event(&mut self, event: &SseEvent, out: &mut Events) -> Result<(), UpstreamFailure>;
    /// The upstream ended after its last event: push the final events, or fail a stream that
    /// was cut short.
    fn on_end(&mut self, out: &mut Events) -> Result<(), UpstreamFailure>;
    /// The usage the upstream reported so far.
    fn usage(&self) -> Option<Usage>;
}

/// The stream decoder of a translating protocol: SSE decoding, then its [`EventTranslator`].
#[derive(Debug, Default)]
pub struct SseTranslator<T> {
    sse: SseDecoder,
    events: T,
}

impl<T: EventTranslator> SseTranslator<T> {
    pub fn new(events: T) -> Self {
        SseTranslator {
            sse: SseDecoder::new(),
            events,
        }
    }
}

impl<T: EventTranslator> StreamDecoder for SseTranslator<T> {
    fn feed(&mut self, chunk: Bytes, out: &mut Events) -> Result<(), UpstreamFailure> {
        let events = &mut self.events;
        self.sse.feed(&chunk, |event| events.on_event(&event, out))
    }

    fn finish(&mut self, out: &mut Events) -> Result<(), UpstreamFailure> {
        let events = &mut self.events;
        self.sse.finish(|event| events.on_event(&event, out))?;
        events.on_end(out)
    }

    fn usage(&self) -> Option<Usage> {
        self.events.usage()
    }
}

/// One complete SSE event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; empty when the frame had none.
    pub event: String,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

/// Splits a byte stream into SSE events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of the line being received.
    line: Vec<u8>,
    /// The previous byte was `\r`: a following `\n` belongs to the same line break.
    after_cr: bool,
    event: String,
    data: String,
    /// Whether the current frame has at least one `data:` line.
    has_data: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; call `on_event` for every event completed by them.
    pub fn feed<E>(
        &mut self,
        bytes: &[u8],
        mut on_event: impl FnMut(SseEvent) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', rest) {
                None => {
                    self.line.extend_from_slice(rest);
                    break;
                }
                Some(at) => {
                    self.line.extend_from_slice(&rest[..at]);
                    self.after_cr = rest[at] == b'\r';
                    rest = &rest[at + 1..];
                    if let Some(event) = self.end_line() {
                        on_event(event)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The stream ended: an event whose blank line never came is still delivered.
    pub fn finish<E>(
        &mut self,
        mut on_event: impl FnMut(SseEvent) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.line.is_empty() {
            if let Some(event) = self.end_line() {
                on_event(event)?;
            }
        }
        if let Some(event) = self.end_line() {
            on_event(event)?;
        }
        Ok(())
    }

    /// Process the buffered line; a blank line completes the pending event.
    fn end_line(&mut self) -> Option<SseEvent> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if !self.has_data && self.event.is_empty() {
                return None;
            }
            self.has_data = false;
            return Some(SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
            });
        }
        let text = String::from_utf8_lossy(&line);
        let (field, value) = match text.find(':') {
            Some(0) => return None, // a comment
            Some(at) => {
                let value = &text[at + 1..];
                (&text[..at], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = value.to_owned(),
            _ => {} // id, retry, unknown fields
        }
        // Keep the line's allocation for the next one.
        self.line = line;
        self.line.clear();
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            decoder
                .feed(chunk, |e| {
                    events.push(e);
                    Ok::<(), ()>(())
                })
                .unwrap();
        }
        decoder
            .finish(|e| {
                events.push(e);
                Ok::<(), ()>(())
            })
            .unwrap();
        events
    }

    #[test]
    fn events_are_the_same_whatever_the_split_points() {
        let input = "event: a\ndata: {\"x\":1}\n\n: keep-alive\r\n\r\ndata: one\r\ndata: two\r\n\r\nevent: ping\rdata: é\r\rdata:tail";
        let expected = vec![
            SseEvent {
                event: "a".into(),
                data: "{\"x\":1}".into(),
            },
            SseEvent {
                event: String::new(),
                data: "one\ntwo".into(),
            },
            SseEvent {
                event: "ping".into(),
                data: "é".into(),
            },
            SseEvent {
                event: String::new(),
                data: "tail".into(),
            },
        ];
        for piece in [1, 2, 3, 5, 7, 64, input.len()] {
            assert_eq!(
                decode_in_pieces(input.as_bytes(), piece),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn blank_lines_without_data_yield_nothing() {
        assert!(decode_in_pieces(b"\n\n\r\n: comment\n\n", 1).is_empty());
    }
}
