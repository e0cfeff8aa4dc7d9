//! Asking the LLM classifier: a cheap model labels the requests that no static or heuristic
//! rule decided. When to ask and what the answer routes to is the router's part
//! ([`crate::router::route`]); this is how a question is asked.
//!
//! The router asks only when a request reaches the classifier layer, so a request decided by
//! the rules never pays for it. One classification is one non-streamed call to
//! `llm_classifier.classifier_provider` through the normal provider code (any backend, its
//! circuit breaker included), at temperature 0, bounded by `timeout_ms`. The answer is
//! normalised (trimmed, first word, upper case) and must be one of `category_routing`'s labels.
//!
//! Answers are cached by a hash of what was classified (bounded in entries and age), and
//! identical classifications in flight are coalesced: a burst of the same prompt costs one
//! call. The call runs as its own task, so a client that disconnects does not cancel the
//! answer the others wait for. Nothing here ever fails the client's request: the worst case
//! is [`Answer::Failed`] after `timeout_ms`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};

use crate::config::ClassifierConfig;
use crate::metrics::{usage, Metrics, RequestEvent};
use crate::providers::dispatch::{dispatch, Outcome, Reply, ReplyBody};
use crate::providers::Provider;
use crate::router::{Answer, Classify};
use crate::util::lock;

/// How much of the last user message the classifier sees, in characters (as the original).
pub const MAX_TEXT_CHARS: usize = 500;

/// The classifier as the router asks it ([`Classify`]): `cfg`'s provider, through
/// `classifier`'s cache and coalescing, each call recorded in `metrics`.
pub struct Asker<'a> {
    pub classifier: &'a Classifier,
    pub cfg: &'a ClassifierConfig,
    /// `None` when the classifier provider is not loaded.
    pub provider: Option<&'a Arc<Provider>>,
    pub metrics: &'a Metrics,
}

impl Classify for Asker<'_> {
    fn classify(&self, text: &str) -> impl std::future::Future<Output = Answer> + Send {
        self.classifier
            .classify(self.cfg, self.provider, text, self.metrics)
    }
}

struct Entry {
    label: Arc<str>,
    at: Instant,
}

#[derive(Default)]
struct Inner {
    cache: Mutex<HashMap<u64, Entry>>,
    inflight: Mutex<HashMap<u64, Shared<BoxFuture<'static, Answer>>>>,
}

/// The classifier's cache and in-flight calls; shared by every request, kept across reloads
/// (the cache key covers the provider, model and prompt, so a changed config never reads an
/// answer given to the old one).
#[derive(Clone, Default)]
pub struct Classifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("cached", &lock(&self.inner.cache).len())
            .finish()
    }
}

impl Classifier {
    pub fn new() -> Self {
        Classifier::default()
    }

    /// Number of cached answers.
    pub fn cached(&self) -> usize {
        lock(&self.inner.cache).len()
    }

    /// Label `text` (the last message a person wrote) with `provider`. `None` provider (not
    /// loaded) is an immediate [`Answer::Failed`].
    pub async fn classify(
        &self,
        cfg: &ClassifierConfig,
        provider: Option<&Arc<Provider>>,
        text: &str,
        metrics: &Metrics,
    ) -> Answer {
        let Some(provider) = provider else {
            return Answer::Failed(
                format!("classifier provider `{}` is not loaded", cfg.provider).into(),
            );
        };
        let text = truncate_chars(text, MAX_TEXT_CHARS);
        let prompt = cfg.prompt.replace("{last_user_message}", text);
        let key = cache_key(provider, cfg, &prompt);
        if let Some(label) = self.cached_label(key, cfg.cache_ttl) {
            return Answer::Label(label);
        }
        let call = {
            let mut inflight = lock(&self.inner.inflight);
            match inflight.get(&key) {
                Some(call) => call.clone(),
                None => {
                    let task = tokio::spawn(call(
                        Arc::clone(&self.inner),
                        key,
                        cfg.clone(),
                        Arc::clone(provider),
                        prompt,
                        metrics.clone(),
                    ));
                    let call = async move {
                        task.await.unwrap_or_else(|e| {
                            Answer::Failed(format!("classifier task failed: {e}").into())
                        })
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key, call.clone());
                    call
                }
            }
        };
        call.await
    }

    fn cached_label(&self, key: u64, ttl: Duration) -> Option<Arc<str>> {
        let cache = lock(&self.inner.cache);
        let e = cache.get(&key)?;
        (e.at.elapsed() <= ttl).then(|| Arc::clone(&e.label))
    }
}

