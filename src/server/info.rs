//! `GET /health` and `GET /v1/models`.

use std::time::{Instant, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use warp::reply::Response;
use warp::Reply;

use super::state::AppState;

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
    let (rules, config) = crate::reload::status_json(&snapshot.rules, &snapshot.config_status);
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs(),
        "rules": rules,
        "config": config,
        "providers": providers,
        "skipped_providers": snapshot.config.skipped,
        "fallback_chain": snapshot.providers_chain_ids(),
    });
    warp::reply::json(&body).into_response()
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
