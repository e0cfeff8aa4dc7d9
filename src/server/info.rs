//! `GET /health` and `GET /v1/models`.

use std::time::{Instant, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use warp::reply::Response;
use warp::Reply;

use crate::state::AppState;

pub fn health(state: &AppState) -> Response {
    let snapshot = state.snapshot.load();
    let now = Instant::now();
    let mut providers = Map::new();
    let mut available = 0;
    for p in snapshot.providers.iter() {
        let h = p.health.snapshot(now);
        if p.health.is_available(now) {
            available += 1;
        }
        let mut v = serde_json::to_value(&h).unwrap_or(Value::Null);
        if let Value::Object(o) = &mut v {
            o.insert("backend".into(), json!(p.config.backend.as_str()));
            o.insert("model".into(), json!(p.config.model));
        }
        providers.insert(p.id.to_string(), v);
    }
    let status = if snapshot.providers.is_empty() {
        "no_providers"
    } else if available == 0 {
        "degraded"
    } else {
        "ok"
    };
    let (rules, config) = crate::state::status_json(&snapshot.rules, &snapshot.config_status);
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs(),
        "rules": rules,
        "config": config,
        "providers": providers,
        "skipped_providers": snapshot.config.skipped,
        "fallback_chain": snapshot.providers.fallback_ids(),
        "classifier": classifier_json(state, &snapshot),
    });
    warp::reply::json(&body).into_response()
}

/// `/health.classifier`: whether the LLM classifier is on, whom it asks, and its cache.
fn classifier_json(state: &AppState, snapshot: &crate::state::Snapshot) -> serde_json::Value {
    let c = &snapshot.config.classifier;
    if !c.enabled {
        return json!({ "enabled": false });
    }
    json!({
        "enabled": true,
        "provider": c.provider,
        "provider_loaded": snapshot.providers.get(&c.provider).is_some(),
        "labels": c.labels().collect::<Vec<_>>(),
        "rules": snapshot.routes.has_classifier_rules(),
        "cached_answers": state.classifier.cached(),
    })
}

pub fn models(state: &AppState) -> Response {
    let snapshot = state.snapshot.load();
    let created = state
        .started_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut data = vec![json!({
        "id": "auto",
        "object": "model",
        "created": created,
        "owned_by": "clawgate",
        "description": "Auto-routed to optimal provider",
    })];
    for p in snapshot.providers.iter() {
        data.push(json!({
            "id": &*p.id,
            "object": "model",
            "created": created,
            "owned_by": p.config.backend.as_str(),
            "description": format!("{} ({})", p.config.model, p.config.tier),
        }));
    }
    warp::reply::json(&json!({ "object": "list", "data": data })).into_response()
}

/// `GET /v1/models` in Anthropic's list shape (`anthropic-version` sent): `auto` and every
/// loaded provider, created when the server started.
pub fn anthropic_models(state: &AppState) -> Response {
    let snapshot = state.snapshot.load();
    let created = crate::state::rfc3339(state.started_at);
    let mut models = vec![("auto".to_owned(), "ClawGate auto-router".to_owned())];
    for p in snapshot.providers.iter() {
        models.push((p.id.to_string(), format!("{} ({})", p.config.model, p.id)));
    }
    let body = crate::ingress::anthropic::models_body(&models, &created);
    warp::reply::json(&body).into_response()
}

/// The value of `key` in a raw query string.
fn query_param(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn bad_query(message: String, param: &str) -> Response {
    crate::ingress::error::ApiError::invalid("invalid_query", message)
        .with_param(param)
        .into_response()
        .into_response()
}

/// `GET /api/stats?window=1h|24h|7d|30d|all`.
pub async fn stats(state: std::sync::Arc<AppState>, query: String) -> Response {
    match crate::metrics::Window::from_query(query_param(&query, "window").as_deref()) {
        Ok(window) => read_metrics(&state, move |m| m.stats(window)).await,
        Err(e) => bad_query(e.to_string(), "window"),
    }
}

/// `GET /api/recent?limit=N`.
pub async fn recent(state: std::sync::Arc<AppState>, query: String) -> Response {
    match crate::metrics::parse_limit(query_param(&query, "limit").as_deref()) {
        Ok(limit) => read_metrics(&state, move |m| m.recent(limit)).await,
        Err(e) => bad_query(e.to_string(), "limit"),
    }
}

/// Run a metrics read (disk I/O) on a blocking thread and answer its JSON.
async fn read_metrics<F>(state: &AppState, read: F) -> Response
where
    F: FnOnce(&crate::metrics::Metrics) -> serde_json::Value + Send + 'static,
{
    let metrics = state.metrics.clone();
    match tokio::task::spawn_blocking(move || read(&metrics)).await {
        Ok(v) => warp::reply::json(&v).into_response(),
        Err(e) => internal(e.to_string()),
    }
}

fn internal(message: String) -> Response {
    crate::ingress::error::ApiError::new(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "internal_error",
        message,
    )
    .into_response()
    .into_response()
}

/// `GET /metrics`: Prometheus text. Request counters come from memory, never from disk.
pub fn prometheus(state: &AppState) -> Response {
    let snapshot = state.snapshot.load();
    let now = Instant::now();
    let per_provider = |value: &dyn Fn(&crate::providers::Provider) -> u64| -> Vec<(String, u64)> {
        snapshot
            .providers
            .iter()
            .map(|p| (format!("{{provider=\"{}\"}}", p.id), value(p)))
            .collect()
    };
    let plain = |v: u64| vec![(String::new(), v)];
    let families = [
        (
            "clawgate_provider_up",
            "Whether the provider's circuit lets requests through (1) or is open (0).",
            per_provider(&|p| u64::from(p.health.is_available(now))),
        ),
        (
            "clawgate_provider_consecutive_failures",
            "Failures in a row per provider.",
            per_provider(&|p| u64::from(p.health.snapshot(now).consecutive_failures)),
        ),
        (
            "clawgate_rules_generation",
            "Rule tables loaded since start.",
            plain(snapshot.rules.generation),
        ),
        (
            "clawgate_rules_reload_failing",
            "1 while the last rules edit failed to load.",
            plain(u64::from(snapshot.rules.last_error.is_some())),
        ),
        (
            "clawgate_config_reload_failing",
            "1 while the last config edit failed to load.",
            plain(u64::from(snapshot.config_status.last_error.is_some())),
        ),
        (
            "clawgate_affinity_conversations",
            "Conversations sticky routing remembers (bounded by affinity.max_entries).",
            plain(state.affinity.len() as u64),
        ),
    ];
    let mut extra = String::new();
    for (name, help, samples) in families {
        extra.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, value) in samples {
            extra.push_str(&format!("{name}{labels} {value}\n"));
        }
    }
    let body = state.metrics.render(&extra);
    warp::reply::with_header(
        body,
        "content-type",
        "text/plain; version=0.0.4; charset=utf-8",
    )
    .into_response()
}

/// `GET /dashboard`: one self-contained page.
pub fn dashboard() -> Response {
    warp::reply::html(crate::metrics::DASHBOARD_HTML).into_response()
}
