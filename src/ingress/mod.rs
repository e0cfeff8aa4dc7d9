//! Ingress, the first stage of a request: one module per client API.
//!
//! An ingress turns the bytes a client sent into an [`Inbound`]: which API it spoke, the
//! parsed request the dispatcher sends on, and the routing view the rules read
//! ([`crate::router::RouteView`], borrowed from that request). On the way back it shapes what
//! the dispatcher brings (an OpenAI chat answer, whole or as SSE events) and ClawGate's own
//! errors into that API's body, events and error envelope.
//!
//! Three chat APIs are served (and OpenAI's embeddings, [`Api::Embeddings`], outside the
//! route stage). OpenAI chat completions ([`openai_chat`]) is the hub's own: its
//! answers are what the backends produce, so its way back is the identity and its error
//! envelope is [`error::ApiError`]'s. Anthropic Messages ([`anthropic`]) is translated into
//! the hub's form and its answers back, except where a provider speaks it too, which gets the
//! client's own body; Gemini's `generateContent` ([`gemini`]) likewise. [`api_for_path`] is the one list of the paths each API answers on; the
//! connection loop serves them and refuses other methods there.

pub mod anthropic;
pub mod error;
pub mod gemini;
mod hub_stream;
pub mod openai_chat;
pub mod responses;

use http::HeaderMap;

use crate::request::ChatRequest;
use crate::router::RouteView;

/// A client API ClawGate answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/chat/completions`.
    OpenAiChat,
    /// `POST /v1/messages`.
    AnthropicMessages,
    /// `POST /v1/messages/count_tokens`.
    AnthropicCountTokens,
    /// `POST /v1/responses` (OpenAI Responses).
    OpenAiResponses,
    /// `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`.
    Gemini,
    /// `POST /v1/embeddings`.
    Embeddings,
}

impl Api {
    /// Its name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::OpenAiChat => "openai-chat",
            Api::AnthropicMessages => "anthropic-messages",
            Api::AnthropicCountTokens => "anthropic-count-tokens",
            Api::OpenAiResponses => "openai-responses",
            Api::Gemini => "gemini",
            Api::Embeddings => "openai-embeddings",
        }
    }

    /// What a request to this API must be sent with, for a 405's message.
    pub fn method_hint(self) -> &'static str {
        match self {
            Api::OpenAiChat => "chat completions take POST",
            Api::AnthropicMessages | Api::AnthropicCountTokens => "messages take POST",
            Api::OpenAiResponses => {
                "responses take POST; GET /v1/responses/{id} reads a stored one"
            }
            Api::Gemini => "generateContent takes POST",
            Api::Embeddings => "embeddings take POST",
        }
    }
}

/// The paths each API answers on (`POST`).
const PATHS: &[(&str, Api)] = &[
    ("/v1/chat/completions", Api::OpenAiChat),
    ("/chat/completions", Api::OpenAiChat),
    ("/v1/messages", Api::AnthropicMessages),
    ("/v1/messages/count_tokens", Api::AnthropicCountTokens),
    ("/v1/responses", Api::OpenAiResponses),
    ("/responses", Api::OpenAiResponses),
    ("/v1/embeddings", Api::Embeddings),
    ("/embeddings", Api::Embeddings),
];

/// The API a request path belongs to, if any (Gemini's paths carry the model:
/// [`gemini::target`]).
pub fn api_for_path(path: &str) -> Option<Api> {
    PATHS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|&(_, api)| api)
        .or_else(|| gemini::target(path).map(|_| Api::Gemini))
}

/// A client's request, parsed once by its ingress.
#[derive(Debug)]
pub struct Inbound<'a> {
    pub api: Api,
    /// The request in the form the dispatcher sends on (OpenAI chat, the gateway's hub form).
    pub request: ChatRequest<'a>,
}

impl<'a> Inbound<'a> {
    /// What the rules read of this request.
    pub fn view<'s>(&'s self, headers: &'s HeaderMap) -> RouteView<'s> {
        match self.api {
            // Anthropic requests are routed on their hub translation: one rule file for all.
            Api::OpenAiChat
            | Api::AnthropicMessages
            | Api::AnthropicCountTokens
            | Api::OpenAiResponses
            | Api::Gemini
            | Api::Embeddings => RouteView::chat(&self.request, headers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_path_is_recognised_and_nothing_else() {
        assert_eq!(api_for_path("/v1/chat/completions"), Some(Api::OpenAiChat));
        assert_eq!(api_for_path("/chat/completions"), Some(Api::OpenAiChat));
        assert_eq!(api_for_path("/v1/messages"), Some(Api::AnthropicMessages));
        assert_eq!(
            api_for_path("/v1/messages/count_tokens"),
            Some(Api::AnthropicCountTokens)
        );
        assert_eq!(api_for_path("/v1/responses"), Some(Api::OpenAiResponses));
        assert_eq!(
            api_for_path("/v1beta/models/auto:streamGenerateContent"),
            Some(Api::Gemini)
        );
        for other in [
            "/v1/responses/resp_1",
            "/v1/models",
            "/v1/chat/completions/",
            "/health",
            "/",
        ] {
            assert_eq!(api_for_path(other), None, "{other}");
        }
    }
}
