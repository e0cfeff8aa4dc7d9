//! Pass-through answers: a whole answer is checked (one parse, which also reads its usage)
//! and forwarded as it came; an error answer is the client's (returned as is) or a failure.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde::Deserialize;

use crate::metrics::usage::CompletionProbe;
use crate::providers::protocol::{short, Completion, FailureKind, Refusal, UpstreamFailure, JSON};

/// A 2xx non-streamed answer must be a JSON object and not an error envelope; its `usage`
/// comes from the same parse.
pub fn complete(
    content_type: Option<HeaderValue>,
    body: Bytes,
) -> Result<Completion, UpstreamFailure> {
    let malformed = |message: String| UpstreamFailure::of(FailureKind::Malformed, message);
    let usage = match serde_json::from_slice::<CompletionProbe>(&body) {
        Ok(CompletionProbe { error: Some(_), .. }) => {
            return Err(malformed(format!(
                "answered 200 with an error: {}",
                error_detail(&body).unwrap_or_default()
            )))
        }
        Ok(
            probe @ CompletionProbe {
                choices: Some(_), ..
            },
        ) => probe.usage(),
        Ok(_) => return Err(malformed("answer has no `choices`".into())),
        Err(e) => return Err(malformed(format!("answer is not valid JSON: {e}"))),
    };
    Ok(Completion {
        content_type: content_type.unwrap_or(JSON),
        body,
        usage,
    })
}

/// Statuses that mean "the request is wrong", returned to the client rather than retried.
fn is_client_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 413 | 422)
}

/// A non-2xx answer: the client's own error (returned as is), or a failure to fall through.
pub fn error_answer(
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
) -> Result<Refusal, UpstreamFailure> {
    if is_client_error(status) {
        return Ok(Refusal {
            status,
            content_type: content_type.unwrap_or(JSON),
            body,
        });
    }
    let reason = status.canonical_reason().unwrap_or("");
    let error = match error_detail(&body) {
        Some(d) => format!("HTTP {} {reason}: {d}", status.as_u16()),
        None => format!("HTTP {} {reason}", status.as_u16()),
    };
    Err(UpstreamFailure::new(
        FailureKind::Status,
        status.as_u16(),
        error.trim_end(),
    ))
}

/// The upstream's own error message, shortened.
pub fn error_detail(body: &[u8]) -> Option<String> {
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
    Some(short(&text, 200))
}
