//! Errors in Anthropic's shape, `{"type":"error","error":{"type","message"}}`, with the
//! statuses Anthropic uses, so that its SDKs raise their own exceptions (`BadRequestError`,
//! `AuthenticationError`, `RateLimitError`, `InternalServerError`, `OverloadedError`, …).

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::ingress::error::ApiError;
use crate::providers::dispatch::Attempt;
use crate::providers::protocol::FailureKind;

/// Anthropic's `overloaded_error` status.
pub const OVERLOADED: u16 = 529;

/// Anthropic's error type for a status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        OVERLOADED => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The status to answer when every provider failed, from what they answered: a rate limit
/// when all of them limited the rate, overloaded when one was overloaded, every one timed out
/// or every circuit is open (try again later), else an internal error. No provider loaded is
/// an internal error too: ClawGate's configuration, not the client's request.
pub fn all_failed_status(attempts: &[Attempt]) -> u16 {
    // Circuits skipped and providers that could not take the request were never asked.
    let unfit = |a: &&Attempt| a.kind == FailureKind::Unfit;
    let attempts: Vec<&Attempt> = attempts.iter().filter(|a| !unfit(a)).collect();
    let tried: Vec<&Attempt> = attempts
        .iter()
        .copied()
        .filter(|a| a.kind != FailureKind::Skipped)
        .collect();
    if attempts.is_empty() {
        return 500;
    }
    if tried.is_empty() {
        return OVERLOADED;
    }
    if tried.iter().all(|a| a.status == 429) {
        return 429;
    }
    let overloaded = tried.iter().any(|a| matches!(a.status, 503 | OVERLOADED));
    if overloaded || tried.iter().all(|a| a.kind == FailureKind::Timeout) {
        return OVERLOADED;
    }
    500
}

/// ClawGate's status for one of its own errors as Anthropic would give it: 4xx as they are,
/// 5xx as 500 (an upstream failure's status is chosen by [`all_failed_status`]).
pub fn status_of(e: &ApiError) -> u16 {
    match e.status.as_u16() {
        s @ 400..=499 => s,
        OVERLOADED => OVERLOADED,
        _ => 500,
    }
}

/// An Anthropic error body.
pub fn body(status: u16, message: &str) -> Bytes {
    let body = json!({
        "type": "error",
        "error": { "type": error_type(status), "message": message },
    });
    Bytes::from(body.to_string())
}

/// An error answer with `status`.
pub fn response(status: u16, message: &str) -> Response<Bytes> {
    let mut resp = Response::new(body(status, message));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// ClawGate's own error in Anthropic's shape.
pub fn from_api_error(e: &ApiError) -> Response<Bytes> {
    response(status_of(e), &e.message)
}

/// An upstream's refusal of the request, written in the hub's (OpenAI) shape, in Anthropic's:
/// the upstream's message, 413 kept, every other refusal a 400.
pub fn from_refusal(status: StatusCode, body: &[u8]) -> (u16, Bytes) {
    let status = if status.as_u16() == 413 { 413 } else { 400 };
    let message = crate::providers::openai_compat::response::error_detail(body)
        .unwrap_or_else(|| "the upstream refused the request".into());
    (status, self::body(status, &message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn attempt(kind: FailureKind, status: u16) -> Attempt {
        Attempt {
            provider: Arc::from("p"),
            kind,
            status,
            error: String::new(),
        }
    }

    #[test]
    fn every_failure_gets_the_status_anthropic_would_give() {
        use FailureKind::*;
        let cases: &[(&[(FailureKind, u16)], u16)] = &[
            (&[], 500),
            (&[(Status, 429)], 429),
            (&[(Status, 429), (Status, 429)], 429),
            (&[(Status, 429), (Status, 500)], 500),
            (&[(Status, 529)], 529),
            (&[(Status, 500), (Status, 503)], 529),
            (&[(Timeout, 504)], 529),
            (&[(Skipped, 503)], 529),
            (&[(Status, 401)], 500),
            (&[(Connect, 502)], 500),
        ];
        for (attempts, want) in cases {
            let list: Vec<Attempt> = attempts.iter().map(|&(k, s)| attempt(k, s)).collect();
            assert_eq!(all_failed_status(&list), *want, "{attempts:?}");
        }
        for (status, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (415, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (529, "overloaded_error"),
        ] {
            assert_eq!(error_type(status), kind);
        }
    }
}
