//! ClawGate: a local, OpenAI-compatible LLM router.
//!
//! A request passes three stages (ARCHITECTURE.md): [`ingress`] (the client's API → a parsed
//! [`request`] and its [`router::RouteView`]) → [`router`] (one walk over the rules
//! [`rules`] compiled → a [`router::Decision`]) → [`providers`] (dispatch with fallback and
//! health) → back to the client, streamed byte for byte where possible. [`server`] carries
//! them over HTTP; [`state`] is what a request reads and a [`reload`] replaces.

pub mod affinity;
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
