//! The OpenAI chat-completions ingress: a request body in, checked and parsed once
//! ([`parse`]); answers go back as the backends produce them (OpenAI `chat.completion` JSON or
//! `chat.completion.chunk` SSE events), errors in OpenAI's envelope
//! ([`crate::ingress::error::ApiError`]).

use http::header::{HeaderMap, CONTENT_TYPE};
use http::StatusCode;

use super::error::ApiError;
use super::{Api, Inbound};
use crate::request::ChatRequest;

/// Check the content type and parse the body.
pub fn parse<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<Inbound<'a>, ApiError> {
    check_content_type(headers)?;
    let request = ChatRequest::parse(body)?;
    Ok(Inbound {
        api: Api::OpenAiChat,
        request,
    })
}

/// Refuse a body whose declared content type is not JSON (no declared type is accepted).
pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    let bytes = essence.as_bytes();
    let json_suffix = bytes.len() >= 5 && bytes[bytes.len() - 5..].eq_ignore_ascii_case(b"+json");
    if essence.eq_ignore_ascii_case("application/json") || json_suffix {
        return Ok(());
    }
    let essence = essence.to_ascii_lowercase();
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request_error",
        "unsupported_media_type",
        format!("Content-Type must be application/json, got `{essence}`"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_type(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn json_content_types_are_accepted_in_any_case_and_with_parameters() {
        for ct in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " application/json ;charset=UTF-8",
            "application/vnd.api+json",
            "application/merge-patch+JSON",
        ] {
            assert!(check_content_type(&with_type(ct)).is_ok(), "{ct}");
        }
        assert!(check_content_type(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn other_content_types_are_refused_naming_the_type_sent() {
        for (ct, named) in [
            ("text/plain", "text/plain"),
            (
                "Application/X-WWW-Form-Urlencoded",
                "application/x-www-form-urlencoded",
            ),
            ("json", "json"),
            ("application/jsonx", "application/jsonx"),
        ] {
            let e = check_content_type(&with_type(ct)).unwrap_err();
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
            assert!(
                e.message.contains(&format!("`{named}`")),
                "{ct}: {}",
                e.message
            );
        }
    }
}
