//! Test support: a scriptable OpenAI-compatible upstream on loopback, and a ClawGate server
//! started on port 0 with a config pointing at such upstreams.
#![allow(dead_code)]

pub mod metrics;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// What the mock upstream does with one request.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Answer normally with this text: a `chat.completion`, or an SSE stream of it when the
    /// request asked for one (one chunk per word, `chunk_delay` apart).
    Answer(String),
    /// Answer with this status and JSON body.
    Status(u16, Value),
    /// Accept the request and never answer.
    Hang,
    /// Close the connection without answering.
    Reset,
    /// Stream `events` chunks of the answer, then break the connection.
    CutStream { events: usize },
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Wait this long before answering normally.
    Delay(Duration, String),
    /// Answer with exactly these bytes, in these pieces (a provider's own wire format).
    Raw {
        status: u16,
        content_type: &'static str,
        chunks: Vec<Vec<u8>>,
    },
    /// Answer 200 with these bytes, in these pieces, `pause` apart (so that each arrives on
    /// its own).
    RawPaced {
        content_type: &'static str,
        chunks: Vec<Vec<u8>>,
        pause: Duration,
    },
    /// Answer 200 with these bytes, in these pieces, then break the connection.
    RawCut {
        content_type: &'static str,
        chunks: Vec<Vec<u8>>,
    },
    /// Answer normally with this text, as a provider with a prompt cache would: see
    /// [`prefix_cache_usage`].
    PrefixCache(String),
}

/// Tokens per prompt-cache block: a provider caches whole blocks of a prompt's prefix
/// (DeepSeek: 64 tokens).
pub const CACHE_BLOCK_TOKENS: u64 = 64;

/// The prompt a provider tokenizes, as bytes: the tools, then the messages.
pub fn prompt_bytes(request: &Value) -> Vec<u8> {
    let mut p = serde_json::to_vec(&request["tools"]).unwrap_or_default();
    p.extend(serde_json::to_vec(&request["messages"]).unwrap_or_default());
    p
}

/// The usage a provider with a prefix cache reports for `prompt` after serving `served`:
/// `prompt_tokens` ≈ bytes / 4; cached tokens = the longest common prefix with a prompt served
/// before, in whole [`CACHE_BLOCK_TOKENS`] blocks; reported both DeepSeek's way
/// (`prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`) and OpenAI's
/// (`prompt_tokens_details.cached_tokens`).
pub fn prefix_cache_usage(prompt: &[u8], served: &[Vec<u8>], completion: u64) -> Value {
    let common = served
        .iter()
        .map(|s| s.iter().zip(prompt).take_while(|(a, b)| a == b).count())
        .max()
        .unwrap_or(0);
    let prompt_tokens = (prompt.len() as u64).div_ceil(4);
    let hit = ((common as u64 / 4) / CACHE_BLOCK_TOKENS * CACHE_BLOCK_TOKENS).min(prompt_tokens);
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_cache_hit_tokens": hit,
        "prompt_cache_miss_tokens": prompt_tokens - hit,
        "prompt_tokens_details": {"cached_tokens": hit},
    })
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("upstream got JSON")
    }
}

#[derive(Default)]
struct MockState {
    script: VecDeque<Behavior>,
    default: Option<Behavior>,
    received: Vec<Received>,
    chunk_delay: Duration,
    streams_finished: usize,
    streams_abandoned: usize,
    /// Prompts served under [`Behavior::PrefixCache`] (the mock provider's prompt cache).
    cached_prompts: Vec<Vec<u8>>,
}

/// Counts how a streamed answer ended: sent to the end, or dropped because the peer left.
struct StreamWatch {
    state: Arc<Mutex<MockState>>,
    finished: bool,
}

impl StreamWatch {
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for StreamWatch {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap();
        if self.finished {
            s.streams_finished += 1;
        } else {
            s.streams_abandoned += 1;
        }
    }
}

/// A mock OpenAI-compatible provider on 127.0.0.1.
#[derive(Clone)]
pub struct MockUpstream {
    pub addr: SocketAddr,
    state: Arc<Mutex<MockState>>,
}

impl MockUpstream {
    /// Start a mock that answers `"Hello from <name>"` unless scripted otherwise.
    pub async fn start(name: &str) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(MockState {
            default: Some(Behavior::Answer(format!("Hello from {name}"))),
            ..Default::default()
        }));
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(Arc::clone(&st), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        MockUpstream { addr, state }
    }

    /// Base URL as a provider's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queue behaviours for the next requests, in order.
    pub fn script(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        self.state.lock().unwrap().script.extend(behaviors);
    }

    /// What to do once the script is used up.
    pub fn set_default(&self, behavior: Behavior) {
        self.state.lock().unwrap().default = Some(behavior);
    }

    pub fn set_chunk_delay(&self, delay: Duration) {
        self.state.lock().unwrap().chunk_delay = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// (streams sent to the end, streams abandoned midway).
    pub fn stream_endings(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap();
        (s.streams_finished, s.streams_abandoned)
    }

    pub fn hits(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }
}

