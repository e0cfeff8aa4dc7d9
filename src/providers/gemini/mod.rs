//! Google's native Gemini API (`google-genai` backend), translated to and from OpenAI chat
//! completions.
//!
//! Out ([`request`]): system and developer messages become `systemInstruction`;
//! user/assistant/tool turns become `user`/`model` contents (consecutive same-role turns
//! merged, as the API requires); images given as data URLs become `inlineData`; tools become
//! `functionDeclarations` with their schemas cleaned (see [`schema`]); sampling options go
//! into `generationConfig`. Back ([`response`], [`stream`]): candidates become choices,
//! `functionCall` parts become `tool_calls`, `usageMetadata` becomes `usage`, and each
//! `streamGenerateContent?alt=sse` event becomes `chat.completion.chunk` events.
//!
//! Remote (`http(s)`) image URLs are refused with a 400: fetching them would make this pure
//! translator do network I/O with its own limits and failure modes.

pub mod passthrough;
pub mod request;
pub mod response;
pub mod schema;
pub mod stream;
#[cfg(test)]
mod tests;

pub use request::build_body;

/// The `google-genai` backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gemini;
