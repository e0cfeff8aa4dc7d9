//! `clawgate stats`: the original `clawgate-stats` in the terminal (overview, `--daily`,
//! `--recent N`, `--json`).
//!
//! redb lets one process open a database file at a time (it takes an exclusive `flock`, even for
//! reading; redb 3's `ReadOnlyDatabase` still cannot coexist with a writer). So while the server
//! runs, the command cannot open the file: it then asks the running server's `/api/stats` and
//! `/api/recent` over HTTP instead ([`RemoteServer`]) and prints the same figures.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::metrics::stats::{date, Window, MAX_LIMIT};
use crate::metrics::{Metrics, MetricsError};

/// Rows of the routing table in the overview (as the original).
const ROUTING_ROWS: usize = 12;
/// Recent rows in `--json` output when `--recent` is not given (as the original).
const JSON_RECENT: usize = 20;

/// The running server to ask when the database is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteServer {
    /// e.g. `http://127.0.0.1:8090`
    pub base_url: String,
    /// Sent as `Authorization: Bearer …` when the server requires a client key.
    pub api_key: Option<String>,
}

impl RemoteServer {
    /// `CLAWGATE_URL`, else `http://CLAWGATE_HOST:CLAWGATE_PORT` (a wildcard host means
    /// loopback), else `http://127.0.0.1:8090`; key from `CLAWGATE_CLIENT_KEY` if set.
    pub fn from_env() -> RemoteServer {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let base_url = var("CLAWGATE_URL").unwrap_or_else(|| {
            let host = match var("CLAWGATE_HOST").as_deref() {
                None | Some("0.0.0.0") | Some("::") | Some("[::]") => "127.0.0.1".to_owned(),
                Some(h) if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
                Some(h) => h.to_owned(),
            };
            let port = var("CLAWGATE_PORT").unwrap_or_else(|| "8090".to_owned());
            format!("http://{host}:{port}")
        });
        RemoteServer {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: var("CLAWGATE_CLIENT_KEY"),
        }
    }

    fn get(&self, path_and_query: &str) -> Result<Value, String> {
        let url = format!("{}{path_and_query}", self.base_url);
        let key = self.api_key.clone();
        // A thread of its own: this may be called from inside the binary's async runtime, where
        // starting another runtime would panic.
        let fetch = std::thread::spawn(move || -> Result<Value, String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| e.to_string())?;
                let mut req = client.get(&url);
                if let Some(k) = key {
                    req = req.bearer_auth(k);
                }
                let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
                let status = resp.status();
                if !status.is_success() {
                    return Err(format!("{url}: HTTP {status}"));
                }
                resp.json::<Value>()
                    .await
                    .map_err(|e| format!("{url}: {e}"))
            })
        });
        fetch
            .join()
            .map_err(|_| "the HTTP request thread panicked".to_owned())?
    }
}

/// Where the figures come from.
enum Source {
    Local(Metrics),
    Remote(RemoteServer),
}

impl Source {
    fn stats(&self, window: Window) -> Result<Value, String> {
        match self {
            Source::Local(m) => Ok(m.stats(window)),
            Source::Remote(s) => s.get(&format!("/api/stats?window={}", window.as_str())),
        }
    }

    fn recent(&self, limit: usize) -> Result<Value, String> {
        match self {
            Source::Local(m) => Ok(m.recent(limit)),
            Source::Remote(s) => s.get(&format!("/api/recent?limit={limit}")),
        }
    }
}

/// `clawgate stats`, asking the server from [`RemoteServer::from_env`] when the database is in
/// use. Returns the exit code: 0 done, 1 no database or no answer.
pub fn stats_cmd(
    db: &Path,
    json: bool,
    recent: Option<usize>,
    daily: bool,
    window: Window,
    out: &mut dyn Write,
) -> i32 {
    stats_cmd_with(
        db,
        &RemoteServer::from_env(),
        json,
        recent,
        daily,
        window,
        out,
    )
}

