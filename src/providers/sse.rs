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
    fn first_data_and_done_are_found() {
        assert_eq!(
            first_data(b": ping\n\ndata: {\"error\":1}\n\n"),
            Some(&b"{\"error\":1}"[..])
        );
        assert!(contains_done(b"data: {}\n\ndata: [DONE]\n\n"));
        assert!(!contains_done(b"data: {}\n\n"));
    }
}
