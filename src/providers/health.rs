//! Per-provider health: consecutive failures, last error, a moving latency average, and a
//! circuit breaker (closed → open for a cool-down → one probe → closed or open for longer).
//!
//! State is small and behind a short `Mutex`; it is never held across an `.await`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::HealthConfig;
use crate::util::lock;

/// The circuit breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitSettings {
    pub failure_threshold: u32,
    pub base_cooldown: Duration,
    pub max_cooldown: Duration,
}

impl From<&HealthConfig> for CircuitSettings {
    fn from(h: &HealthConfig) -> Self {
        let base = Duration::from_secs_f64(h.recovery_check_interval_seconds.max(0.0));
        CircuitSettings {
            failure_threshold: h.consecutive_failures_before_skip.max(1),
            base_cooldown: base,
            max_cooldown: Duration::from_secs_f64(h.max_cooldown_seconds.max(0.0)).max(base),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Circuit {
    Closed,
    /// Skipped until `until`; the next cool-down is `cooldown * 2`.
    Open {
        until: Instant,
        cooldown: Duration,
    },
    /// One probe request is in flight.
    HalfOpen {
        cooldown: Duration,
    },
}

#[derive(Debug)]
struct State {
    consecutive_failures: u32,
    last_error: Option<String>,
    avg_latency_ms: Option<f64>,
    requests: u64,
    failures: u64,
    circuit: Circuit,
}

/// Whether a provider may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Circuit closed.
    Allowed,
    /// Circuit was open and its cool-down is over: this request is the probe.
    Probe,
    /// Circuit open (or a probe is already in flight).
    Skip,
}

/// What `/health` shows for a provider.
#[derive(Debug, Clone, Serialize)]
pub struct HealthSnapshot {
    pub healthy: bool,
    pub consecutive_failures: u32,
    pub avg_latency_ms: f64,
    pub last_error: String,
    /// `closed`, `open` or `half_open`.
    pub circuit: &'static str,
    /// Seconds until an open circuit lets a probe through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_s: Option<f64>,
    pub requests: u64,
    pub failures: u64,
}

/// One provider's health.
#[derive(Debug)]
pub struct Health {
    settings: Mutex<CircuitSettings>,
    state: Mutex<State>,
}

/// Weight of the newest sample in the latency moving average.
const LATENCY_ALPHA: f64 = 0.2;

impl Health {
    pub fn new(settings: CircuitSettings) -> Self {
        Health {
            settings: Mutex::new(settings),
            state: Mutex::new(State {
                consecutive_failures: 0,
                last_error: None,
                avg_latency_ms: None,
                requests: 0,
                failures: 0,
                circuit: Circuit::Closed,
            }),
        }
    }

    /// Replace the breaker settings (config reload); the state is kept.
    pub fn set_settings(&self, settings: CircuitSettings) {
        *lock(&self.settings) = settings;
    }

    fn settings(&self) -> CircuitSettings {
        *lock(&self.settings)
    }

    /// Ask to send a request now. A `Probe` must be followed by `record_*` or `abandon_probe`.
    pub fn admit(&self, now: Instant) -> Admission {
        let mut s = lock(&self.state);
        match s.circuit {
            Circuit::Closed => Admission::Allowed,
            Circuit::Open { until, cooldown } if now >= until => {
                s.circuit = Circuit::HalfOpen { cooldown };
                Admission::Probe
            }
            Circuit::Open { .. } | Circuit::HalfOpen { .. } => Admission::Skip,
        }
    }

    /// Whether the circuit currently lets requests through (without claiming a probe).
    pub fn is_available(&self, now: Instant) -> bool {
        match lock(&self.state).circuit {
            Circuit::Closed => true,
            Circuit::Open { until, .. } => now >= until,
            Circuit::HalfOpen { .. } => false,
        }
    }

    pub fn record_success(&self, latency: Duration) {
        let ms = latency.as_secs_f64() * 1000.0;
        let mut s = lock(&self.state);
        s.requests += 1;
        s.consecutive_failures = 0;
        s.circuit = Circuit::Closed;
        s.avg_latency_ms = Some(match s.avg_latency_ms {
            None => ms,
            Some(avg) => avg + LATENCY_ALPHA * (ms - avg),
        });
    }

    /// The provider answered, but not with something that says how fast it is (a client
    /// error): reset the failure count without a latency sample.
    pub fn record_alive(&self) {
        let mut s = lock(&self.state);
        s.requests += 1;
        s.consecutive_failures = 0;
        s.circuit = Circuit::Closed;
    }

    pub fn record_failure(&self, error: &str, now: Instant) {
        let settings = self.settings();
        let mut s = lock(&self.state);
        s.requests += 1;
        s.failures += 1;
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        s.last_error = Some(error.to_owned());
        s.circuit = match s.circuit {
            Circuit::HalfOpen { cooldown } => {
                let next = (cooldown * 2).min(settings.max_cooldown);
                tracing::warn!(
                    error,
                    cooldown_s = next.as_secs_f64(),
                    "probe failed; circuit stays open"
                );
                Circuit::Open {
                    until: now + next,
                    cooldown: next,
                }
            }
            Circuit::Closed if s.consecutive_failures >= settings.failure_threshold => {
                tracing::warn!(
                    error,
                    failures = s.consecutive_failures,
                    cooldown_s = settings.base_cooldown.as_secs_f64(),
                    "circuit opened"
                );
                Circuit::Open {
                    until: now + settings.base_cooldown,
                    cooldown: settings.base_cooldown,
                }
            }
            other => other,
        };
    }

    /// A probe ended without an outcome (the client went away): let the next request probe.
    pub fn abandon_probe(&self, now: Instant) {
        let mut s = lock(&self.state);
        if let Circuit::HalfOpen { cooldown } = s.circuit {
            s.circuit = Circuit::Open {
                until: now,
                cooldown,
            };
        }
    }

    pub fn snapshot(&self, now: Instant) -> HealthSnapshot {
        let s = lock(&self.state);
        let (circuit, retry_in_s) = match s.circuit {
            Circuit::Closed => ("closed", None),
            Circuit::Open { until, .. } => (
                "open",
                Some((until.saturating_duration_since(now).as_secs_f64() * 10.0).round() / 10.0),
            ),
            Circuit::HalfOpen { .. } => ("half_open", None),
        };
        HealthSnapshot {
            healthy: matches!(s.circuit, Circuit::Closed),
            consecutive_failures: s.consecutive_failures,
            avg_latency_ms: s
                .avg_latency_ms
                .map(|v| (v * 10.0).round() / 10.0)
                .unwrap_or(0.0),
            last_error: s.last_error.clone().unwrap_or_default(),
            circuit,
            retry_in_s,
            requests: s.requests,
            failures: s.failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(CircuitSettings {
            failure_threshold: 3,
            base_cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(25),
        })
    }

    #[test]
    fn circuit_opens_after_threshold_and_cooldown_doubles_on_failed_probe() {
        let h = health();
        let t0 = Instant::now();
        for _ in 0..2 {
            h.record_failure("HTTP 500", t0);
            assert_eq!(h.admit(t0), Admission::Allowed);
        }
        h.record_failure("HTTP 500", t0);
        assert_eq!(h.admit(t0), Admission::Skip);
        assert_eq!(h.snapshot(t0).circuit, "open");
        assert!(!h.snapshot(t0).healthy);
        // Cool-down over: exactly one probe.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(h.admit(t1), Admission::Probe);
        assert_eq!(h.admit(t1), Admission::Skip);
        h.record_failure("HTTP 500", t1);
        // Now open for 20 s.
        assert_eq!(h.admit(t1 + Duration::from_secs(19)), Admission::Skip);
        assert_eq!(h.admit(t1 + Duration::from_secs(20)), Admission::Probe);
        h.record_failure("HTTP 500", t1 + Duration::from_secs(20));
        // Capped at 25 s.
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(h.admit(t2 + Duration::from_secs(24)), Admission::Skip);
        assert_eq!(h.admit(t2 + Duration::from_secs(25)), Admission::Probe);
        h.record_success(Duration::from_millis(100));
        assert_eq!(h.admit(t2), Admission::Allowed);
        let snap = h.snapshot(t2);
        assert!(snap.healthy);
        assert_eq!(snap.consecutive_failures, 0);
        assert_eq!(snap.last_error, "HTTP 500");
    }

    #[test]
    fn abandoned_probe_lets_the_next_request_probe() {
        let h = health();
        let t0 = Instant::now();
        for _ in 0..3 {
            h.record_failure("x", t0);
        }
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(h.admit(t1), Admission::Probe);
        h.abandon_probe(t1);
        assert_eq!(h.admit(t1), Admission::Probe);
    }

    #[test]
    fn latency_is_a_moving_average_of_successes() {
        let h = health();
        h.record_success(Duration::from_millis(100));
        assert_eq!(h.snapshot(Instant::now()).avg_latency_ms, 100.0);
        h.record_success(Duration::from_millis(200));
        assert_eq!(h.snapshot(Instant::now()).avg_latency_ms, 120.0);
    }
}
