//! `POST /v1/chat/completions`, the three stages in order: ingress (parse, the routing
//! view), route, dispatch; then the answer with its `X-ClawGate-*` headers, and the request's
//! metrics event (for a stream, recorded when the stream ends).

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE,
};
use http::{Response, StatusCode};

use super::observe::ObservedStream;
use super::{full, streamed, ResponseBody};
use crate::classifier::Asker;
use crate::ingress::error::ApiError;
use crate::ingress::openai_chat;
use crate::metrics::{usage, AttemptRecord, RequestEvent};
use crate::providers::dispatch::{dispatch, Attempt, Outcome, Reply, ReplyBody};
use crate::providers::Provider;
use crate::router::{Decision, NoTrace, RouteView, Routed, Router};
use crate::state::{AppState, Snapshot};

pub const PROVIDER: HeaderName = HeaderName::from_static("x-clawgate-provider");
pub const LAYER: HeaderName = HeaderName::from_static("x-clawgate-layer");
pub const RULE: HeaderName = HeaderName::from_static("x-clawgate-rule");
pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-clawgate-attempts");
pub const LABEL: HeaderName = HeaderName::from_static("x-clawgate-label");
/// Sticky routing: `hit`, `miss`, `switch` or `off` (see [`crate::affinity::Affinity`]).
pub const AFFINITY: HeaderName = HeaderName::from_static("x-clawgate-affinity");
pub const LANE: HeaderName = HeaderName::from_static("x-clawgate-lane");

/// The routing decision in the request's metrics event.
pub(super) fn record_route(event: &mut RequestEvent, routed: &Routed) {
    event.lane = routed.lane.to_string();
    event.layer = routed.decision.layer.as_str().to_owned();
    event.rule = routed.decision.rule.to_string();
}

/// The routing part of an answer, whatever its client API: the `X-ClawGate-*` headers
/// (provider, layer, rule, lane, affinity, label, attempts) and the event's provider, attempts
/// and affinity. Returns what remembers the conversation's provider for sticky routing: call
/// it once the answer is complete and good (at once for a whole answer, at a stream's
/// successful end), so the provider that actually answered, after any fallback, is kept.
pub(super) fn routing_answer(
    state: &AppState,
    event: &mut RequestEvent,
    out: &mut HeaderMap,
    routed: &Routed,
    provider: &Arc<Provider>,
    attempts: &[Attempt],
    status: StatusCode,
) -> Option<impl FnOnce() + Send + 'static> {
    let decision = &routed.decision;
    out.insert(PROVIDER, header_value(&provider.id));
    out.insert(LAYER, HeaderValue::from_static(decision.layer.as_str()));
    out.insert(RULE, header_value(&decision.rule));
    out.insert(LANE, header_value(&routed.lane));
    if let Some(label) = routed.label() {
        out.insert(LABEL, header_value(label));
    }
    if !attempts.is_empty() {
        let mut tried: Vec<&str> = attempts.iter().map(|a| &*a.provider).collect();
        tried.push(&provider.id);
        out.insert(ATTEMPTS, header_value(&tried.join(",")));
    }
    let (affinity, remember) = crate::affinity::after_answer(
        &state.affinity,
        routed.conversation.clone(),
        &provider.id,
        &decision.rule,
        status.is_success(),
    );
    out.insert(AFFINITY, HeaderValue::from_static(affinity.as_str()));
    event.affinity = affinity.as_str().to_owned();
    event.provider = Some(provider.id.to_string());
    event.upstream_model = Some(provider.config.model.clone());
    event.attempts = attempt_records(attempts);
    remember
}

/// `Outcome::Invalid`: the provider cannot take this request (the client's fault, not retried).
pub(super) fn cannot_take(
    event: &mut RequestEvent,
    provider: &Provider,
    error: crate::request::InvalidRequest,
) -> ApiError {
    event.provider = Some(provider.id.to_string());
    let mut e = ApiError::from(error);
    e.message = format!("{} cannot take this request: {}", provider.id, e.message);
    e
}

/// A whole answer arrived: its usage (reported, else estimated from the sizes) on the event,
/// and the conversation's provider remembered, the answer being good.
pub(super) fn whole_answered(
    event: &mut RequestEvent,
    request_len: usize,
    answer: &Bytes,
    usage: Option<crate::metrics::Usage>,
    pricing: &crate::config::Pricing,
    remember: Option<impl FnOnce()>,
) -> crate::metrics::Usage {
    let usage = usage.unwrap_or_else(|| usage::estimate(request_len, answer.len()));
    event.set_usage(&usage, pricing);
    if let Some(remember) = remember {
        remember();
    }
    usage
}

