//! The HTTP client that carries requests to a provider.
//!
//! Requests go out through hyper's pooled client (HTTP/1.1, or HTTP/2 where TLS negotiates it),
//! with one pool per serving thread: a serving thread's upstream connections are driven by
//! that thread, so a proxied request never waits for another thread to be scheduled. When the
//! environment names a proxy for the provider's scheme (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, with `NO_PROXY` exceptions), requests go through `reqwest`, which implements
//! those variables.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, USER_AGENT};
use http::{Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A provider's answer body, whichever client carried it.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;

const IDLE_POOL_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per provider host, per serving thread (a burst's connections beyond
/// these are closed when it ends rather than held, with their buffers, for 90 s).
const MAX_IDLE_PER_HOST: usize = 64;
/// Upstream reads go into a buffer of this size: an SSE chunk is a few hundred bytes, and a
/// thousand open streams then hold 4 KB each here rather than 8 KB or more.
const READ_BUFFER: usize = 4096;
const AGENT: HeaderValue =
    HeaderValue::from_static(concat!("clawgate/", env!("CARGO_PKG_VERSION")));

type Pool = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How requests reach one provider.
pub enum Transport {
    /// hyper's pooled client, one pool per serving thread.
    Direct {
        connector: HttpsConnector<HttpConnector>,
        pools: Box<[OnceLock<Pool>]>,
    },
    /// Through the proxy the environment names.
    Proxied(reqwest::Client),
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum SendError {
    /// The connection was not established within the connect timeout.
    ConnectTimeout,
    /// No connection: refused, unresolvable, TLS failure (the root cause).
    Connect(String),
    /// The connection broke before an answer's head arrived (the root cause).
    Other(String),
}

impl SendError {
    fn new(e: &(dyn std::error::Error + 'static), connect: bool, timed_out: bool) -> SendError {
        if timed_out {
            SendError::ConnectTimeout
        } else if connect {
            SendError::Connect(root_cause(e))
        } else {
            SendError::Other(root_cause(e))
        }
    }
}

impl Transport {
    /// A transport for requests to `base_url`.
    pub fn new(base_url: &str, connect_timeout: Duration) -> Result<Transport, String> {
        if proxy_applies(base_url) {
            let client = reqwest::Client::builder()
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .pool_idle_timeout(IDLE_POOL_TIMEOUT)
                .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
                .build()
                .map_err(|e| format!("cannot build HTTP client: {e}"))?;
            return Ok(Transport::Proxied(client));
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let pools = (0..MAX_SLOTS).map(|_| OnceLock::new()).collect();
        Ok(Transport::Direct { connector, pools })
    }

    /// POST `body` to `uri` and wait for the answer's head.
    pub async fn post(
        &self,
        uri: Uri,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let mut req = Request::post(uri)
            .body(Bytes::from(body))
            .map_err(|e| SendError::Other(e.to_string()))?;
        let h = req.headers_mut();
        h.clone_from(headers);
        h.entry(USER_AGENT).or_insert(AGENT);
        match self {
            Transport::Direct { connector, pools } => {
                let pool = crate::slot::pick(pools).get_or_init(|| {
                    Client::builder(TokioExecutor::new())
                        .pool_timer(TokioTimer::new())
                        .pool_idle_timeout(IDLE_POOL_TIMEOUT)
                        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
                        .http1_read_buf_exact_size(READ_BUFFER)
                        .build(connector.clone())
                });
                match pool.request(req.map(Full::new)).await {
                    Ok(resp) => Ok(resp.map(|b| b.map_err(BoxError::from).boxed())),
                    Err(e) => Err(SendError::new(
                        &e,
                        e.is_connect(),
                        e.is_connect() && is_timeout(&e),
                    )),
                }
            }
            Transport::Proxied(client) => {
                let req = reqwest::Request::try_from(req.map(reqwest::Body::from))
                    .map_err(|e| SendError::Other(root_cause(&e.without_url())))?;
                match client.execute(req).await {
                    Ok(resp) => Ok(Response::from(resp).map(|b| b.map_err(BoxError::from).boxed())),
                    Err(e) => {
                        let e = e.without_url();
                        Err(SendError::new(&e, e.is_connect(), e.is_timeout()))
                    }
                }
            }
        }
    }
}

/// `url` as a request URI, normalised as a browser would (punycode hosts, percent-encoded
/// paths), so that any URL the config accepts can be requested.
pub fn parse_uri(url: &str) -> Result<Uri, String> {
    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    url.as_str().parse::<Uri>().map_err(|e| e.to_string())
}

/// The innermost error of a chain: "Connection refused (os error 111)" rather than "client
/// error (Connect)".
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    chain(e).last().unwrap_or(e).to_string()
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    chain(e).any(|err| {
        err.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

/// `e` and the errors beneath it, outermost first.
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |err| err.source())
}

/// Whether the environment routes requests to `base_url` through a proxy.
fn proxy_applies(base_url: &str) -> bool {
    let Ok(url) = url::Url::parse(base_url) else {
        return false;
    };
    let var = |name: &str| {
        std::env::var(name)
            .or_else(|_| std::env::var(name.to_ascii_lowercase()))
            .ok()
            .filter(|v| !v.trim().is_empty())
    };
    let named = match url.scheme() {
        "https" => var("HTTPS_PROXY"),
        _ => var("HTTP_PROXY"),
    }
    .or_else(|| var("ALL_PROXY"));
    if named.is_none() {
        return false;
    }
    let host = url.host_str().unwrap_or("");
    let excluded = var("NO_PROXY").is_some_and(|list| {
        list.split(',').map(str::trim).any(|entry| {
            entry == "*"
                || (!entry.is_empty()
                    && (host == entry.trim_start_matches('.')
                        || host.ends_with(&format!(".{}", entry.trim_start_matches('.')))))
        })
    });
    !excluded
}

/// Pools per transport: one per serving thread up to this many (a pool is built on first
/// use, so unused slots cost a few bytes); threads beyond it share.
const MAX_SLOTS: usize = 64;

/// Whole seconds without a fraction, else one decimal.
pub(super) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_url_the_config_accepts_can_be_requested() {
        let uri = parse_uri("https://bücher.example/v1/a b/chat/completions?key=k").unwrap();
        assert_eq!(
            uri.to_string(),
            "https://xn--bcher-kva.example/v1/a%20b/chat/completions?key=k"
        );
        assert!(parse_uri("not a url").is_err());
    }

    #[test]
    fn a_timed_out_connect_is_told_apart_from_a_refused_one() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        assert!(is_timeout(&io));
        assert_eq!(root_cause(&io), "timed out");
        let other = std::io::Error::other("refused");
        assert!(!is_timeout(&other));
    }
}
