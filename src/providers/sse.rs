//! Server-sent-event framing for pass-through streams.
//!
//! Bytes are forwarded without being parsed or re-serialised; the framer only holds back
//! the tail of an event that has not fully arrived, so that the client never receives half
//! an event and a failure mid-stream can be reported as a clean error event.

use bytes::{Bytes, BytesMut};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_released_whole_whatever_the_chunking() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n";
        for size in 1..stream.len() {
            let mut framer = Framer::default();
            let mut out = Vec::new();
            for chunk in stream.chunks(size) {
                if let Some(events) = framer.push(Bytes::copy_from_slice(chunk)) {
                    assert!(
                        events.ends_with(b"\n\n") || events.ends_with(b"\r\n\r\n"),
                        "size {size}"
                    );
                    out.extend_from_slice(&events);
                }
            }
            assert_eq!(out, stream, "size {size}");
            assert!(framer.pending().is_empty());
        }
    }

    #[test]
    fn aligned_chunks_are_forwarded_without_copy() {
        let mut framer = Framer::default();
        let chunk = Bytes::from_static(b"data: x\n\n");
        let out = framer.push(chunk.clone()).unwrap();
        assert_eq!(out.as_ptr(), chunk.as_ptr());
    }

    #[test]
    fn usage_only_chunks_are_removed_and_nothing_else() {
        let events = Bytes::from_static(b"data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n");
        let out = without_usage_chunks(events);
        assert_eq!(
            &out[..],
            b"data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\ndata: [DONE]\n\n"
        );
        let plain = Bytes::from_static(b"data: {\"choices\":[]}\n\n");
        assert_eq!(without_usage_chunks(plain.clone()).as_ptr(), plain.as_ptr());
    }

    #[test]
    fn first_data_and_done_are_found() {
        assert_eq!(
            first_data(b": ping\n\ndata: {\"error\":1}\n\n"),
            Some(&b"{\"error\":1}"[..])
        );
        assert!(contains_done(b"data: {}\n\ndata: [DONE]\n\n"));
        assert!(!contains_done(b"data: {}\n\n"));
    }
}
