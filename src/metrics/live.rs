//! In-memory counters behind `/metrics`, fed by every [`Metrics::record`](super::Metrics::record)
//! call, so a Prometheus scrape never reads the database and survives a full queue.
//!
//! Label sets are bounded: provider, layer and rule come from the configuration and rules (never
//! from the client's `model`), and past [`MAX_SERIES`] distinct sets new ones are folded into
//! `other`, so a misbehaving config cannot grow memory without limit.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use super::event::RequestEvent;

/// Upper bounds (seconds) of the request-duration and first-byte histograms; LLM calls are slow.
pub(crate) const DURATION_BUCKETS_S: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];
/// Most distinct (provider, layer, rule, status) label sets.
pub(crate) const MAX_SERIES: usize = 2_000;
/// Most distinct provider label values in the per-provider families.
pub(crate) const MAX_PROVIDERS: usize = 256;
/// Most distinct lane (and affinity) label values.
pub(crate) const MAX_LANES: usize = 64;

pub(crate) const OTHER: &str = "other";
pub(crate) const NONE: &str = "none";

/// A histogram with [`DURATION_BUCKETS_S`] plus `+Inf` (non-cumulative counts).
#[derive(Debug, Clone, Default)]
pub(crate) struct Histogram {
    pub counts: [u64; DURATION_BUCKETS_S.len() + 1],
    pub sum_s: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let s = if seconds.is_finite() && seconds > 0.0 {
            seconds
        } else {
            0.0
        };
        let i = DURATION_BUCKETS_S
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(DURATION_BUCKETS_S.len());
        self.counts[i] += 1;
        self.sum_s += s;
    }

    fn merge(&mut self, other: &Histogram) {
        for (c, o) in self.counts.iter_mut().zip(&other.counts) {
            *c += o;
        }
        self.sum_s += other.sum_s;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Requests and their durations for one (provider, layer, rule, status).
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub provider: String,
    pub layer: String,
    pub rule: String,
    pub status: u16,
    pub requests: u64,
    pub duration: Histogram,
}

/// Per-provider token, cost and fallback counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProviderCounters {
    pub prompt: u64,
    pub completion: u64,
    pub cache_hit: u64,
    pub cache_miss: u64,
    pub cost_usd: f64,
    /// Requests this provider answered after an earlier target failed.
    pub fallbacks: u64,
    /// Attempts on this provider that failed, so the next target was tried.
    pub attempt_failures: u64,
    pub usage_estimated: u64,
    pub ttfb: Histogram,
}

impl ProviderCounters {
    fn add(&mut self, o: &ProviderCounters) {
        self.prompt += o.prompt;
        self.completion += o.completion;
        self.cache_hit += o.cache_hit;
        self.cache_miss += o.cache_miss;
        self.cost_usd += o.cost_usd;
        self.fallbacks += o.fallbacks;
        self.attempt_failures += o.attempt_failures;
        self.usage_estimated += o.usage_estimated;
        self.ttfb.merge(&o.ttfb);
    }
}

/// Requests per label value (lanes, affinity results): few values, past [`MAX_LANES`] folded
/// into `other`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts(pub Vec<(String, u64)>);

impl Counts {
    fn add(&mut self, label: &str, n: u64) {
        if let Some(c) = self.0.iter_mut().find(|(l, _)| l == label) {
            c.1 += n;
            return;
        }
        let label = if self.0.len() >= MAX_LANES {
            OTHER
        } else {
            label
        };
        match self.0.iter_mut().find(|(l, _)| l == label) {
            Some(c) => c.1 += n,
            None => self.0.push((label.to_owned(), n)),
        }
    }

    fn merge(&mut self, other: &Counts) {
        for (label, n) in &other.0 {
            self.add(label, *n);
        }
    }
}

#[derive(Default)]
pub(crate) struct Live {
    index: HashMap<u64, Vec<usize>>,
    pub series: Vec<Series>,
    provider_index: HashMap<String, usize>,
    pub providers: Vec<(String, ProviderCounters)>,
    /// Routed requests per lane.
    pub lanes: Counts,
    /// Answered requests per affinity result (`hit`, `miss`, `switch`, `off`).
    pub affinity: Counts,
}

