//! Helpers for the translators' unit tests: a provider config, and what a provider built from
//! it sends upstream. (Stream decoders are driven by the conformance suite, tests/backends.rs.)

use std::path::Path;

use http::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::config::{Backend, Config, HealthConfig, ProviderConfig};
use crate::providers::health::CircuitSettings;
use crate::providers::protocol::UpstreamFailure;
use crate::providers::translate::ReadResponse;
use crate::providers::Provider;
use crate::request::{ChatRequest, InvalidRequest};

/// A provider as `config.yaml` would declare it (built through the real loader, so the test
/// keeps up with new config fields).
pub fn provider(backend: Backend, model: &str, max_tokens: Option<u64>) -> ProviderConfig {
    let max = max_tokens
        .map(|m| format!("\n    max_tokens: {m}"))
        .unwrap_or_default();
    let yaml = format!(
        "providers:\n  p:\n    backend: {}\n    base_url: http://127.0.0.1:9/v1beta\n    api_key: sk-test-secret\n    model: {model}{max}\n    headers:\n      x-extra: \"1\"\nfallback_chain: [p]\n",
        backend.as_str()
    );
    let config =
        Config::from_str(&yaml, Path::new("test.yaml"), &|_| None).expect("test config loads");
    config.providers.into_iter().next().expect("one provider")
}

/// An upstream request as a provider sends it.
#[derive(Debug)]
pub struct Sent {
    pub url: String,
    /// Every header, secrets included.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

impl Sent {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        let (_, v) = self.headers.iter().find(|(n, _)| n == name)?;
        Some(v.to_str().unwrap().to_owned())
    }
}

/// What a provider with `config` sends upstream for the client's request `body`, and that
/// body as JSON.
pub fn translate_with(
    config: &ProviderConfig,
    body: &[u8],
) -> Result<(Sent, Value), InvalidRequest> {
    let up = sent(config, body)?;
    let json = serde_json::from_slice(&up.body).expect("body is JSON");
    Ok((up, json))
}

/// A translator's `chat.completion` for a recorded answer, as JSON.
pub fn respond_with(
    translator: &dyn ReadResponse,
    config: &ProviderConfig,
    answer: &str,
) -> Result<Value, UpstreamFailure> {
    let completion = translator.response(config, answer.as_bytes())?;
    Ok(serde_json::from_slice(&completion.body).expect("completion is JSON"))
}

/// What a provider with `config` sends upstream for the client's request `body`.
fn sent(config: &ProviderConfig, body: &[u8]) -> Result<Sent, InvalidRequest> {
    let circuit = CircuitSettings::from(&HealthConfig::default());
    let provider = Provider::new(config.clone(), circuit).expect("provider builds");
    let req = ChatRequest::parse(body)?;
    let up = provider.request(&req)?;
    Ok(Sent {
        url: up.url.to_string(),
        headers: up
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect(),
        body: up.body,
    })
}

/// A small chat request with the fields of `extra` added.
pub fn body_of(extra: Value) -> Vec<u8> {
    let mut base = serde_json::json!({"model":"auto","messages":[{"role":"user","content":"hi"}]});
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&base).unwrap()
}
