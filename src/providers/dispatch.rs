//! The dispatcher: try a decision's providers in order until one answers.
//!
//! Falls through on connect errors, timeouts (connect, first byte, whole response), error
//! statuses (404, 408, 429, 5xx, 401/403 and the like) and malformed answers. The client's
//! own error (an upstream refusing the request: 400, 413, 422) is returned, not retried. A
//! stream falls back only before its first event reaches the client; after that a failure
//! ends the stream with an error event (see [`EventStream`]). How a provider's API is spoken
//! is its [`Protocol`](super::protocol::Protocol)'s business, pass-through included.
//! A provider that cannot take the request (images, tools, a prompt too long for it) is
//! skipped with its reason recorded, unless every provider would be ([`super::capable`]).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;

use super::capable::{self, Needs};
use super::health::Admission;
use super::native::Native;
use super::protocol::{FailureKind, Protocol, UpstreamFailure};
use super::relay::EventStream;
use super::transport::{root_cause, secs, BoxError, SendError, UpstreamBody};
use super::{Provider, UpstreamRequest};
use crate::metrics::Usage;
use crate::request::{ChatRequest, InvalidRequest};

/// One provider tried and what went wrong, or skipped and why.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub provider: Arc<str>,
    pub kind: FailureKind,
    /// The HTTP status the failure stands for (see [`UpstreamFailure::status`]).
    pub status: u16,
    /// Short, secret-free description.
    pub error: String,
}

