//! `POST /v1/embeddings`: OpenAI's embeddings request, sent to the providers that declare an
//! `embedding_model`, with fallback across them.
//!
//! An `openai-compat` provider gets the client's body with `model` replaced by its
//! `embedding_model`, and its answer comes back as it is. A `google-genai` provider gets
//! `batchEmbedContents` (one request per input, `dimensions` as `outputDimensionality`), and
//! its `embeddings[].values` come back as OpenAI's list (usage estimated: Google reports
//! none). `anthropic` has no embeddings API. Token-array inputs go to OpenAI-compatible
//! providers only.
//!
//! Which providers: `model` naming a provider with an embedding model puts it first; then
//! the fallback chain's, then the rest in config order.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use super::dispatch::Attempt;
use super::protocol::{FailureKind, UpstreamFailure};
use super::transport::parse_uri;
use super::{Provider, ProviderSet};
use crate::config::Backend;
use crate::metrics::{usage, Usage};
use crate::request::InvalidRequest;

/// A checked embeddings request.
#[derive(Debug)]
pub struct EmbedRequest {
    /// The client's body, as an object.
    body: Map<String, Value>,
    /// The requested model (`auto` when none).
    pub model: String,
    /// The inputs when they are text (`None`: token arrays).
    texts: Option<Vec<String>>,
    /// Characters of input, for usage estimates.
    chars: usize,
}

fn invalid(message: impl Into<String>, param: &str) -> InvalidRequest {
    InvalidRequest {
        message: message.into(),
        param: Some(param.into()),
        code: "invalid_value",
    }
}

/// Check an embeddings body: an object with `input` (a string, a list of strings, or token
/// arrays).
pub fn parse(body: &[u8]) -> Result<EmbedRequest, InvalidRequest> {
    let value: Value = serde_json::from_slice(body).map_err(|e| InvalidRequest {
        message: format!("the request body is not valid JSON: {e}"),
        param: None,
        code: "invalid_json",
    })?;
    let Value::Object(body) = value else {
        return Err(invalid("the request body must be a JSON object", ""));
    };
    let model = match body.get("model") {
        None | Some(Value::Null) => "auto".to_owned(),
        Some(Value::String(m)) => m.clone(),
        Some(_) => return Err(invalid("model must be a string", "model")),
    };
    let (texts, chars) = match body.get("input") {
        Some(Value::String(s)) => (Some(vec![s.clone()]), s.len()),
        Some(Value::Array(list)) if !list.is_empty() => {
            if list.iter().all(Value::is_string) {
                let texts: Vec<String> = list
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                let chars = texts.iter().map(String::len).sum();
                (Some(texts), chars)
            } else if list.iter().all(|v| v.is_number() || v.is_array()) {
                // Token ids: about four characters each, for the estimate.
                let tokens: usize = list.iter().map(|v| v.as_array().map_or(1, Vec::len)).sum();
                (None, tokens * 4)
            } else {
                return Err(invalid(
                    "input must be a string, a list of strings or a list of token arrays",
                    "input",
                ));
            }
        }
        Some(Value::Array(_)) => return Err(invalid("input must not be empty", "input")),
        None | Some(Value::Null) => return Err(invalid("input is required", "input")),
        Some(_) => {
            return Err(invalid(
                "input must be a string or a list of strings",
                "input",
            ))
        }
    };
    Ok(EmbedRequest {
        body,
        model,
        texts,
        chars,
    })
}

/// The providers to try for `model`: the named provider first, then the fallback chain's,
/// then the rest in config order, only those with an embedding model (and an embeddings API).
pub fn chain(set: &ProviderSet, model: &str) -> Vec<Arc<Provider>> {
    let embeds = |p: &&Arc<Provider>| {
        p.config.embedding_model.is_some() && p.config.backend != Backend::Anthropic
    };
    let mut out: Vec<Arc<Provider>> = Vec::new();
    let named = set.get(model).into_iter();
    let fallback = set.fallback_ids().into_iter().filter_map(|id| set.get(id));
    for p in named.chain(fallback).chain(set.iter()).filter(embeds) {
        if !out.iter().any(|o| o.id == p.id) {
            out.push(Arc::clone(p));
        }
    }
    out
}

/// What came back.
pub enum Embedded {
    /// An OpenAI embeddings list.
    Answered {
        provider: Arc<Provider>,
        attempts: Vec<Attempt>,
        body: Bytes,
        usage: Usage,
    },
    /// The provider refused the request as the client's error: an OpenAI error body.
    Refused {
        provider: Arc<Provider>,
        attempts: Vec<Attempt>,
        status: StatusCode,
        body: Bytes,
    },
    /// No provider answered.
    Failed { attempts: Vec<Attempt> },
}

