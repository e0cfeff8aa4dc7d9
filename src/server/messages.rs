//! `POST /v1/messages` (Anthropic Messages) and `POST /v1/messages/count_tokens`: the same
//! three stages as chat completions (ingress, route, dispatch), with the client's own body
//! beside the hub request so that `anthropic` providers get it passed through; the answer
//! comes back as it is from them and translated from the others. Errors take Anthropic's
//! envelope and statuses; every request, answered or not, is recorded with `api`
//! `anthropic-messages`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_TYPE};
use http::{Response, StatusCode};

use super::chat::{
    all_failed, attempt_records, cannot_take, observe_stream, record_route, route, routing_answer,
    stream_response, whole_answered, whole_response,
};
use super::{full, streamed, ResponseBody};
use crate::ingress::anthropic::{self, error as anthropic_error, response, stream};
use crate::ingress::error::ApiError;
use crate::ingress::{Api, Inbound};
use crate::metrics::RequestEvent;
use crate::providers::dispatch::{dispatch_with, Outcome, Reply, ReplyBody};
use crate::providers::protocol::{EVENT_STREAM, JSON};
use crate::request::ChatRequest;
use crate::router::RouteView;
use crate::state::AppState;

/// The `api` metrics rows of this API carry.
const API: &str = "anthropic-messages";

/// ClawGate's own error in Anthropic's shape.
pub fn error_response(e: &ApiError) -> Response<ResponseBody> {
    anthropic_error::from_api_error(e).map(full)
}

/// A request refused before it was read (body too large or too slow), recorded as rejected.
pub fn reject(state: &AppState, e: &ApiError) -> Response<ResponseBody> {
    let resp = error_response(e);
    state.metrics.record(RequestEvent {
        ts_ms: RequestEvent::now_ms(),
        api: API.into(),
        status: resp.status().as_u16(),
        error: Some(format!("{}: {}", e.code, e.message)),
        ..RequestEvent::default()
    });
    resp
}

/// Handle one Messages request; every request, answered or not, is recorded.
pub async fn handle(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let mut event = RequestEvent {
        ts_ms: RequestEvent::now_ms(),
        api: API.into(),
        ..RequestEvent::default()
    };
    match complete(&state, &headers, &body, started, &mut event).await {
        Ok(resp) => resp,
        Err(e) => {
            let resp = error_response(&e);
            tracing::info!(
                status = resp.status().as_u16(),
                code = e.code,
                api = API,
                "request not answered: {}",
                e.message
            );
            event.status = resp.status().as_u16();
            event.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            event.error = Some(format!("{}: {}", e.code, e.message));
            state.metrics.record(event);
            resp
        }
    }
}

async fn complete(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    started: Instant,
    event: &mut RequestEvent,
) -> Result<Response<ResponseBody>, ApiError> {
    let translated = anthropic::parse(headers, body)?;
    let inbound = Inbound {
        api: Api::AnthropicMessages,
        request: ChatRequest::parse(&translated.hub)?,
    };
    let req = &inbound.request;
    event.requested_model = translated.model.clone();
    event.stream = translated.stream;
    let snapshot = state.snapshot.load_full();
    let routed = route(state, &snapshot, inbound.view(headers)).await;
    record_route(event, &routed);
    let decision = &routed.decision;
    let layer = decision.layer.as_str();
    let chain = snapshot.providers.chain(decision);
    let native = anthropic::native(headers, body, &translated);
    let reply = match dispatch_with(&chain, req, Some(&native)).await {
        Outcome::Answered(reply) => reply,
        Outcome::Invalid { provider, error } => return Err(cannot_take(event, &provider, error)),
        Outcome::Failed { status, attempts } => {
            event.attempts = attempt_records(&attempts);
            let mut e = all_failed(&snapshot, status, &attempts, decision);
            let status = anthropic_error::all_failed_status(&attempts);
            e.status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Err(e);
        }
    };
    let Reply {
        provider,
        attempts,
        status,
        content_type,
        body: reply_body,
        native: passed_through,
    } = reply;
    tracing::info!(
        model = %translated.model,
        provider = %provider.id,
        layer,
        rule = %decision.rule,
        status = status.as_u16(),
        stream = translated.stream,
        passed_through,
        ms = started.elapsed().as_millis() as u64,
        fallbacks = attempts.len(),
        api = API,
        "routed"
    );
    let mut out = HeaderMap::with_capacity(8);
    let remember = routing_answer(
        state, event, &mut out, &routed, &provider, &attempts, status,
    );
    let pricing = provider.config.pricing;
    let (status, content_type, whole) = match reply_body {
        ReplyBody::Complete { body: b, usage } => {
            let usage = whole_answered(event, body.len(), &b, usage, &pricing, remember);
            if passed_through {
                (status, content_type, b)
            } else {
                let model = &provider.config.model;
                let message =
                    response::message(&b, &usage, translated.thinking, model).map_err(|why| {
                        ApiError::new(
                            StatusCode::BAD_GATEWAY,
                            "api_error",
                            "untranslatable_answer",
                            format!("{}: {why}", provider.id),
                        )
                    })?;
                (status, JSON, Bytes::from(message))
            }
        }
        ReplyBody::Refused(b) => {
            event.error = Some(format!("upstream_rejected: HTTP {}", status.as_u16()));
            if passed_through {
                (status, content_type, b)
            } else {
                let (status, b) = anthropic_error::from_refusal(status, &b);
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                (status, JSON, b)
            }
        }
        ReplyBody::Stream(events) => {
            event.status = status.as_u16();
            let prompt_estimate = inbound.view(headers).estimate_tokens();
            let observed = observe_stream(
                state,
                event,
                &mut out,
                events,
                pricing,
                started,
                body.len(),
                remember,
            );
            let body = if passed_through {
                out.insert(CONTENT_TYPE, content_type);
                streamed(observed)
            } else {
                out.insert(CONTENT_TYPE, EVENT_STREAM);
                let cx = stream::StreamContext {
                    model: provider.config.model.clone(),
                    thinking: translated.thinking,
                    prompt_estimate,
                };
                streamed(stream::AnthropicEvents::new(observed, cx))
            };
            return Ok(stream_response(status, out, body));
        }
    };
    out.insert(CONTENT_TYPE, content_type);
    Ok(whole_response(state, event, started, status, out, whole))
}

/// `POST /v1/messages/count_tokens`: the request checked as `/v1/messages` checks it, and
/// its size estimated as routing's `tokens` estimates it (no upstream is asked).
pub async fn count_tokens(headers: HeaderMap, body: Bytes) -> Response<ResponseBody> {
    let counted = anthropic::parse_prompt(&headers, &body).and_then(|t| {
        let req = ChatRequest::parse(&t.hub)?;
        Ok(RouteView::chat(&req, &headers).estimate_tokens())
    });
    match counted {
        Ok(n) => {
            let mut resp = Response::new(full(Bytes::from(anthropic::count_tokens_body(n))));
            resp.headers_mut().insert(CONTENT_TYPE, JSON);
            resp
        }
        Err(e) => error_response(&e),
    }
}
