//! Anthropic's Messages API (`anthropic` backend), translated to and from OpenAI chat
//! completions.
//!
//! Out ([`request`]): system and developer messages become `system`; user/assistant turns
//! become `messages` with text, image (`base64` from data URLs, `url` for http(s)),
//! `tool_use` and `tool_result` blocks, consecutive same-role turns merged as the API
//! requires; tools become `tools` with `input_schema`; `max_tokens` is always sent (the
//! client's, else the provider's, else 4096); `response_format` (JSON mode, JSON schema)
//! becomes a system instruction, the API having no such field. Back ([`response`],
//! [`stream`]): content blocks become the message text and `tool_calls`, `stop_reason`
//! becomes `finish_reason`, and the SSE events (`message_start`, `content_block_*`,
//! `message_delta`, `message_stop`, `ping`, `error`) become `chat.completion.chunk` events.
//!
//! Prompt caching: the system prompt (which, with the tools before it, is the large stable
//! prefix of an agent's requests) and the last message carry `cache_control` breakpoints, so
//! repeated turns read the prefix from Anthropic's cache. Prompts below the model's minimum
//! cacheable length are simply not cached.

pub mod passthrough;
pub mod request;
pub mod response;
pub mod stream;
#[cfg(test)]
mod tests;

pub use request::{build_body, ANTHROPIC_VERSION, DEFAULT_MAX_TOKENS};

/// The `anthropic` backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anthropic;
