//! Gemini's answers: a whole `generateContent` answer as a `chat.completion`, the wire types
//! the stream shares, and its errors as fallback decisions.

use serde::Deserialize;
use serde_json::Value;

use super::Gemini;
use crate::config::ProviderConfig;
use crate::providers::protocol::{read_json, Completion, FailureKind, UpstreamFailure};
use crate::providers::translate::openai::{self, CompletionUsage, ToolCall};
use crate::providers::translate::ReadResponse;

impl ReadResponse for Gemini {
    fn response(
        &self,
        config: &ProviderConfig,
        body: &[u8],
    ) -> Result<Completion, UpstreamFailure> {
        let resp: GenerateResponse = read_json(body, &"Gemini response")?;
        if let Some(error) = &resp.error {
            return Err(classify_error(error.code.unwrap_or(500), error));
        }
        let mut choices = Vec::with_capacity(resp.candidates.len().max(1));
        for (pos, candidate) in resp.candidates.iter().enumerate() {
            let out = CandidateOutput::of(candidate);
            let reason = candidate.finish_reason.as_deref().unwrap_or("STOP");
            if out.is_empty() && is_failed_generation(reason) {
                return Err(failed_generation(reason));
            }
            let finish_reason = finish_reason(reason, !out.calls.is_empty());
            let content = match (out.text.is_empty(), out.calls.is_empty()) {
                (true, false) => None,
                _ => Some(out.text),
            };
            choices.push(openai::Choice {
                index: candidate.index.unwrap_or(pos as u32),
                content,
                tool_calls: out.calls,
                finish_reason,
            });
        }
        if choices.is_empty() {
            match resp
                .prompt_feedback
                .as_ref()
                .and_then(|f| f.block_reason.as_deref())
            {
                Some(_) => choices.push(openai::Choice {
                    index: 0,
                    content: Some(String::new()),
                    tool_calls: Vec::new(),
                    finish_reason: "content_filter",
                }),
                None => {
                    return Err(UpstreamFailure::of(
                        FailureKind::Malformed,
                        "Gemini returned no candidates",
                    ))
                }
            }
        }
        let usage = resp.usage_metadata.as_ref().map(UsageMetadata::to_openai);
        Ok(openai::completion(&config.model, &choices, usage))
    }

    fn failure(&self, status: u16, body: &[u8]) -> UpstreamFailure {
        match parse_error_body(body) {
            Some(error) => classify_error(status, &error),
            None => classify_error(
                status,
                &ErrorDetail {
                    code: Some(status),
                    message: Some(String::from_utf8_lossy(body).into_owned()),
                    ..Default::default()
                },
            ),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateResponse {
    #[serde(default)]
    pub(super) candidates: Vec<Candidate>,
    #[serde(default)]
    pub(super) prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub(super) usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub(super) error: Option<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate {
    #[serde(default)]
    content: Option<GContent>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
    #[serde(default)]
    pub(super) index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct GContent {
    #[serde(default)]
    parts: Vec<GPart>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GPart {
    #[serde(default)]
    text: Option<String>,
    /// A thought summary (only sent when asked for); never part of the answer.
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    function_call: Option<GFunctionCall>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct GFunctionCall {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedback {
    #[serde(default)]
    pub(super) block_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    tool_use_prompt_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
    #[serde(default)]
    total_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Thinking tokens are output tokens (as OpenAI counts reasoning tokens).
    pub(super) fn to_openai(&self) -> CompletionUsage {
        let prompt = self.prompt_token_count + self.tool_use_prompt_token_count;
        let completion = self.candidates_token_count + self.thoughts_token_count;
        CompletionUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: self
                .total_token_count
                .unwrap_or(prompt + completion)
                .max(prompt + completion),
            prompt_tokens_details: Some(openai::PromptDetails {
                cached_tokens: self.cached_content_token_count,
            }),
            completion_tokens_details: Some(openai::CompletionDetails {
                reasoning_tokens: self.thoughts_token_count,
            }),
        }
    }
}

/// The answer text and tool calls of one candidate (or one streamed piece of it).
pub(super) struct CandidateOutput {
    pub(super) text: String,
    pub(super) calls: Vec<ToolCall>,
}

impl CandidateOutput {
    pub(super) fn of(candidate: &Candidate) -> Self {
        let mut text = String::new();
        let mut calls = Vec::new();
        for part in candidate.content.iter().flat_map(|c| &c.parts) {
            if part.thought == Some(true) {
                continue;
            }
            if let Some(t) = &part.text {
                text.push_str(t);
            }
            if let Some(call) = &part.function_call {
                let id = match call.id.as_deref().filter(|id| !id.is_empty()) {
                    Some(id) => id.to_owned(),
                    None => format!("call_{}", openai::unique_hex()),
                };
                let args = match &call.args {
                    Some(v @ Value::Object(_)) => v.to_string(),
                    _ => "{}".to_owned(),
                };
                calls.push(ToolCall::new(id, call.name.clone(), args));
            }
        }
        CandidateOutput { text, calls }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.text.is_empty() && self.calls.is_empty()
    }
}

/// Gemini's `finishReason` as OpenAI's `finish_reason`.
pub(super) fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

/// Finish reasons that mean the model produced nothing usable (a broken tool call): with no
/// output at all, that is a provider failure worth falling back on, not an empty answer.
pub(super) fn is_failed_generation(reason: &str) -> bool {
    matches!(
        reason,
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" | "TOO_MANY_TOOL_CALLS"
    )
}

pub(super) fn failed_generation(reason: &str) -> UpstreamFailure {
    UpstreamFailure::of(
        FailureKind::Malformed,
        format!("Gemini produced no answer (finishReason {reason})"),
    )
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ErrorDetail {
    #[serde(default)]
    pub(super) code: Option<u16>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    details: Option<Vec<Value>>,
}

/// `{"error": {...}}`, or the same wrapped in an array (as `streamGenerateContent` sends it).
fn parse_error_body(body: &[u8]) -> Option<ErrorDetail> {
    #[derive(Deserialize)]
    struct Wrapper {
        error: ErrorDetail,
    }
    // `Many` first: serde would also read a one-element array as the struct, positionally.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Many(Vec<Wrapper>),
        One(Wrapper),
    }
    match serde_json::from_slice::<Body>(body).ok()? {
        Body::One(w) => Some(w.error),
        Body::Many(list) => list.into_iter().next().map(|w| w.error),
    }
}

/// A Gemini error as a fallback decision. Only a 400 `INVALID_ARGUMENT` about the request
/// is the client's; a 400 about the API key or the account's region is the provider's.
pub(super) fn classify_error(status: u16, error: &ErrorDetail) -> UpstreamFailure {
    let code = error.status.as_deref().unwrap_or("");
    let message = error.message.as_deref().unwrap_or("").trim();
    let reasons: Vec<&str> = error
        .details
        .iter()
        .flatten()
        .filter_map(|d| d.get("reason").and_then(Value::as_str))
        .collect();
    let key_problem = reasons.iter().any(|r| r.starts_with("API_KEY"))
        || message.to_ascii_lowercase().contains("api key");
    let client = status == 400 && matches!(code, "INVALID_ARGUMENT" | "") && !key_problem;
    UpstreamFailure::reported(client, status, code, message)
}