/// [`stats_cmd`] with an explicit server to ask when the database is open in another process.
pub fn stats_cmd_with(
    db: &Path,
    server: &RemoteServer,
    json: bool,
    recent: Option<usize>,
    daily: bool,
    window: Window,
    out: &mut dyn Write,
) -> i32 {
    let (source, origin) = match Metrics::open_for_reading(db) {
        Ok(m) => (Source::Local(m), format!("database {}", db.display())),
        Err(MetricsError::InUse { .. }) => (
            Source::Remote(server.clone()),
            format!(
                "server {} (the database {} is in use)",
                server.base_url,
                db.display()
            ),
        ),
        Err(MetricsError::NotFound { .. }) => {
            eprintln!("Database not found: {}", db.display());
            return 1;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let recent_limit = recent.map(|n| n.clamp(1, MAX_LIMIT));
    let result = (|| -> Result<(Value, Option<Value>), String> {
        let stats = source.stats(window)?;
        let rows = match (json, recent_limit) {
            (_, Some(n)) => Some(source.recent(n)?),
            (true, None) => Some(source.recent(JSON_RECENT)?),
            (false, None) => None,
        };
        Ok((stats, rows))
    })();
    let (stats, rows) = match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: could not read stats from the {origin}: {e}");
            return 1;
        }
    };
    let written = if json {
        let mut doc = stats;
        if let Some(obj) = doc.as_object_mut() {
            obj.insert(
                "recent".into(),
                rows.map(|r| r["requests"].clone())
                    .unwrap_or_else(|| json!([])),
            );
        }
        serde_json::to_string_pretty(&doc)
            .map_err(std::io::Error::other)
            .and_then(|s| writeln!(out, "{s}"))
    } else {
        render_text(out, &origin, window, &stats, daily, rows.as_ref())
    };
    match written {
        Ok(()) => 0,
        // A closed pipe (`clawgate stats | head`) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn int(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// 1234567 → `1,234,567`.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Tokens as `950`, `1.2K`, `3.4M` (the dashboard's format).
fn tokens(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{:.1}K", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} s", v / 1e3)
    } else {
        format!("{v:.0} ms")
    }
}

