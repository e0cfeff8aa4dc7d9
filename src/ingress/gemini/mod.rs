//! The Gemini API ingress: `POST /v1beta/models/{model}:generateContent` and
//! `POST /v1beta/models/{model}:streamGenerateContent?alt=sse`, as Google's `google-genai`
//! SDKs and OpenClaw's `google-generative-ai` transport speak them (`/v1/models/…` too).
//!
//! In ([`request`]): the body is translated into the hub's form, an OpenAI chat body whose
//! `model` is the one in the path (`auto`, a provider id, a model name), which routing reads
//! like any other request and which every non-Gemini provider is sent. The client's own body
//! is kept beside it: a provider with the `google-genai` backend gets it byte for byte, at
//! its own model's URL (see [`crate::providers::native`]).
//!
//! Back: a passed-through answer is the client's already; a hub answer becomes a
//! `GenerateContentResponse` ([`response`]) or a stream of them ([`stream`]); errors take
//! Google's envelope and statuses ([`error`]). What each translation drops or approximates is
//! listed in `docs/gemini.md`.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;

use http::{HeaderMap, Uri};

use super::error::ApiError;
use crate::config::Backend;
use crate::providers::native::Native;
pub use request::Translated;

/// The model and whether a stream was asked for, from a request path; `None` for a path that
/// is not one of this API's.
pub fn target(path: &str) -> Option<(&str, bool)> {
    let rest = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, method) = rest.rsplit_once(':')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    match method {
        "generateContent" => Some((model, false)),
        "streamGenerateContent" => Some((model, true)),
        _ => None,
    }
}

/// The API key a Gemini client sent: `x-goog-api-key`, else the `key` query parameter.
pub fn api_key<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    if let Some(key) = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("key="))
}

/// Check the content type, then translate the body for the path's model.
pub fn parse(headers: &HeaderMap, uri: &Uri, body: &[u8]) -> Result<Translated, ApiError> {
    super::openai_chat::check_content_type(headers)?;
    let (model, stream) = target(uri.path()).ok_or_else(|| ApiError::not_found(uri.path()))?;
    Ok(request::translate(body, model, stream)?)
}

/// The client's request as the dispatcher passes it through to `google-genai` providers:
/// the body as it is (the model is in the provider's URL).
pub fn native<'a>(body: &'a [u8], t: &Translated) -> Native<'a> {
    Native {
        backend: Backend::GoogleGenai,
        body,
        model_span: None,
        headers: Vec::new(),
        hub_max_tokens: t.max_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_model_and_the_method() {
        assert_eq!(
            target("/v1beta/models/auto:generateContent"),
            Some(("auto", false))
        );
        assert_eq!(
            target("/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
            Some(("gemini-2.5-flash", true))
        );
        assert_eq!(target("/v1/models/x:generateContent"), Some(("x", false)));
        for other in [
            "/v1beta/models/auto:countTokens",
            "/v1beta/models/:generateContent",
            "/v1beta/models/a/b:generateContent",
            "/v1beta/models",
        ] {
            assert_eq!(target(other), None, "{other}");
        }
        let uri: Uri = "/v1beta/models/a:generateContent?alt=sse&key=k1"
            .parse()
            .unwrap();
        assert_eq!(api_key(&uri, &HeaderMap::new()), Some("k1"));
    }
}
