//! A fast OpenAI-compatible upstream for load tests: answers every
//! `POST .../chat/completions` with a fixed completion, or an SSE stream when asked, so that
//! the mock is never the bottleneck of a measurement.
//!
//! ```text
//! cargo run --release --example mock_upstream -- --port 9001 [--delay-ms 0] [--chunks 8] [--chunk-delay-ms 0]
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Clone, Copy)]
struct Opts {
    port: u16,
    delay: Duration,
    chunks: usize,
    chunk_delay: Duration,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        port: 9001,
        delay: Duration::ZERO,
        chunks: 8,
        chunk_delay: Duration::ZERO,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < args.len() {
        let v = &args[i + 1];
        match args[i].as_str() {
            "--port" => o.port = v.parse().expect("--port N"),
            "--delay-ms" => o.delay = Duration::from_millis(v.parse().expect("--delay-ms N")),
            "--chunks" => o.chunks = v.parse().expect("--chunks N"),
            "--chunk-delay-ms" => {
                o.chunk_delay = Duration::from_millis(v.parse().expect("--chunk-delay-ms N"))
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

const COMPLETION: &str = r#"{"id":"chatcmpl-mock","object":"chat.completion","created":1,"model":"mock","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the mock upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":6,"total_tokens":18}}"#;
const CHUNK: &str = "data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mock\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word \"},\"finish_reason\":null}]}\n\n";
const LAST: &str = "data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mock\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":8,\"total_tokens\":20}}\n\ndata: [DONE]\n\n";

type Body = UnsyncBoxBody<Bytes, Infallible>;

async fn handle(o: Opts, req: http::Request<Incoming>) -> Result<http::Response<Body>, Infallible> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let stream = memchr_stream(&body);
    if !o.delay.is_zero() {
        tokio::time::sleep(o.delay).await;
    }
    if !stream {
        return Ok(http::Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(COMPLETION.as_bytes())).boxed_unsync())
            .unwrap());
    }
    let chunks = o.chunks;
    let s = futures_util::stream::unfold(0usize, move |n| async move {
        if n > chunks {
            return None;
        }
        if n > 0 && !o.chunk_delay.is_zero() {
            tokio::time::sleep(o.chunk_delay).await;
        }
        let data = if n == chunks { LAST } else { CHUNK };
        Some((
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(data.as_bytes()))),
            n + 1,
        ))
    });
    Ok(http::Response::builder()
        .header("content-type", "text/event-stream")
        .body(StreamBody::new(s).boxed_unsync())
        .unwrap())
}

/// `"stream":true` anywhere in the body (good enough for a load mock; no JSON parse).
fn memchr_stream(body: &[u8]) -> bool {
    body.windows(13).any(|w| w == b"\"stream\":true")
        || body.windows(14).any(|w| w == b"\"stream\": true")
}

#[tokio::main]
async fn main() {
    let o = parse_args();
    let addr = SocketAddr::from(([127, 0, 0, 1], o.port));
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    eprintln!("mock upstream on http://{}", listener.local_addr().unwrap());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(o, req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
