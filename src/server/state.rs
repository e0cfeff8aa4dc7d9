//! What every request reads: one immutable snapshot of config, providers and rules, swapped
//! whole on reload. A request loads it once and keeps it to the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::providers::ProviderSet;
use crate::router::RouteTable;

/// Where the rules came from and how their last load went; shown in `/health`.
#[derive(Debug, Clone)]
pub struct RulesStatus {
    pub dir: PathBuf,
    pub generation: u64,
    pub loaded_at: SystemTime,
    pub files: usize,
    pub rules: usize,
    pub hash: String,
    /// Hash of the rule files last tried (loaded or not): an unchanged set is not rebuilt.
    pub attempted_hash: String,
    pub last_error: Option<String>,
}

/// How the config file's last load went; shown in `/health`.
#[derive(Debug, Clone)]
pub struct ConfigStatus {
    pub path: PathBuf,
    pub generation: u64,
    pub loaded_at: SystemTime,
    /// Hash of the file text last tried (loaded or not).
    pub attempted_hash: u64,
    pub last_error: Option<String>,
}

/// Config, providers and rules as one consistent value.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    pub providers: Arc<ProviderSet>,
    pub routes: Arc<RouteTable>,
    pub rules: RulesStatus,
    pub config_status: ConfigStatus,
}

/// Shared by every request.
#[derive(Debug)]
pub struct AppState {
    pub snapshot: ArcSwap<Snapshot>,
    pub started: Instant,
    pub started_at: SystemTime,
    /// Request metrics (a disabled store keeps only the `/metrics` counters).
    pub metrics: crate::metrics::Metrics,
    /// Set once the server runs with a reloader (`POST /admin/reload`).
    pub reloader: std::sync::OnceLock<Arc<crate::reload::Reloader>>,
    /// The LLM classifier's answer cache and in-flight calls (kept across reloads).
    pub classifier: crate::classifier::Classifier,
}

impl AppState {
    pub fn new(snapshot: Snapshot, metrics: crate::metrics::Metrics) -> Arc<Self> {
        Arc::new(AppState {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            started: Instant::now(),
            started_at: SystemTime::now(),
            reloader: std::sync::OnceLock::new(),
            classifier: crate::classifier::Classifier::new(),
        })
    }
}

/// `2026-11-26T07:26:26Z` for a system time (UTC, whole seconds).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;
    use std::time::{Duration, SystemTime};

    #[test]
    fn timestamps_render_as_utc_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_677_986);
        assert_eq!(rfc3339(t), "2026-11-26T07:26:26Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
