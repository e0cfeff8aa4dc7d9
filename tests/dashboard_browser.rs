//! The dashboard in a real headless Chromium, against a running ClawGate with real data.
//!
//! Starts a ClawGate on loopback with three mock providers and routing rules, sends requests that
//! are easy to tell apart (a direct one, two routed by distinct rules, a fallback, a stream, a
//! failure, a rejected body), then drives Chromium through chromedriver over the W3C WebDriver
//! protocol (plain HTTP with reqwest) and checks what the page shows: every configured provider,
//! the requests just sent, and no console errors (Chromium's own browser log, which records
//! uncaught exceptions, unhandled rejections, `console.error` and failed loads).
//!
//! Needs `/usr/bin/chromium` and `chromedriver` (Debian: `apt-get install chromium
//! chromium-driver`); without them it prints why and passes, unless `CLAWGATE_REQUIRE_BROWSER=1`
//! (CI), then it fails. `CLAWGATE_DASHBOARD_SCREENSHOT=/path.png` keeps a screenshot of the page.

#[path = "it/support/mod.rs"]
mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{chat_body, Behavior, Gate, MockUpstream, P};

/// The browser binaries, or why there are none.
fn browser_paths() -> Result<(PathBuf, PathBuf), String> {
    let chromium = std::env::var_os("CLAWGATE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.is_file() {
        return Err(format!("{} not found", chromium.display()));
    }
    let driver = std::env::var_os("CLAWGATE_CHROMEDRIVER")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join("chromedriver"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| "chromedriver not found on PATH".to_owned())?;
    Ok((chromium, driver))
}

