//! The OpenAI Responses ingress: `POST /v1/responses` (streamed and not) and
//! `GET`/`DELETE /v1/responses/{id}` for stored responses.
//!
//! In ([`request`]): the body is checked and translated into the hub's form, an OpenAI chat
//! body, which routing reads like any other request and every provider is sent (no backend
//! speaks the Responses API, so nothing is passed through). `previous_response_id` is looked
//! up in [`store`], a bounded in-memory store with a time to live: the chain's messages come
//! before the new input, and the conversation key the client gave the chain
//! (`prompt_cache_key`) is carried on.
//!
//! Back: a hub answer becomes a `response` object ([`response`]) or event stream
//! ([`stream`]), stored when `store` is not false; errors take OpenAI's envelope
//! ([`super::error::ApiError`]). What each translation drops or approximates is listed in
//! `docs/responses.md`.

pub mod request;
pub mod response;
pub mod store;
pub mod stream;

use http::HeaderMap;

use super::error::ApiError;
pub use request::Translated;
pub use store::Store;

/// Check the content type, then check and translate the body.
pub fn parse(headers: &HeaderMap, body: &[u8], store: &Store) -> Result<Translated, ApiError> {
    super::openai_chat::check_content_type(headers)?;
    request::translate(body, store)
}

/// The error for an id that is not stored (any more).
pub fn not_found(id: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::NOT_FOUND,
        "invalid_request_error",
        "response_not_found",
        format!("Response with id '{id}' not found (ClawGate keeps stored responses in memory, for a while)."),
    )
}
