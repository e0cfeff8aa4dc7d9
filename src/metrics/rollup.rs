//! Rollups: per-minute and per-hour aggregates of events, keyed by time unit and group, written in
//! the same transaction as the events so stats over days read rollups, not millions of rows.
//!
//! Key: `unit (u64 big-endian: minutes or hours since the epoch) · kind (u8) · provider \0 layer \0
//! rule \0 lane \0 affinity \0 api`, so a time range is one contiguous key range. Rows written
//! before lanes, affinity and client APIs existed end after `rule`; they read as lane and
//! affinity `""` and the hub's API (OpenAI chat completions), which is also written as `""`. Kinds: a request that succeeded, a request
//! that failed, and a failed attempt on `provider` (only `requests` is used for attempts). Sums
//! are integers (cost in pico-USD, latency in µs), so adding rows in any order gives exactly the
//! same totals as adding the raw events.

use std::collections::HashMap;

use super::codec::{put_u64, DecodeError, Reader};
use super::event::RequestEvent;

pub(crate) const KIND_OK: u8 = 0;
pub(crate) const KIND_FAILED: u8 = 1;
pub(crate) const KIND_ATTEMPT: u8 = 2;

pub(crate) const MINUTE_MS: u64 = 60_000;
pub(crate) const HOUR_MS: u64 = 3_600_000;

/// Latency histogram buckets: bucket 0 is < 1 ms, then four per power of two up to ~17 minutes,
/// so a percentile read from it is within about ±9 % of the true value.
pub(crate) const HIST_BUCKETS: usize = 81;
const PICO: f64 = 1e12;

const VERSION: u8 = 1;

/// Sums over a set of events (one rollup row, or any merge of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Agg {
    pub requests: u64,
    pub failures: u64,
    pub fallbacks: u64,
    pub prompt: u64,
    pub completion: u64,
    pub cache_hit: u64,
    pub cache_miss: u64,
    pub estimated: u64,
    pub streams: u64,
    pub cost_pusd: u64,
    pub latency_us: u64,
    pub ttfb_us: u64,
    pub ttfb_count: u64,
    pub hist: [u64; HIST_BUCKETS],
}

impl Default for Agg {
    fn default() -> Self {
        Agg {
            requests: 0,
            failures: 0,
            fallbacks: 0,
            prompt: 0,
            completion: 0,
            cache_hit: 0,
            cache_miss: 0,
            estimated: 0,
            streams: 0,
            cost_pusd: 0,
            latency_us: 0,
            ttfb_us: 0,
            ttfb_count: 0,
            hist: [0; HIST_BUCKETS],
        }
    }
}

pub(crate) fn latency_bucket(ms: f64) -> usize {
    if ms.is_nan() || ms < 1.0 {
        return 0;
    }
    (1 + (ms.log2() * 4.0) as usize).min(HIST_BUCKETS - 1)
}

/// The value reported for a bucket: its geometric middle.
fn bucket_value_ms(i: usize) -> f64 {
    if i == 0 {
        0.5
    } else {
        ((i as f64 - 0.5) / 4.0).exp2()
    }
}

fn to_units(v: f64, scale: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        (v * scale).round() as u64
    } else {
        0
    }
}

impl Agg {
    /// Adds one request event (kinds OK and FAILED).
    pub fn add_event(&mut self, ev: &RequestEvent) {
        self.requests += 1;
        if !ev.succeeded() {
            self.failures += 1;
        }
        if ev.fell_back() {
            self.fallbacks += 1;
        }
        self.prompt += ev.prompt_tokens;
        self.completion += ev.completion_tokens;
        self.cache_hit += ev.cache_hit_tokens;
        self.cache_miss += ev.cache_miss_tokens;
        self.estimated += u64::from(ev.usage_estimated);
        self.streams += u64::from(ev.stream);
        self.cost_pusd += to_units(ev.cost_usd, PICO);
        self.latency_us += to_units(ev.latency_ms, 1e3);
        if let Some(t) = ev.ttfb_ms {
            self.ttfb_us += to_units(t, 1e3);
            self.ttfb_count += 1;
        }
        self.hist[latency_bucket(ev.latency_ms)] += 1;
    }

    pub fn merge(&mut self, o: &Agg) {
        self.requests += o.requests;
        self.failures += o.failures;
        self.fallbacks += o.fallbacks;
        self.prompt += o.prompt;
        self.completion += o.completion;
        self.cache_hit += o.cache_hit;
        self.cache_miss += o.cache_miss;
        self.estimated += o.estimated;
        self.streams += o.streams;
        self.cost_pusd += o.cost_pusd;
        self.latency_us += o.latency_us;
        self.ttfb_us += o.ttfb_us;
        self.ttfb_count += o.ttfb_count;
        for (a, b) in self.hist.iter_mut().zip(o.hist.iter()) {
            *a += b;
        }
    }

    pub fn cost_usd(&self) -> f64 {
        self.cost_pusd as f64 / PICO
    }

