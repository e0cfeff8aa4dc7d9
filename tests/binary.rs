//! The `clawgate` binary as an operator runs it: start-up, `.env`, config errors, signals.

#[path = "it/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::{chat_body, Behavior, MockUpstream};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A `clawgate` process and the lines it has logged.
struct Running {
    child: Child,
    url: String,
    log: mpsc::Receiver<String>,
    /// What it logged before it was listening.
    startup: Vec<String>,
}

/// Start the binary in `cwd` with only the given environment; wait until it listens.
fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    cmd.current_dir(cwd)
        .args(args)
        .arg("--db")
        .arg(cwd.join("clawgate.db"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("clawgate starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap().to_owned();
                    return Running {
                        child,
                        url: format!("http://{addr}"),
                        log: rx,
                        startup: seen,
                    };
                }
                seen.push(line);
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("clawgate did not start; it said:\n{}", seen.join("\n"));
            }
        }
    }
}

impl Running {
    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("clawgate did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the exit that a stop signal started; it must be clean. Returns the log.
    fn exit_cleanly(&mut self) -> String {
        let status = self.wait_exit(Duration::from_secs(10));
        let log = self.logged().join("\n");
        assert!(status.success(), "{status}; it said:\n{log}");
        log
    }

    /// SIGTERM, then [`Running::exit_cleanly`].
    fn stop_cleanly(&mut self) -> String {
        self.signal("-TERM");
        self.exit_cleanly()
    }

    fn logged(&self) -> Vec<String> {
        self.startup
            .iter()
            .cloned()
            .chain(self.log.try_iter())
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn stock_config_starts_with_an_empty_environment_and_serves_health_and_models() {
    let cwd = tempfile::tempdir().unwrap();
    let config = repo("config.yaml");
    let rules = repo("rules");
    let mut gate = start(
        cwd.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
            "--port",
            "0",
        ],
        &[],
    );
    let client = reqwest::Client::new();
    let health: Value = client
        .get(format!("{}/health", gate.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "no_providers");
    assert_eq!(health["skipped_providers"].as_array().unwrap().len(), 5);
    let models: Value = client
        .get(format!("{}/v1/models", gate.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 1);
    assert_eq!(models["data"][0]["id"], "auto");
    let resp = client
        .post(format!("{}/v1/chat/completions", gate.url))
        .json(&chat_body("auto", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DEEPSEEK_API_KEY"),
        "{body}"
    );
    let log = gate.logged().join("\n");
    assert!(
        log.contains("provider deepseek-chat skipped: DEEPSEEK_API_KEY is not set"),
        "{log}"
    );
    gate.stop_cleanly();
}

#[tokio::test]
async fn dotenv_supplies_keys_and_the_real_environment_wins_over_it() {
    let mock = MockUpstream::start("deepseek").await;
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        cwd.path().join(".env"),
        "DEEPSEEK_API_KEY=sk-from-dotenv\nDEEPSEEK_BASE_URL=http://127.0.0.1:9/v1\n",
    )
    .unwrap();
    std::fs::copy(repo("config.yaml"), cwd.path().join("config.yaml")).unwrap();
    let empty_rules = tempfile::tempdir().unwrap();
    let base = mock.base_url();
    let gate = start(
        cwd.path(),
        &["--rules", empty_rules.path().to_str().unwrap()],
        &[("DEEPSEEK_BASE_URL", base.as_str()), ("CLAWGATE_PORT", "0")],
    );
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/v1/chat/completions", gate.url))
        .json(&chat_body("deepseek-chat", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = mock.received();
    assert_eq!(got[0].headers["authorization"], "Bearer sk-from-dotenv");
    assert_eq!(got[0].json()["model"], "deepseek-chat");
    assert_eq!(got[0].json()["max_tokens"], 8000);
}

#[test]
fn a_config_error_stops_startup_naming_file_line_and_key() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        cwd.path().join("config.yaml"),
        "server:\n  port: 0\nproviders:\n  a:\n    backend: carrier-pigeon\n    base_url: http://127.0.0.1:1\n    api_key: k\n    model: m\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .current_dir(cwd.path())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config.yaml:5: providers.a.backend: unknown backend `carrier-pigeon`"),
        "{stderr}"
    );
}

#[test]
fn a_missing_config_file_is_reported_clearly() {
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .current_dir(cwd.path())
        .args(["--config", "nope.yaml"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.yaml"));
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_on_every_serving_thread_finish_and_exits_cleanly() {
    let mock = MockUpstream::start("slow").await;
    mock.set_default(Behavior::Delay(
        Duration::from_millis(800),
        "finished anyway".into(),
    ));
    let cwd = tempfile::tempdir().unwrap();
    let config = format!(
        "server:\n  port: 0\n  shutdown_grace_s: 5\n  threads: 4\nproviders:\n  slow:\n    base_url: {}\n    api_key: k\n    model: m\nfallback_chain: [slow]\n",
        mock.base_url()
    );
    std::fs::write(cwd.path().join("config.yaml"), config).unwrap();
    let empty_rules = tempfile::tempdir().unwrap();
    let mut gate = start(
        cwd.path(),
        &["--rules", empty_rules.path().to_str().unwrap()],
        &[],
    );
    // One connection each, so that they spread over the serving threads.
    let in_flight: Vec<_> = (0..8)
        .map(|_| {
            let url = format!("{}/v1/chat/completions", gate.url);
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .json(&chat_body("auto", "hi", false))
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.signal("-TERM");
    for request in in_flight {
        let resp = request.await.unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "finished anyway");
    }
    let log = gate.exit_cleanly();
    assert_eq!(
        log.matches("shutting down").count(),
        1,
        "one shutdown line, not one per thread:\n{log}"
    );
    // No longer accepting.
    assert!(reqwest::Client::new()
        .get(format!("{}/health", gate.url))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn an_http_proxy_named_in_the_environment_carries_upstream_requests() {
    // The provider's own address refuses connections; only the proxy (played by the mock,
    // which answers absolute-form requests) can answer.
    let proxy = MockUpstream::start("proxy").await;
    let cwd = one_provider_dir("far", "http://127.0.0.1:9/v1");
    let proxy_url = proxy.base_url().trim_end_matches("/v1").to_owned();
    let gate = start(cwd.path(), &[], &[("HTTP_PROXY", proxy_url.as_str())]);
    let resp = chat(&gate.url, "far").await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(proxy.hits(), 1);
    drop(gate);
    // NO_PROXY exempts the host: the request then goes to the refusing address itself.
    let gate = start(
        cwd.path(),
        &[],
        &[
            ("HTTP_PROXY", proxy_url.as_str()),
            ("NO_PROXY", "localhost,127.0.0.1"),
        ],
    );
    assert_eq!(chat(&gate.url, "far").await.status(), 502);
    assert_eq!(proxy.hits(), 1);
}

#[tokio::test]
async fn signals_sent_the_moment_it_listens_are_handled_not_fatal() {
    let cwd = tempfile::tempdir().unwrap();
    let config = repo("config.yaml");
    let rules = repo("rules");
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "--port",
        "0",
    ];
    for _ in 0..5 {
        // SIGHUP's default action would end the process; it must be a reload instead.
        let mut gate = start(cwd.path(), &args, &[]);
        gate.signal("-HUP");
        let health = reqwest::get(format!("{}/health", gate.url)).await;
        assert!(
            health.is_ok_and(|r| r.status().is_success()),
            "not serving after an early SIGHUP; it said:\n{}",
            gate.logged().join("\n")
        );
        gate.stop_cleanly();
        // SIGTERM before any request: a clean stop, not the default abrupt exit.
        let log = start(cwd.path(), &args, &[]).stop_cleanly();
        assert!(log.contains("SIGTERM received"), "{log}");
    }
}

#[tokio::test]
async fn sighup_forces_a_reload_of_rules_and_config() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        cwd.path().join("config.yaml"),
        "server:\n  port: 0\nproviders:\n  local:\n    base_url: http://127.0.0.1:9/v1\n    api_key: none\n    model: m\nfallback_chain: [local]\n",
    )
    .unwrap();
    std::fs::create_dir(cwd.path().join("rules")).unwrap();
    std::fs::write(
        cwd.path().join("rules/90-default.rules"),
        "default route local\n",
    )
    .unwrap();
    let gate = start(cwd.path(), &[], &[]);
    let client = reqwest::Client::new();
    let generation = |h: &Value| {
        (
            h["rules"]["generation"].as_u64().unwrap(),
            h["config"]["generation"].as_u64().unwrap(),
        )
    };
    let before: Value = client
        .get(format!("{}/health", gate.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    gate.signal("-HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now: Value = client
            .get(format!("{}/health", gate.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (r0, c0) = generation(&before);
        let (r1, c1) = generation(&now);
        if r1 > r0 && c1 > c0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload: {now}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gate.logged().join("\n").contains("SIGHUP received"));
}

async fn recent_count(url: &str) -> usize {
    let v: Value = reqwest::Client::new()
        .get(format!("{url}/api/recent?limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["requests"].as_array().map_or(0, Vec::len)
}

/// One chat request naming `model`.
async fn chat(url: &str, model: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat_body(model, "hi", false))
        .send()
        .await
        .unwrap()
}

/// One chat request to the provider `up`.
async fn chat_up(url: &str) -> reqwest::StatusCode {
    chat(url, "up").await.status()
}

/// Wait until `/api/recent` holds at least `n` requests.
async fn wait_for_recent(url: &str, n: usize, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while recent_count(url).await < n {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A directory with a config whose one provider is `mock`, and empty rules.
fn metrics_dir(mock: &MockUpstream) -> tempfile::TempDir {
    one_provider_dir("up", &mock.base_url())
}

/// A directory with a config whose one provider, `id`, is at `base_url`, and empty rules.
fn one_provider_dir(id: &str, base_url: &str) -> tempfile::TempDir {
    let cwd = tempfile::tempdir().unwrap();
    let config = format!(
        "server:\n  port: 0\nproviders:\n  {id}:\n    base_url: {base_url}\n    api_key: k\n    model: m\nfallback_chain: [{id}]\n"
    );
    std::fs::write(cwd.path().join("config.yaml"), config).unwrap();
    std::fs::create_dir(cwd.path().join("rules")).unwrap();
    cwd
}

#[tokio::test]
async fn recorded_requests_survive_a_restart_on_the_same_database() {
    let mock = MockUpstream::start("up").await;
    let cwd = metrics_dir(&mock);
    let mut gate = start(cwd.path(), &[], &[]);
    for _ in 0..3 {
        assert_eq!(chat_up(&gate.url).await, 200);
    }
    gate.stop_cleanly();
    let gate = start(cwd.path(), &[], &[]);
    assert_eq!(
        recent_count(&gate.url).await,
        3,
        "a clean shutdown flushes every queued event"
    );
}

#[tokio::test]
async fn a_killed_server_loses_at_most_its_last_batch_and_the_database_still_opens() {
    let mock = MockUpstream::start("up").await;
    let cwd = metrics_dir(&mock);
    let mut gate = start(cwd.path(), &[], &[]);
    for _ in 0..5 {
        chat_up(&gate.url).await;
    }
    // Let the writer commit these (batches close every ~100 ms), then send a last one and kill.
    wait_for_recent(&gate.url, 5, "the first requests were never committed").await;
    chat_up(&gate.url).await;
    gate.signal("-KILL");
    let _ = gate.wait_exit(Duration::from_secs(10));
    let gate = start(cwd.path(), &[], &[]);
    let kept = recent_count(&gate.url).await;
    assert!((5..=6).contains(&kept), "kept {kept} of 6 events");
    // The reopened database takes new events.
    chat_up(&gate.url).await;
    wait_for_recent(&gate.url, kept + 1, "the reopened database records nothing").await;
}