/// A stream's first byte arrived: the time to it on the event, `no-cache` on the answer, and
/// the stream observed from here (the event is recorded when it ends; the conversation's
/// provider remembered when it ends well).
#[allow(clippy::too_many_arguments)]
pub(super) fn observe_stream(
    state: &AppState,
    event: &mut RequestEvent,
    out: &mut HeaderMap,
    events: crate::providers::relay::EventStream,
    pricing: crate::config::Pricing,
    started: Instant,
    request_len: usize,
    remember: Option<impl FnOnce() + Send + 'static>,
) -> ObservedStream {
    event.ttfb_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    out.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let observed = ObservedStream::new(
        events,
        std::mem::take(event),
        state.metrics.clone(),
        pricing,
        started,
        request_len,
    );
    match remember {
        Some(remember) => observed.on_success(remember),
        None => observed,
    }
}

/// A whole answer's response, its event recorded now.
pub(super) fn whole_response(
    state: &AppState,
    event: &mut RequestEvent,
    started: Instant,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
) -> Response<ResponseBody> {
    event.status = status.as_u16();
    event.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    state.metrics.record(std::mem::take(event));
    let mut answer = Response::new(full(body));
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    answer
}

/// A streamed answer's response.
pub(super) fn stream_response(
    status: StatusCode,
    headers: HeaderMap,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut answer = Response::new(body);
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    answer
}

/// Read the body, refusing more than `limit` bytes.
pub async fn read_body<S, B, E>(
    headers: &HeaderMap,
    body: S,
    limit: usize,
) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, E>> + Send,
    B: Buf,
    E: std::fmt::Display,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!(
                "request body is larger than the {} byte limit (server.max_body_mb)",
                limit
            ),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            ApiError::invalid(
                "invalid_body",
                format!("could not read the request body: {e}"),
            )
        })?;
        if buf.len() + chunk.remaining() > limit {
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

/// Check the client key when one is configured: `Authorization: Bearer <key>`, or Anthropic's
/// `x-api-key: <key>`.
pub fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let snapshot = state.snapshot.load();
    let expected = snapshot.config.server.api_key.as_str();
    if expected.is_empty() {
        return Ok(());
    }
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    match given {
        Some(key) if constant_time_eq(key.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "the API key sent to ClawGate is not valid (server.api_key)",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "missing_api_key",
            "this ClawGate requires an API key: send Authorization: Bearer <key> (or x-api-key: <key>)",
        )),
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Handle one chat completion request; every request, answered or not, is recorded.
pub async fn handle(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let mut event = RequestEvent {
        ts_ms: RequestEvent::now_ms(),
        ..RequestEvent::default()
    };
    match complete(&state, &headers, &body, started, &mut event).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::info!(
                status = e.status.as_u16(),
                code = e.code,
                "request not answered: {}",
                e.message
            );
            event.status = e.status.as_u16();
            event.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            event.error = Some(format!("{}: {}", e.code, e.message));
            state.metrics.record(event);
            e.into_response().map(full)
        }
    }
}

/// Record a failed request's attempts.
pub(super) fn attempt_records(attempts: &[Attempt]) -> Vec<AttemptRecord> {
    attempts
        .iter()
        .map(|a| AttemptRecord {
            provider: a.provider.to_string(),
            error: a.error.clone(),
        })
        .collect()
}