    pub fn tokens(&self) -> u64 {
        self.prompt + self.completion
    }

    pub fn avg_latency_ms(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.latency_us as f64 / 1e3 / self.requests as f64
        }
    }

    pub fn avg_ttfb_ms(&self) -> f64 {
        if self.ttfb_count == 0 {
            0.0
        } else {
            self.ttfb_us as f64 / 1e3 / self.ttfb_count as f64
        }
    }

    /// Share of prompt tokens served from cache, in percent (0 when nothing was reported).
    pub fn cache_hit_pct(&self) -> f64 {
        let all = self.cache_hit + self.cache_miss;
        if all == 0 {
            0.0
        } else {
            self.cache_hit as f64 * 100.0 / all as f64
        }
    }

    /// Share of all prompt tokens served from cache, in percent: providers that report no
    /// cache figures count as misses (where [`cache_hit_pct`](Self::cache_hit_pct) leaves
    /// them out).
    pub fn prompt_cache_hit_pct(&self) -> f64 {
        if self.prompt == 0 {
            0.0
        } else {
            (self.cache_hit as f64 * 100.0 / self.prompt as f64).min(100.0)
        }
    }

    /// The `q` quantile (0..=1) of latency in ms, from the histogram; 0 with no data.
    pub fn latency_quantile_ms(&self, q: f64) -> f64 {
        let total: u64 = self.hist.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.hist.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_value_ms(i);
            }
        }
        bucket_value_ms(HIST_BUCKETS - 1)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        for v in [
            self.requests,
            self.failures,
            self.fallbacks,
            self.prompt,
            self.completion,
            self.cache_hit,
            self.cache_miss,
            self.estimated,
            self.streams,
            self.cost_pusd,
            self.latency_us,
            self.ttfb_us,
            self.ttfb_count,
        ] {
            put_u64(out, v);
        }
        // The histogram is sparse: most rows hold a handful of non-empty buckets.
        let nonzero = self.hist.iter().filter(|n| **n > 0).count();
        put_u64(out, nonzero as u64);
        for (i, n) in self.hist.iter().enumerate().filter(|(_, n)| **n > 0) {
            out.push(i as u8);
            put_u64(out, *n);
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Agg, DecodeError> {
        let mut r = Reader::new(buf);
        if r.u8()? < VERSION {
            return Err(DecodeError("unknown rollup version"));
        }
        let mut a = Agg {
            requests: r.u64()?,
            failures: r.u64()?,
            fallbacks: r.u64()?,
            prompt: r.u64()?,
            completion: r.u64()?,
            cache_hit: r.u64()?,
            cache_miss: r.u64()?,
            estimated: r.u64()?,
            streams: r.u64()?,
            cost_pusd: r.u64()?,
            latency_us: r.u64()?,
            ttfb_us: r.u64()?,
            ttfb_count: r.u64()?,
            hist: [0; HIST_BUCKETS],
        };
        let n = r.u64()?;
        for _ in 0..n.min(HIST_BUCKETS as u64) {
            let i = usize::from(r.u8()?);
            let count = r.u64()?;
            *a.hist
                .get_mut(i)
                .ok_or(DecodeError("bad histogram bucket"))? += count;
        }
        Ok(a)
    }
}

/// What a rollup row groups by (the key's part after the time unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Group<'a> {
    pub kind: u8,
    pub provider: &'a str,
    pub layer: &'a str,
    pub rule: &'a str,
    /// `""`: not routed, or a row from before lanes.
    pub lane: &'a str,
    /// `""`: not answered, or a row from before affinity.
    pub affinity: &'a str,
    /// The client API; `""` for the hub's own (OpenAI chat completions) and old rows.
    pub api: &'a str,
}

impl Group<'_> {
    /// The group part of a rollup key (everything after the time unit).
    pub fn key(&self) -> Vec<u8> {
        let parts = [
            self.provider,
            self.layer,
            self.rule,
            self.lane,
            self.affinity,
            self.api,
        ];
        let mut k = Vec::with_capacity(6 + parts.iter().map(|p| p.len()).sum::<usize>());
        k.push(self.kind);
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                k.push(0);
            }
            // NUL separates the parts; ids never contain it, but a stray one must not shift them.
            k.extend(part.bytes().filter(|b| *b != 0));
        }
        k
    }
}

/// The group part of a rollup key of an event's group, or of a failed attempt in it.
pub(crate) fn group_key(kind: u8, provider: &str, ev: &RequestEvent) -> Vec<u8> {
    Group {
        kind,
        provider,
        layer: &ev.layer,
        rule: &ev.rule,
        lane: &ev.lane,
        affinity: &ev.affinity,
        api: if ev.api == super::event::HUB_API {
            ""
        } else {
            &ev.api
        },
    }
    .key()
}

pub(crate) fn full_key(unit: u64, group: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + group.len());
    k.extend_from_slice(&unit.to_be_bytes());
    k.extend_from_slice(group);
    k
}