/// Try each provider of `chain` in turn (open circuits skipped unless all are open).
pub async fn embed(chain: &[Arc<Provider>], req: &EmbedRequest) -> Embedded {
    let now = Instant::now();
    let force = !chain.iter().any(|p| p.health.is_available(now));
    let mut attempts = Vec::new();
    for provider in chain {
        let attempt = |kind, status, error: String| Attempt {
            provider: Arc::clone(&provider.id),
            kind,
            status,
            error,
        };
        if !force && !provider.health.is_available(Instant::now()) {
            attempts.push(attempt(
                FailureKind::Skipped,
                503,
                "skipped: circuit open after repeated failures".into(),
            ));
            continue;
        }
        if provider.config.backend == Backend::GoogleGenai && req.texts.is_none() {
            attempts.push(attempt(
                FailureKind::Unfit,
                0,
                "token-array input is for OpenAI-compatible providers only".into(),
            ));
            continue;
        }
        let started = Instant::now();
        match exchange(provider, req).await {
            Ok(Exchanged::Answer(body, usage)) => {
                provider.health.record_success(started.elapsed());
                return Embedded::Answered {
                    provider: Arc::clone(provider),
                    attempts,
                    body,
                    usage,
                };
            }
            Ok(Exchanged::Refusal(status, body)) => {
                provider.health.record_alive();
                return Embedded::Refused {
                    provider: Arc::clone(provider),
                    attempts,
                    status,
                    body,
                };
            }
            Err(failure) => {
                let error = provider.redact(&failure.message);
                tracing::warn!(provider = %provider.id, %error, "embeddings failed; trying the next");
                provider.health.record_failure(&error, Instant::now());
                attempts.push(attempt(failure.kind, failure.status, error));
            }
        }
    }
    Embedded::Failed { attempts }
}

enum Exchanged {
    Answer(Bytes, Usage),
    Refusal(StatusCode, Bytes),
}

/// One provider's request: URL and body.
fn request(provider: &Provider, req: &EmbedRequest) -> (String, Vec<u8>) {
    let model = provider.config.embedding_model.as_deref().unwrap_or("");
    let base = &provider.config.base_url;
    match provider.config.backend {
        Backend::GoogleGenai => {
            let model = model.strip_prefix("models/").unwrap_or(model);
            let dims = req.body.get("dimensions").and_then(Value::as_u64);
            let requests: Vec<Value> = req
                .texts
                .iter()
                .flatten()
                .map(|t| {
                    let mut r = json!({ "model": format!("models/{model}"), "content": { "parts": [{ "text": t }] } });
                    if let Some(d) = dims {
                        r["outputDimensionality"] = json!(d);
                    }
                    r
                })
                .collect();
            let body = json!({ "requests": requests }).to_string().into_bytes();
            (format!("{base}/models/{model}:batchEmbedContents"), body)
        }
        _ => {
            let mut body = req.body.clone();
            body.insert("model".into(), json!(model));
            let body = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
            (format!("{base}/embeddings"), body)
        }
    }
}

async fn exchange(provider: &Provider, req: &EmbedRequest) -> Result<Exchanged, UpstreamFailure> {
    let (url, body) = request(provider, req);
    let uri = parse_uri(&url).map_err(|e| UpstreamFailure::of(FailureKind::Connect, e))?;
    let deadline = provider.config.timeouts.read;
    let answer = async {
        let resp = provider
            .transport
            .post(uri, &provider.headers, body)
            .await
            .map_err(super::dispatch::request_failure)?;
        let status = resp.status();
        let content_type = resp.headers().get(CONTENT_TYPE).cloned();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| UpstreamFailure::of(FailureKind::Stream, format!("body broke: {e}")))?;
        if !status.is_success() {
            return match provider.protocol.error_answer(status, content_type, body) {
                Ok(refusal) if provider.config.backend == Backend::OpenAiCompat => {
                    Ok(Exchanged::Refusal(refusal.status, refusal.body))
                }
                Ok(refusal) => Ok(Exchanged::Refusal(
                    StatusCode::BAD_REQUEST,
                    openai_error(&String::from_utf8_lossy(&refusal.body)),
                )),
                Err(f) if f.kind == FailureKind::Client => Ok(Exchanged::Refusal(
                    StatusCode::BAD_REQUEST,
                    openai_error(&f.message),
                )),
                Err(f) => Err(f),
            };
        }
        match provider.config.backend {
            Backend::GoogleGenai => {
                let model = provider.config.embedding_model.as_deref().unwrap_or("");
                let base64 =
                    req.body.get("encoding_format").and_then(Value::as_str) == Some("base64");
                let (out, usage) = from_gemini(&body, model, req.chars, base64)?;
                Ok(Exchanged::Answer(out, usage))
            }
            _ => {
                let usage = openai_usage(&body)
                    .ok_or_else(|| {
                        UpstreamFailure::of(FailureKind::Malformed, "not an embeddings list")
                    })?
                    .unwrap_or_else(|| usage::estimate(req.chars, 0));
                Ok(Exchanged::Answer(body, usage))
            }
        }
    };
    match tokio::time::timeout(deadline, answer).await {
        Ok(answer) => answer,
        Err(_) => Err(UpstreamFailure::of(
            FailureKind::Timeout,
            format!("no answer within {}s", deadline.as_secs_f64()),
        )),
    }
}

