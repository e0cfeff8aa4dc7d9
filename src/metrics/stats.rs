//! `/api/stats` and `/api/recent`: JSON views of the store, read in one redb read transaction
//! each (readers never wait for the writer).
//!
//! Field names are the original ClawGate's, so existing scripts and dashboards keep working; new
//! fields are added next to them. Differences, on purpose:
//! - Empty sums and averages are `0`, not the original's `null` (`first_request`/`last_request`
//!   stay `null` when there is no request: there is no time to give).
//! - One event is one client request: `total_requests` counts requests, not attempt rows. The
//!   original wrote a failure row per failed attempt; `providers[].requests` and `.failures` still
//!   count attempts on that provider (answers plus failed attempts), so per-provider figures mean
//!   what they meant, and `failed_attempts`/`fallbacks` say more.
//! - `avg_latency_ms` averages the requests a provider answered (a failed attempt has no latency
//!   of its own); p50/p95 come from a histogram with ±9 % buckets.
//! - `1h` and `24h` windows start on a minute, `7d` and `30d` on a clock hour (they read hourly
//!   rollups; minute rollups are kept for 48 h only); `hourly` is the last 24 clock hours (`hour_offset`
//!   23 = the current hour) and `daily` the last 30 UTC days (all days for `window=all`),
//!   whatever the window, as in the original. `timeline` follows the window.
//!
//! Added beside the original's fields: `lanes` and `affinity` (requests by lane and by sticky
//! routing's result, from the rollups' group keys; requests without one are left out),
//! `prompt_cache_hit_pct` (cache hits over all prompt tokens) in the totals and every row, and
//! `lane` / `affinity` in `/api/recent` rows. Every field: `docs/metrics.md`.

// redb::Error is large (160 bytes); it only travels on cold failure paths, and boxing it would
// lose `?` across redb's several error types.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use redb::{Database, ReadableTable};
use serde_json::{json, Map, Value};

use super::event::{RequestEvent, HUB_API};
use super::rollup::{parse_group, split_key, Agg, KIND_ATTEMPT, KIND_OK, MINUTE_MS};
use super::store::{event_key, event_key_parts, Metrics, EVENTS, ROLLUP_HOUR, ROLLUP_MINUTE};
use super::strings::{Lookup, STRINGS};

/// `limit` when `/api/recent` is called without one.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit` accepted by `/api/recent`.
pub const MAX_LIMIT: usize = 1000;

/// The time span of `/api/stats?window=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    H1,
    H24,
    D7,
    D30,
    All,
}

/// A bad query parameter; the server answers 400 with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("window must be one of 1h, 24h, 7d, 30d, all (got {0:?})")]
    BadWindow(String),
    #[error("limit must be an integer from 1 to 1000 (got {0:?})")]
    BadLimit(String),
}

impl Window {
    /// `window` from a query string; absent means `all`, as the original `/api/stats` reported.
    pub fn from_query(raw: Option<&str>) -> Result<Window, QueryError> {
        raw.map_or(Ok(Window::All), str::parse)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::H1 => "1h",
            Window::H24 => "24h",
            Window::D7 => "7d",
            Window::D30 => "30d",
            Window::All => "all",
        }
    }

    /// The span in ms; `None` for `all`.
    pub fn duration_ms(self) -> Option<u64> {
        let h = 3_600_000;
        match self {
            Window::H1 => Some(h),
            Window::H24 => Some(24 * h),
            Window::D7 => Some(7 * 24 * h),
            Window::D30 => Some(30 * 24 * h),
            Window::All => None,
        }
    }

    /// The first minute (since the epoch) the window covers at `now_ms`: minute-aligned for
    /// `1h`/`24h`, hour-aligned for the longer windows (0 for `all`).
    pub fn start_minute(self, now_ms: u64) -> u64 {
        let Some(d) = self.duration_ms() else {
            return 0;
        };
        let start = now_ms.saturating_sub(d) / MINUTE_MS;
        match self {
            Window::H1 | Window::H24 => start,
            _ => start / 60 * 60,
        }
    }

    /// Width of one `timeline` point, in minutes.
    fn bucket_minutes(self) -> u64 {
        match self {
            Window::H1 => 1,
            Window::H24 => 60,
            Window::D7 => 360,
            Window::D30 | Window::All => 1440,
        }
    }
}

