//! The dispatcher: try a decision's providers in order until one answers.
//!
//! Falls through on connect errors, timeouts (connect, first byte, whole response), 404, 408,
//! 429, 5xx, 401/403 and malformed answers. A client error (400, 413, 422) is returned as is.
//! A stream falls back only before its first event reaches the client; after that a failure
//! ends the stream with an error event.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;

use super::health::Admission;
use super::sse::{self, Framer};
use super::translate::{FailureKind, StreamTranslator, UpstreamFailure, UpstreamRequest};
use super::transport::{root_cause, BoxError, SendError, UpstreamBody};
use super::Provider;
use crate::metrics::usage::{self, CompletionProbe, Usage};
use crate::request::{ChatRequest, InvalidRequest};

/// Why one provider did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    Connect,
    Timeout,
    Status(u16),
    /// A 2xx answer that was not what the API promises.
    Malformed,
    /// The stream broke before its first event.
    Stream,
    /// The backend cannot serve this request (e.g. a translation it does not support).
    Unsupported,
}

/// One provider tried and what went wrong.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub provider: Arc<str>,
    pub class: FailureClass,
    /// Short, secret-free description.
    pub error: String,
}

/// A byte stream on its way to the client.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// What the dispatcher came back with.
pub enum Outcome {
    /// A complete answer (2xx from the upstream, translated where needed).
    Complete {
        provider: Arc<Provider>,
        status: StatusCode,
        content_type: HeaderValue,
        body: Bytes,
        /// The answer's `usage`, when it reported one.
        usage: Option<Usage>,
        attempts: Vec<Attempt>,
    },
    /// A stream whose first event has arrived.
    Stream {
        provider: Arc<Provider>,
        status: StatusCode,
        content_type: HeaderValue,
        body: ByteStream,
        attempts: Vec<Attempt>,
    },
    /// The upstream said the request itself is wrong; passed to the client as is.
    Rejected {
        provider: Arc<Provider>,
        status: StatusCode,
        content_type: HeaderValue,
        body: Bytes,
        attempts: Vec<Attempt>,
    },
    /// The request could not be translated for a provider (the client's fault).
    Invalid {
        provider: Arc<Provider>,
        error: InvalidRequest,
    },
    /// Every provider failed (or none is loaded: `attempts` is empty).
    Failed {
        status: StatusCode,
        attempts: Vec<Attempt>,
    },
}

/// Try `chain` in order for `req`. Providers whose circuit is open are skipped, unless every
/// provider of the chain is open, in which case all are tried in order.
pub async fn dispatch(chain: &[Arc<Provider>], req: &ChatRequest<'_>) -> Outcome {
    let now = Instant::now();
    let force = !chain.iter().any(|p| p.health.is_available(now));
    let mut attempts = Vec::new();
    let mut skipped = Vec::new();
    for provider in chain {
        let admission = if force {
            Admission::Allowed
        } else {
            provider.health.admit(Instant::now())
        };
        if admission == Admission::Skip {
            skipped.push(Arc::clone(&provider.id));
            continue;
        }
        let guard = ProbeGuard {
            provider,
            armed: admission == Admission::Probe,
        };
        let result = attempt(provider, req).await;
        guard.disarm();
        match result {
            Ok(Answer::Complete {
                status,
                content_type,
                body,
                usage,
                latency,
            }) => {
                provider.health.record_success(latency);
                return Outcome::Complete {
                    provider: Arc::clone(provider),
                    status,
                    content_type,
                    body,
                    usage,
                    attempts,
                };
            }
            Ok(Answer::Stream {
                status,
                content_type,
                body,
                latency,
            }) => {
                provider.health.record_success(latency);
                return Outcome::Stream {
                    provider: Arc::clone(provider),
                    status,
                    content_type,
                    body,
                    attempts,
                };
            }
            Ok(Answer::Rejected {
                status,
                content_type,
                body,
            }) => {
                // The provider is up; the request is wrong. Not a health failure.
                provider.health.record_alive();
                return Outcome::Rejected {
                    provider: Arc::clone(provider),
                    status,
                    content_type,
                    body,
                    attempts,
                };
            }
            Err(Failure::Invalid(error)) => {
                return Outcome::Invalid {
                    provider: Arc::clone(provider),
                    error,
                };
            }
            Err(Failure::Upstream { class, error }) => {
                let error = provider.redact(&error);
                tracing::warn!(provider = %provider.id, %error, "provider failed; trying the next");
                provider.health.record_failure(&error, Instant::now());
                attempts.push(Attempt {
                    provider: Arc::clone(&provider.id),
                    class,
                    error,
                });
            }
        }
    }
    for id in skipped {
        attempts.push(Attempt {
            provider: id,
            class: FailureClass::Unsupported,
            error: "skipped: circuit open after repeated failures".into(),
        });
    }
    let tried: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| !a.error.starts_with("skipped:"))
        .collect();
    let status = if chain.is_empty() {
        StatusCode::SERVICE_UNAVAILABLE
    } else if !tried.is_empty() && tried.iter().all(|a| a.class == FailureClass::Timeout) {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    Outcome::Failed { status, attempts }
}