/// An OpenAI error body.
pub fn openai_error(message: &str) -> Bytes {
    let body = json!({ "error": { "message": message, "type": "invalid_request_error", "param": null, "code": "upstream_rejected_request" } });
    Bytes::from(body.to_string())
}

/// A vector as OpenAI's `encoding_format: "base64"` gives it: little-endian `f32`s, base64.
fn as_base64(values: &Value) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = values
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| (v.as_f64().unwrap_or(0.0) as f32).to_le_bytes())
        .collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The usage of an OpenAI embeddings list (`Some(None)`: a list without usage; `None`: not
/// a list).
fn openai_usage(body: &[u8]) -> Option<Option<Usage>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("data")?.as_array()?;
    let prompt = v["usage"]["prompt_tokens"].as_u64();
    Some(prompt.map(|p| Usage {
        prompt: p,
        ..Usage::default()
    }))
}

/// `batchEmbedContents`' answer as OpenAI's embeddings list.
fn from_gemini(
    body: &[u8],
    model: &str,
    chars: usize,
    base64: bool,
) -> Result<(Bytes, Usage), UpstreamFailure> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        UpstreamFailure::of(FailureKind::Malformed, format!("Gemini embeddings: {e}"))
    })?;
    let list = v["embeddings"].as_array().ok_or_else(|| {
        UpstreamFailure::of(FailureKind::Malformed, "Gemini answered no embeddings")
    })?;
    let data: Vec<Value> = list
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let values = if base64 {
                Value::String(as_base64(&e["values"]))
            } else {
                e["values"].clone()
            };
            json!({ "object": "embedding", "embedding": values, "index": i })
        })
        .collect();
    let mut usage = usage::estimate(chars, 0);
    usage.completion = 0;
    let out = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": usage.prompt, "total_tokens": usage.prompt },
    });
    Ok((Bytes::from(out.to_string()), usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_checked_and_gemini_answers_become_openai_lists() {
        let r = parse(br#"{"model":"m","input":["a","bb"]}"#).unwrap();
        assert_eq!(
            r.texts.as_deref(),
            Some(&["a".to_owned(), "bb".to_owned()][..])
        );
        assert_eq!(parse(br#"{"input":"x"}"#).unwrap().model, "auto");
        assert!(parse(br#"{"input":[[1,2],[3]]}"#).unwrap().texts.is_none());
        for bad in [
            &br#"{"model":"m"}"#[..],
            br#"{"input":[]}"#,
            br#"{"input":5}"#,
            b"[1]",
        ] {
            assert!(parse(bad).is_err());
        }
        let (out, usage) = from_gemini(
            br#"{"embeddings":[{"values":[0.1,0.2]},{"values":[0.3,0.4]}]}"#,
            "text-embedding-004",
            40,
            false,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["object"], "list");
        assert_eq!(
            v["data"][1],
            json!({"object": "embedding", "embedding": [0.3, 0.4], "index": 1})
        );
        assert_eq!(v["model"], "text-embedding-004");
        assert_eq!(usage.prompt, 10);
        // 1.0f32 = 00 00 80 3f; 2.0f32 = 00 00 00 40.
        assert_eq!(as_base64(&json!([1.0, 2.0])), "AACAPwAAAEA=");
        assert_eq!(v["usage"]["prompt_tokens"], 10);
    }
}
