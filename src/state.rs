//! Runtime state: what every request reads, and the handle that replaces it.
//!
//! One immutable [`Snapshot`] of config, providers and rules is swapped whole on reload; a
//! request loads it once and keeps it to the end. The server reads it, the reloader
//! ([`crate::reload`]) writes it through [`Reload`], and neither imports the other.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;
use serde::Serialize;

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
    pub reloader: std::sync::OnceLock<Arc<dyn Reload>>,
    /// The LLM classifier's answer cache and in-flight calls (kept across reloads).
    pub classifier: crate::classifier::Classifier,
    /// Sticky routing's memory of conversations (kept across reloads; bounds from
    /// `affinity` in the config, adjusted on reload).
    pub affinity: Arc<crate::affinity::Store>,
    /// Stored OpenAI Responses (`previous_response_id`, `GET /v1/responses/{id}`).
    pub responses: Arc<crate::ingress::responses::Store>,
}

impl AppState {
    pub fn new(snapshot: Snapshot, metrics: crate::metrics::Metrics) -> Arc<Self> {
        let affinity = Arc::new(crate::affinity::Store::new(&snapshot.config.affinity));
        Arc::new(AppState {
            affinity,
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            started: Instant::now(),
            started_at: SystemTime::now(),
            reloader: std::sync::OnceLock::new(),
            classifier: crate::classifier::Classifier::new(),
            responses: Arc::default(),
        })
    }
}

/// Re-reads config and rules and swaps a new [`Snapshot`] in; implemented by
/// [`crate::reload::Reloader`], called by `POST /admin/reload` and SIGHUP.
pub trait Reload: Send + Sync + std::fmt::Debug {
    /// Reload now; `force` rebuilds even when no file changed.
    fn reload(self: Arc<Self>, force: bool) -> BoxFuture<'static, ReloadReport>;
}

/// What a reload did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadReport {
    /// A new rules table or config is now serving.
    pub changed: bool,
    pub rules_generation: u64,
    pub config_generation: u64,
    pub rules_error: Option<String>,
    pub config_error: Option<String>,
    /// Time spent reading (including the settle re-read that waits out half-written
    /// files), checking, compiling and swapping.
    pub took_ms: f64,
    /// Of that, parsing, checking and compiling the rules and swapping the new table in
    /// (0 when the rules were not rebuilt).
    pub compile_ms: f64,
}

/// `/health`'s `rules` and `config` objects.
pub fn status_json(
    rules: &RulesStatus,
    config: &ConfigStatus,
) -> (serde_json::Value, serde_json::Value) {
    (
        serde_json::json!({
            "generation": rules.generation,
            "loaded_at": rfc3339(rules.loaded_at),
            "dir": rules.dir.display().to_string(),
            "files": rules.files,
            "rules": rules.rules,
            "hash": rules.hash,
            "last_error": rules.last_error,
        }),
        serde_json::json!({
            "path": config.path.display().to_string(),
            "generation": config.generation,
            "loaded_at": rfc3339(config.loaded_at),
            "last_error": config.last_error,
        }),
    )
}

/// `2026-11-26T07:26:26Z` for a system time (UTC, whole seconds).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::util::civil_from_days(days);
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
