//! The in-process integration tests, as one test binary (one link instead of one per file):
//! each module is a former `tests/*.rs` suite, `support` holds the shared helpers.
//!
//! Suites that run the built binary or external tools stay their own test targets:
//! `tests/binary.rs`, `tests/python_sdk.rs`, `tests/dashboard_browser.rs`, `tests/deploy.rs`.
//! Run one module with `cargo test --test it proxy::`.

mod support;

mod affinity;
mod backends;
mod capabilities;
mod classifier;
mod embeddings;
mod gemini_ingress;
mod messages;
mod metrics_cli;
mod metrics_e2e;
mod metrics_prometheus;
mod metrics_stats;
mod metrics_store;
mod proxy;
mod reload;
mod responses;
mod routing_corpus;
mod rules_cmd;
mod rules_diagnostics;
mod rules_language;
mod rules_proptest;
mod rules_stock;