async fn handle(
    state: Arc<Mutex<MockState>>,
    req: http::Request<Incoming>,
) -> Result<http::Response<Body>, BoxError> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = req.headers().clone();
    let body = req.into_body().collect().await?.to_bytes();
    let (behavior, delay) = {
        let mut s = state.lock().unwrap();
        s.received.push(Received {
            path: path.clone(),
            headers,
            body: body.clone(),
        });
        let b = s
            .script
            .pop_front()
            .or_else(|| s.default.clone())
            .unwrap_or(Behavior::Answer("ok".into()));
        (b, s.chunk_delay)
    };
    let watch = Arc::clone(&state);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let stream = request["stream"].as_bool().unwrap_or(false);
    let model = request["model"].as_str().unwrap_or("unknown").to_owned();
    let include_usage = request["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    match behavior {
        Behavior::Answer(text) => Ok(answer(
            &model,
            &text,
            stream,
            include_usage,
            delay,
            None,
            watch,
        )),
        Behavior::PrefixCache(text) => {
            let prompt = prompt_bytes(&request);
            let usage = {
                let mut s = state.lock().unwrap();
                let completion = text.split(' ').count() as u64;
                let usage = prefix_cache_usage(&prompt, &s.cached_prompts, completion);
                s.cached_prompts.push(prompt);
                usage
            };
            Ok(answer_with_usage(
                &model,
                &text,
                stream,
                include_usage,
                delay,
                None,
                watch,
                Some(usage),
            ))
        }
        Behavior::Delay(d, text) => {
            tokio::time::sleep(d).await;
            Ok(answer(
                &model,
                &text,
                stream,
                include_usage,
                delay,
                None,
                watch,
            ))
        }
        Behavior::CutStream { events } => Ok(answer(
            &model,
            "one two three four five six seven eight",
            true,
            false,
            delay,
            Some(events),
            watch,
        )),
        Behavior::Status(code, body) => Ok(http::Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(full(body.to_string()))
            .unwrap()),
        Behavior::Raw {
            status,
            content_type,
            chunks,
        } => {
            let pieces = futures_util::stream::iter(
                chunks
                    .into_iter()
                    .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from(c)))),
            );
            Ok(http::Response::builder()
                .status(status)
                .header("content-type", content_type)
                .body(StreamBody::new(pieces).boxed_unsync())
                .unwrap())
        }
        Behavior::RawPaced {
            content_type,
            chunks,
            pause,
        } => {
            let pieces = futures_util::StreamExt::then(
                futures_util::stream::iter(chunks.into_iter().enumerate()),
                move |(i, c)| async move {
                    if i > 0 {
                        tokio::time::sleep(pause).await;
                    }
                    Ok::<_, BoxError>(Frame::data(Bytes::from(c)))
                },
            );
            Ok(http::Response::builder()
                .header("content-type", content_type)
                .body(StreamBody::new(pieces).boxed_unsync())
                .unwrap())
        }
        Behavior::RawCut {
            content_type,
            chunks,
        } => {
            let pieces = chunks
                .into_iter()
                .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from(c))));
            // Let what was sent reach the peer before the connection breaks.
            let cut = futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err::<Frame<Bytes>, BoxError>("cut".into())
            });
            let body = futures_util::StreamExt::chain(futures_util::stream::iter(pieces), cut);
            Ok(http::Response::builder()
                .header("content-type", content_type)
                .body(StreamBody::new(body).boxed_unsync())
                .unwrap())
        }
        Behavior::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Err("hung".into())
        }
        Behavior::Reset => Err("reset".into()),
        Behavior::Malformed => Ok(http::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(full("this is not json".into()))
            .unwrap()),
    }
}

fn full(s: String) -> Body {
    Full::new(Bytes::from(s))
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

/// OpenAI SSE events for `text`, one content chunk per word.
pub fn sse_events(model: &str, text: &str, include_usage: bool) -> Vec<String> {
    sse_events_with_usage(model, text, include_usage, None)
}

/// [`sse_events`] with this `usage` in the last chunk (when the client asked for usage).
pub fn sse_events_with_usage(
    model: &str,
    text: &str,
    include_usage: bool,
    usage: Option<Value>,
) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        })
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    let words: Vec<&str> = text.split(' ').collect();
    for (i, w) in words.iter().enumerate() {
        let piece = if i == 0 {
            w.to_string()
        } else {
            format!(" {w}")
        };
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    if include_usage {
        let usage = usage.unwrap_or_else(|| {
            json!({"prompt_tokens": 10, "completion_tokens": words.len(), "total_tokens": 10 + words.len()})
        });
        events.push(json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [], "usage": usage
        }));
    }
    let mut out: Vec<String> = events
        .into_iter()
        .map(|e| format!("data: {e}\n\n"))
        .collect();
    out.push("data: [DONE]\n\n".into());
    out
}

