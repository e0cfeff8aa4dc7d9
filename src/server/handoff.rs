//! Streamed response bodies.
//!
//! warp builds responses from whole buffers, so a handler that streams puts its byte stream
//! into a response extension; the connection layer in [`super::serve`] takes it out and sends
//! it as the body, chunk by chunk as the upstream delivers it, without copying or re-encoding.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::Stream;

/// A byte stream on its way to the client.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// A byte stream waiting to become a response body.
#[derive(Clone)]
pub struct StreamHandoff(Arc<Mutex<Option<ByteStream>>>);

impl StreamHandoff {
    pub fn new(stream: ByteStream) -> Self {
        StreamHandoff(Arc::new(Mutex::new(Some(stream))))
    }

    pub fn take(&self) -> Option<ByteStream> {
        crate::util::lock(&self.0).take()
    }
}