impl FromStr for Window {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Window, QueryError> {
        match s {
            "1h" => Ok(Window::H1),
            "24h" | "1d" => Ok(Window::H24),
            "7d" => Ok(Window::D7),
            "30d" => Ok(Window::D30),
            "all" => Ok(Window::All),
            other => Err(QueryError::BadWindow(other.chars().take(40).collect())),
        }
    }
}

/// `limit` of `/api/recent`: absent → 50; an integer 1..=1000; anything else is an error.
pub fn parse_limit(raw: Option<&str>) -> Result<usize, QueryError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(QueryError::BadLimit(raw.chars().take(40).collect())),
    }
}

fn round_to(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1e3
}

/// Calls `f(unit_start_minute, group, row)` for every rollup row in `[from, to)` of one table.
fn scan_table<T: ReadableTable<&'static [u8], &'static [u8]>>(
    metrics: &Metrics,
    table: &T,
    from: u64,
    to: u64,
    unit_minutes: u64,
    f: &mut dyn FnMut(u64, &[u8], &Agg),
) -> Result<(), redb::Error> {
    if from >= to {
        return Ok(());
    }
    let (lo, hi) = (from.to_be_bytes(), to.to_be_bytes());
    for row in table.range(lo.as_slice()..hi.as_slice())? {
        let (k, v) = row?;
        let (Some((unit, group)), Ok(agg)) = (split_key(k.value()), Agg::decode(v.value())) else {
            metrics.count_corrupt();
            continue;
        };
        f(unit * unit_minutes, group, &agg);
    }
    Ok(())
}

/// Every rollup row of minutes `[start_min, end_min]`: whole hours from the hour table, the
/// ragged ends from the minute table (all from minutes when `minutes_only`).
fn scan_window(
    metrics: &Metrics,
    txn: &redb::ReadTransaction,
    start_min: u64,
    end_min: u64,
    minutes_only: bool,
    f: &mut dyn FnMut(u64, &[u8], &Agg),
) -> Result<(), redb::Error> {
    let minutes = txn.open_table(ROLLUP_MINUTE)?;
    let end_excl = end_min.saturating_add(1);
    let (h_lo, h_hi) = (start_min.div_ceil(60), end_excl / 60);
    if minutes_only || h_lo >= h_hi {
        return scan_table(metrics, &minutes, start_min, end_excl, 1, f);
    }
    let hours = txn.open_table(ROLLUP_HOUR)?;
    scan_table(metrics, &minutes, start_min, h_lo * 60, 1, f)?;
    scan_table(metrics, &hours, h_lo, h_hi, 60, f)?;
    scan_table(metrics, &minutes, h_hi * 60, end_excl, 1, f)
}

