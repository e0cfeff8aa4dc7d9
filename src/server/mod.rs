//! The HTTP surface: a hyper connection loop (TCP_NODELAY, a serving thread per core, bounded
//! graceful shutdown) that answers the client APIs itself ([`crate::ingress::api_for_path`]:
//! streamed bodies pass straight through) and hands every other path to warp's routes (models,
//! health, stats, dashboard, admin).

pub mod chat;
pub mod embeddings;
pub mod gemini;
mod info;
pub mod messages;
mod observe;
pub mod responses;
mod trim;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tower_service::Service;
use warp::Filter;

use crate::ingress::error::ApiError;
use crate::ingress::{self, Api};
pub use crate::state::{AppState, ConfigStatus, RulesStatus, Snapshot};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: whole, or a stream sent chunk by chunk as it arrives.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// A whole body.
pub fn full(body: Bytes) -> ResponseBody {
    http_body_util::Full::new(body)
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

/// A streamed body, each item sent as it comes, without copying.
pub fn streamed(
    stream: impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> ResponseBody {
    let frames = stream
        .map_ok(Frame::data)
        .map_err(|e| Box::new(e) as BoxError);
    StreamBody::new(frames).boxed_unsync()
}

/// How long a client may take to send its request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// The remote address of a connection, available to filters as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// All routes.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone + Send + Sync + 'static
{
    let with_state = {
        let state = Arc::clone(&state);
        warp::any().map(move || Arc::clone(&state))
    };

    let models_path = warp::path!("v1" / "models")
        .or(warp::path!("models"))
        .unify();
    let models = models_path
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::header::headers_cloned())
        .map(|state: Arc<AppState>, headers: http::HeaderMap| {
            // Anthropic's SDKs and Claude Code send `anthropic-version`: they get its shapes.
            let anthropic = ingress::anthropic::is_anthropic(&headers);
            match chat::authorize(&state, &headers) {
                Ok(()) if anthropic => info::anthropic_models(&state),
                Ok(()) => info::models(&state),
                Err(e) if anthropic => {
                    let resp = ingress::anthropic::error::from_api_error(&e);
                    warp::reply::Reply::into_response(resp)
                }
                Err(e) => warp::reply::Reply::into_response(e.into_response()),
            }
        });

    let admin_reload = warp::path!("admin" / "reload")
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<PeerAddr>())
        .then(
            |state: Arc<AppState>, headers: http::HeaderMap, peer: Option<PeerAddr>| async move {
                admin_reload(state, headers, peer).await
            },
        );

    let stats = warp::path!("api" / "stats")
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .then(|state: Arc<AppState>, query: String| info::stats(state, query));
    let recent = warp::path!("api" / "recent")
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .then(|state: Arc<AppState>, query: String| info::recent(state, query));
    let prometheus = warp::path!("metrics")
        .and(warp::get())
        .and(with_state.clone())
        .map(|state: Arc<AppState>| info::prometheus(&state));
    let dashboard = warp::path!("dashboard")
        .and(warp::get())
        .map(info::dashboard);

    // A stored OpenAI response: read (GET) or forgotten (DELETE).
    let stored_response = warp::path!("v1" / "responses" / String)
        .and(
            warp::get()
                .map(|| false)
                .or(warp::delete().map(|| true))
                .unify(),
        )
        .and(with_state.clone())
        .and(warp::header::headers_cloned())
        .map(
            |id: String, delete: bool, state: Arc<AppState>, headers: http::HeaderMap| {
                let resp = if delete {
                    responses::delete(&state, &headers, &id)
                } else {
                    responses::get(&state, &headers, &id)
                };
                warp::reply::Reply::into_response(resp)
            },
        );

    let health = warp::path!("health")
        .and(warp::get())
        .and(with_state)
        .map(|state: Arc<AppState>| info::health(&state));

    models
        .or(health)
        .unify()
        .or(admin_reload)
        .unify()
        .or(stats)
        .unify()
        .or(recent)
        .unify()
        .or(prometheus)
        .unify()
        .or(dashboard)
        .unify()
        .or(stored_response)
        .unify()
        .recover(|rejection: warp::Rejection| async move {
            Ok::<_, Infallible>(rejection_response(&rejection))
        })
        .unify()
}