/// `Some(paths)` to run, `None` to skip (after saying why); panics when a browser is required.
fn browser_or_skip() -> Option<(PathBuf, PathBuf)> {
    match browser_paths() {
        Ok(paths) => Some(paths),
        Err(why) if std::env::var("CLAWGATE_REQUIRE_BROWSER").as_deref() == Ok("1") => {
            panic!(
                "CLAWGATE_REQUIRE_BROWSER=1 but {why}: apt-get install -y chromium chromium-driver"
            )
        }
        Err(why) => {
            eprintln!("SKIPPED dashboard browser test: {why} (apt-get install -y chromium chromium-driver)");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// chromedriver, the Chromium it starts, and a WebDriver session. Dropping it (also while a
/// failed assertion unwinds) ends the session, then kills chromedriver's whole process group,
/// which holds every Chromium process, and removes the profile directory.
struct Browser {
    driver: Child,
    /// chromedriver's address, `127.0.0.1:port`.
    addr: String,
    session: Option<String>,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Browser {
    async fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = dir.path().join("chromedriver.log");
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that Drop can kill it and every browser process at once.
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let mut browser = Browser {
            driver,
            addr: format!("127.0.0.1:{port}"),
            session: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(resp) = browser.http.get(browser.url("/status")).send().await {
                let v: Value = resp.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    break;
                }
            }
            if let Some(status) = browser.driver.try_wait().expect("try_wait") {
                panic!("chromedriver exited: {status}\n{}", browser.driver_log());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready\n{}",
                browser.driver_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = browser.dir.path().join("profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1440,2000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = browser.call("POST", "/session", Some(caps)).await;
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}\n{}", browser.driver_log()))
            .to_owned();
        browser.session = Some(id);
        browser
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn driver_log(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// One WebDriver command; returns `value`, panics on a WebDriver error.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let req = match method {
            "GET" => self.http.get(self.url(path)),
            "DELETE" => self.http.delete(self.url(path)),
            _ => self
                .http
                .post(self.url(path))
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "{method} {path}: HTTP {status}: {v}\n{}",
            self.driver_log()
        );
        v["value"].clone()
    }

    async fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let id = self.session.as_deref().expect("a session");
        self.call(method, &format!("/session/{id}{path}"), body)
            .await
    }

    async fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({"url": url})))
            .await;
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    async fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The browser log entries since the last call (`level`, `message`, `source`).
    async fn console(&self) -> Vec<Value> {
        let v = self
            .session_call("POST", "/se/log", Some(json!({"type": "browser"})))
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// A PNG of the viewport.
    async fn screenshot(&self) -> Vec<u8> {
        let v = self.session_call("GET", "/screenshot", None).await;
        base64_decode(v.as_str().expect("screenshot is base64"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Quit politely first (Chromium flushes and exits), with a bare HTTP request: no runtime
        // is needed, and a panic may be unwinding.
        if let Some(id) = self.session.take() {
            use std::io::{Read, Write};
            if let Ok(mut s) = TcpStream::connect(&self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = write!(
                    s,
                    "DELETE /session/{id} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                let _ = s.read_to_end(&mut Vec::new());
            }
        }
        // Then make sure: the whole process group (chromedriver and every Chromium it started).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c) << (18 - 6 * i);
        }
        let got = chunk.len() * 6 / 8;
        out.extend_from_slice(&n.to_be_bytes()[1..=got]);
    }
    out
}

/// Rules that make each routed request recognisable by its rule name.
const RULES: &str = r#"
layer static {
  rule browser-to-beta when model == "beta-please" route beta
  rule browser-to-alpha-first when model == "alpha-then-beta" route alpha, beta
}
default route alpha
"#;

/// What the page shows, read from the DOM.
const READ_PAGE: &str = r##"
const cells = (sel) => Array.from(document.querySelectorAll(sel + " tr")).map(
  (tr) => Array.from(tr.querySelectorAll("td")).map((td) => td.innerText.trim()));
return {
  health: Array.from(document.querySelectorAll("#health .hrow .n")).map((e) => e.innerText.trim()),
  providers: cells("#providers"),
  routing: cells("#routing"),
  recent: cells("#recent"),
  requests: document.getElementById("c-req").innerText.trim(),
  status: document.getElementById("status").innerText.trim(),
  banner: document.getElementById("banner").innerText.trim(),
  bannerShown: document.getElementById("banner").classList.contains("show"),
  scrollWidth: document.documentElement.scrollWidth,
  clientWidth: document.documentElement.clientWidth,
};
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_real_data_in_chromium_without_console_errors() {
    let Some((chromium, chromedriver)) = browser_or_skip() else {
        return;
    };

    // A ClawGate with three providers (gamma gets no traffic) and rules with telling names.
    let (a, b, c) = (
        MockUpstream::start("alpha").await,
        MockUpstream::start("beta").await,
        MockUpstream::start("gamma").await,
    );
    let p = |id, m: &MockUpstream| P {
        id,
        base_url: m.base_url(),
        extra: "",
    };
    let config = support::config_yaml(
        &[p("alpha", &a), p("beta", &b), p("gamma", &c)],
        &["alpha", "beta", "gamma"],
        "",
    );
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("10-browser.rules"), RULES).unwrap();
    let gate = Gate::start_with_rules(&config, Some(rules.path())).await;

    let ok = |r: &reqwest::Response| assert!(r.status().is_success(), "{}", r.status());
    ok(&gate.chat(&chat_body("alpha", "hello", false)).await);
    ok(&gate.chat(&chat_body("beta-please", "hello", false)).await);
    let streamed = gate.chat(&chat_body("auto", "hello", true)).await;
    ok(&streamed);
    streamed.text().await.unwrap();
    a.script([Behavior::Status(500, json!({"error": {"message": "boom"}}))]);
    ok(&gate
        .chat(&chat_body("alpha-then-beta", "hello", false))
        .await);
    a.script([Behavior::Status(503, json!({}))]);
    b.script([Behavior::Status(503, json!({}))]);
    c.script([Behavior::Status(503, json!({}))]);
    assert_eq!(
        gate.chat(&chat_body("auto", "hello", false)).await.status(),
        502
    );
    let rejected = gate.chat_raw("{not json").await;
    assert_eq!(rejected.status(), 400);
    let recorded = gate.recent(6).await;
    assert_eq!(recorded.len(), 6, "{recorded:?}");

    let browser = Browser::start(&chromium, &chromedriver).await;
    browser.goto(&format!("{}/dashboard", gate.url)).await;

    // Poll the DOM until the data is there (the page fetches /api/* after it loads).
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let page = browser.eval(READ_PAGE).await;
        let rendered = page["recent"].as_array().map_or(0, Vec::len) >= 6
            && page["health"].as_array().map_or(0, Vec::len) >= 3
            && page["requests"] != "–";
        if rendered {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard did not render the data within 20 s: {page:#}\nconsole: {:#?}",
            browser.console().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Every configured provider is in the health panel, gamma (no traffic) included.
    let health: Vec<&str> = page["health"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(health, ["alpha", "beta", "gamma"], "{page:#}");
    assert_eq!(page["requests"], "6", "{page:#}");
    assert_eq!(page["bannerShown"], false, "{page:#}");
    assert!(
        page["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("last request")),
        "{page:#}"
    );

    // The recent-requests table shows what was sent, newest first:
    // [when, provider, layer, rule, model, tokens, cost, latency, status].
    let recent: Vec<Vec<String>> = serde_json::from_value(page["recent"].clone()).unwrap();
    let row = |i: usize| recent[i].iter().map(String::as_str).collect::<Vec<_>>();
    let expect = [
        ("—", "–", "–", "", "400"),
        ("—", "default", "default", "auto", "502"),
        (
            "beta",
            "static",
            "browser-to-alpha-first",
            "alpha-then-beta",
            "200",
        ),
        ("alpha", "default", "default", "auto", "200"),
        ("beta", "static", "browser-to-beta", "beta-please", "200"),
        ("alpha", "direct", "explicit-model", "alpha", "200"),
    ];
    for (i, (provider, layer, rule, model, status)) in expect.into_iter().enumerate() {
        let r = row(i);
        assert!(r[1].starts_with(provider), "row {i} provider: {r:?}");
        assert_eq!(r[2], layer, "row {i} layer: {r:?}");
        assert_eq!(r[3], rule, "row {i} rule: {r:?}");
        assert!(r[4].starts_with(model), "row {i} model: {r:?}");
        assert!(r[8].contains(status), "row {i} status: {r:?}");
    }
    assert!(row(2)[1].contains("fallback"), "{:?}", row(2));
    assert!(row(3)[1].contains("stream"), "{:?}", row(3));
    assert!(row(5)[4].contains("upstream-alpha"), "{:?}", row(5));
    assert!(row(0)[8].contains("invalid_json"), "{:?}", row(0));

    // The provider breakdown and the routing table name the providers and rules too.
    let first_cells = |key: &str, col: usize| -> Vec<String> {
        page[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[col].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let providers = first_cells("providers", 0);
    for p in ["alpha", "beta"] {
        assert!(providers.iter().any(|c| c == p), "{providers:?}");
    }
    let routed = first_cells("routing", 1);
    for r in [
        "explicit-model",
        "browser-to-beta",
        "browser-to-alpha-first",
    ] {
        assert!(routed.iter().any(|c| c == r), "{routed:?}");
    }
    // Nothing is wider than the window (no horizontal scrolling at 1440 px).
    assert!(
        page["scrollWidth"].as_u64() <= page["clientWidth"].as_u64(),
        "{page:#}"
    );

    // No console errors: Chromium's log has every uncaught exception, unhandled rejection,
    // console.error and failed resource load (a missing favicon included) as SEVERE.
    let log = browser.console().await;
    let errors: Vec<&Value> = log.iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if let Some(path) = std::env::var_os("CLAWGATE_DASHBOARD_SCREENSHOT") {
        std::fs::write(&path, &png).expect("write the screenshot");
        eprintln!("dashboard screenshot: {}", Path::new(&path).display());
    }

    drop(browser);
    gate.stop().await;
}
