//! Upstream providers: one [`Provider`] per loaded config entry (its HTTP client, health and
//! backend), the [`ProviderSet`] a request sees, and the dispatcher that tries them in order.

pub mod anthropic;
pub mod dispatch;
pub mod gemini;
pub mod health;
pub mod sse;
pub mod translate;
pub mod transport;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};

use crate::config::{Backend, Config, ProviderConfig};
use crate::router::Decision;
use health::{CircuitSettings, Health};
use translate::Translate;

/// A loaded upstream provider.
pub struct Provider {
    pub id: Arc<str>,
    pub config: ProviderConfig,
    pub health: Health,
    transport: transport::Transport,
    /// `{base_url}/chat/completions`, parsed once (passed through backends only).
    chat_url: http::Uri,
    /// Authentication and extra headers, built once.
    headers: HeaderMap,
    /// Request/response translation for backends that do not speak OpenAI.
    translator: Option<Arc<dyn Translate>>,
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

impl Provider {
    /// Build a provider from its config: its own connection pool and prepared headers.
    pub fn new(config: ProviderConfig, circuit: CircuitSettings) -> Result<Self, ProviderError> {
        let err = |message: String| ProviderError {
            id: config.id.clone(),
            message,
        };
        let transport =
            transport::Transport::new(&config.base_url, config.timeouts.connect).map_err(err)?;
        let translator = translator_for(config.backend);
        // Translating backends build their own headers per request (translate::upstream_headers).
        let mut headers = HeaderMap::new();
        if translator.is_none() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let Some(key) = &config.api_key {
                let mut v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                    err("api_key contains characters not allowed in a header".into())
                })?;
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
        }
        let chat_url = transport::parse_uri(&format!("{}/chat/completions", config.base_url))
            .map_err(|e| err(format!("base_url is not a valid URL: {e}")))?;
        if translator.is_none() {
            // Plain HTTP is always HTTP/1.1 here, which needs a Host header: built once rather
            // than by the client for every request. (Over TLS the protocol is only known once
            // connected, and HTTP/2 carries the host differently.)
            if let Some(host) = http1_host(&chat_url) {
                headers.insert(HOST, host);
            }
        }
        for (name, value) in config.headers.iter().filter(|_| translator.is_none()) {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| err(format!("invalid header name `{name}`")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| err(format!("invalid value for header `{name}`")))?;
            headers.insert(name, value);
        }
        Ok(Provider {
            id: Arc::from(config.id.as_str()),
            chat_url,
            health: Health::new(circuit),
            transport,
            headers,
            translator,
            config,
        })
    }

    /// Whether requests are translated for this backend (not forwarded as OpenAI JSON).
    pub fn translates(&self) -> bool {
        self.translator.is_some()
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

/// The translator for a backend, if it needs one (OpenAI-compatible backends do not).
fn translator_for(backend: Backend) -> Option<Arc<dyn Translate>> {
    match backend {
        Backend::OpenAiCompat => None,
        Backend::GoogleGenai => Some(Arc::new(gemini::Gemini)),
        Backend::Anthropic => Some(Arc::new(anthropic::Anthropic)),
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

    /// The providers to try for a decision: its targets, then the fallback chain, loaded
    /// providers only, each once.
    pub fn chain(&self, decision: &Decision) -> Vec<Arc<Provider>> {
        let mut chain: Vec<Arc<Provider>> =
            Vec::with_capacity(decision.targets.len() + self.fallback_chain.len());
        let targets = decision.targets.iter().filter_map(|id| self.get(id));
        for p in targets.chain(self.fallback_chain.iter()) {
            if !chain.iter().any(|c| Arc::ptr_eq(c, p)) {
                chain.push(Arc::clone(p));
            }
        }
        chain
    }

    /// Whether any provider's circuit lets requests through now.
    pub fn any_available(&self, now: Instant) -> bool {
        self.list.iter().any(|p| p.health.is_available(now))
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
