//! Anthropic's answers: a whole Messages API answer as a `chat.completion`, the wire types
//! the stream shares, and its errors as fallback decisions.

use serde::Deserialize;
use serde_json::Value;

use super::Anthropic;
use crate::config::ProviderConfig;
use crate::providers::protocol::{read_json, Completion, UpstreamFailure};
use crate::providers::translate::openai::{self, CompletionUsage, ToolCall};
use crate::providers::translate::ReadResponse;

impl ReadResponse for Anthropic {
    fn response(
        &self,
        config: &ProviderConfig,
        body: &[u8],
    ) -> Result<Completion, UpstreamFailure> {
        let msg: MessageResponse = read_json(body, &"Anthropic response")?;
        if let Some(error) = &msg.error {
            return Err(classify_error(None, error));
        }
        let mut text = String::new();
        let mut calls = Vec::new();
        for block in &msg.content {
            match block {
                Block::Text { text: t } => text.push_str(t),
                Block::ToolUse { id, name, input } => {
                    calls.push(ToolCall::new(
                        id.clone(),
                        name.clone(),
                        arguments_text(input),
                    ));
                }
                Block::Other => {}
            }
        }
        let finish_reason = finish_reason(msg.stop_reason.as_deref(), !calls.is_empty());
        let content = if text.is_empty() && !calls.is_empty() {
            None
        } else {
            Some(text)
        };
        let choice = openai::Choice {
            index: 0,
            content,
            tool_calls: calls,
            finish_reason,
        };
        let usage = msg.usage.map(AnthropicUsage::to_openai);
        Ok(openai::completion(&config.model, &[choice], usage))
    }

    fn failure(&self, status: u16, body: &[u8]) -> UpstreamFailure {
        #[derive(Deserialize)]
        struct Wrapper {
            error: ErrorDetail,
        }
        match serde_json::from_slice::<Wrapper>(body) {
            Ok(w) => classify_error(Some(status), &w.error),
            Err(_) => classify_error(
                Some(status),
                &ErrorDetail {
                    kind: String::new(),
                    message: String::from_utf8_lossy(body).into_owned(),
                },
            ),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct MessageResponse {
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(default)]
    error: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Thinking, redacted thinking, server tool blocks: not part of an OpenAI answer.
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(super) struct AnthropicUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// `input_tokens` excludes cached tokens; OpenAI's `prompt_tokens` counts the whole prompt.
    pub(super) fn to_openai(self) -> CompletionUsage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt =
            self.input_tokens.unwrap_or(0) + cached + self.cache_creation_input_tokens.unwrap_or(0);
        let completion = self.output_tokens.unwrap_or(0);
        CompletionUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: Some(openai::PromptDetails {
                cached_tokens: cached,
            }),
            completion_tokens_details: None,
        }
    }

    /// Whether the answer reported its counts at all.
    pub(super) fn is_reported(&self) -> bool {
        self.input_tokens.is_some() || self.output_tokens.is_some()
    }

    /// Later events carry running totals: take the fields they have.
    pub(super) fn update(&mut self, newer: &AnthropicUsage) {
        let pick = |have: &mut Option<u64>, new: Option<u64>| {
            if new.is_some() {
                *have = new;
            }
        };
        pick(&mut self.input_tokens, newer.input_tokens);
        pick(&mut self.output_tokens, newer.output_tokens);
        pick(
            &mut self.cache_creation_input_tokens,
            newer.cache_creation_input_tokens,
        );
        pick(
            &mut self.cache_read_input_tokens,
            newer.cache_read_input_tokens,
        );
    }
}

fn arguments_text(input: &Value) -> String {
    match input {
        Value::Object(_) => input.to_string(),
        _ => "{}".into(),
    }
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
pub(super) fn finish_reason(reason: Option<&str>, has_calls: bool) -> &'static str {
    match reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ErrorDetail {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// An Anthropic error as a fallback decision. `status` is `None` for an `error` event
/// inside a stream, where only the error type tells what happened.
pub(super) fn classify_error(status: Option<u16>, error: &ErrorDetail) -> UpstreamFailure {
    let status = status.unwrap_or(match error.kind.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    });
    // An empty account answers 400 invalid_request_error; that is the provider's problem.
    let billing = error
        .message
        .to_ascii_lowercase()
        .contains("credit balance");
    let client = !billing
        && match error.kind.as_str() {
            "invalid_request_error" | "request_too_large" => true,
            "" => matches!(status, 400 | 413 | 422),
            _ => false,
        };
    UpstreamFailure::reported(client, status, &error.kind, &error.message)
}
