//! `POST /v1/responses` (OpenAI Responses): the same three stages as chat completions
//! (ingress, route, dispatch) on the hub translation, then the answer as a `response` object
//! or Responses events, stored (unless `store` is false) for `previous_response_id` and
//! `GET /v1/responses/{id}`. Errors take OpenAI's envelope; every request, answered or not,
//! is recorded with `api` `openai-responses`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde_json::Value;

use super::chat::{
    all_failed, attempt_records, cannot_take, observe_stream, record_route, route, routing_answer,
    stream_response, whole_answered, whole_response,
};
use super::{full, streamed, ResponseBody};
use crate::ingress::error::ApiError;
use crate::ingress::responses::response::{self, Base, Collected};
use crate::ingress::responses::store::{Store, Stored, Turn};
use crate::ingress::responses::{self as responses_api, stream, Translated};
use crate::ingress::{Api, Inbound};
use crate::metrics::RequestEvent;
use crate::providers::dispatch::{dispatch, Outcome, Reply, ReplyBody};
use crate::providers::protocol::{EVENT_STREAM, JSON};
use crate::request::ChatRequest;
use crate::state::AppState;

/// The `api` metrics rows of this API carry.
const API: &str = "openai-responses";

/// ClawGate's own error in OpenAI's shape.
pub fn error_response(e: &ApiError) -> Response<ResponseBody> {
    e.clone().into_response().map(full)
}

/// A request refused before it was read (body too large or too slow), recorded as rejected.
pub fn reject(state: &AppState, e: &ApiError) -> Response<ResponseBody> {
    state.metrics.record(RequestEvent {
        ts_ms: RequestEvent::now_ms(),
        api: API.into(),
        status: e.status.as_u16(),
        error: Some(format!("{}: {}", e.code, e.message)),
        ..RequestEvent::default()
    });
    error_response(e)
}

/// Handle one Responses request; every request, answered or not, is recorded.
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
            tracing::info!(
                status = e.status.as_u16(),
                code = e.code,
                api = API,
                "request not answered: {}",
                e.message
            );
            event.status = e.status.as_u16();
            event.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            event.error = Some(format!("{}: {}", e.code, e.message));
            state.metrics.record(event);
            error_response(&e)
        }
    }
}

/// What keeps an answered response in the store: called with the final object and the
/// collected answer.
fn keeper(
    store: &Arc<Store>,
    t: &Translated,
) -> Option<impl FnOnce(&Value, &Collected) + Send + 'static> {
    if !t.store {
        return None;
    }
    let store = Arc::clone(store);
    let mut messages = t.turn.clone();
    let parent = t.previous.as_ref().map(|p| Arc::clone(&p.turn));
    let conversation = t.conversation.clone();
    Some(move |object: &Value, collected: &Collected| {
        messages.push(collected.hub_message());
        let id = object["id"].as_str().unwrap_or_default().to_owned();
        store.insert(
            id,
            Stored {
                response: object.clone(),
                turn: Arc::new(Turn { messages, parent }),
                conversation,
            },
        );
    })
}

async fn complete(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    started: Instant,
    event: &mut RequestEvent,
) -> Result<Response<ResponseBody>, ApiError> {
    let translated = responses_api::parse(headers, body, &state.responses)?;
    let inbound = Inbound {
        api: Api::OpenAiResponses,
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
    tracing::info!(
        model = %translated.model,
        provider = %provider.id,
        layer,
        rule = %decision.rule,
        status = status.as_u16(),
        stream = translated.stream,
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
    let base = Base::new(&provider.config.model, translated.echo.clone());
    let keep = keeper(&state.responses, &translated);
    let (status, content_type, whole) = match reply_body {
        ReplyBody::Complete { body: b, usage } => {
            let usage = whole_answered(event, body.len(), &b, usage, &pricing, remember);
            let untranslatable = |why: String| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_error",
                    "untranslatable_answer",
                    format!("{}: {why}", provider.id),
                )
            };
            let (collected, model) = response::collect(&b).map_err(untranslatable)?;
            let mut base = base;
            if let Some(m) = model.filter(|m| !m.is_empty()) {
                base.model = m;
            }
            let object = response::object(&base, &collected, &usage, translated.reasoning);
            if let Some(keep) = keep {
                keep(&object, &collected);
            }
            (status, JSON, Bytes::from(object.to_string()))
        }
        ReplyBody::Refused(b) => {
            // The hub's refusals are OpenAI's error envelope already.
            event.error = Some(format!("upstream_rejected: HTTP {}", status.as_u16()));
            (status, content_type, b)
        }
        ReplyBody::Stream(events) => {
            event.status = status.as_u16();
            out.insert(CONTENT_TYPE, EVENT_STREAM);
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
            let cx = stream::StreamContext {
                base,
                reasoning: translated.reasoning,
                prompt_estimate,
                on_done: keep.map(|k| Box::new(k) as stream::OnDone),
            };
            return Ok(stream_response(
                status,
                out,
                streamed(stream::ResponsesEvents::new(observed, cx)),
            ));
        }
    };
    out.insert(CONTENT_TYPE, content_type);
    Ok(whole_response(state, event, started, status, out, whole))
}

/// `GET /v1/responses/{id}`: a stored response as it was answered.
pub fn get(state: &AppState, headers: &HeaderMap, id: &str) -> Response<Bytes> {
    if let Err(e) = super::chat::authorize(state, headers) {
        return e.into_response();
    }
    match state.responses.get(id) {
        Some(stored) => {
            let mut resp = Response::new(Bytes::from(stored.response.to_string()));
            resp.headers_mut().insert(CONTENT_TYPE, JSON);
            resp
        }
        None => responses_api::not_found(id).into_response(),
    }
}

/// `DELETE /v1/responses/{id}`: forget a stored response.
pub fn delete(state: &AppState, headers: &HeaderMap, id: &str) -> Response<Bytes> {
    if let Err(e) = super::chat::authorize(state, headers) {
        return e.into_response();
    }
    if !state.responses.remove(id) {
        return responses_api::not_found(id).into_response();
    }
    let body = serde_json::json!({"id": id, "object": "response", "deleted": true});
    let mut resp = Response::new(Bytes::from(body.to_string()));
    resp.headers_mut().insert(CONTENT_TYPE, JSON);
    resp
}