fn series_hash(provider: &str, layer: &str, rule: &str, status: u16) -> u64 {
    // A fixed-key hasher: the inputs are config names, not attacker-chosen strings.
    BuildHasherDefault::<DefaultHasher>::default().hash_one((provider, layer, rule, status))
}

impl Live {
    pub fn observe(&mut self, ev: &RequestEvent) {
        let provider = ev.provider.as_deref().unwrap_or(NONE);
        let s = self.series_mut(provider, &ev.layer, &ev.rule, ev.status);
        s.requests += 1;
        s.duration.observe(ev.latency_ms / 1e3);

        if ev.provider.is_some() {
            let p = self.provider_mut(provider);
            p.prompt += ev.prompt_tokens;
            p.completion += ev.completion_tokens;
            p.cache_hit += ev.cache_hit_tokens;
            p.cache_miss += ev.cache_miss_tokens;
            if ev.cost_usd.is_finite() {
                p.cost_usd += ev.cost_usd;
            }
            p.fallbacks += u64::from(ev.fell_back());
            p.usage_estimated += u64::from(ev.usage_estimated);
            if let Some(t) = ev.ttfb_ms {
                p.ttfb.observe(t / 1e3);
            }
        }
        for at in ev.attempts.iter().filter(|a| a.failed()) {
            self.provider_mut(&at.provider).attempt_failures += 1;
        }
        if !ev.lane.is_empty() {
            self.lanes.add(&ev.lane, 1);
        }
        if !ev.affinity.is_empty() {
            self.affinity.add(&ev.affinity, 1);
        }
    }

    /// Adds `other`'s counts to these (label sets past the caps fold into `other` as usual).
    pub fn merge(&mut self, other: &Live) {
        for o in &other.series {
            let s = self.series_mut(&o.provider, &o.layer, &o.rule, o.status);
            s.requests += o.requests;
            s.duration.merge(&o.duration);
        }
        for (name, o) in &other.providers {
            self.provider_mut(name).add(o);
        }
        self.lanes.merge(&other.lanes);
        self.affinity.merge(&other.affinity);
    }

    fn series_mut(&mut self, provider: &str, layer: &str, rule: &str, status: u16) -> &mut Series {
        let (provider, layer, rule) = if self.series.len() >= MAX_SERIES
            && self.find(provider, layer, rule, status).is_none()
        {
            (OTHER, OTHER, OTHER)
        } else {
            (provider, layer, rule)
        };
        let i = match self.find(provider, layer, rule, status) {
            Some(i) => i,
            None => {
                let i = self.series.len();
                self.series.push(Series {
                    provider: provider.to_owned(),
                    layer: layer.to_owned(),
                    rule: rule.to_owned(),
                    status,
                    requests: 0,
                    duration: Histogram::default(),
                });
                self.index
                    .entry(series_hash(provider, layer, rule, status))
                    .or_default()
                    .push(i);
                i
            }
        };
        &mut self.series[i]
    }

    fn find(&self, provider: &str, layer: &str, rule: &str, status: u16) -> Option<usize> {
        self.index
            .get(&series_hash(provider, layer, rule, status))?
            .iter()
            .copied()
            .find(|&i| {
                let s = &self.series[i];
                s.status == status && s.provider == provider && s.layer == layer && s.rule == rule
            })
    }

