//! Upstream providers: one [`Provider`] per loaded config entry (its HTTP client, health and
//! the [`Protocol`] its backend speaks), the [`ProviderSet`] a request sees, and the
//! dispatcher that tries them in order.
//!
//! A backend is a folder speaking one upstream API (`openai_compat`, passed through;
//! `gemini`; `anthropic`), with its `request`, `response` and `stream` sides and its tests;
//! [`protocol_for`] maps the config's backend to it.

pub mod anthropic;
pub mod capable;
pub mod dispatch;
pub mod embeddings;
pub mod gemini;
pub mod health;
pub mod native;
pub mod openai_compat;
pub mod protocol;
pub mod relay;
pub mod translate;
pub mod transport;

use std::collections::HashMap;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::Uri;

use crate::config::{Backend, Config, ProviderConfig};
use crate::request::{ChatRequest, InvalidRequest};
use crate::router::Decision;
use health::{CircuitSettings, Health};
use protocol::{Protocol, JSON};

/// A loaded upstream provider.
pub struct Provider {
    pub id: Arc<str>,
    pub config: ProviderConfig,
    pub health: Health,
    transport: transport::Transport,
    /// The API it speaks.
    protocol: &'static dyn Protocol,
    /// Where requests for a whole answer and for a stream go, parsed once.
    urls: [Uri; 2],
    /// JSON content type, credentials, the Host header and the config's headers, built once.
    headers: HeaderMap,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the config: it holds the key.
        f.debug_struct("Provider")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A provider could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("provider `{id}`: {message}")]
pub struct ProviderError {
    pub id: String,
    pub message: String,
}

/// The Host header of an `http://` URL (`host`, or `host:port` when the port is not 80);
/// `None` for other schemes.
fn http1_host(url: &http::Uri) -> Option<HeaderValue> {
    if url.scheme_str() != Some("http") {
        return None;
    }
    let host = url.host()?;
    let value = match url.port_u16() {
        Some(port) if port != 80 => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::from_str(&value).ok()
}

/// The API a backend speaks.
pub fn protocol_for(backend: Backend) -> &'static dyn Protocol {
    match backend {
        Backend::OpenAiCompat => &openai_compat::OpenAiCompat,
        Backend::GoogleGenai => &gemini::Gemini,
        Backend::Anthropic => &anthropic::Anthropic,
    }
}

/// An upstream request, ready to send (POST).
#[derive(Debug)]
pub struct UpstreamRequest<'p> {
    pub url: &'p Uri,
    /// Headers to send, secrets included (never logged).
    pub headers: std::borrow::Cow<'p, HeaderMap>,
    pub body: Vec<u8>,
}

impl Provider {
    /// Build a provider from its config: its own connection pool, and its URLs and headers
    /// prepared once for every request.
    pub fn new(config: ProviderConfig, circuit: CircuitSettings) -> Result<Self, ProviderError> {
        let err = |message: String| ProviderError {
            id: config.id.clone(),
            message,
        };
        let transport =
            transport::Transport::new(&config.base_url, config.timeouts.connect).map_err(err)?;
        let protocol = protocol_for(config.backend);
        let url = |stream| {
            transport::parse_uri(&protocol.url(&config, stream))
                .map_err(|e| err(format!("base_url is not a valid URL: {e}")))
        };
        let urls = [url(false)?, url(true)?];
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, JSON);
        for (name, value, sensitive) in protocol.headers(&config) {
            let mut v = HeaderValue::from_str(&value)
                .map_err(|_| err("api_key contains characters not allowed in a header".into()))?;
            v.set_sensitive(sensitive);
            headers.insert(name, v);
        }
        // Plain HTTP is always HTTP/1.1 here, which needs a Host header: built once rather
        // than by the client for every request. (Over TLS the protocol is only known once
        // connected, and HTTP/2 carries the host differently.)
        if let Some(host) = http1_host(&urls[0]) {
            headers.insert(HOST, host);
        }
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| err(format!("invalid header name `{name}`")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| err(format!("invalid value for header `{name}`")))?;
            headers.insert(name, value);
        }
        Ok(Provider {
            id: Arc::from(config.id.as_str()),
            health: Health::new(circuit),
            transport,
            protocol,
            urls,
            headers,
            config,
        })
    }

    /// The upstream request for `req`; an error is the client's (the request cannot be said
    /// in this provider's API).
    pub fn request(&self, req: &ChatRequest<'_>) -> Result<UpstreamRequest<'_>, InvalidRequest> {
        Ok(UpstreamRequest {
            url: &self.urls[usize::from(req.stream)],
            headers: std::borrow::Cow::Borrowed(&self.headers),
            body: self.protocol.body(&self.config, req)?,
        })
    }

    /// Remove this provider's secrets from a message that may have echoed them.
    pub fn redact(&self, text: &str) -> String {
        match &self.config.api_key {
            Some(key) if key.len() >= 4 && text.contains(key.as_str()) => {
                text.replace(key.as_str(), "[redacted]")
            }
            _ => text.to_owned(),
        }
    }
}