/// The classification call, run as its own task: ask, normalise, cache, record.
async fn call(
    inner: Arc<Inner>,
    key: u64,
    cfg: ClassifierConfig,
    provider: Arc<Provider>,
    prompt: String,
    metrics: Metrics,
) -> Answer {
    let started = Instant::now();
    let mut event = RequestEvent {
        ts_ms: RequestEvent::now_ms(),
        requested_model: provider.id.to_string(),
        layer: "classification".into(),
        rule: "llm-classifier".into(),
        classification: true,
        ..RequestEvent::default()
    };
    let body = Bytes::from(
        serde_json::json!({
            "model": &*provider.id,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": cfg.max_tokens,
            "stream": false,
        })
        .to_string(),
    );
    let answer = match crate::request::ChatRequest::parse(&body) {
        Err(e) => Err(format!("classifier request: {}", e.message)),
        Ok(req) => {
            let chain = [Arc::clone(&provider)];
            match tokio::time::timeout(cfg.timeout, dispatch(&chain, &req)).await {
                Err(_) => {
                    event.status = 504;
                    Err(format!("timed out after {} ms", cfg.timeout.as_millis()))
                }
                Ok(Outcome::Answered(Reply {
                    body:
                        ReplyBody::Complete {
                            body: answer,
                            usage,
                        },
                    ..
                })) => {
                    event.status = 200;
                    event.provider = Some(provider.id.to_string());
                    event.upstream_model = Some(provider.config.model.clone());
                    let usage = usage.unwrap_or_else(|| usage::estimate(body.len(), answer.len()));
                    event.set_usage(&usage, &provider.config.pricing);
                    match answer_text(&answer) {
                        None => Err("the answer had no text".to_owned()),
                        Some(text) => {
                            let label = normalise(&text);
                            if cfg.labels().any(|l| l == label) {
                                Ok(label)
                            } else {
                                Err(format!(
                                    "answered {:?}, not one of {}",
                                    truncate_chars(&label, 40),
                                    cfg.labels().collect::<Vec<_>>().join(", ")
                                ))
                            }
                        }
                    }
                }
                Ok(Outcome::Answered(Reply {
                    body: ReplyBody::Refused(_),
                    status,
                    ..
                })) => {
                    event.status = status.as_u16();
                    Err(format!(
                        "{} rejected the request: HTTP {}",
                        provider.id,
                        status.as_u16()
                    ))
                }
                Ok(Outcome::Failed { status, attempts }) => {
                    event.status = status.as_u16();
                    Err(attempts
                        .first()
                        .map(|a| format!("{}: {}", a.provider, a.error))
                        .unwrap_or_else(|| format!("{} is not available", provider.id)))
                }
                Ok(Outcome::Invalid { error, .. }) => Err(error.message),
                Ok(Outcome::Answered(Reply {
                    body: ReplyBody::Stream(_),
                    ..
                })) => Err("the answer was a stream".to_owned()),
            }
        }
    };
    event.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let answer = match answer {
        Ok(label) => {
            let label: Arc<str> = label.into();
            insert(&inner, key, &label, &cfg);
            tracing::debug!(label = %label, ms = event.latency_ms as u64, "classified");
            Answer::Label(label)
        }
        Err(why) => {
            tracing::warn!(provider = %provider.id, "classifier gave no answer: {why}");
            event.error = Some(format!("classifier: {why}"));
            Answer::Failed(why.into())
        }
    };
    metrics.record(event);
    // Cached before leaving the in-flight map, so no request misses both.
    lock(&inner.inflight).remove(&key);
    answer
}

/// Keep the cache within `cache_entries`: expired entries go first, then arbitrary ones.
fn insert(inner: &Inner, key: u64, label: &Arc<str>, cfg: &ClassifierConfig) {
    if cfg.cache_entries == 0 {
        return;
    }
    let mut cache = lock(&inner.cache);
    if cache.len() >= cfg.cache_entries && !cache.contains_key(&key) {
        cache.retain(|_, e| e.at.elapsed() <= cfg.cache_ttl);
        let excess = (cache.len() + 1).saturating_sub(cfg.cache_entries);
        if excess > 0 {
            let drop: Vec<u64> = cache
                .keys()
                .take(excess.max(cfg.cache_entries / 8))
                .copied()
                .collect();
            for k in drop {
                cache.remove(&k);
            }
        }
    }
    cache.insert(
        key,
        Entry {
            label: Arc::clone(label),
            at: Instant::now(),
        },
    );
}

fn cache_key(provider: &Provider, cfg: &ClassifierConfig, prompt: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    provider.id.hash(&mut h);
    provider.config.model.hash(&mut h);
    provider.config.base_url.hash(&mut h);
    cfg.max_tokens.hash(&mut h);
    cfg.category_routing.hash(&mut h);
    prompt.hash(&mut h);
    h.finish()
}

/// `choices[0].message.content` of an OpenAI chat completion.
fn answer_text(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let content = v.pointer("/choices/0/message/content")?;
    match content {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
}

/// Trim, take the first word, drop surrounding punctuation (`**REASONING**.`), upper-case.
pub fn normalise(answer: &str) -> String {
    let word = answer.split_whitespace().next().unwrap_or("");
    word.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .to_uppercase()
}

/// The first `max` characters of `s`.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_normalised_to_one_upper_case_word() {
        assert_eq!(normalise("  reasoning\n"), "REASONING");
        assert_eq!(normalise("**Coding**. Because it asks for code"), "CODING");
        assert_eq!(normalise("Category: SIMPLE"), "CATEGORY");
        assert_eq!(normalise(""), "");
    }

    #[test]
    fn the_classifier_sees_at_most_500_characters() {
        let long = "é".repeat(600);
        assert_eq!(truncate_chars(&long, MAX_TEXT_CHARS).chars().count(), 500);
        assert_eq!(truncate_chars("short", MAX_TEXT_CHARS), "short");
    }

    #[test]
    fn the_answer_is_read_from_string_or_part_content() {
        let s = br#"{"choices":[{"message":{"role":"assistant","content":"AGENT"}}]}"#;
        assert_eq!(answer_text(s).as_deref(), Some("AGENT"));
        let p = br#"{"choices":[{"message":{"content":[{"type":"text","text":"COD"},{"type":"text","text":"ING"}]}}]}"#;
        assert_eq!(answer_text(p).as_deref(), Some("CODING"));
        assert_eq!(answer_text(b"{}"), None);
    }
}
