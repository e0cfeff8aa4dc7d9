//! ClawGate: a local, OpenAI-compatible LLM router.
//!
//! A request flows: [`server`] (HTTP, validation) → [`request`] (parsed once) →
//! [`router`] (a [`router::Decision`] from the compiled rules) → [`providers`] (dispatch with
//! fallback and health) → back to the client, streamed byte for byte where possible.

pub mod app;
pub mod classifier;
pub mod cli;
pub mod config;
pub mod ingress;
pub mod metrics;
pub mod providers;
pub mod reload;
pub mod request;
pub mod router;
pub mod rules;
pub mod server;
pub mod slot;
pub mod state;
pub mod suggest;
pub mod util;
