//! `/metrics`: Prometheus text exposition (format 0.0.4) of the in-memory counters.
//!
//! Everything here comes from memory ([`live`](super::live) and the writer's atomics), so a
//! scrape costs microseconds and works even when metrics storage is disabled. The server passes
//! its own families (provider health, circuit state, rules generation, reloads) as `extra`.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::live::{Histogram, DURATION_BUCKETS_S};
use super::store::Metrics;

/// Escapes a label value (backslash, double quote, newline).
fn esc(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let mut cumulative = 0;
    let sep = if labels.is_empty() { "" } else { "," };
    for (i, le) in DURATION_BUCKETS_S.iter().enumerate() {
        cumulative += h.counts[i];
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
        h.count()
    );
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_s);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count());
}

impl Metrics {
    /// The Prometheus text for `/metrics`, with `extra` (already formatted families) appended.
    pub fn render(&self, extra: &str) -> String {
        let mut out = String::with_capacity(8 * 1024);
        {
            let live = self.live();
            let mut series: Vec<_> = live.series.iter().collect();
            series.sort_by(|a, b| {
                (&a.provider, &a.layer, &a.rule, a.status).cmp(&(
                    &b.provider,
                    &b.layer,
                    &b.rule,
                    b.status,
                ))
            });

            header(&mut out, "clawgate_requests_total", "counter",
                "Client requests by the provider that answered (\"none\" when all failed), routing layer, rule and HTTP status.");
            for s in &series {
                let _ = writeln!(out, "clawgate_requests_total{{provider=\"{}\",layer=\"{}\",rule=\"{}\",status=\"{}\"}} {}",
                    esc(&s.provider), esc(&s.layer), esc(&s.rule), s.status, s.requests);
            }
            header(
                &mut out,
                "clawgate_request_duration_seconds",
                "histogram",
                "Time from request to the last byte sent to the client.",
            );
            for s in &series {
                let labels = format!(
                    "provider=\"{}\",layer=\"{}\",rule=\"{}\",status=\"{}\"",
                    esc(&s.provider),
                    esc(&s.layer),
                    esc(&s.rule),
                    s.status
                );
                histogram(
                    &mut out,
                    "clawgate_request_duration_seconds",
                    &labels,
                    &s.duration,
                );
            }

            let providers: BTreeMap<&str, _> = live
                .providers
                .iter()
                .map(|(k, v)| (k.as_str(), v))
                .collect();
            header(&mut out, "clawgate_tokens_total", "counter",
                "Tokens by provider and kind (prompt, completion, cache_hit, cache_miss); estimated where upstream reported none.");
            for (p, c) in &providers {
                for (kind, n) in [
                    ("prompt", c.prompt),
                    ("completion", c.completion),
                    ("cache_hit", c.cache_hit),
                    ("cache_miss", c.cache_miss),
                ] {
                    let _ = writeln!(
                        out,
                        "clawgate_tokens_total{{provider=\"{}\",kind=\"{kind}\"}} {n}",
                        esc(p)
                    );
                }
            }
            header(
                &mut out,
                "clawgate_cost_usd_total",
                "counter",
                "Cost in USD from the providers' configured pricing.",
            );
            for (p, c) in &providers {
                let _ = writeln!(
                    out,
                    "clawgate_cost_usd_total{{provider=\"{}\"}} {}",
                    esc(p),
                    c.cost_usd
                );
            }
            header(
                &mut out,
                "clawgate_fallbacks_total",
                "counter",
                "Requests a provider answered after an earlier target failed.",
            );
            for (p, c) in &providers {
                let _ = writeln!(
                    out,
                    "clawgate_fallbacks_total{{provider=\"{}\"}} {}",
                    esc(p),
                    c.fallbacks
                );
            }
            header(
                &mut out,
                "clawgate_attempt_failures_total",
                "counter",
                "Attempts that failed on a provider, so the next target was tried.",
            );
            for (p, c) in &providers {
                let _ = writeln!(
                    out,
                    "clawgate_attempt_failures_total{{provider=\"{}\"}} {}",
                    esc(p),
                    c.attempt_failures
                );
            }
            header(
                &mut out,
                "clawgate_usage_estimated_total",
                "counter",
                "Answered requests whose token counts were estimated (upstream reported no usage).",
            );
            for (p, c) in &providers {
                let _ = writeln!(
                    out,
                    "clawgate_usage_estimated_total{{provider=\"{}\"}} {}",
                    esc(p),
                    c.usage_estimated
                );
            }
            header(
                &mut out,
                "clawgate_lane_total",
                "counter",
                "Routed client requests by lane (`main`, or a rules `lane`).",
            );
            let mut lanes = live.lanes.0.clone();
            lanes.sort();
            for (lane, n) in &lanes {
                let _ = writeln!(out, "clawgate_lane_total{{lane=\"{}\"}} {n}", esc(lane));
            }
            header(
                &mut out,
                "clawgate_affinity_total",
                "counter",
                "Answered client requests by sticky routing's result: hit (the conversation's previous provider answered), switch (another did), miss (no previous one remembered), off (not tracked).",
            );
            for result in ["hit", "miss", "switch", "off"] {
                let n = live
                    .affinity
                    .0
                    .iter()
                    .find(|(r, _)| r == result)
                    .map_or(0, |(_, n)| *n);
                let _ = writeln!(out, "clawgate_affinity_total{{result=\"{result}\"}} {n}");
            }
            header(
                &mut out,
                "clawgate_time_to_first_byte_seconds",
                "histogram",
                "Time from request to the first upstream body byte (streams).",
            );
            for (p, c) in &providers {
                histogram(
                    &mut out,
                    "clawgate_time_to_first_byte_seconds",
                    &format!("provider=\"{}\"", esc(p)),
                    &c.ttfb,
                );
            }
        }

        let c = self.counters();
        let store = [
            (
                "clawgate_metrics_events_written_total",
                "counter",
                "Events committed to the metrics database.",
                c.written,
            ),
            (
                "clawgate_metrics_events_dropped_total",
                "counter",
                "Events dropped because the metrics queue was full or the writer had stopped.",
                c.dropped,
            ),
            (
                "clawgate_metrics_batches_total",
                "counter",
                "Metrics write transactions committed.",
                c.batches,
            ),
            (
                "clawgate_metrics_write_errors_total",
                "counter",
                "Metrics batches or retention passes that failed to write.",
                c.write_errors,
            ),
            (
                "clawgate_metrics_queue_depth",
                "gauge",
                "Events waiting for the metrics writer.",
                c.queue_depth,
            ),
            (
                "clawgate_metrics_corrupt_rows_total",
                "counter",
                "Stored metrics rows skipped because they could not be decoded.",
                c.corrupt_rows,
            ),
            (
                "clawgate_metrics_enabled",
                "gauge",
                "1 when events are stored on disk.",
                u64::from(self.is_enabled()),
            ),
        ];
        for (name, kind, help, v) in store {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {v}");
        }
        out.push_str(extra);
        if !extra.is_empty() && !extra.ends_with('\n') {
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
