//! Assembling a running ClawGate from a config file and a rules directory; shared by the
//! binary, the reloader and the tests so all of them start the same way.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{Config, ConfigError, DEFAULT_DB_PATH};
use crate::metrics::Metrics;
use crate::providers::ProviderSet;
use crate::router::RouteTable;
use crate::rules;
use crate::state::{AppState, ConfigStatus, RulesStatus, Snapshot};

/// Start-up failed: what and why, ready to print.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Provider(#[from] crate::providers::ProviderError),
    #[error("rules in {dir}: {message}")]
    Rules { dir: String, message: String },
    #[error("metrics: {0}")]
    Metrics(String),
}

/// Where `${VAR}` values come from: the process environment, and `.env` for the variables
/// that came from it (re-read on every reload, so editing `.env` takes effect too).
#[derive(Debug, Clone, Default)]
pub struct EnvSource {
    dotenv: Option<PathBuf>,
    from_dotenv: HashSet<String>,
}

impl EnvSource {
    /// Load `path` (usually `./.env`) into the process environment without overriding
    /// variables that are already set, and remember which ones it supplied.
    pub fn load_dotenv(path: &Path) -> Result<EnvSource, String> {
        let iter = match dotenvy::from_path_iter(path) {
            Ok(iter) => iter,
            Err(e) if e.not_found() => return Ok(EnvSource::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut from_dotenv = HashSet::new();
        for item in iter {
            let (key, value) = item.map_err(|e| format!("{}: {e}", path.display()))?;
            if std::env::var_os(&key).is_none() {
                // Called at start-up, before any other thread reads the environment.
                std::env::set_var(&key, &value);
                from_dotenv.insert(key);
            }
        }
        Ok(EnvSource {
            dotenv: Some(path.to_owned()),
            from_dotenv,
        })
    }

    /// The current value of a variable.
    pub fn lookup(&self, name: &str) -> Option<String> {
        if self.from_dotenv.contains(name) {
            if let Some(path) = &self.dotenv {
                if let Ok(iter) = dotenvy::from_path_iter(path) {
                    return iter
                        .filter_map(Result::ok)
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v);
                }
            }
        }
        std::env::var(name).ok()
    }
}

/// Command-line settings that win over the config file, on start-up and on every reload.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub db: Option<String>,
}

impl Overrides {
    pub fn apply(&self, config: &mut Config) {
        if let Some(host) = &self.host {
            config.server.host = host.clone();
        }
        if let Some(port) = self.port {
            config.server.port = port;
        }
        if let Some(db) = &self.db {
            config.metrics.db_path = db.clone();
        }
    }
}

/// Read and validate the config file with `env`, then apply `overrides`.
pub fn load_config(
    path: &Path,
    env: &EnvSource,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let mut config = Config::load_with(path, &|name| env.lookup(name))?;
    overrides.apply(&mut config);
    Ok(config)
}

/// Open the metrics database `config` asks for.
///
/// When the stock default path (`/var/lib/clawgate/...`, made for the systemd unit) is not
/// writable and no path was chosen explicitly (`--db`, `CLAWGATE_DB_PATH`, or the config),
/// the per-user data directory is used instead, so a plain `cargo run` works as any user.
/// Otherwise an unusable path stops start-up, unless `metrics.on_error: disable`.
pub fn open_metrics(config: &Config) -> Result<Metrics, StartError> {
    let m = &config.metrics;
    if !m.enabled {
        tracing::info!("metrics are disabled (metrics.enabled: false)");
        return Ok(Metrics::disabled());
    }
    let path = PathBuf::from(&m.db_path);
    let first = match Metrics::open(&path, m.retention_days) {
        Ok(metrics) => {
            tracing::info!("metrics database: {}", path.display());
            return Ok(metrics);
        }
        Err(e) => e,
    };
    if m.db_path == DEFAULT_DB_PATH {
        if let Some(fallback) = user_data_db() {
            if let Ok(metrics) = Metrics::open(&fallback, m.retention_days) {
                tracing::warn!(
                    "metrics database: {} ({first}; set CLAWGATE_DB_PATH or --db to choose)",
                    fallback.display()
                );
                return Ok(metrics);
            }
        }
    }
    if m.on_error == "disable" {
        tracing::warn!("metrics are DISABLED: {first} (metrics.on_error: disable)");
        return Ok(Metrics::disabled());
    }
    Err(StartError::Metrics(format!(
        "{first}; choose a writable path with --db or CLAWGATE_DB_PATH, or set metrics.on_error: disable"
    )))
}

