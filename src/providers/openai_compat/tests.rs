//! The pass-through protocol's own tests: SSE framing, usage-chunk removal, and what its
//! stream decoder does at the edges (the behaviour every backend shares is in
//! tests/backends.rs).

use bytes::Bytes;

use super::stream::*;

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