/// Releases a claimed circuit probe if the attempt is dropped before it finishes.
struct ProbeGuard<'a> {
    provider: &'a Provider,
    armed: bool,
}

impl ProbeGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.provider.health.abandon_probe(Instant::now());
        }
    }
}

enum Answer {
    Complete {
        status: StatusCode,
        content_type: HeaderValue,
        body: Bytes,
        usage: Option<Usage>,
        latency: Duration,
    },
    Stream {
        status: StatusCode,
        content_type: HeaderValue,
        body: ByteStream,
        latency: Duration,
    },
    Rejected {
        status: StatusCode,
        content_type: HeaderValue,
        body: Bytes,
    },
}

enum Failure {
    Invalid(InvalidRequest),
    Upstream { class: FailureClass, error: String },
}

fn fail(class: FailureClass, error: impl Into<String>) -> Failure {
    Failure::Upstream {
        class,
        error: error.into(),
    }
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");

/// Statuses that mean "the request is wrong", returned to the client rather than retried.
fn is_client_error(status: u16) -> bool {
    matches!(status, 400 | 413 | 422)
}

async fn attempt(provider: &Arc<Provider>, req: &ChatRequest<'_>) -> Result<Answer, Failure> {
    let started = Instant::now();
    let upstream = match &provider.translator {
        Some(t) => t.request(&provider.config, req).map_err(|e| {
            if e.code == "provider_config" {
                fail(FailureClass::Unsupported, e.message)
            } else {
                Failure::Invalid(e)
            }
        })?,
        None => UpstreamRequest {
            url: String::new(),
            headers: Vec::new(),
            body: req.upstream_body(&provider.config.model, provider.config.max_tokens),
        },
    };
    let uri = match &provider.translator {
        Some(_) => super::transport::parse_uri(&upstream.url).map_err(|e| {
            fail(
                FailureClass::Unsupported,
                format!("the provider's URL is not valid: {e}"),
            )
        })?,
        None => provider.chat_url.clone(),
    };
    let send = provider
        .transport
        .post(uri, &provider.headers, upstream.headers, upstream.body);
    let timeouts = provider.config.timeouts;
    let (deadline, what) = if req.stream {
        // Everything up to the first complete event must arrive within first_byte.
        (timeouts.first_byte, "first byte")
    } else {
        (timeouts.read, "complete answer")
    };
    let exchange = async {
        let resp = send.await.map_err(request_failure)?;
        let status = resp.status();
        let content_type = resp.headers().get(http::header::CONTENT_TYPE).cloned();
        if !status.is_success() {
            let body = collect(resp.into_body()).await.unwrap_or_default();
            return classify_status(provider, status, body, content_type.unwrap_or(JSON));
        }
        if req.stream {
            first_event(provider, req, resp, content_type, started).await
        } else {
            let body = collect(resp.into_body()).await.map_err(|e| {
                fail(
                    FailureClass::Stream,
                    format!("response body broke: {}", root_cause(&*e)),
                )
            })?;
            let (body, content_type, usage) = match &provider.translator {
                Some(t) => {
                    let body = Bytes::from(
                        t.response(&provider.config, req, &body)
                            .map_err(from_translation)?,
                    );
                    let usage = usage::from_completion(&body);
                    (body, JSON, usage)
                }
                None => {
                    let usage = check_completion(&body)?;
                    (body, content_type.unwrap_or(JSON), usage)
                }
            };
            Ok(Answer::Complete {
                status,
                content_type,
                body,
                usage,
                latency: started.elapsed(),
            })
        }
    };
    match tokio::time::timeout(deadline, exchange).await {
        Ok(answer) => answer,
        Err(_) => Err(fail(
            FailureClass::Timeout,
            format!("no {what} within {}s", secs(deadline)),
        )),
    }
}

/// Read a 2xx stream until its first event is ready; a failure up to here still falls back.
async fn first_event(
    provider: &Arc<Provider>,
    req: &ChatRequest<'_>,
    resp: http::Response<UpstreamBody>,
    content_type: Option<HeaderValue>,
    started: Instant,
) -> Result<Answer, Failure> {
    let status = resp.status();
    let translator = provider
        .translator
        .as_ref()
        .map(|t| t.stream(&provider.config, req));
    let content_type = match translator {
        Some(_) => EVENT_STREAM,
        None => content_type.unwrap_or(EVENT_STREAM),
    };
    let mut relay = Relay::new(
        resp.into_body().into_data_stream().boxed(),
        translator,
        provider,
    );
    while relay.pending.is_empty() {
        match relay.upstream.next().await {
            Some(Ok(chunk)) => relay.accept(chunk).map_err(from_translation)?,
            Some(Err(e)) => {
                return Err(fail(
                    FailureClass::Stream,
                    format!("stream broke before the first event: {}", root_cause(&*e)),
                ))
            }
            None => {
                relay.end().map_err(from_translation)?;
                if relay.pending.is_empty() {
                    return Err(fail(
                        FailureClass::Malformed,
                        "stream ended without any event",
                    ));
                }
            }
        }
    }
    if let Some(err) = relay.first_event_error() {
        return Err(fail(
            FailureClass::Malformed,
            format!("stream began with an error: {err}"),
        ));
    }
    let latency = started.elapsed();
    Ok(Answer::Stream {
        status,
        content_type,
        body: relay.into_stream(),
        latency,
    })
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

fn request_failure(e: SendError) -> Failure {
    match e {
        SendError::ConnectTimeout => fail(FailureClass::Timeout, "connect timeout"),
        SendError::Connect(cause) => {
            fail(FailureClass::Connect, format!("cannot connect: {cause}"))
        }
        SendError::Other(cause) => fail(FailureClass::Connect, format!("request failed: {cause}")),
    }
}

/// A whole answer body.
async fn collect(body: UpstreamBody) -> Result<Bytes, BoxError> {
    Ok(body.collect().await?.to_bytes())
}

fn from_translation(f: UpstreamFailure) -> Failure {
    match f.kind {
        FailureKind::Client => Failure::Invalid(InvalidRequest {
            message: f.message,
            param: None,
            code: "invalid_request",
        }),
        FailureKind::Provider => fail(FailureClass::Malformed, f.message),
    }
}

/// A non-2xx answer: the client's own error (returned as is), or a failure to fall through.
fn classify_status(
    provider: &Provider,
    status: StatusCode,
    body: Bytes,
    content_type: HeaderValue,
) -> Result<Answer, Failure> {
    if let Some(t) = &provider.translator {
        let f = t.failure(status.as_u16(), &body);
        return Err(match f.kind {
            FailureKind::Client => Failure::Invalid(InvalidRequest {
                message: provider.redact(&f.message),
                param: None,
                code: "upstream_rejected_request",
            }),
            FailureKind::Provider => fail(FailureClass::Status(status.as_u16()), f.message),
        });
    }
    if is_client_error(status.as_u16()) {
        return Ok(Answer::Rejected {
            status,
            content_type,
            body,
        });
    }
    let reason = status.canonical_reason().unwrap_or("");
    let error = match error_detail(&body) {
        Some(d) => format!("HTTP {} {reason}: {d}", status.as_u16()),
        None => format!("HTTP {} {reason}", status.as_u16()),
    };
    Err(fail(
        FailureClass::Status(status.as_u16()),
        error.trim_end(),
    ))
}

/// The upstream's own error message, shortened.
fn error_detail(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Envelope {
        error: Option<ErrorBody>,
        message: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorBody {
        Object { message: Option<String> },
        Text(String),
    }
    let text = match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope {
            error: Some(ErrorBody::Object { message: Some(m) }),
            ..
        }) => m,
        Ok(Envelope {
            error: Some(ErrorBody::Text(m)),
            ..
        }) => m,
        Ok(Envelope {
            message: Some(m), ..
        }) => m,
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    Some(truncate(&text, 200))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A 2xx non-streamed OpenAI answer must be a JSON object and not an error envelope; its
/// `usage` comes from the same parse.
fn check_completion(body: &[u8]) -> Result<Option<Usage>, Failure> {
    match serde_json::from_slice::<CompletionProbe>(body) {
        Ok(CompletionProbe { error: Some(_), .. }) => Err(fail(
            FailureClass::Malformed,
            format!(
                "answered 200 with an error: {}",
                error_detail(body).unwrap_or_default()
            ),
        )),
        Ok(
            probe @ CompletionProbe {
                choices: Some(_), ..
            },
        ) => Ok(probe.usage()),
        Ok(_) => Err(fail(FailureClass::Malformed, "answer has no `choices`")),
        Err(e) => Err(fail(
            FailureClass::Malformed,
            format!("answer is not valid JSON: {e}"),
        )),
    }
}

/// Moves a stream from the upstream to the client: framing, translation, idle timeout, and
/// an error event if it breaks.
struct Relay {
    upstream: BoxStream<'static, Result<Bytes, BoxError>>,
    translator: Option<Box<dyn StreamTranslator>>,
    framer: Framer,
    pending: VecDeque<Bytes>,
    provider: Arc<Provider>,
    saw_done: bool,
    finished: bool,
}

impl Relay {
    fn new(
        upstream: BoxStream<'static, Result<Bytes, BoxError>>,
        translator: Option<Box<dyn StreamTranslator>>,
        provider: &Arc<Provider>,
    ) -> Self {
        Relay {
            upstream,
            translator,
            framer: Framer::default(),
            pending: VecDeque::new(),
            provider: Arc::clone(provider),
            saw_done: false,
            finished: false,
        }
    }

    fn accept(&mut self, chunk: Bytes) -> Result<(), UpstreamFailure> {
        match &mut self.translator {
            Some(t) => {
                let mut out = Vec::new();
                t.feed(&chunk, &mut out)?;
                self.pending.extend(out);
            }
            None => {
                if let Some(events) = self.framer.push(chunk) {
                    if !self.saw_done && sse::contains_done(&events) {
                        self.saw_done = true;
                    }
                    self.pending.push_back(events);
                }
            }
        }
        Ok(())
    }

    /// The upstream ended cleanly.
    fn end(&mut self) -> Result<(), UpstreamFailure> {
        self.finished = true;
        match &mut self.translator {
            Some(t) => {
                let mut out = Vec::new();
                t.finish(&mut out)?;
                self.pending.extend(out);
            }
            None => {
                let rest = self.framer.take_rest();
                if !rest.iter().all(u8::is_ascii_whitespace) {
                    // A last event without its blank line: complete it rather than drop it.
                    let mut v = rest.to_vec();
                    v.extend_from_slice(b"\n\n");
                    self.saw_done |= sse::contains_done(&v);
                    self.pending.push_back(Bytes::from(v));
                }
            }
        }
        Ok(())
    }

    /// An error object as the very first event (some providers answer 200 and then this).
    fn first_event_error(&self) -> Option<String> {
        if self.translator.is_some() {
            return None;
        }
        let first = self.pending.front()?;
        let data = sse::first_data(first)?;
        if data.starts_with(b"{\"error\"") {
            return Some(error_detail(data).unwrap_or_else(|| "unknown error".into()));
        }
        None
    }

    fn fail(&mut self, message: String) {
        let message = self.provider.redact(&message);
        tracing::warn!(provider = %self.provider.id, error = %message, "stream failed after its first byte");
        self.provider
            .health
            .record_failure(&message, Instant::now());
        let body = serde_json::json!({
            "error": {
                "message": format!("{}: {message}", self.provider.id),
                "type": "upstream_error",
                "param": null,
                "code": "stream_interrupted",
            }
        });
        self.pending
            .push_back(Bytes::from(format!("data: {body}\n\n")));
        self.finished = true;
    }

    fn into_stream(self) -> ByteStream {
        Box::pin(stream::unfold(self, |mut relay| async move {
            loop {
                if let Some(b) = relay.pending.pop_front() {
                    return Some((Ok(b), relay));
                }
                if relay.finished {
                    return None;
                }
                let idle = relay.provider.config.timeouts.idle;
                match tokio::time::timeout(idle, relay.upstream.next()).await {
                    Ok(Some(Ok(chunk))) => {
                        if let Err(f) = relay.accept(chunk) {
                            relay.fail(f.message);
                        }
                    }
                    Ok(Some(Err(e))) => relay.fail(format!("stream broke: {}", root_cause(&*e))),
                    Ok(None) => {
                        if relay.translator.is_none()
                            && !relay.framer.pending().is_empty()
                            && !relay.saw_done
                        {
                            relay.framer.take_rest();
                            relay.fail("stream ended in the middle of an event".into());
                        } else if let Err(f) = relay.end() {
                            relay.fail(f.message);
                        }
                    }
                    Err(_) => relay.fail(format!("no data for {}s (idle timeout)", secs(idle))),
                }
            }
        }))
    }
}