async fn complete(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    started: Instant,
    event: &mut RequestEvent,
) -> Result<Response<ResponseBody>, ApiError> {
    let inbound = openai_chat::parse(headers, body)?;
    let req = &inbound.request;
    event.requested_model = req.model.to_string();
    event.stream = req.stream;
    let snapshot = state.snapshot.load_full();
    let routed = route(state, &snapshot, inbound.view(headers)).await;
    record_route(event, &routed);
    let decision = &routed.decision;
    let layer = decision.layer.as_str();
    let chain = snapshot.providers.chain(decision);
    let reply = match dispatch(&chain, req).await {
        Outcome::Answered(reply) => reply,
        Outcome::Invalid { provider, error } => return Err(cannot_take(event, &provider, error)),
        Outcome::Failed { status, attempts } => {
            event.attempts = attempt_records(&attempts);
            return Err(all_failed(&snapshot, status, &attempts, decision));
        }
    };
    let Reply {
        provider,
        attempts,
        status,
        content_type,
        body: reply_body,
        ..
    } = reply;
    let mut out = HeaderMap::with_capacity(8);
    out.insert(CONTENT_TYPE, content_type);
    tracing::info!(
        model = %req.model,
        provider = %provider.id,
        layer,
        rule = %decision.rule,
        status = status.as_u16(),
        stream = req.stream,
        ms = started.elapsed().as_millis() as u64,
        fallbacks = attempts.len(),
        "routed"
    );
    let remember = routing_answer(
        state, event, &mut out, &routed, &provider, &attempts, status,
    );
    event.status = status.as_u16();
    let mut event = std::mem::take(event);
    let pricing = provider.config.pricing;
    let mut answer = Response::new(());
    *answer.status_mut() = status;
    *answer.headers_mut() = out;
    let whole = match reply_body {
        ReplyBody::Complete { body: b, usage } => {
            whole_answered(&mut event, body.len(), &b, usage, &pricing, remember);
            b
        }
        ReplyBody::Refused(b) => {
            event.error = Some(format!("upstream_rejected: HTTP {}", status.as_u16()));
            b
        }
        ReplyBody::Stream(stream) => {
            let observed = observe_stream(
                state,
                &mut event,
                answer.headers_mut(),
                stream,
                pricing,
                started,
                body.len(),
                remember,
            );
            return Ok(answer.map(|()| streamed(observed)));
        }
    };
    event.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    state.metrics.record(event);
    Ok(answer.map(|()| full(whole)))
}

/// The routing stage for one request: the snapshot's rules, providers and classifier.
pub(super) async fn route(state: &AppState, snapshot: &Snapshot, view: RouteView<'_>) -> Routed {
    let cfg = &snapshot.config.classifier;
    let provider = |model: &str| snapshot.providers.get(model).map(|p| Arc::clone(&p.id));
    let asker = Asker {
        classifier: &state.classifier,
        cfg,
        provider: snapshot.providers.get(&cfg.provider),
        metrics: &state.metrics,
    };
    let router = Router::new(&snapshot.routes, cfg, &provider);
    let router = if snapshot.config.affinity.enabled {
        router.with_recall(&*state.affinity)
    } else {
        router
    };
    router.route(view, &asker, &mut NoTrace).await
}

pub(super) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

pub(super) fn all_failed(
    snapshot: &Snapshot,
    status: StatusCode,
    attempts: &[Attempt],
    decision: &Decision,
) -> ApiError {
    if attempts.is_empty() {
        let hint = missing_keys_hint(snapshot);
        let message = if decision.targets.is_empty() || snapshot.providers.is_empty() {
            format!("no providers are loaded{hint}")
        } else {
            format!(
                "none of the providers for this request are loaded ({}) and the fallback chain has none{hint}",
                decision.targets.join(", ")
            )
        };
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "provider_error",
            "no_providers",
            message,
        );
    }
    let lines: Vec<String> = attempts
        .iter()
        .map(|a| format!("{}: {}", a.provider, a.error))
        .collect();
    let code = if status == StatusCode::GATEWAY_TIMEOUT {
        "upstream_timeout"
    } else {
        "all_providers_failed"
    };
    let mut e = ApiError::new(
        status,
        "provider_error",
        code,
        format!("All providers failed: {}", lines.join("; ")),
    );
    e.attempts = Some(lines);
    e
}

/// "; set DEEPSEEK_API_KEY or GEMINI_API_KEY in .env" from the skipped providers' key variables.
fn missing_keys_hint(snapshot: &Snapshot) -> String {
    let mut vars: Vec<&str> = Vec::new();
    for id in &snapshot.config.skipped {
        if let Some(p) = snapshot.config.providers.iter().find(|p| &p.id == id) {
            if let Some(var) = crate::config::env_var_name(&p.api_key_source) {
                if !vars.contains(&var) {
                    vars.push(var);
                }
            }
        }
    }
    if vars.is_empty() {
        String::new()
    } else {
        format!("; set {} in .env or the environment", vars.join(" or "))
    }
}
