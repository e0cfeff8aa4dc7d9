//! A `streamGenerateContent?alt=sse` stream as `chat.completion.chunk` events.

use super::response::{
    classify_error, failed_generation, finish_reason, is_failed_generation, Candidate,
    CandidateOutput, GenerateResponse,
};
use super::Gemini;
use crate::config::ProviderConfig;
use crate::metrics::Usage;
use crate::providers::protocol::{read_json, Events, FailureKind, UpstreamFailure};
use crate::providers::translate::openai::{
    ChunkWriter, CompletionUsage, FunctionDelta, ToolCallDelta,
};
use crate::providers::translate::sse::{EventTranslator, SseEvent};
use crate::providers::translate::ReadStream;

/// Translates a Gemini stream's events.
pub struct GeminiStream {
    writer: ChunkWriter,
    choices: Vec<ChoiceState>,
    /// The latest `usageMetadata` (each event carries the running totals).
    usage: Option<CompletionUsage>,
    /// The prompt was blocked (`promptFeedback.blockReason`, no candidates).
    blocked: bool,
}

impl ReadStream for Gemini {
    type Events = GeminiStream;

    fn events(&self, config: &ProviderConfig, include_usage: bool) -> GeminiStream {
        GeminiStream {
            writer: ChunkWriter::new(&config.model, include_usage),
            choices: Vec::new(),
            usage: None,
            blocked: false,
        }
    }
}

struct ChoiceState {
    index: u32,
    started: bool,
    tool_calls: u32,
    finished: bool,
}

impl EventTranslator for GeminiStream {
    fn on_event(&mut self, event: &SseEvent, out: &mut Events) -> Result<(), UpstreamFailure> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let resp: GenerateResponse = read_json(data.as_bytes(), &"Gemini stream event")?;
        if let Some(error) = &resp.error {
            return Err(classify_error(error.code.unwrap_or(500), error));
        }
        for (pos, candidate) in resp.candidates.iter().enumerate() {
            let index = candidate.index.unwrap_or(pos as u32);
            self.on_candidate(index, candidate, out)?;
        }
        let blocked = resp
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_ref())
            .is_some();
        if resp.candidates.is_empty() && blocked && !self.blocked {
            self.blocked = true;
            let writer = &self.writer;
            let choice = choice_state(&mut self.choices, 0);
            if !choice.finished {
                start(writer, choice, out);
                writer.finish(out, 0, "content_filter");
                choice.finished = true;
            }
        }
        if let Some(usage) = &resp.usage_metadata {
            self.usage = Some(usage.to_openai());
        }
        Ok(())
    }

    fn on_end(&mut self, out: &mut Events) -> Result<(), UpstreamFailure> {
        let cut = self.choices.is_empty() || self.choices.iter().any(|c| !c.finished);
        if cut {
            let message = if self.choices.iter().any(|c| c.started) {
                "Gemini stream ended before its finish reason (cut off midway)"
            } else {
                "Gemini stream ended without an answer"
            };
            return Err(UpstreamFailure::of(FailureKind::Stream, message));
        }
        if self.writer.include_usage() {
            self.writer.usage(out, &self.usage.unwrap_or_default());
        }
        ChunkWriter::done(out);
        Ok(())
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().map(CompletionUsage::to_usage)
    }
}

impl GeminiStream {
    fn on_candidate(
        &mut self,
        index: u32,
        candidate: &Candidate,
        out: &mut Events,
    ) -> Result<(), UpstreamFailure> {
        let writer = &self.writer;
        let choice = choice_state(&mut self.choices, index);
        if choice.finished {
            return Ok(());
        }
        let piece = CandidateOutput::of(candidate);
        let reason = candidate.finish_reason.as_deref();
        if let Some(r) = reason {
            if !choice.started && piece.is_empty() && is_failed_generation(r) {
                return Err(failed_generation(r));
            }
        }
        if !piece.is_empty() || reason.is_some() {
            start(writer, choice, out);
        }
        if !piece.text.is_empty() {
            writer.text(out, index, &piece.text);
        }
        for call in &piece.calls {
            let delta = ToolCallDelta {
                index: choice.tool_calls,
                id: Some(&call.id),
                kind: Some("function"),
                function: FunctionDelta {
                    name: Some(&call.function.name),
                    arguments: &call.function.arguments,
                },
            };
            writer.tool_call(out, index, delta);
            choice.tool_calls += 1;
        }
        if let Some(r) = reason {
            writer.finish(out, index, finish_reason(r, choice.tool_calls > 0));
            choice.finished = true;
        }
        Ok(())
    }
}

fn choice_state(choices: &mut Vec<ChoiceState>, index: u32) -> &mut ChoiceState {
    let pos = match choices.iter().position(|c| c.index == index) {
        Some(pos) => pos,
        None => {
            choices.push(ChoiceState {
                index,
                started: false,
                tool_calls: 0,
                finished: false,
            });
            choices.len() - 1
        }
    };
    &mut choices[pos]
}

/// The first chunk of a choice carries the role.
fn start(writer: &ChunkWriter, choice: &mut ChoiceState, out: &mut Events) {
    if !choice.started {
        choice.started = true;
        writer.role(out, choice.index);
    }
}