/// What the dispatcher came back with.
pub enum Outcome {
    /// A provider answered.
    Answered(Reply),
    /// The request cannot be served by a provider: the client's fault, not retried (it
    /// cannot be said in the provider's API, or the upstream refused it in terms the client
    /// does not speak).
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

/// A provider's answer, as the client gets it.
pub struct Reply {
    pub provider: Arc<Provider>,
    /// The providers that failed, or were skipped as unable to take the request, before it.
    pub attempts: Vec<Attempt>,
    pub status: StatusCode,
    pub content_type: HeaderValue,
    pub body: ReplyBody,
    /// The body is in the client's own API, passed through (see [`Native`]); otherwise it
    /// is in the hub's (OpenAI chat).
    pub native: bool,
}

/// What a reply carries.
pub enum ReplyBody {
    /// A whole answer, and its usage when the upstream reported one.
    Complete { body: Bytes, usage: Option<Usage> },
    /// The upstream's refusal of the request (the client's error), as it came.
    Refused(Bytes),
    /// A stream whose first event has arrived.
    Stream(EventStream),
}

/// Try `chain` in order for `req`. Providers that cannot take the request are skipped (an
/// [`Attempt`] of kind [`FailureKind::Unfit`] each), unless all of them would be. Providers
/// whose circuit is open are skipped, unless every provider left is open, in which case all
/// are tried in order.
pub async fn dispatch(chain: &[Arc<Provider>], req: &ChatRequest<'_>) -> Outcome {
    dispatch_with(chain, req, None).await
}

/// [`dispatch`] for a client that spoke another API than the hub's: `req` is the hub
/// translation, `native` the client's own request, passed through to the providers that
/// speak its API.
pub async fn dispatch_with(
    chain: &[Arc<Provider>],
    req: &ChatRequest<'_>,
    native: Option<&Native<'_>>,
) -> Outcome {
    let unfit = capable::unfit(chain, || Needs::of(req), |p| &p.config);
    let now = Instant::now();
    let force = !chain
        .iter()
        .zip(&unfit)
        .any(|(p, unfit)| unfit.is_none() && p.health.is_available(now));
    let mut attempts = Vec::new();
    let mut skipped = Vec::new();
    for (provider, unfit) in chain.iter().zip(unfit) {
        if let Some(unfit) = unfit {
            tracing::debug!(provider = %provider.id, reason = unfit.as_str(), "provider cannot take the request; trying the next");
            attempts.push(Attempt {
                provider: Arc::clone(&provider.id),
                kind: FailureKind::Unfit,
                // Never asked: no status of its own.
                status: 0,
                error: unfit.reason().into(),
            });
            continue;
        }
        let admission = if force {
            Admission::Allowed
        } else {
            provider.health.admit(Instant::now())
        };
        if admission == Admission::Skip {
            skipped.push(Arc::clone(&provider.id));
            continue;
        }
        // Dropped armed (the client went away, or nothing was sent), a claimed probe is
        // released for the next request.
        let guard = ProbeGuard {
            provider,
            armed: admission == Admission::Probe,
        };
        let passthrough = native.and_then(|n| Some((n, n.passthrough(provider)?)));
        let capped_body = match (native, passthrough) {
            (Some(n), None) => n.capped_hub(provider, req.body()),
            _ => None,
        };
        let capped = capped_body
            .as_deref()
            .and_then(|b| ChatRequest::parse(b).ok());
        let req = capped.as_ref().unwrap_or(req);
        let (protocol, upstream) = match passthrough {
            Some((n, protocol)) => (protocol, Ok(provider.native_request(n, req.stream))),
            None => (provider.protocol, provider.request(req)),
        };
        let upstream = match upstream {
            Ok(upstream) => upstream,
            Err(error) => {
                return Outcome::Invalid {
                    provider: Arc::clone(provider),
                    error,
                }
            }
        };
        let started = Instant::now();
        let result = exchange(provider, protocol, req, upstream).await;
        let result = result.map(|mut reply| {
            reply.native = passthrough.is_some();
            reply
        });
        guard.disarm();
        match result {
            Ok(mut reply) => {
                match reply.body {
                    // The provider is up; the request is wrong. Not a health failure.
                    ReplyBody::Refused(_) => provider.health.record_alive(),
                    _ => provider.health.record_success(started.elapsed()),
                }
                reply.attempts = attempts;
                return Outcome::Answered(reply);
            }
            Err(failure) if failure.kind == FailureKind::Client => {
                provider.health.record_alive();
                return Outcome::Invalid {
                    provider: Arc::clone(provider),
                    error: InvalidRequest {
                        message: provider.redact(&failure.message),
                        param: None,
                        code: "upstream_rejected_request",
                    },
                };
            }
            Err(failure) => {
                let error = provider.redact(&failure.message);
                tracing::warn!(provider = %provider.id, %error, "provider failed; trying the next");
                provider.health.record_failure(&error, Instant::now());
                attempts.push(Attempt {
                    provider: Arc::clone(&provider.id),
                    kind: failure.kind,
                    status: failure.status,
                    error,
                });
            }
        }
    }
    let failed = attempts.iter().filter(|a| a.kind != FailureKind::Unfit);
    let tried = failed.clone().count();
    let timed_out = failed.clone().all(|a| a.kind == FailureKind::Timeout);
    for id in skipped {
        attempts.push(Attempt {
            provider: id,
            kind: FailureKind::Skipped,
            status: 503,
            error: "skipped: circuit open after repeated failures".into(),
        });
    }
    let status = if chain.is_empty() {
        StatusCode::SERVICE_UNAVAILABLE
    } else if tried > 0 && timed_out {
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

/// Send `upstream` to `provider` and read its answer, within the request's deadline:
/// everything up to the first complete event of a stream must arrive within `first_byte`, a
/// whole answer within `read`.
async fn exchange(
    provider: &Arc<Provider>,
    protocol: &dyn Protocol,
    req: &ChatRequest<'_>,
    upstream: UpstreamRequest<'_>,
) -> Result<Reply, UpstreamFailure> {
    let reply = |status, content_type, body| Reply {
        provider: Arc::clone(provider),
        attempts: Vec::new(),
        status,
        content_type,
        body,
        native: false,
    };
    let send = provider
        .transport
        .post(upstream.url.clone(), &upstream.headers, upstream.body);
    let timeouts = provider.config.timeouts;
    let (deadline, what) = if req.stream {
        (timeouts.first_byte, "first byte")
    } else {
        (timeouts.read, "complete answer")
    };
    let answer = async {
        let resp = send.await.map_err(request_failure)?;
        let status = resp.status();
        let content_type = resp.headers().get(CONTENT_TYPE).cloned();
        if !status.is_success() {
            let body = collect(resp.into_body()).await.unwrap_or_default();
            let refusal = protocol.error_answer(status, content_type, body)?;
            let body = ReplyBody::Refused(refusal.body);
            return Ok(reply(refusal.status, refusal.content_type, body));
        }
        if req.stream {
            let (content_type, decoder) = protocol.stream(&provider.config, req, content_type);
            let upstream = resp.into_body().into_data_stream().boxed();
            let stream = EventStream::new(upstream, decoder, provider)
                .first_event()
                .await?;
            return Ok(reply(status, content_type, ReplyBody::Stream(stream)));
        }
        let body = collect(resp.into_body()).await.map_err(|e| {
            UpstreamFailure::of(
                FailureKind::Stream,
                format!("response body broke: {}", root_cause(&*e)),
            )
        })?;
        let c = protocol.complete(&provider.config, content_type, body)?;
        let body = ReplyBody::Complete {
            body: c.body,
            usage: c.usage,
        };
        Ok(reply(status, c.content_type, body))
    };
    match tokio::time::timeout(deadline, answer).await {
        Ok(answer) => answer,
        Err(_) => Err(UpstreamFailure::of(
            FailureKind::Timeout,
            format!("no {what} within {}s", secs(deadline)),
        )),
    }
}

pub(super) fn request_failure(e: SendError) -> UpstreamFailure {
    let (kind, message) = match e {
        SendError::ConnectTimeout => (FailureKind::Timeout, "connect timeout".to_owned()),
        SendError::Connect(cause) => (FailureKind::Connect, format!("cannot connect: {cause}")),
        SendError::Other(cause) => (FailureKind::Connect, format!("request failed: {cause}")),
    };
    UpstreamFailure::of(kind, message)
}

/// A whole answer body.
async fn collect(body: UpstreamBody) -> Result<Bytes, BoxError> {
    Ok(body.collect().await?.to_bytes())
}
