//! Errors in Google's shape, `{"error":{"code","message","status"}}`, with the HTTP statuses
//! Google uses, so that the `google-genai` SDKs raise their own `ClientError` (4xx) and
//! `ServerError` (5xx).

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::ingress::error::ApiError;
use crate::providers::dispatch::Attempt;

/// Google's canonical status name for an HTTP status.
pub fn status_name(code: u16) -> &'static str {
    match code {
        400 | 405 | 411 | 413 | 415 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        400..=499 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

/// The status to answer when every provider failed: Anthropic's choice
/// ([`crate::ingress::anthropic::error::all_failed_status`]: rate limited, overloaded or
/// internal), with overloaded said as Google says it, 503 `UNAVAILABLE`.
pub fn all_failed_status(attempts: &[Attempt]) -> u16 {
    match crate::ingress::anthropic::error::all_failed_status(attempts) {
        crate::ingress::anthropic::error::OVERLOADED => 503,
        s => s,
    }
}

/// ClawGate's status for one of its own errors: 4xx as they are, 503 and 504 kept, every
/// other 5xx a 500.
pub fn status_of(e: &ApiError) -> u16 {
    match e.status.as_u16() {
        s @ (400..=499 | 503 | 504) => s,
        _ => 500,
    }
}

/// A Google error body.
pub fn body(code: u16, message: &str) -> Bytes {
    let body = json!({
        "error": { "code": code, "message": message, "status": status_name(code) },
    });
    Bytes::from(body.to_string())
}

/// An error answer with `code`.
pub fn response(code: u16, message: &str) -> Response<Bytes> {
    let mut resp = Response::new(body(code, message));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// ClawGate's own error in Google's shape.
pub fn from_api_error(e: &ApiError) -> Response<Bytes> {
    response(status_of(e), &e.message)
}

/// An upstream's refusal of the request, written in the hub's (OpenAI) shape, in Google's:
/// the upstream's message, 413 kept, every other refusal a 400.
pub fn from_refusal(status: StatusCode, body: &[u8]) -> (u16, Bytes) {
    let code = if status.as_u16() == 413 { 413 } else { 400 };
    let message = crate::providers::openai_compat::response::error_detail(body)
        .unwrap_or_else(|| "the upstream refused the request".into());
    (code, self::body(code, &message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_have_googles_names() {
        for (code, name) in [
            (400, "INVALID_ARGUMENT"),
            (401, "UNAUTHENTICATED"),
            (403, "PERMISSION_DENIED"),
            (404, "NOT_FOUND"),
            (429, "RESOURCE_EXHAUSTED"),
            (500, "INTERNAL"),
            (503, "UNAVAILABLE"),
        ] {
            assert_eq!(status_name(code), name);
        }
        let e = ApiError::new(StatusCode::BAD_GATEWAY, "x", "y", "all failed");
        let resp = from_api_error(&e);
        assert_eq!(resp.status(), 500);
        let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(
            v,
            json!({"error": {"code": 500, "message": "all failed", "status": "INTERNAL"}})
        );
    }
}
