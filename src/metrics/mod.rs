//! Request metrics: one [`RequestEvent`] per client request, kept in an embedded redb database
//! and shown through `/api/stats`, `/api/recent`, `/metrics` (Prometheus) and `/dashboard`.
//!
//! The request path calls [`Metrics::record`], which updates a few in-memory counters (what
//! `/metrics` renders, so scrapes never touch disk) and hands the event to a bounded channel
//! without waiting. One writer thread drains that channel and commits batches (up to
//! [`store::MAX_BATCH`] events or about a second) in one redb write transaction each, updating
//! per-minute and per-hour rollups in the same transaction so stats over days read a few
//! thousand rows instead of millions. Readers ([`Metrics::stats`], [`Metrics::recent`]) use read
//! transactions, which never wait for the writer. A full channel drops the event and counts the
//! drop.
//!
//! ```text
//! record() ─▶ live counters (/metrics)
//!          └▶ bounded channel ─▶ writer thread ─▶ redb: events + rollup_minute + rollup_hour
//!                                                   ▲
//!                stats() / recent() / clawgate stats ┘ read transactions
//! ```

mod codec;
pub mod event;
mod live;
pub mod prometheus;
mod rollup;
pub mod stats;
pub mod store;
mod strings;
pub mod usage;

pub use event::{AttemptRecord, RequestEvent};
pub use stats::{parse_limit, QueryError, Window};
pub use store::{Metrics, MetricsError, WriterCounters, MAX_BATCH, QUEUE_CAPACITY};
pub use usage::Usage;

/// The dashboard page served at `GET /dashboard`: one self-contained file (inline CSS and JS,
/// no CDN) that reads `/api/stats` and `/api/recent`.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");