fn answer(
    model: &str,
    text: &str,
    stream: bool,
    include_usage: bool,
    delay: Duration,
    cut_after: Option<usize>,
    state: Arc<Mutex<MockState>>,
) -> http::Response<Body> {
    answer_with_usage(
        model,
        text,
        stream,
        include_usage,
        delay,
        cut_after,
        state,
        None,
    )
}

#[allow(clippy::too_many_arguments)]
fn answer_with_usage(
    model: &str,
    text: &str,
    stream: bool,
    include_usage: bool,
    delay: Duration,
    cut_after: Option<usize>,
    state: Arc<Mutex<MockState>>,
    usage: Option<Value>,
) -> http::Response<Body> {
    if !stream {
        let usage = usage.unwrap_or_else(
            || json!({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}),
        );
        let body = json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage
        });
        return http::Response::builder()
            .header("content-type", "application/json")
            .body(full(body.to_string()))
            .unwrap();
    }
    let events = sse_events_with_usage(model, text, include_usage, usage);
    let watch = StreamWatch {
        state,
        finished: false,
    };
    let stream = futures_util::stream::unfold(
        (events.into_iter(), 0usize, watch),
        move |(mut it, n, mut watch)| async move {
            if cut_after == Some(n) {
                // Let what was sent so far reach the peer before the connection breaks.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Some((
                    Err::<Frame<Bytes>, BoxError>("cut".into()),
                    (it, usize::MAX, watch),
                ));
            }
            if n == usize::MAX {
                return None;
            }
            if n > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let Some(next) = it.next() else {
                watch.finish();
                return None;
            };
            Some((Ok(Frame::data(Bytes::from(next))), (it, n + 1, watch)))
        },
    );
    http::Response::builder()
        .header("content-type", "text/event-stream")
        .body(StreamBody::new(stream).boxed_unsync())
        .unwrap()
}

/// A provider entry for a test config.
pub struct P<'a> {
    pub id: &'a str,
    pub base_url: String,
    pub extra: &'a str,
}

