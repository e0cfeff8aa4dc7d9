//! The Anthropic Messages ingress: `POST /v1/messages` (streamed and not) and
//! `POST /v1/messages/count_tokens`, as Claude Code and Anthropic's SDKs speak them.
//!
//! In ([`request`]): the body is checked as Anthropic checks it and translated in one pass
//! into the hub's form, an OpenAI chat body, which routing reads like any other request and
//! which every non-Anthropic provider is sent. The client's own body is kept beside it: a
//! provider with the `anthropic` backend gets that, byte for byte except `model`, with the
//! client's `anthropic-version` and `anthropic-beta` (see [`crate::providers::native`]).
//!
//! Back: a passed-through answer is the client's already; a hub answer becomes an Anthropic
//! `message` ([`response`]) or event stream ([`stream`]); errors take Anthropic's envelope
//! and statuses ([`error`]). What each translation drops or approximates is listed in
//! `docs/anthropic.md`.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use super::error::ApiError;
use crate::config::Backend;
use crate::providers::native::Native;
pub use request::Translated;

/// The client's API version, forwarded to Anthropic in place of the provider's default.
const VERSION: HeaderName = HeaderName::from_static("anthropic-version");
/// The client's betas (a comma-separated list, possibly over several lines), forwarded.
const BETA: HeaderName = HeaderName::from_static("anthropic-beta");

/// Check the content type, then check and translate the body.
pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Translated, ApiError> {
    super::openai_chat::check_content_type(headers)?;
    Ok(request::translate(body)?)
}

/// [`parse`] for `count_tokens`, whose requests need no `max_tokens`.
pub fn parse_prompt(headers: &HeaderMap, body: &[u8]) -> Result<Translated, ApiError> {
    super::openai_chat::check_content_type(headers)?;
    Ok(request::translate_prompt(body)?)
}

/// The client's request as the dispatcher passes it through to `anthropic` providers.
pub fn native<'a>(headers: &HeaderMap, body: &'a [u8], t: &Translated) -> Native<'a> {
    let mut forwarded = Vec::with_capacity(2);
    if let Some(version) = headers.get(VERSION) {
        forwarded.push((VERSION, version.clone()));
    }
    let betas: Vec<&str> = headers
        .get_all(BETA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if let Some(value) = match betas.as_slice() {
        [] => None,
        [one] => HeaderValue::from_str(one).ok(),
        many => HeaderValue::from_str(&many.join(",")).ok(),
    } {
        forwarded.push((BETA, value));
    }
    Native {
        backend: Backend::Anthropic,
        body,
        model_span: t.model_span.clone(),
        headers: forwarded,
        hub_max_tokens: Some(t.max_tokens),
    }
}

/// Whether a request speaks Anthropic's API (for the endpoints both APIs share).
pub fn is_anthropic(headers: &HeaderMap) -> bool {
    headers.contains_key(VERSION)
}

/// `/v1/messages/count_tokens`'s answer.
pub fn count_tokens_body(input_tokens: u64) -> Vec<u8> {
    json!({ "input_tokens": input_tokens })
        .to_string()
        .into_bytes()
}

/// `GET /v1/models` in Anthropic's list shape: `(id, display name)` pairs, `created` the
/// server's start as RFC 3339.
pub fn models_body(models: &[(String, String)], created: &str) -> serde_json::Value {
    let data: Vec<_> = models
        .iter()
        .map(|(id, name)| json!({"type": "model", "id": id, "display_name": name, "created_at": created}))
        .collect();
    json!({
        "data": data,
        "has_more": false,
        "first_id": models.first().map(|m| &m.0),
        "last_id": models.last().map(|m| &m.0),
    })
}