/// Splits a stored key into its time unit and group part.
pub(crate) fn split_key(key: &[u8]) -> Option<(u64, &[u8])> {
    let (unit, group) = key.split_at_checked(8)?;
    let unit = u64::from_be_bytes(unit.try_into().ok()?);
    Some((unit, group))
}

/// A group part read back; a row from before lanes has no lane and no affinity.
pub(crate) fn parse_group(group: &[u8]) -> Option<Group<'_>> {
    let (&kind, rest) = group.split_first()?;
    let rest = std::str::from_utf8(rest).ok()?;
    let mut parts = rest.splitn(6, '\0');
    Some(Group {
        kind,
        provider: parts.next()?,
        layer: parts.next()?,
        rule: parts.next()?,
        lane: parts.next().unwrap_or(""),
        affinity: parts.next().unwrap_or(""),
        api: parts.next().unwrap_or(""),
    })
}

/// The rollup rows (by minute and by hour) that a batch of events adds.
pub(crate) struct BatchRollups {
    pub minute: HashMap<Vec<u8>, Agg>,
    pub hour: HashMap<Vec<u8>, Agg>,
}

impl BatchRollups {
    pub fn of<'a>(events: impl IntoIterator<Item = &'a RequestEvent>) -> BatchRollups {
        let mut r = BatchRollups {
            minute: HashMap::new(),
            hour: HashMap::new(),
        };
        for ev in events {
            let kind = if ev.succeeded() { KIND_OK } else { KIND_FAILED };
            let group = group_key(kind, ev.provider.as_deref().unwrap_or(""), ev);
            r.add(ev.ts_ms, &group, |a| a.add_event(ev));
            for at in ev.attempts.iter().filter(|a| a.failed()) {
                let group = group_key(KIND_ATTEMPT, &at.provider, ev);
                r.add(ev.ts_ms, &group, |a| a.requests += 1);
            }
        }
        r
    }

    fn add(&mut self, ts_ms: u64, group: &[u8], f: impl Fn(&mut Agg)) {
        f(self
            .minute
            .entry(full_key(ts_ms / MINUTE_MS, group))
            .or_default());
        f(self
            .hour
            .entry(full_key(ts_ms / HOUR_MS, group))
            .or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_are_within_the_bucket_error() {
        let mut a = Agg::default();
        for ms in 1..=1000 {
            let ev = RequestEvent {
                latency_ms: ms as f64,
                ..RequestEvent::default()
            };
            a.add_event(&ev);
        }
        let p50 = a.latency_quantile_ms(0.5);
        let p95 = a.latency_quantile_ms(0.95);
        assert!((p50 - 500.0).abs() / 500.0 < 0.10, "p50 {p50}");
        assert!((p95 - 950.0).abs() / 950.0 < 0.10, "p95 {p95}");
        assert_eq!(Agg::default().latency_quantile_ms(0.5), 0.0);
        assert_eq!(latency_bucket(f64::NAN), 0);
        assert_eq!(latency_bucket(1e12), HIST_BUCKETS - 1);
    }

    #[test]
    fn rollup_rows_round_trip() {
        let mut a = Agg::default();
        let ev = RequestEvent {
            provider: Some("p".into()),
            status: 200,
            latency_ms: 42.0,
            ttfb_ms: Some(7.5),
            prompt_tokens: 10,
            cost_usd: 1.5e-6,
            stream: true,
            ..RequestEvent::default()
        };
        a.add_event(&ev);
        a.add_event(&ev);
        let mut buf = Vec::new();
        a.encode(&mut buf);
        assert_eq!(Agg::decode(&buf), Ok(a));
        assert!(Agg::decode(&buf[..buf.len() - 1]).is_err());
    }

    #[test]
    fn keys_sort_by_time_and_split_back_into_their_parts() {
        let ev = RequestEvent {
            layer: "static".into(),
            rule: "heart\0beat".into(),
            lane: "heartbeat".into(),
            affinity: "hit".into(),
            ..RequestEvent::default()
        };
        let g = group_key(KIND_ATTEMPT, "gemini-flash", &ev);
        let k1 = full_key(5, &g);
        let k2 = full_key(300, &g);
        assert!(k1 < k2);
        let (unit, group) = split_key(&k2).unwrap_or((0, &[]));
        assert_eq!(unit, 300);
        assert_eq!(
            parse_group(group),
            Some(Group {
                kind: KIND_ATTEMPT,
                provider: "gemini-flash",
                layer: "static",
                rule: "heartbeat",
                lane: "heartbeat",
                affinity: "hit",
                api: "",
            })
        );
    }

    #[test]
    fn keys_from_before_lanes_read_with_no_lane_and_no_affinity() {
        let old = b"\x00deepseek-chat\0heuristic\0tool-use";
        assert_eq!(
            parse_group(old),
            Some(Group {
                kind: KIND_OK,
                provider: "deepseek-chat",
                layer: "heuristic",
                rule: "tool-use",
                lane: "",
                affinity: "",
                api: "",
            })
        );
    }
}