/// `POST /admin/reload`: from loopback, or from anywhere with `server.admin_key` when one is set.
async fn admin_reload(
    state: Arc<AppState>,
    headers: http::HeaderMap,
    peer: Option<PeerAddr>,
) -> warp::reply::Response {
    use warp::Reply;
    let admin_key = state.snapshot.load().config.server.admin_key.clone();
    let allowed = if admin_key.is_empty() {
        peer.is_some_and(|p| p.0.ip().is_loopback())
    } else {
        headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|k| chat::constant_time_eq(k.trim().as_bytes(), admin_key.as_bytes()))
    };
    if !allowed {
        let e = ApiError::new(
            http::StatusCode::FORBIDDEN,
            "invalid_request_error",
            "forbidden",
            "reload is allowed from loopback only, or with server.admin_key as a bearer token",
        );
        return e.into_response().into_response();
    }
    let Some(reloader) = state.reloader.get().cloned() else {
        let e = ApiError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "reload_unavailable",
            "this server was started without a reloader",
        );
        return e.into_response().into_response();
    };
    let report = crate::state::Reload::reload(reloader, true).await;
    let status = if report.rules_error.is_some() || report.config_error.is_some() {
        http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        http::StatusCode::OK
    };
    warp::reply::with_status(warp::reply::json(&report), status).into_response()
}

/// A request with the wrong method for its path.
fn method_not_allowed(api: Api) -> ApiError {
    ApiError::new(
        http::StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
        format!(
            "method not allowed for this path ({}; /v1/models and /health take GET)",
            api.method_hint()
        ),
    )
}

fn rejection_response(rejection: &warp::Rejection) -> warp::reply::Response {
    use warp::Reply;
    let e = if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        method_not_allowed(Api::OpenAiChat)
    } else if rejection.is_not_found() {
        ApiError::not_found("this path")
    } else {
        ApiError::invalid("bad_request", format!("{rejection:?}"))
    };
    e.into_response().into_response()
}

/// A running server.
pub struct ServerHandle {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// Stop accepting, let in-flight requests finish (up to the grace period), and wait.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Serve on `listener` in a background task until [`ServerHandle::shutdown`].
pub fn spawn(
    state: Arc<AppState>,
    listener: TcpListener,
    grace: Duration,
) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(serve(state, listener, grace, async move {
        let _ = rx.await;
    }));
    Ok(ServerHandle {
        addr,
        shutdown: Some(tx),
        task,
    })
}

/// Serve on `listener` from this thread alone until `signal` completes, then drain for at
/// most `grace`.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    grace: Duration,
    signal: impl Future<Output = ()>,
) {
    // With one thread nothing is spawned, so nothing can fail.
    let _ = serve_threads(state, listener, 1, grace, signal).await;
}