/// Fields shared by provider, rule and layer rows.
fn agg_fields(a: &Agg, attempts: u64) -> Map<String, Value> {
    let fields = json!({
        "requests": a.requests + attempts,
        "failures": a.failures + attempts,
        "answered": a.requests,
        "fallbacks": a.fallbacks,
        "failed_attempts": attempts,
        "prompt_tokens": a.prompt,
        "compl_tokens": a.completion,
        "total_tokens": a.tokens(),
        "cache_hit_tokens": a.cache_hit,
        "cache_miss_tokens": a.cache_miss,
        "cache_hit_pct": round_to(a.cache_hit_pct(), 1),
        "prompt_cache_hit_pct": round_to(a.prompt_cache_hit_pct(), 1),
        "cost_usd": round_to(a.cost_usd(), 6),
        "avg_latency_ms": round_to(a.avg_latency_ms(), 1),
        "p50_latency_ms": round_to(a.latency_quantile_ms(0.50), 1),
        "p95_latency_ms": round_to(a.latency_quantile_ms(0.95), 1),
        "avg_ttfb_ms": round_to(a.avg_ttfb_ms(), 1),
        "usage_estimated": a.estimated,
        "streams": a.streams,
    });
    match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn row(label: &[(&str, &str)], a: &Agg, attempts: u64) -> Value {
    let mut m = agg_fields(a, attempts);
    for (k, v) in label {
        m.insert((*k).to_owned(), Value::from(*v));
    }
    Value::Object(m)
}

fn sort_by_requests(rows: &mut [Value]) {
    rows.sort_by(|a, b| {
        let n = |v: &Value| v["requests"].as_u64().unwrap_or(0);
        n(b).cmp(&n(a))
    });
}

/// Days since the epoch → `YYYY-MM-DD` (proleptic Gregorian, UTC).
pub fn date(days: u64) -> String {
    let (y, m, d) = crate::util::civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// One row of `/api/recent`: the original's columns plus the new fields.
fn recent_row(id: u64, ev: &RequestEvent) -> Value {
    json!({
        "id": id,
        "timestamp": secs(ev.ts_ms),
        "provider": ev.provider.as_deref().unwrap_or(""),
        "model": ev.upstream_model.as_deref().unwrap_or(""),
        "layer": ev.layer,
        "rule_name": ev.rule,
        "prompt_tok": ev.prompt_tokens,
        "compl_tok": ev.completion_tokens,
        "cache_hit": ev.cache_hit_tokens,
        "cache_miss": ev.cache_miss_tokens,
        "cost_usd": ev.cost_usd,
        "latency_ms": round_to(ev.latency_ms, 1),
        "success": u8::from(ev.succeeded()),
        "error": ev.error.as_deref().unwrap_or(""),
        "requested_model": ev.requested_model,
        "attempts": ev.attempts,
        "fallback": ev.fell_back(),
        "status": ev.status,
        "ttfb_ms": ev.ttfb_ms.map(|t| round_to(t, 1)),
        "stream": ev.stream,
        "usage_estimated": ev.usage_estimated,
        "classification": ev.classification,
        "lane": ev.lane,
        "affinity": ev.affinity,
        "api": ev.api_name(),
    })
}

impl Metrics {
    /// `/api/stats?window=…` as of now.
    pub fn stats(&self, window: Window) -> Value {
        self.stats_at(window, RequestEvent::now_ms())
    }

    /// `/api/stats` as of `now_ms` (unix ms).
    pub fn stats_at(&self, window: Window, now_ms: u64) -> Value {
        let Some(db) = self.db() else {
            return json!({"totals": {}, "providers": [], "routing": [], "hourly": [], "daily": [], "enabled": false});
        };
        match self.compute_stats(db, window, now_ms) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "metrics stats could not be read");
                json!({"totals": {}, "providers": [], "routing": [], "hourly": [], "daily": [], "error": e.to_string()})
            }
        }
    }

    /// `/api/recent?limit=…`: the newest `limit` (at most [`MAX_LIMIT`]) requests, newest first.
    pub fn recent(&self, limit: usize) -> Value {
        let Some(db) = self.db() else {
            return json!({"requests": []});
        };
        match self.read_recent(db, limit.min(MAX_LIMIT)) {
            Ok(rows) => json!({ "requests": rows }),
            Err(e) => {
                tracing::warn!(error = %e, "recent metrics could not be read");
                json!({"requests": [], "error": e.to_string()})
            }
        }
    }

    fn read_recent(&self, db: &Database, limit: usize) -> Result<Vec<Value>, redb::Error> {
        let txn = db.begin_read()?;
        let events = txn.open_table(EVENTS)?;
        let mut strings = Lookup::new(Some(txn.open_table(STRINGS)?));
        let mut rows = Vec::with_capacity(limit);
        for entry in events.iter()?.rev() {
            if rows.len() >= limit {
                break;
            }
            let (k, v) = entry?;
            let (ts_ms, id) = event_key_parts(k.value());
            match RequestEvent::decode(v.value(), ts_ms, &mut |r| strings.read(r)) {
                Ok(ev) => rows.push(recent_row(id, &ev)),
                Err(_) => self.count_corrupt(),
            }
        }
        Ok(rows)
    }

    fn compute_stats(
        &self,
        db: &Database,
        window: Window,
        now_ms: u64,
    ) -> Result<Value, redb::Error> {
        let txn = db.begin_read()?;
        let now_min = now_ms / MINUTE_MS;
        let start_min = window.start_minute(now_ms);
        // `all` also counts rows stamped in the future (a clock that was ahead).
        let end_min = if window == Window::All {
            u64::MAX / MINUTE_MS
        } else {
            now_min
        };
        let bucket = window.bucket_minutes();

        let mut groups: HashMap<Vec<u8>, Agg> = HashMap::new();
        let mut timeline: BTreeMap<u64, Agg> = BTreeMap::new();
        scan_window(
            self,
            &txn,
            start_min,
            end_min,
            bucket < 60,
            &mut |unit_min, group, agg| {
                if group.first() != Some(&KIND_ATTEMPT) {
                    timeline
                        .entry(unit_min / bucket * bucket)
                        .or_default()
                        .merge(agg);
                }
                match groups.get_mut(group) {
                    Some(g) => g.merge(agg),
                    None => {
                        groups.insert(group.to_vec(), agg.clone());
                    }
                }
            },
        )?;

        let mut totals = Agg::default();
        let mut failed_attempts = 0;
        let mut providers: BTreeMap<&str, (Agg, u64)> = BTreeMap::new();
        let mut routing: BTreeMap<(&str, &str, &str), Agg> = BTreeMap::new();
        let mut rules: BTreeMap<(&str, &str), (Agg, u64)> = BTreeMap::new();
        let mut layers: BTreeMap<&str, (Agg, u64)> = BTreeMap::new();
        let mut lanes: BTreeMap<&str, Agg> = BTreeMap::new();
        let mut affinity: BTreeMap<&str, Agg> = BTreeMap::new();
        let mut apis: BTreeMap<&str, (Agg, u64)> = BTreeMap::new();
        for (group, agg) in &groups {
            let Some(g) = parse_group(group) else {
                self.count_corrupt();
                continue;
            };
            let (kind, provider, layer, rule) = (g.kind, g.provider, g.layer, g.rule);
            let api = if g.api.is_empty() { HUB_API } else { g.api };
            if kind == KIND_ATTEMPT {
                failed_attempts += agg.requests;
                providers.entry(provider).or_default().1 += agg.requests;
                rules.entry((layer, rule)).or_default().1 += agg.requests;
                layers.entry(layer).or_default().1 += agg.requests;
                if layer != "classification" {
                    apis.entry(api).or_default().1 += agg.requests;
                }
                continue;
            }
            // The classifier's own calls are ClawGate's, not a client API's.
            if layer != "classification" {
                apis.entry(api).or_default().0.merge(agg);
            }
            totals.merge(agg);
            if !provider.is_empty() {
                providers.entry(provider).or_default().0.merge(agg);
            }
            if kind == KIND_OK {
                routing
                    .entry((layer, rule, provider))
                    .or_default()
                    .merge(agg);
            }
            rules.entry((layer, rule)).or_default().0.merge(agg);
            layers.entry(layer).or_default().0.merge(agg);
            if !g.lane.is_empty() {
                lanes.entry(g.lane).or_default().merge(agg);
            }
            if !g.affinity.is_empty() {
                affinity.entry(g.affinity).or_default().merge(agg);
            }
        }

        let (first, last) = {
            let events = txn.open_table(EVENTS)?;
            let lo = event_key(start_min * MINUTE_MS, 0);
            let first = events
                .range(lo..)?
                .next()
                .transpose()?
                .map(|(k, _)| event_key_parts(k.value()).0);
            let last = events
                .range(lo..)?
                .next_back()
                .transpose()?
                .map(|(k, _)| event_key_parts(k.value()).0);
            (first, last)
        };

        let totals_json = json!({
            "total_requests": totals.requests,
            "total_failures": totals.failures,
            "total_prompt_tokens": totals.prompt,
            "total_compl_tokens": totals.completion,
            "total_cache_hit": totals.cache_hit,
            "total_cache_miss": totals.cache_miss,
            "cache_hit_pct": round_to(totals.cache_hit_pct(), 1),
            "prompt_cache_hit_pct": round_to(totals.prompt_cache_hit_pct(), 1),
            "total_cost_usd": round_to(totals.cost_usd(), 6),
            "avg_latency_ms": round_to(totals.avg_latency_ms(), 1),
            "first_request": first.map(secs),
            "last_request": last.map(secs),
            "total_tokens": totals.tokens(),
            "total_fallbacks": totals.fallbacks,
            "total_failed_attempts": failed_attempts,
            "p50_latency_ms": round_to(totals.latency_quantile_ms(0.50), 1),
            "p95_latency_ms": round_to(totals.latency_quantile_ms(0.95), 1),
            "avg_ttfb_ms": round_to(totals.avg_ttfb_ms(), 1),
            "usage_estimated_requests": totals.estimated,
            "stream_requests": totals.streams,
        });

        let mut provider_rows: Vec<Value> = providers
            .iter()
            .map(|(p, (a, att))| row(&[("provider", p)], a, *att))
            .collect();
        sort_by_requests(&mut provider_rows);
        let mut routing_rows: Vec<Value> = routing
            .iter()
            .map(|((layer, rule, provider), a)| {
                json!({
                    "layer": layer, "rule_name": rule, "provider": provider,
                    "requests": a.requests,
                    "cost_usd": round_to(a.cost_usd(), 6),
                    "avg_latency_ms": round_to(a.avg_latency_ms(), 1),
                    "p50_latency_ms": round_to(a.latency_quantile_ms(0.50), 1),
                    "p95_latency_ms": round_to(a.latency_quantile_ms(0.95), 1),
                    "fallbacks": a.fallbacks,
                    "tokens": a.tokens(),
                })
            })
            .collect();
        sort_by_requests(&mut routing_rows);
        let mut rule_rows: Vec<Value> = rules
            .iter()
            .map(|((layer, rule), (a, att))| row(&[("layer", layer), ("rule_name", rule)], a, *att))
            .collect();
        sort_by_requests(&mut rule_rows);
        let mut layer_rows: Vec<Value> = layers
            .iter()
            .map(|(layer, (a, att))| row(&[("layer", layer)], a, *att))
            .collect();
        sort_by_requests(&mut layer_rows);
        let mut lane_rows: Vec<Value> = lanes
            .iter()
            .map(|(lane, a)| row(&[("lane", lane)], a, 0))
            .collect();
        sort_by_requests(&mut lane_rows);
        let mut affinity_rows: Vec<Value> = affinity
            .iter()
            .map(|(result, a)| row(&[("affinity", result)], a, 0))
            .collect();
        sort_by_requests(&mut affinity_rows);
        let mut api_rows: Vec<Value> = apis
            .iter()
            .map(|(api, (a, att))| row(&[("api", api)], a, *att))
            .collect();
        sort_by_requests(&mut api_rows);
        // The request counts here are client requests (attempt rows excluded).
        for r in rule_rows
            .iter_mut()
            .chain(layer_rows.iter_mut())
            .chain(api_rows.iter_mut())
        {
            let answered = r["answered"].clone();
            r["requests"] = answered;
        }

        let timeline_rows: Vec<Value> = timeline
            .iter()
            .map(|(min, a)| {
                json!({
                    "t": min * 60,
                    "requests": a.requests,
                    "failures": a.failures,
                    "cost_usd": round_to(a.cost_usd(), 6),
                    "tokens": a.tokens(),
                    "avg_latency_ms": round_to(a.avg_latency_ms(), 1),
                })
            })
            .collect();

        let (hourly, daily) = self.hourly_daily(&txn, window, now_ms)?;
        let c = self.counters();
        Ok(json!({
            "totals": totals_json,
            "providers": provider_rows,
            "routing": routing_rows,
            "rules": rule_rows,
            "layers": layer_rows,
            "lanes": lane_rows,
            "affinity": affinity_rows,
            "apis": api_rows,
            "hourly": hourly,
            "daily": daily,
            "timeline": timeline_rows,
            "timeline_bucket_s": bucket * 60,
            "window": window.as_str(),
            "window_start": window.duration_ms().map(|_| secs(start_min * MINUTE_MS)),
            "generated_at": secs(now_ms),
            "enabled": true,
            "store": c,
        }))
    }

    /// The original's `hourly` (last 24 clock hours) and `daily` (last 30 UTC days, or all).
    fn hourly_daily(
        &self,
        txn: &redb::ReadTransaction,
        window: Window,
        now_ms: u64,
    ) -> Result<(Value, Value), redb::Error> {
        let hours = txn.open_table(ROLLUP_HOUR)?;
        let now_h = now_ms / 3_600_000;
        let first_h = now_h.saturating_sub(23);
        let mut by_hour: BTreeMap<u64, Agg> = BTreeMap::new();
        scan_table(self, &hours, first_h, now_h + 1, 1, &mut |h, group, agg| {
            if group.first() != Some(&KIND_ATTEMPT) {
                by_hour.entry(h).or_default().merge(agg);
            }
        })?;
        let hourly: Vec<Value> = by_hour
            .iter()
            .map(|(h, a)| {
                json!({
                    "hour_offset": h - first_h,
                    "hour_start": h * 3600,
                    "requests": a.requests,
                    "cost_usd": round_to(a.cost_usd(), 6),
                    "tokens": a.tokens(),
                    "failures": a.failures,
                })
            })
            .collect();

        let today = now_ms / 86_400_000;
        let (from_h, to_h) = if window == Window::All {
            (0, u64::MAX)
        } else {
            (today.saturating_sub(29) * 24, now_h + 1)
        };
        let mut by_day: BTreeMap<u64, Agg> = BTreeMap::new();
        scan_table(self, &hours, from_h, to_h, 1, &mut |h, group, agg| {
            if group.first() != Some(&KIND_ATTEMPT) {
                by_day.entry(h / 24).or_default().merge(agg);
            }
        })?;
        let daily: Vec<Value> = by_day
            .iter()
            .map(|(d, a)| {
                json!({
                    "day": date(*d),
                    "requests": a.requests,
                    "cost_usd": round_to(a.cost_usd(), 6),
                    "tokens": a.tokens(),
                    "failures": a.failures,
                })
            })
            .collect();
        Ok((Value::from(hourly), Value::from(daily)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_from_their_query_names() {
        let cases = [
            ("1h", Window::H1),
            ("24h", Window::H24),
            ("7d", Window::D7),
            ("30d", Window::D30),
            ("all", Window::All),
        ];
        for (s, w) in cases {
            assert_eq!(s.parse::<Window>(), Ok(w));
            assert_eq!(w.as_str(), s);
        }
        assert_eq!(Window::from_query(None), Ok(Window::All));
        assert!(matches!(
            Window::from_query(Some("2h")),
            Err(QueryError::BadWindow(_))
        ));
        assert!(matches!(
            "".parse::<Window>(),
            Err(QueryError::BadWindow(_))
        ));
    }

    #[test]
    fn limits_default_to_50_and_reject_nonsense() {
        let table: [(Option<&str>, Result<usize, ()>); 8] = [
            (None, Ok(50)),
            (Some("1"), Ok(1)),
            (Some("1000"), Ok(1000)),
            (Some("1001"), Err(())),
            (Some("0"), Err(())),
            (Some("-3"), Err(())),
            (Some("ten"), Err(())),
            (Some(""), Err(())),
        ];
        for (raw, want) in table {
            assert_eq!(parse_limit(raw).map_err(|_| ()), want, "{raw:?}");
        }
    }

    #[test]
    fn days_format_as_utc_dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(19_723), "2024-01-01");
        assert_eq!(date(20_513), "2026-03-01");
    }
}