/// `$XDG_DATA_HOME/clawgate/clawgate.db`, else `~/.local/share/clawgate/clawgate.db`.
fn user_data_db() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        })?;
    Some(base.join("clawgate").join("clawgate.db"))
}

/// Build the shared state: providers from `config`, rules from `rules_dir`, metrics as
/// configured.
pub fn build_state(config: Config, rules_dir: &Path) -> Result<Arc<AppState>, StartError> {
    let metrics = open_metrics(&config)?;
    build_state_with(config, rules_dir, metrics)
}

/// [`build_state`] with a metrics store chosen by the caller.
pub fn build_state_with(
    config: Config,
    rules_dir: &Path,
    metrics: Metrics,
) -> Result<Arc<AppState>, StartError> {
    let providers = ProviderSet::build(&config, None)?;
    let (table, rules_status) = load_rules(rules_dir, &config)?;
    let now = SystemTime::now();
    let config_status = ConfigStatus {
        path: config.path.clone(),
        generation: 1,
        loaded_at: now,
        attempted_hash: std::fs::read(&config.path)
            .map(|t| crate::util::fnv1a(&t))
            .unwrap_or(0),
        last_error: None,
    };
    Ok(AppState::new(
        Snapshot {
            config: Arc::new(config),
            providers: Arc::new(providers),
            routes: Arc::new(table),
            rules: rules_status,
            config_status,
        },
        metrics,
    ))
}

fn load_rules(dir: &Path, config: &Config) -> Result<(RouteTable, RulesStatus), StartError> {
    let err = |message: String| StartError::Rules {
        dir: dir.display().to_string(),
        message,
    };
    let loaded = rules::load_dir(dir, config).map_err(|e| err(e.to_string()))?;
    log_warnings(&loaded.warnings);
    let info = loaded.table.info().clone();
    let status = RulesStatus {
        dir: PathBuf::from(dir),
        generation: 1,
        loaded_at: SystemTime::now(),
        files: info.files,
        rules: loaded.table.rule_count(),
        hash: info.hash.clone(),
        attempted_hash: info.hash,
        last_error: None,
    };
    Ok((loaded.table, status))
}

/// One log line per rules warning (`clawgate check` shows them in full).
pub fn log_warnings(report: &rules::Report) {
    for d in report.diagnostics_json() {
        let at = match (d["file"].as_str(), d["line"].as_u64(), d["column"].as_u64()) {
            (Some(f), Some(l), Some(c)) => format!("{f}:{l}:{c}: "),
            _ => String::new(),
        };
        let code = d["code"].as_str().unwrap_or("");
        let message = d["message"].as_str().unwrap_or("");
        tracing::warn!("{at}warning[{code}]: {message}");
    }
}

/// Log what the config loaded, skipped and warned about.
pub fn log_config(config: &Config) {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    for p in &config.providers {
        if config.skipped.contains(&p.id) {
            let why = match crate::config::env_var_name(&p.api_key_source) {
                Some(var) => format!("{var} is not set"),
                None => "api_key is empty".to_owned(),
            };
            tracing::info!("provider {} skipped: {why}", p.id);
        } else {
            tracing::info!(
                "provider {} → {} ({}, {})",
                p.id,
                p.model,
                p.backend.as_str(),
                p.tier
            );
        }
    }
}