/// A config YAML with these providers and fallback chain.
pub fn config_yaml(providers: &[P<'_>], chain: &[&str], extra: &str) -> String {
    let mut y = String::from("server:\n  host: 127.0.0.1\n  port: 0\n  log_level: debug\nhealth:\n  consecutive_failures_before_skip: 3\n  recovery_check_interval_seconds: 0.3\n  max_cooldown_seconds: 2\nproviders:\n");
    for p in providers {
        y.push_str(&format!(
            "  {id}:\n    backend: openai-compat\n    base_url: \"{url}\"\n    api_key: \"sk-test-{id}\"\n    model: upstream-{id}\n    pricing: {{ input: 1.0, output: 2.0 }}\n    timeout: {{ connect_s: 1, read_s: 2, first_byte_s: 1, idle_s: 1 }}\n{extra}",
            id = p.id,
            url = p.base_url,
            extra = p.extra
        ));
    }
    y.push_str("fallback_chain:\n");
    for c in chain {
        y.push_str(&format!("  - {c}\n"));
    }
    y.push_str(extra);
    y
}

/// A config with providers `alpha` and `beta` at these mocks, in that fallback order.
pub fn alpha_beta_config(a: &MockUpstream, b: &MockUpstream) -> String {
    let provider = |id, mock: &MockUpstream| P {
        id,
        base_url: mock.base_url(),
        extra: "",
    };
    config_yaml(
        &[provider("alpha", a), provider("beta", b)],
        &["alpha", "beta"],
        "",
    )
}

/// Mock upstreams `alpha` and `beta`, and a gate using them with no routing rules.
pub async fn alpha_beta_gate() -> (Gate, MockUpstream, MockUpstream) {
    let a = MockUpstream::start("alpha").await;
    let b = MockUpstream::start("beta").await;
    let empty = tempfile::tempdir().unwrap();
    let gate = Gate::start_with_rules(&alpha_beta_config(&a, &b), Some(empty.path())).await;
    (gate, a, b)
}

/// A ClawGate server running in this process on 127.0.0.1:0.
pub struct Gate {
    pub url: String,
    pub handle: Option<clawgate::server::ServerHandle>,
    pub state: Arc<clawgate::server::AppState>,
    pub dir: tempfile::TempDir,
    pub watch: Option<clawgate::reload::WatchGuard>,
}

impl Gate {
    /// Start with this config text and the repository's stock rules (or `rules_dir`).
    pub async fn start(config_yaml: &str) -> Gate {
        Gate::start_with_rules(config_yaml, None).await
    }

    pub async fn start_with_rules(config_yaml: &str, rules_dir: Option<&Path>) -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config_yaml).unwrap();
        let mut config = clawgate::config::Config::from_str(config_yaml, &path, &|_| None)
            .expect("test config is valid");
        config.metrics.db_path = dir.path().join("clawgate.db").display().to_string();
        let stock = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let state =
            clawgate::app::build_state(config, rules_dir.unwrap_or(&stock)).expect("state builds");
        Gate::serve(state, dir, None).await
    }

    /// Start from files on disk, with the reloader and its file watcher running, as `clawgate
    /// serve` does. `dir` holds `config.yaml` and `rules/`.
    pub async fn start_watching(dir: tempfile::TempDir) -> Gate {
        let config_path = dir.path().join("config.yaml");
        let rules_dir = dir.path().join("rules");
        let env = clawgate::app::EnvSource::default();
        let overrides = clawgate::app::Overrides {
            db: Some(dir.path().join("clawgate.db").display().to_string()),
            ..Default::default()
        };
        let config =
            clawgate::app::load_config(&config_path, &env, &overrides).expect("config loads");
        let state = clawgate::app::build_state(config, &rules_dir).expect("state builds");
        let reloader =
            clawgate::reload::Reloader::new(&state, config_path, rules_dir, env, overrides);
        let watch = reloader.watch().expect("watcher starts");
        Gate::serve(state, dir, Some(watch)).await
    }

    /// Serve `state` on 127.0.0.1:0.
    async fn serve(
        state: Arc<clawgate::server::AppState>,
        dir: tempfile::TempDir,
        watch: Option<clawgate::reload::WatchGuard>,
    ) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle =
            clawgate::server::spawn(Arc::clone(&state), listener, Duration::from_secs(5)).unwrap();
        Gate {
            url: format!("http://{}", handle.addr),
            handle: Some(handle),
            state,
            dir,
            watch,
        }
    }

    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }

    /// POST a chat completion body to /v1/chat/completions.
    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        Gate::client()
            .post(format!("{}/v1/chat/completions", self.url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POST raw bytes as a JSON chat completion body (for bodies `chat` cannot express:
    /// malformed JSON, a recorded request byte for byte).
    pub async fn chat_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        Gate::client()
            .post(format!("{}/v1/chat/completions", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        Gate::client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn get_text(&self, path: &str) -> String {
        Gate::client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The rows of `/api/recent` once there are at least `n` (the metrics writer commits about
    /// every 100 ms); panics after 10 s.
    pub async fn recent(&self, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.get_json("/api/recent?limit=100").await;
            let rows = v["requests"].as_array().cloned().unwrap_or_default();
            if rows.len() >= n {
                return rows;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {n} requests recorded",
                rows.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }
}

/// A small chat request.
pub fn chat_body(model: &str, text: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}], "stream": stream})
}

/// Concatenate the content deltas of an OpenAI SSE body; panics on malformed events.
pub fn sse_text(body: &str) -> (String, bool) {
    let mut text = String::new();
    let mut done = false;
    for event in body.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let data = event
            .trim()
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("not an SSE data event: {event:?}"));
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let v: Value =
            serde_json::from_str(data).unwrap_or_else(|e| panic!("bad event {data}: {e}"));
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    (text, done)
}

/// A fixture file's bytes.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The real OpenClaw requests shipped as fixtures.
pub fn openclaw_body(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openclaw")
        .join(format!("{name}.json"));
    let v: Value = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    v.get("body").cloned().unwrap_or(v)
}

/// The stock providers as a config with only OpenRouter's key missing would define them.
pub fn stock_providers() -> clawgate::rules::Providers {
    clawgate::rules::Providers {
        defined: [
            "deepseek-chat",
            "deepseek-reasoner",
            "gemini-flash-lite",
            "gemini-flash",
            "openrouter-fallback",
        ]
        .map(String::from)
        .to_vec(),
        loaded: [
            "deepseek-chat",
            "deepseek-reasoner",
            "gemini-flash-lite",
            "gemini-flash",
        ]
        .map(String::from)
        .to_vec(),
        ..clawgate::rules::Providers::default()
    }
}

/// A header map from name/value pairs.
pub fn header_map(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (k, v) in pairs {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    map
}
