//! `POST /v1/embeddings`: OpenAI's embeddings API, answered by the providers that declare an
//! `embedding_model` (see [`crate::providers::embeddings`]), with fallback across them. The
//! answer carries `X-ClawGate-Provider` (and `X-ClawGate-Attempts` after a fallback); every
//! request is recorded with `api` `openai-embeddings`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_TYPE};
use http::{Response, StatusCode};

use super::chat::{attempt_records, header_value, ATTEMPTS, PROVIDER};
use super::{full, ResponseBody};
use crate::ingress::error::ApiError;
use crate::metrics::RequestEvent;
use crate::providers::dispatch::Attempt;
use crate::providers::embeddings::{self, Embedded};
use crate::providers::protocol::JSON;
use crate::state::AppState;

/// The `api` metrics rows of this API carry.
const API: &str = "openai-embeddings";

/// Handle one embeddings request; every request, answered or not, is recorded.
pub async fn handle(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let mut event = RequestEvent {
        ts_ms: RequestEvent::now_ms(),
        api: API.into(),
        layer: "embeddings".into(),
        ..RequestEvent::default()
    };
    let resp = match complete(&state, &headers, &body, &mut event).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::info!(
                status = e.status.as_u16(),
                code = e.code,
                api = API,
                "request not answered: {}",
                e.message
            );
            event.error = Some(format!("{}: {}", e.code, e.message));
            e.into_response().map(full)
        }
    };
    event.status = resp.status().as_u16();
    event.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    state.metrics.record(event);
    resp
}

async fn complete(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    event: &mut RequestEvent,
) -> Result<Response<ResponseBody>, ApiError> {
    crate::ingress::openai_chat::check_content_type(headers)?;
    let req = embeddings::parse(body)?;
    event.requested_model = req.model.clone();
    let snapshot = state.snapshot.load_full();
    let chain = embeddings::chain(&snapshot.providers, &req.model);
    if chain.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "provider_error",
            "no_providers",
            "no loaded provider declares an embedding_model (providers.<id>.embedding_model)",
        ));
    }
    let mut out = HeaderMap::with_capacity(4);
    let mut answered = |provider: &crate::providers::Provider, attempts: &[Attempt]| {
        out.insert(PROVIDER, header_value(&provider.id));
        if !attempts.is_empty() {
            let mut tried: Vec<&str> = attempts.iter().map(|a| &*a.provider).collect();
            tried.push(&provider.id);
            out.insert(ATTEMPTS, header_value(&tried.join(",")));
        }
        event.provider = Some(provider.id.to_string());
        event.upstream_model = provider.config.embedding_model.clone();
        event.attempts = attempt_records(attempts);
    };
    let (status, body) = match embeddings::embed(&chain, &req).await {
        Embedded::Answered {
            provider,
            attempts,
            body,
            usage,
        } => {
            answered(&provider, &attempts);
            event.set_usage(&usage, &provider.config.pricing);
            (StatusCode::OK, body)
        }
        Embedded::Refused {
            provider,
            attempts,
            status,
            body,
        } => {
            answered(&provider, &attempts);
            event.error = Some(format!("upstream_rejected: HTTP {}", status.as_u16()));
            (status, body)
        }
        Embedded::Failed { attempts } => {
            event.attempts = attempt_records(&attempts);
            let lines: Vec<String> = attempts
                .iter()
                .map(|a| format!("{}: {}", a.provider, a.error))
                .collect();
            let mut e = ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_error",
                "all_providers_failed",
                format!("All providers failed: {}", lines.join("; ")),
            );
            e.attempts = Some(lines);
            return Err(e);
        }
    };
    out.insert(CONTENT_TYPE, JSON);
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = out;
    Ok(resp)
}
