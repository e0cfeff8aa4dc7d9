//! A Messages API event stream as `chat.completion.chunk` events.

use std::collections::HashMap;

use serde::Deserialize;

use super::response::{classify_error, finish_reason, AnthropicUsage, Block, ErrorDetail};
use super::Anthropic;
use crate::config::ProviderConfig;
use crate::metrics::Usage;
use crate::providers::protocol::{read_json, Events, FailureKind, UpstreamFailure};
use crate::providers::translate::openai::{ChunkWriter, FunctionDelta, ToolCallDelta};
use crate::providers::translate::sse::{EventTranslator, SseEvent};
use crate::providers::translate::ReadStream;

/// Translates a Messages API event stream.
pub struct AnthropicStream {
    writer: ChunkWriter,
    /// The role chunk went out. It waits for the first content so that an `error` event
    /// right after `message_start` still finds nothing sent and the request can fall back.
    started: bool,
    /// Content block index → OpenAI tool call index, for `tool_use` blocks.
    tool_blocks: HashMap<u64, u32>,
    tool_calls: u32,
    usage: AnthropicUsage,
    stop_reason: Option<String>,
    /// The chunk with `finish_reason` went out.
    finished: bool,
    /// `message_stop` arrived and `[DONE]` went out.
    done: bool,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: Block,
    },
    ContentBlockDelta {
        index: u64,
        delta: BlockDelta,
    },
    ContentBlockStop {},
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<AnthropicUsage>,
    },
    MessageStop {},
    Ping {},
    Error {
        error: ErrorDetail,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        #[serde(default)]
        partial_json: String,
    },
    /// Thinking, signature and citation deltas.
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

impl ReadStream for Anthropic {
    type Events = AnthropicStream;

    fn events(&self, config: &ProviderConfig, include_usage: bool) -> AnthropicStream {
        AnthropicStream {
            writer: ChunkWriter::new(&config.model, include_usage),
            started: false,
            tool_blocks: HashMap::new(),
            tool_calls: 0,
            usage: AnthropicUsage::default(),
            stop_reason: None,
            finished: false,
            done: false,
        }
    }
}

impl EventTranslator for AnthropicStream {
    fn on_event(&mut self, event: &SseEvent, out: &mut Events) -> Result<(), UpstreamFailure> {
        let data = event.data.trim();
        if self.done || data.is_empty() {
            return Ok(());
        }
        let what = format_args!("Anthropic stream event {:?}", event.event);
        let parsed: Event = read_json(data.as_bytes(), &what)?;
        match parsed {
            Event::MessageStart { message } => {
                if let Some(u) = &message.usage {
                    self.usage.update(u);
                }
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                Block::Text { text } => self.text(&text, out),
                Block::ToolUse { id, name, .. } => {
                    self.start(out);
                    let call = self.tool_calls;
                    self.tool_calls += 1;
                    self.tool_blocks.insert(index, call);
                    let delta = ToolCallDelta {
                        index: call,
                        id: Some(&id),
                        kind: Some("function"),
                        function: FunctionDelta {
                            name: Some(&name),
                            arguments: "",
                        },
                    };
                    self.writer.tool_call(out, 0, delta);
                }
                Block::Other => {}
            },
            Event::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => self.text(&text, out),
                BlockDelta::InputJsonDelta { partial_json } => {
                    if let (Some(&call), false) =
                        (self.tool_blocks.get(&index), partial_json.is_empty())
                    {
                        let delta = ToolCallDelta {
                            index: call,
                            id: None,
                            kind: None,
                            function: FunctionDelta {
                                name: None,
                                arguments: &partial_json,
                            },
                        };
                        self.writer.tool_call(out, 0, delta);
                    }
                }
                BlockDelta::Other => {}
            },
            Event::MessageDelta { delta, usage } => {
                if let Some(u) = &usage {
                    self.usage.update(u);
                }
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                    self.finish_choice(out);
                }
            }
            Event::MessageStop {} => {
                self.finish_choice(out);
                self.writer.usage(out, &self.usage.to_openai());
                ChunkWriter::done(out);
                self.done = true;
            }
            Event::Error { error } => return Err(classify_error(None, &error)),
            Event::ContentBlockStop {} | Event::Ping {} | Event::Unknown => {}
        }
        Ok(())
    }

    fn on_end(&mut self, _out: &mut Events) -> Result<(), UpstreamFailure> {
        if self.done {
            return Ok(());
        }
        Err(UpstreamFailure::of(
            FailureKind::Stream,
            if self.started {
                "Anthropic stream ended before message_stop (cut off midway)"
            } else {
                "Anthropic stream ended without an answer"
            },
        ))
    }

    fn usage(&self) -> Option<Usage> {
        let usage = self.usage;
        usage.is_reported().then(|| usage.to_openai().to_usage())
    }
}

impl AnthropicStream {
    fn start(&mut self, out: &mut Events) {
        if !self.started {
            self.started = true;
            self.writer.role(out, 0);
        }
    }

    fn text(&mut self, text: &str, out: &mut Events) {
        if !text.is_empty() {
            self.start(out);
            self.writer.text(out, 0, text);
        }
    }

    fn finish_choice(&mut self, out: &mut Events) {
        if !self.finished {
            self.start(out);
            self.finished = true;
            let reason = finish_reason(self.stop_reason.as_deref(), self.tool_calls > 0);
            self.writer.finish(out, 0, reason);
        }
    }
}