/// Epoch seconds → `YYYY-MM-DD HH:MM:SS` (UTC).
fn datetime(epoch_s: f64) -> String {
    let t = epoch_s.max(0.0) as u64;
    let rem = t % 86_400;
    format!(
        "{} {:02}:{:02}:{:02}",
        date(t / 86_400),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn bar(share: f64, width: usize) -> String {
    let filled = ((share * width as f64).round() as usize).min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

fn render_text(
    out: &mut dyn Write,
    origin: &str,
    window: Window,
    stats: &Value,
    daily: bool,
    recent: Option<&Value>,
) -> std::io::Result<()> {
    let t = &stats["totals"];
    writeln!(
        out,
        "ClawGate stats — window {} — from the {origin}",
        window.as_str()
    )?;
    if stats["enabled"] == json!(false) || t.as_object().is_none_or(|o| o.is_empty()) {
        writeln!(out, "\nNo metrics recorded (metrics storage is disabled).")?;
        return Ok(());
    }
    let requests = int(&t["total_requests"]);
    let failures = int(&t["total_failures"]);
    let pct = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    writeln!(out)?;
    writeln!(
        out,
        "  Requests  {:>10}    failures {} ({:.1}%)   fallbacks {}   failed attempts {}",
        count(requests),
        count(failures),
        pct(failures, requests),
        count(int(&t["total_fallbacks"])),
        count(int(&t["total_failed_attempts"]))
    )?;
    writeln!(
        out,
        "  Tokens    {:>10}    in {} / out {}   cache hit {:.1}% ({} hit / {} miss)",
        tokens(int(&t["total_prompt_tokens"]) + int(&t["total_compl_tokens"])),
        tokens(int(&t["total_prompt_tokens"])),
        tokens(int(&t["total_compl_tokens"])),
        num(&t["cache_hit_pct"]),
        tokens(int(&t["total_cache_hit"])),
        tokens(int(&t["total_cache_miss"]))
    )?;
    if let Some(rows) = stats["affinity"].as_array().filter(|r| !r.is_empty()) {
        let parts: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["affinity"].as_str().unwrap_or("?"),
                    count(int(&r["requests"]))
                )
            })
            .collect();
        writeln!(
            out,
            "  Sticky    {:>10}    {}   cache hits {:.1}% of prompt tokens",
            "",
            parts.join(" · "),
            num(&t["prompt_cache_hit_pct"])
        )?;
    }
    writeln!(
        out,
        "  Cost      {:>10}",
        format!("${:.4}", num(&t["total_cost_usd"]))
    )?;
    writeln!(
        out,
        "  Latency   {:>10}    p50 {}   p95 {}",
        format!("avg {}", ms(num(&t["avg_latency_ms"]))),
        ms(num(&t["p50_latency_ms"])),
        ms(num(&t["p95_latency_ms"]))
    )?;
    if let (Some(first), Some(last)) = (t["first_request"].as_f64(), t["last_request"].as_f64()) {
        writeln!(
            out,
            "  Period    {} → {} UTC",
            datetime(first),
            datetime(last)
        )?;
    }

    let empty = Vec::new();
    let providers = stats["providers"].as_array().unwrap_or(&empty);
    if !providers.is_empty() {
        let all: u64 = providers.iter().map(|p| int(&p["requests"])).sum();
        writeln!(out, "\nProviders")?;
        writeln!(
            out,
            "  {:<22} {:>8} {:>6} {:>8} {:>10} {:>7} {:>9} {:>9}  SHARE",
            "PROVIDER", "REQS", "FAIL", "TOKENS", "COST", "CACHE", "AVG", "P95"
        )?;
        for p in providers {
            let share = if all == 0 {
                0.0
            } else {
                int(&p["requests"]) as f64 / all as f64
            };
            writeln!(
                out,
                "  {:<22} {:>8} {:>6} {:>8} {:>10} {:>6.1}% {:>9} {:>9}  {} {:>3.0}%",
                s(&p["provider"]),
                count(int(&p["requests"])),
                count(int(&p["failures"])),
                tokens(int(&p["total_tokens"])),
                format!("${:.4}", num(&p["cost_usd"])),
                num(&p["cache_hit_pct"]),
                ms(num(&p["avg_latency_ms"])),
                ms(num(&p["p95_latency_ms"])),
                bar(share, 10),
                share * 100.0
            )?;
        }
    }

    let routing = stats["routing"].as_array().unwrap_or(&empty);
    if !routing.is_empty() {
        writeln!(out, "\nRouting (successful requests, top {ROUTING_ROWS})")?;
        writeln!(
            out,
            "  {:<10} {:<24} {:<22} {:>8} {:>10} {:>9}",
            "LAYER", "RULE", "PROVIDER", "REQS", "COST", "AVG"
        )?;
        for r in routing.iter().take(ROUTING_ROWS) {
            writeln!(
                out,
                "  {:<10} {:<24} {:<22} {:>8} {:>10} {:>9}",
                s(&r["layer"]),
                s(&r["rule_name"]),
                s(&r["provider"]),
                count(int(&r["requests"])),
                format!("${:.4}", num(&r["cost_usd"])),
                ms(num(&r["avg_latency_ms"]))
            )?;
        }
    }

    if daily {
        let days = stats["daily"].as_array().unwrap_or(&empty);
        writeln!(out, "\nDaily (UTC)")?;
        writeln!(
            out,
            "  {:<12} {:>8} {:>6} {:>8} {:>10}",
            "DAY", "REQS", "FAIL", "TOKENS", "COST"
        )?;
        let mut total = 0.0;
        for d in days {
            total += num(&d["cost_usd"]);
            writeln!(
                out,
                "  {:<12} {:>8} {:>6} {:>8} {:>10}",
                s(&d["day"]),
                count(int(&d["requests"])),
                count(int(&d["failures"])),
                tokens(int(&d["tokens"])),
                format!("${:.4}", num(&d["cost_usd"]))
            )?;
        }
        let avg = if days.is_empty() {
            0.0
        } else {
            total / days.len() as f64
        };
        writeln!(
            out,
            "  Total: ${total:.4}   Avg/day: ${avg:.4}   Projected/month: ${:.2}",
            avg * 30.0
        )?;
    }

    if let Some(recent) = recent {
        let rows = recent["requests"].as_array().unwrap_or(&empty);
        writeln!(out, "\nRecent requests (newest first)")?;
        writeln!(
            out,
            "  {:<19} {:<22} {:<30} {:>13} {:>10} {:>9}  STATUS",
            "TIME (UTC)", "PROVIDER", "LAYER/RULE", "TOKENS IN/OUT", "COST", "LATENCY"
        )?;
        for r in rows {
            let ok = int(&r["success"]) == 1;
            let status = int(&r["status"]);
            let mark = if ok {
                format!("✓ {status}")
            } else {
                format!("✗ {status} {}", s(&r["error"]))
            };
            let provider = match s(&r["provider"]) {
                "" => "—",
                p => p,
            };
            writeln!(
                out,
                "  {:<19} {:<22} {:<30} {:>13} {:>10} {:>9}  {mark}",
                datetime(num(&r["timestamp"])),
                provider,
                format!("{}/{}", s(&r["layer"]), s(&r["rule_name"])),
                format!(
                    "{}/{}",
                    tokens(int(&r["prompt_tok"])),
                    tokens(int(&r["compl_tok"]))
                ),
                format!("${:.4}", num(&r["cost_usd"])),
                ms(num(&r["latency_ms"]))
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_the_dashboard() {
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(999), "999");
        assert_eq!(tokens(1_250), "1.2K");
        assert_eq!(tokens(3_400_000), "3.4M");
        assert_eq!(datetime(86_400.0 + 3_723.0), "1970-01-02 01:02:03");
        assert_eq!(ms(812.4), "812 ms");
        assert_eq!(ms(21_000.0), "21.0 s");
    }

    #[test]
    fn server_defaults_to_loopback_8090() {
        // Only checks the shape when the variables are unset in this process.
        if std::env::var_os("CLAWGATE_URL").is_none() && std::env::var_os("CLAWGATE_HOST").is_none()
        {
            let s = RemoteServer::from_env();
            assert!(
                s.base_url.starts_with("http://127.0.0.1:"),
                "{}",
                s.base_url
            );
        }
    }
}