/// Serve on `listener` with `threads` serving threads until `signal` completes, then drain
/// each for at most `grace`.
///
/// Each thread runs its own single-threaded runtime. This one accepts and hands each new
/// connection to the thread with the fewest open connections (itself included); from then
/// on the connection, its requests and their upstream connections stay on that thread, so a
/// request never waits for another thread to be woken and scheduled (on a small machine that
/// wait was most of the latency a proxy adds). This thread also keeps running whatever else
/// was spawned on its runtime (reloads, signals).
pub async fn serve_threads(
    state: Arc<AppState>,
    listener: TcpListener,
    threads: usize,
    grace: Duration,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let activity = Arc::new(trim::Activity::default());
    let trimmer = trim::spawn(Arc::clone(&activity));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let open: Arc<[AtomicUsize]> = (0..threads.max(1)).map(|_| AtomicUsize::new(0)).collect();
    let mut handoffs = Vec::new();
    let mut workers = Vec::new();
    for index in 1..threads.max(1) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr, Open)>();
        let (state, activity) = (Arc::clone(&state), Arc::clone(&activity));
        let mut stopped = stopped.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let worker = std::thread::Builder::new()
            .name(format!("clawgate-serve-{index}"))
            .spawn(move || {
                crate::slot::set(index);
                runtime.block_on(async move {
                    let shard = shard(state, activity);
                    loop {
                        let (stream, peer, open) = tokio::select! {
                            conn = rx.recv() => match conn {
                                Some(c) => c,
                                None => break,
                            },
                            _ = stopped.wait_for(|s| *s) => break,
                        };
                        match TcpStream::from_std(stream) {
                            Ok(stream) => shard.serve_connection(stream, peer, open),
                            Err(e) => tracing::warn!(
                                "serving thread {index} cannot take a connection: {e}"
                            ),
                        }
                    }
                    shard.drain(grace).await;
                });
            })?;
        handoffs.push(tx);
        workers.push(worker);
    }
    crate::slot::set(0);
    let shard = shard(state, activity);
    let mut signal = std::pin::pin!(signal);
    let mut next = 0;
    while let Some((stream, peer)) = accept(&listener, &mut signal).await {
        // The thread with the fewest open connections; ties go round-robin.
        next = (next + 1) % open.len();
        let index = (0..open.len())
            .map(|i| (i + next) % open.len())
            .min_by_key(|&i| open[i].load(Ordering::Relaxed))
            .unwrap_or(0);
        let counted = Open::new(&open, index);
        if index == 0 {
            shard.serve_connection(stream, peer, counted);
            continue;
        }
        // A connection that cannot be handed over is dropped with its count.
        let handed = stream.into_std().map_err(|e| e.to_string()).and_then(|s| {
            handoffs[index - 1]
                .send((s, peer, counted))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = handed {
            tracing::warn!("cannot hand a connection to serving thread {index}: {e}");
        }
    }
    drop(listener);
    tracing::info!(
        grace_s = grace.as_secs_f64(),
        "shutting down: waiting for in-flight requests"
    );
    let _ = stop.send(true);
    shard.drain(grace).await;
    trimmer.abort();
    let _ = tokio::task::spawn_blocking(move || {
        for worker in workers {
            let _ = worker.join();
        }
    })
    .await;
    Ok(())
}

/// The next connection, or `None` once `signal` completes.
async fn accept(
    listener: &TcpListener,
    signal: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => return Some(pair),
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::error!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = signal.as_mut() => return None,
        }
    }
}

/// One open connection counted against its serving thread, until this is dropped.
struct Open {
    counts: Arc<[AtomicUsize]>,
    index: usize,
}