    fn provider_mut(&mut self, provider: &str) -> &mut ProviderCounters {
        if let Some(&i) = self.provider_index.get(provider) {
            return &mut self.providers[i].1;
        }
        let key = if self.providers.len() >= MAX_PROVIDERS {
            OTHER
        } else {
            provider
        };
        let i = match self.provider_index.get(key) {
            Some(&i) => i,
            None => {
                self.providers
                    .push((key.to_owned(), ProviderCounters::default()));
                self.provider_index
                    .insert(key.to_owned(), self.providers.len() - 1);
                self.providers.len() - 1
            }
        };
        &mut self.providers[i].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_past_the_cap_fold_into_other() {
        let mut live = Live::default();
        for i in 0..MAX_SERIES + 10 {
            let ev = RequestEvent {
                provider: Some("p".into()),
                rule: format!("r{i}"),
                status: 200,
                ..RequestEvent::default()
            };
            live.observe(&ev);
        }
        assert_eq!(live.series.len(), MAX_SERIES + 1);
        assert_eq!(
            live.series.last().map(|s| (s.rule.as_str(), s.requests)),
            Some((OTHER, 10))
        );
    }

    #[test]
    fn counters_kept_by_two_threads_merge_into_the_same_totals_as_one() {
        let events: Vec<RequestEvent> = (0..40u64)
            .map(|i| RequestEvent {
                provider: (i % 5 != 0).then(|| format!("p{}", i % 3)),
                lane: ["main", "heartbeat", ""][i as usize % 3].into(),
                affinity: ["hit", "miss", "switch", "off", ""][i as usize % 5].into(),
                layer: "static".into(),
                rule: format!("r{}", i % 4),
                status: if i % 7 == 0 { 502 } else { 200 },
                // Binary fractions, so sums in any order are exact.
                latency_ms: i as f64 * 125.0,
                ttfb_ms: (i % 2 == 0).then_some(i as f64 * 250.0),
                prompt_tokens: i,
                completion_tokens: 2 * i,
                cost_usd: i as f64 / 64.0,
                attempts: if i % 6 == 0 {
                    vec![crate::metrics::AttemptRecord {
                        provider: "p9".into(),
                        error: "HTTP 503".into(),
                    }]
                } else {
                    Vec::new()
                },
                ..RequestEvent::default()
            })
            .collect();
        let mut one = Live::default();
        let (mut a, mut b) = (Live::default(), Live::default());
        for (i, ev) in events.iter().enumerate() {
            one.observe(ev);
            if i % 3 == 0 {
                a.observe(ev)
            } else {
                b.observe(ev)
            }
        }
        let mut merged = Live::default();
        merged.merge(&a);
        merged.merge(&b);
        let series = |l: &Live| {
            let mut v: Vec<_> = l
                .series
                .iter()
                .map(|s| {
                    (
                        s.provider.clone(),
                        s.layer.clone(),
                        s.rule.clone(),
                        s.status,
                        s.requests,
                        s.duration.counts,
                        s.duration.sum_s,
                    )
                })
                .collect();
            v.sort_by(|x, y| (&x.0, &x.1, &x.2, x.3).cmp(&(&y.0, &y.1, &y.2, y.3)));
            v
        };
        assert_eq!(series(&merged), series(&one));
        let providers = |l: &Live| {
            let mut v: Vec<_> = l
                .providers
                .iter()
                .map(|(k, c)| {
                    (
                        k.clone(),
                        c.prompt,
                        c.completion,
                        c.cost_usd,
                        c.fallbacks,
                        c.attempt_failures,
                        c.ttfb.counts,
                    )
                })
                .collect();
            v.sort_by(|x, y| x.0.cmp(&y.0));
            v
        };
        assert_eq!(providers(&merged), providers(&one));
        let sorted = |c: &Counts| {
            let mut v = c.0.clone();
            v.sort();
            v
        };
        assert_eq!(sorted(&merged.lanes), sorted(&one.lanes));
        assert_eq!(sorted(&merged.affinity), sorted(&one.affinity));
        assert_eq!(
            sorted(&one.lanes),
            [("heartbeat".into(), 13), ("main".into(), 14)]
        );
    }

    #[test]
    fn lane_labels_past_the_cap_fold_into_other() {
        let mut live = Live::default();
        for i in 0..MAX_LANES + 5 {
            live.observe(&RequestEvent {
                lane: format!("lane{i}"),
                ..RequestEvent::default()
            });
        }
        assert_eq!(live.lanes.0.len(), MAX_LANES + 1);
        assert_eq!(live.lanes.0.last(), Some(&(OTHER.to_owned(), 5)));
    }
}
