//! Pass-through streams: OpenAI SSE forwarded to the client byte for byte.
//!
//! Bytes are forwarded without being parsed or re-serialised; the [`Framer`] only holds back
//! the tail of an event that has not fully arrived, so that the client never receives half
//! an event and a failure mid-stream can be reported as a clean error event. Only an event
//! that mentions `usage` is read, for its counts (and removed when ClawGate asked for it on
//! the client's behalf).

use bytes::{Bytes, BytesMut};

use super::response::error_detail;
use crate::metrics::{usage, Usage};
use crate::providers::protocol::{Events, FailureKind, StreamDecoder, UpstreamFailure};

/// Decodes a pass-through stream: frames it, reads its usage, and fails a stream that begins
/// with an error or breaks off inside an event.
#[derive(Debug, Default)]
pub struct PassThrough {
    framer: Framer,
    /// Remove the usage-only chunk ClawGate asked for on the client's behalf (after reading it).
    strip_usage: bool,
    usage: Option<Usage>,
    saw_done: bool,
    /// Events went out to the client.
    forwarded: bool,
}

impl PassThrough {
    pub fn new(strip_usage: bool) -> Self {
        PassThrough {
            strip_usage,
            ..Default::default()
        }
    }

    fn emit(&mut self, mut events: Bytes, out: &mut Events) -> Result<(), UpstreamFailure> {
        if !self.forwarded {
            // Some providers answer 200 and then an error object as the very first event.
            if let Some(data) = first_data(&events).filter(|d| d.starts_with(b"{\"error\"")) {
                let error = error_detail(data).unwrap_or_else(|| "unknown error".into());
                return Err(UpstreamFailure::of(
                    FailureKind::Malformed,
                    format!("stream began with an error: {error}"),
                ));
            }
        }
        if !self.saw_done && contains_done(&events) {
            self.saw_done = true;
        }
        if memchr::memmem::find(&events, b"\"usage\"").is_some() {
            self.read_usage(&events);
            if self.strip_usage {
                events = without_usage_chunks(events);
                if events.is_empty() {
                    return Ok(());
                }
            }
        }
        self.forwarded = true;
        out.push_back(events);
        Ok(())
    }

    fn read_usage(&mut self, events: &[u8]) {
        for line in events.split(|&b| b == b'\n') {
            let Some(data) = line.strip_prefix(b"data:") else {
                continue;
            };
            let data = data.strip_prefix(b" ").unwrap_or(data);
            let data = data.strip_suffix(b"\r").unwrap_or(data);
            if let Some(u) = usage::from_sse_event(data) {
                self.usage = Some(u);
            }
        }
    }
}

impl StreamDecoder for PassThrough {
    fn feed(&mut self, chunk: Bytes, out: &mut Events) -> Result<(), UpstreamFailure> {
        match self.framer.push(chunk) {
            Some(events) => self.emit(events, out),
            None => Ok(()),
        }
    }

    fn finish(&mut self, out: &mut Events) -> Result<(), UpstreamFailure> {
        let rest = self.framer.take_rest();
        if self.forwarded && !rest.is_empty() && !self.saw_done {
            return Err(UpstreamFailure::of(
                FailureKind::Stream,
                "stream ended in the middle of an event",
            ));
        }
        if rest.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        // A last event without its blank line: complete it rather than drop it.
        let mut v = rest.to_vec();
        v.extend_from_slice(b"\n\n");
        self.emit(Bytes::from(v), out)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// Splits a byte stream at event boundaries (a blank line).
#[derive(Debug, Default)]
pub struct Framer {
    partial: BytesMut,
}

impl Framer {
    /// Add upstream bytes; returns the complete events they finish, as one buffer.
    pub fn push(&mut self, chunk: Bytes) -> Option<Bytes> {
        if self.partial.is_empty() {
            match last_boundary(&chunk) {
                // The common case: the chunk is whole events. Forward it without a copy.
                Some(end) if end == chunk.len() => return Some(chunk),
                Some(end) => {
                    self.partial.extend_from_slice(&chunk[end..]);
                    return Some(chunk.slice(..end));
                }
                None => {
                    self.partial.extend_from_slice(&chunk);
                    return None;
                }
            }
        }
        // Only the bytes around the join can complete an event that spans chunks.
        let search_from = self.partial.len().saturating_sub(3);
        self.partial.extend_from_slice(&chunk);
        let end = last_boundary(&self.partial[search_from..])? + search_from;
        Some(self.partial.split_to(end).freeze())
    }

    /// Bytes of an event that never finished.
    pub fn pending(&self) -> &[u8] {
        &self.partial
    }

    /// Take what is left at the end of the stream.
    pub fn take_rest(&mut self) -> Bytes {
        self.partial.split().freeze()
    }
}

/// End offset of the last blank-line event terminator in `buf` (`\n\n` or `\r\n\r\n`).
fn last_boundary(buf: &[u8]) -> Option<usize> {
    let mut i = buf.len();
    while i >= 2 {
        if buf[i - 1] == b'\n' {
            if buf[i - 2] == b'\n' {
                return Some(i);
            }
            if i >= 4 && &buf[i - 4..i] == b"\r\n\r\n" {
                return Some(i);
            }
        }
        i -= 1;
    }
    None
}

/// The `data:` payload of the first event in `events`, if any.
pub fn first_data(events: &[u8]) -> Option<&[u8]> {
    for line in events.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(data) = line.strip_prefix(b"data:") {
            return Some(data.strip_prefix(b" ").unwrap_or(data));
        }
    }
    None
}

/// `events` without the usage-only chunks (`"choices":[]` with a `usage`), which ClawGate
/// asked the upstream for to account the request. Other events pass through untouched, and
/// without a copy when there is nothing to remove.
pub fn without_usage_chunks(events: Bytes) -> Bytes {
    if memchr::memmem::find(&events, b"\"usage\"").is_none() {
        return events;
    }
    let mut out = Vec::with_capacity(events.len());
    let mut rest: &[u8] = &events;
    while !rest.is_empty() {
        let end = memchr::memmem::find(rest, b"\n\n").map_or(rest.len(), |i| i + 2);
        let (event, tail) = rest.split_at(end);
        let usage_only = first_data(event)
            .is_some_and(|d| memchr::memmem::find(d, b"\"usage\"").is_some() && is_usage_only(d));
        if !usage_only {
            out.extend_from_slice(event);
        }
        rest = tail;
    }
    Bytes::from(out)
}

fn is_usage_only(data: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Chunk {
        #[serde(default)]
        choices: Option<Vec<serde::de::IgnoredAny>>,
        usage: Option<serde::de::IgnoredAny>,
    }
    matches!(serde_json::from_slice::<Chunk>(data), Ok(Chunk { choices: Some(c), usage: Some(_) }) if c.is_empty())
}

/// Whether the stream's events include the OpenAI end marker.
pub fn contains_done(events: &[u8]) -> bool {
    memchr::memmem::find(events, b"data: [DONE]").is_some()
        || memchr::memmem::find(events, b"data:[DONE]").is_some()
}
