//! `clawgate stats` in the terminal: from the database file, or from the running server's HTTP
//! API when the server holds the file.

use crate::support::metrics as metrics_support;

use std::io::{Read, Write};
use std::net::TcpListener;

use clawgate::cli::{stats_cmd_with, RemoteServer};
use clawgate::metrics::{Metrics, Window};
use metrics_support::*;

fn no_server() -> RemoteServer {
    RemoteServer {
        base_url: "http://127.0.0.1:9".into(),
        api_key: None,
    }
}

fn run(
    db: &std::path::Path,
    server: &RemoteServer,
    json: bool,
    recent: Option<usize>,
    daily: bool,
) -> (i32, String) {
    let mut out = Vec::new();
    let code = stats_cmd_with(db, server, json, recent, daily, Window::All, &mut out);
    (code, String::from_utf8_lossy(&out).into_owned())
}

fn filled_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, path, m) = store(0);
    let t = now();
    m.record(cached(t - 2 * DAY, "deepseek-chat", 1200, 300, 1000, 200));
    m.record(cached(t - MIN, "gemini-flash", 500, 20, 0, 0));
    m.record(all_failed(t, &["deepseek-reasoner"]));
    m.shutdown();
    (dir, path)
}

#[test]
fn the_overview_shows_totals_providers_and_routing() {
    let (_dir, path) = filled_db();
    let (code, out) = run(&path, &no_server(), false, None, false);
    assert_eq!(code, 0, "{out}");
    for want in [
        "Requests",
        "Providers",
        "deepseek-chat",
        "gemini-flash",
        "Routing",
        "tool-use",
        "Cost",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
}

#[test]
fn daily_and_recent_add_their_tables() {
    let (_dir, path) = filled_db();
    let (code, out) = run(&path, &no_server(), false, Some(2), true);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Daily (UTC)") && out.contains("Projected/month"),
        "{out}"
    );
    assert!(out.contains("Recent requests"), "{out}");
    assert!(
        out.contains("✗ 502"),
        "the failed request is the newest:\n{out}"
    );
}

#[test]
fn json_output_has_the_original_keys() {
    let (_dir, path) = filled_db();
    let (code, out) = run(&path, &no_server(), true, None, false);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    for k in ["totals", "providers", "routing", "daily", "recent"] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["totals"]["total_requests"], 3);
    assert_eq!(v["recent"].as_array().map(Vec::len), Some(3));
}

#[test]
fn a_missing_database_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _) = run(
        &dir.path().join("nope.db"),
        &no_server(),
        false,
        None,
        false,
    );
    assert_eq!(code, 1);
}

/// A one-shot-per-connection HTTP server on loopback that answers like `/api/stats` and
/// `/api/recent` would.
fn fake_server() -> RemoteServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming().take(4) {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let body = if req.starts_with("GET /api/stats?window=all ") {
                r#"{"totals":{"total_requests":7,"total_failures":0,"total_cost_usd":0.5},"providers":[{"provider":"served-by-http","requests":7}],"routing":[],"hourly":[],"daily":[]}"#
            } else if req.starts_with("GET /api/recent?limit=20 ") {
                r#"{"requests":[]}"#
            } else {
                r#"{"error":"unexpected"}"#
            };
            let _ = write!(conn, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    });
    RemoteServer {
        base_url: format!("http://{addr}"),
        api_key: None,
    }
}

#[test]
fn while_the_server_holds_the_database_the_command_asks_it_over_http() {
    let (_dir, path, m) = store(0);
    m.record(ok(now(), "deepseek-chat"));
    m.flush();
    // `m` keeps the file open, as a running server does.
    let (code, out) = run(&path, &fake_server(), false, None, false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("served-by-http") && out.contains("is in use"),
        "{out}"
    );
    let (code, out) = run(&path, &fake_server(), true, None, false);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"total_requests\": 7"), "{out}");
    // No server either: a clear failure, not a hang.
    let (code, _) = run(&path, &no_server(), false, None, false);
    assert_eq!(code, 1);
    drop(m);
    let _ = Metrics::disabled();
}