/// The providers a request can use, in config order, and the loaded part of the fallback chain.
#[derive(Debug, Default)]
pub struct ProviderSet {
    list: Vec<Arc<Provider>>,
    index: HashMap<Arc<str>, usize>,
    fallback_chain: Vec<Arc<Provider>>,
}

impl ProviderSet {
    /// Build the loaded providers of `config`. A provider whose config is unchanged in
    /// `previous` is reused as is, keeping its health, circuit and connection pool.
    pub fn build(config: &Config, previous: Option<&ProviderSet>) -> Result<Self, ProviderError> {
        let circuit = CircuitSettings::from(&config.health);
        let mut list = Vec::new();
        let mut index = HashMap::new();
        for pc in config.loaded_providers() {
            let provider = match previous.and_then(|p| p.get(&pc.id)) {
                Some(old) if old.config == *pc => {
                    old.health.set_settings(circuit);
                    Arc::clone(old)
                }
                _ => Arc::new(Provider::new(pc.clone(), circuit)?),
            };
            index.insert(Arc::clone(&provider.id), list.len());
            list.push(provider);
        }
        let fallback_chain = config
            .fallback_chain
            .iter()
            .filter_map(|id| index.get(id.as_str()).map(|&i| Arc::clone(&list[i])))
            .collect();
        Ok(ProviderSet {
            list,
            index,
            fallback_chain,
        })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.index.get(id).map(|&i| &self.list[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The ids of the loaded part of the fallback chain, in order.
    pub fn fallback_ids(&self) -> Vec<&str> {
        self.fallback_chain.iter().map(|p| &*p.id).collect()
    }

    /// The providers to try for a decision: its targets, then the fallback chain, loaded
    /// providers only, each once.
    pub fn chain(&self, decision: &Decision) -> Vec<Arc<Provider>> {
        let fallback = self.fallback_chain.iter().map(|p| &*p.id);
        decision.chain_with(fallback, |id| self.get(id).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::http1_host;

    #[test]
    fn plain_http_upstreams_get_the_host_header_a_client_would_send() {
        for (url, host) in [
            (
                "http://127.0.0.1:11434/v1/chat/completions",
                Some("127.0.0.1:11434"),
            ),
            (
                "http://ollama.local/v1/chat/completions",
                Some("ollama.local"),
            ),
            (
                "http://ollama.local:80/v1/chat/completions",
                Some("ollama.local"),
            ),
            ("http://[::1]:8000/v1/chat/completions", Some("[::1]:8000")),
            // Over TLS the protocol (and so the header) is only known once connected.
            ("https://api.deepseek.com/chat/completions", None),
        ] {
            let got = http1_host(&url.parse().unwrap());
            assert_eq!(got.as_ref().map(|v| v.to_str().unwrap()), host, "{url}");
        }
    }
}