impl Open {
    fn new(counts: &Arc<[AtomicUsize]>, index: usize) -> Open {
        counts[index].fetch_add(1, Ordering::Relaxed);
        Open {
            counts: Arc::clone(counts),
            index,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.counts[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one serving thread needs to serve connections.
struct Shard<F> {
    state: Arc<AppState>,
    filter: F,
    graceful: hyper_util::server::graceful::GracefulShutdown,
    activity: Arc<trim::Activity>,
}

fn shard(state: Arc<AppState>, activity: Arc<trim::Activity>) -> Shard<impl RouteFilter> {
    Shard {
        filter: routes(Arc::clone(&state)),
        state,
        graceful: hyper_util::server::graceful::GracefulShutdown::new(),
        activity,
    }
}

/// The API's routes, as [`routes`] builds them.
trait RouteFilter:
    Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone + Send + Sync + 'static
{
}

impl<T> RouteFilter for T where
    T: Filter<Extract = (warp::reply::Response,), Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static
{
}

impl<F: RouteFilter> Shard<F> {
    /// Serve one connection on this thread; it stays counted in `open` until it closes.
    fn serve_connection(&self, stream: TcpStream, peer: SocketAddr, open: Open) {
        let _ = stream.set_nodelay(true);
        let warp_service = warp::service(self.filter.clone());
        let state = Arc::clone(&self.state);
        let activity = Arc::clone(&self.activity);
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            let mut warp_service = warp_service.clone();
            let state = Arc::clone(&state);
            activity.note();
            // Both handlers are boxed: hyper keeps a slot the size of this future for each
            // connection's whole life, so inline they would cost every open connection (a
            // thousand streams, or idle keep-alive clients) several KB each, where a box costs
            // only while a request is being answered.
            async move {
                // The hot path skips warp's filter chain (and its copy of the headers).
                if let Some(api) = ingress::api_for_path(req.uri().path()) {
                    if req.method() != http::Method::POST {
                        return Ok(error_response(api, &method_not_allowed(api)));
                    }
                    return Ok::<_, Infallible>(Box::pin(client_api(state, api, req)).await);
                }
                req.extensions_mut().insert(PeerAddr(peer));
                let Ok(resp) = Box::pin(warp_service.call(req)).await;
                Ok::<_, Infallible>(boxed_body(resp))
            }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .keep_alive(true);
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = self.graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection from {peer} ended: {e}");
            }
            drop(open);
        });
    }

    /// Wait for this thread's connections to finish, for at most `grace`.
    async fn drain(self, grace: Duration) {
        if tokio::time::timeout(grace, self.graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("grace period over; closing the remaining connections");
        }
    }
}

/// A client API request: authorize, read the body (bounded in size and time), answer.
async fn client_api(
    state: Arc<AppState>,
    api: Api,
    req: http::Request<Incoming>,
) -> http::Response<ResponseBody> {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let authorized = match api {
        Api::Gemini => gemini::authorize(&state, &parts.uri, &headers),
        _ => chat::authorize(&state, &headers),
    };
    if let Err(e) = authorized {
        return error_response(api, &e);
    }
    let frames = http_body_util::BodyStream::new(body)
        .try_filter_map(|f| futures_util::future::ready(Ok(f.into_data().ok())));
    let limit = state.snapshot.load().config.server.max_body_bytes();
    let body =
        match tokio::time::timeout(BODY_TIMEOUT, chat::read_body(&headers, frames, limit)).await {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => return rejected(&state, api, &e),
            Err(_) => return rejected(&state, api, &body_timeout()),
        };
    match api {
        // Boxed: inline, the handler's state would sit next to the body reader's in this
        // future (about 8 KB together, per request in flight); boxed, each takes its turn.
        Api::OpenAiChat => Box::pin(chat::handle(state, headers, body)).await,
        Api::AnthropicMessages => Box::pin(messages::handle(state, headers, body)).await,
        Api::AnthropicCountTokens => messages::count_tokens(headers, body).await,
        Api::OpenAiResponses => Box::pin(responses::handle(state, headers, body)).await,
        Api::Gemini => Box::pin(gemini::handle(state, parts.uri, headers, body)).await,
        Api::Embeddings => Box::pin(embeddings::handle(state, headers, body)).await,
    }
}

/// ClawGate's own error in `api`'s shape.
fn error_response(api: Api, e: &ApiError) -> http::Response<ResponseBody> {
    match api {
        Api::OpenAiChat | Api::OpenAiResponses | Api::Embeddings => {
            e.clone().into_response().map(full)
        }
        Api::AnthropicMessages | Api::AnthropicCountTokens => messages::error_response(e),
        Api::Gemini => gemini::error_response(e),
    }
}

/// A body that could not be read (too large, too slow). Messages requests are recorded as
/// rejected.
fn rejected(state: &AppState, api: Api, e: &ApiError) -> http::Response<ResponseBody> {
    match api {
        Api::AnthropicMessages => messages::reject(state, e),
        Api::OpenAiResponses => responses::reject(state, e),
        Api::Gemini => gemini::reject(state, e),
        _ => error_response(api, e),
    }
}

fn body_timeout() -> ApiError {
    ApiError::new(
        http::StatusCode::REQUEST_TIMEOUT,
        "invalid_request_error",
        "request_timeout",
        format!(
            "the request body did not arrive within {}s",
            BODY_TIMEOUT.as_secs()
        ),
    )
}

/// warp's response with its body boxed.
fn boxed_body(resp: warp::reply::Response) -> http::Response<ResponseBody> {
    resp.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync())
}
