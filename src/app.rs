//! Assembling a running ClawGate from a config file and a rules directory; shared by the
//! binary and the tests so both start the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::Config;
use crate::providers::ProviderSet;
use crate::router::RouteTable;
use crate::server::{AppState, RulesStatus, Snapshot};

/// Start-up failed: what and why, ready to print.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Provider(#[from] crate::providers::ProviderError),
    #[error("{0}")]
    Rules(String),
}

/// Build the shared state: providers from `config`, rules from `rules_dir`.
pub fn build_state(config: Config, rules_dir: &Path) -> Result<Arc<AppState>, StartError> {
    let providers = ProviderSet::build(&config, None)?;
    let (routes, rules) = load_rules(rules_dir, &config)?;
    Ok(AppState::new(Snapshot {
        config: Arc::new(config),
        providers: Arc::new(providers),
        routes: Arc::new(routes),
        rules,
    }))
}

fn load_rules(dir: &Path, _config: &Config) -> Result<(RouteTable, RulesStatus), StartError> {
    let status = RulesStatus {
        dir: PathBuf::from(dir),
        generation: 1,
        loaded_at: SystemTime::now(),
        files: 0,
        rules: 0,
        hash: String::new(),
        last_error: None,
    };
    Ok((RouteTable::empty(), status))
}

/// Log what the config loaded, skipped and warned about.
pub fn log_config(config: &Config) {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    for p in &config.providers {
        if config.skipped.contains(&p.id) {
            let why = match crate::server::chat::env_var_name(&p.api_key_source) {
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
