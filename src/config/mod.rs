//! `config.yaml` + `.env`: loading, `${VAR}` expansion and validation.
//!
//! The file keeps the original ClawGate's keys (`server`, `providers`, `fallback_chain`,
//! `metrics`, `health`) so existing files load. Parsing produces immutable structs; the
//! request path only reads them. Every error names the file, the line and the key.

mod env;
mod locate;
mod read;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

pub use env::expand;

/// A config file that could not be used: where and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{}: {key}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The key path, e.g. `providers.deepseek-chat.base_url`.
    pub key: String,
    pub message: String,
}

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// OpenAI chat completions (DeepSeek, OpenRouter, Groq, Ollama, vLLM, ...).
    OpenAiCompat,
    /// Google's native Gemini API.
    GoogleGenai,
    /// Anthropic's Messages API.
    Anthropic,
}

impl Backend {
    pub const NAMES: &'static [&'static str] = &["openai-compat", "google-genai", "anthropic"];

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::OpenAiCompat => "openai-compat",
            Backend::GoogleGenai => "google-genai",
            Backend::Anthropic => "anthropic",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "openai-compat" | "openai" | "openai-compatible" => Some(Backend::OpenAiCompat),
            "google-genai" | "gemini" | "google" => Some(Backend::GoogleGenai),
            "anthropic" | "anthropic-compat" | "anthropic-messages" => Some(Backend::Anthropic),
            _ => None,
        }
    }
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    #[serde(default)]
    pub input: f64,
    #[serde(default)]
    pub output: f64,
    /// Price of prompt tokens served from the provider's cache; `input` when absent.
    #[serde(default)]
    pub cache_read: Option<f64>,
}

/// Per-provider time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// A whole non-streamed response, from sending the request to the last byte.
    pub read: Duration,
    /// Streams: from sending the request to the first body byte.
    pub first_byte: Duration,
    /// Streams: the longest gap between two chunks.
    pub idle: Duration,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect_s: Option<f64>,
    read_s: Option<f64>,
    first_byte_s: Option<f64>,
    idle_s: Option<f64>,
}

/// What a provider's model can take, as declared in `capabilities`. Every field is optional: an
/// undeclared capability is unknown, and an unknown capability never makes the dispatcher skip
/// the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// The most tokens a request may hold, prompt and answer together.
    pub context_window: Option<u64>,
    /// The longest answer the model writes, in tokens.
    pub max_output: Option<u64>,
    /// It reads image content parts.
    pub vision: Option<bool>,
    /// It takes tool definitions and calls tools.
    pub tools: Option<bool>,
    /// It reasons before answering (a thinking model).
    pub reasoning: Option<bool>,
}

impl Capabilities {
    /// Whether nothing is declared (the provider is never skipped for what it cannot take).
    pub fn is_unknown(&self) -> bool {
        *self == Capabilities::default()
    }
}

/// One upstream provider as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub id: String,
    pub backend: Backend,
    /// What precedes `/chat/completions` (OpenAI), `/models/{model}:generateContent` (Gemini)
    /// or `/messages` (Anthropic); no trailing slash.
    pub base_url: String,
    /// `None` for local backends declared with `api_key: none`.
    pub api_key: Option<String>,
    /// The `api_key` value as written in the file (`${DEEPSEEK_API_KEY}`), for log lines that
    /// explain why a provider was skipped without showing a secret.
    pub api_key_source: String,
    pub model: String,
    pub max_tokens: Option<u64>,
    pub tier: String,
    pub pricing: Pricing,
    pub timeouts: Timeouts,
    /// Extra request headers, in file order.
    pub headers: Vec<(String, String)>,
    /// What the model can take; undeclared fields are unknown.
    pub capabilities: Capabilities,
    /// The provider's embeddings model (`POST /v1/embeddings`); `None`: it serves none.
    pub embedding_model: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawProvider {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    pricing: Option<Pricing>,
    #[serde(default)]
    timeout: Option<RawTimeouts>,
    #[serde(default)]
    headers: Option<OrderedMap<String>>,
    #[serde(default)]
    capabilities: Option<Capabilities>,
    #[serde(default)]
    embedding_model: Option<String>,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_yaml_ng::Value>,
}

/// The `server` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub log_level: String,
    /// Largest accepted request body, in MiB.
    pub max_body_mb: f64,
    /// When non-empty, clients must send `Authorization: Bearer <api_key>`.
    pub api_key: String,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace_s: f64,
    /// When non-empty, `POST /admin/reload` requires `Authorization: Bearer <admin_key>`
    /// (and is then allowed from any address); when empty, it is allowed from loopback only.
    pub admin_key: String,
    /// Serving threads; 0 means one per CPU core.
    pub threads: usize,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_yaml_ng::Value>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8090,
            log_level: "info".into(),
            max_body_mb: 20.0,
            api_key: String::new(),
            shutdown_grace_s: 15.0,
            admin_key: String::new(),
            threads: 0,
            unknown: BTreeMap::new(),
        }
    }
}

impl ServerConfig {
    pub fn max_body_bytes(&self) -> usize {
        (self.max_body_mb * 1024.0 * 1024.0) as usize
    }

    /// How many threads serve requests: `threads`, or one per CPU core when it is 0.
    pub fn serving_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// The `health` section: the circuit breaker's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// Consecutive failures that open a provider's circuit.
    pub consecutive_failures_before_skip: u32,
    /// The first cool-down of an open circuit, in seconds; it doubles on each failed probe.
    pub recovery_check_interval_seconds: f64,
    /// The longest cool-down, in seconds.
    pub max_cooldown_seconds: f64,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_yaml_ng::Value>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            consecutive_failures_before_skip: 3,
            recovery_check_interval_seconds: 30.0,
            max_cooldown_seconds: 600.0,
            unknown: BTreeMap::new(),
        }
    }
}

/// The metrics database when nothing else is configured.
pub const DEFAULT_DB_PATH: &str = "/var/lib/clawgate/clawgate.db";

/// The `metrics` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub db_path: String,
    pub retention_days: u32,
    /// What to do when the database cannot be opened: `fail` (stop start-up) or `disable`
    /// (run without metrics, and say so).
    pub on_error: String,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_yaml_ng::Value>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            db_path: DEFAULT_DB_PATH.into(),
            retention_days: 90,
            on_error: "fail".into(),
            unknown: BTreeMap::new(),
        }
    }
}

/// The `affinity` section: sticky routing's memory of conversations (which provider answered
/// each conversation's previous request, and which rule sent it there), read by the rule
/// fields `previous_provider` / `previous_rule` and the route target `previous`. Kept in
/// memory across rule and config reloads; bounded in entries and age.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct AffinityConfig {
    /// `false`: conversations are not remembered (`previous_*` read `""`, `previous` never
    /// matches) and every answer says `X-ClawGate-Affinity: off`.
    pub enabled: bool,
    /// Most conversations remembered; past it the least recently refreshed are forgotten.
    pub max_entries: usize,
    /// A conversation not answered for this many seconds is forgotten.
    pub ttl_s: u64,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_yaml_ng::Value>,
}

impl Default for AffinityConfig {
    fn default() -> Self {
        AffinityConfig {
            enabled: true,
            max_entries: 100_000,
            ttl_s: 3600,
            unknown: BTreeMap::new(),
        }
    }
}

/// The original ClawGate's classifier prompt; `{last_user_message}` is replaced by the first 500
/// characters of the last message a person wrote.
pub const DEFAULT_CLASSIFIER_PROMPT: &str =
    "Classify this task into exactly one category. Reply with ONLY the category name.
Categories:
- REASONING: math proofs, logic puzzles, complex analysis, debugging
- CODING: code generation, refactoring, architecture decisions
- SIMPLE: greetings, status checks, short lookups, translations
- AGENT: tool use, file operations, search, API calls

User message: {last_user_message}

Category:
";

/// The `llm_classifier` section: a cheap model labels the requests that no static or heuristic
/// rule decided, and `layer classifier` rules (or `category_routing`) route on that label.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierConfig {
    pub enabled: bool,
    /// The provider id asked to classify (any backend).
    pub provider: String,
    /// `max_tokens` of the classification call.
    pub max_tokens: u64,
    /// The whole classification, from asking to answer; past it the request moves on.
    pub timeout: Duration,
    /// Where a request goes when the classifier gives no usable answer; `None`: on to `default`.
    pub fallback_on_timeout: Option<String>,
    /// The prompt; `{last_user_message}` is replaced by the first 500 characters of it.
    pub prompt: String,
    /// Label (upper case) → provider id, in file order. Acts as the classifier rules when no
    /// `layer classifier` rule is written.
    pub category_routing: Vec<(String, String)>,
    /// Most answers kept in the cache.
    pub cache_entries: usize,
    /// How long a cached answer is used.
    pub cache_ttl: Duration,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            enabled: false,
            provider: String::new(),
            max_tokens: 50,
            timeout: Duration::from_millis(3000),
            fallback_on_timeout: None,
            prompt: DEFAULT_CLASSIFIER_PROMPT.into(),
            category_routing: Vec::new(),
            cache_entries: 4096,
            cache_ttl: Duration::from_secs(600),
        }
    }
}

impl ClassifierConfig {
    /// The classifier switched off, for routing that must not ask it (rule tests, tools
    /// without a config).
    pub fn disabled() -> &'static ClassifierConfig {
        static DISABLED: std::sync::LazyLock<ClassifierConfig> =
            std::sync::LazyLock::new(ClassifierConfig::default);
        &DISABLED
    }

    /// The labels the classifier may answer: `category_routing`'s keys.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.category_routing.iter().map(|(l, _)| l.as_str())
    }

    /// The provider `category_routing` maps `label` to.
    pub fn route_for(&self, label: &str) -> Option<&str> {
        self.category_routing
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, p)| p.as_str())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClassifier {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    classifier_provider: Option<String>,
    #[serde(default)]
    max_classify_tokens: Option<u64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    fallback_on_timeout: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    category_routing: OrderedMap<String>,
    #[serde(default)]
    cache_entries: Option<usize>,
    #[serde(default)]
    cache_ttl_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    providers: OrderedMap<RawProvider>,
    #[serde(default)]
    fallback_chain: Vec<String>,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(default)]
    health: HealthConfig,
    #[serde(default)]
    llm_classifier: Option<RawClassifier>,
    #[serde(default)]
    affinity: AffinityConfig,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_yaml_ng::Value>,
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub server: ServerConfig,
    /// Every provider defined in the file, in file order (loaded or not).
    pub providers: Vec<ProviderConfig>,
    /// Providers skipped because their key expanded to empty.
    pub skipped: Vec<String>,
    pub fallback_chain: Vec<String>,
    pub metrics: MetricsConfig,
    pub health: HealthConfig,
    pub classifier: ClassifierConfig,
    pub affinity: AffinityConfig,
    /// Things worth a log line that did not stop loading (unknown keys, retired sections).
    pub warnings: Vec<String>,
}

impl Config {
    /// Read and validate `path`, expanding `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, &|name| std::env::var(name).ok())
    }

    /// Read and validate `path`; `lookup` resolves `${VAR}` references.
    pub fn load_with(
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: None,
            key: "(file)".into(),
            message: format!("cannot read config file: {e}"),
        })?;
        Config::from_str(&source, path, lookup)
    }

    /// Parse and validate config text; `lookup` resolves `${VAR}` references.
    pub fn from_str(
        source: &str,
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        read::Reader::new(source, path, lookup).config()
    }

    /// Providers that are loaded: defined, and with a key (or `api_key: none`).
    pub fn loaded_providers(&self) -> impl Iterator<Item = &ProviderConfig> {
        self.providers
            .iter()
            .filter(|p| !self.skipped.contains(&p.id))
    }
}

/// Validate `llm_classifier`. Unknown provider ids are errors when it is enabled and warnings
/// when it is not (a disabled section must not stop start-up).
fn classifier_config(
    raw: RawClassifier,
    providers: &[ProviderConfig],
    x: &dyn Fn(&str) -> String,
    err_at: &dyn Fn(&str, String) -> ConfigError,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<ClassifierConfig, ConfigError> {
    let defaults = ClassifierConfig::default();
    let enabled = raw.enabled;
    let mut problem = |key: &str, message: String| -> Result<(), ConfigError> {
        if enabled {
            Err(err_at(key, message))
        } else {
            warnings.push(format!("{}: {key}: {message}", path.display()));
            Ok(())
        }
    };
    let mut check_id = |key: &str, id: &str| -> Result<(), ConfigError> {
        if providers.iter().any(|p| p.id == id) {
            return Ok(());
        }
        let hint = crate::suggest::did_you_mean(id, providers.iter().map(|p| p.id.as_str()))
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        problem(key, format!("names unknown provider `{id}`{hint}"))
    };
    let provider = x(raw.classifier_provider.as_deref().unwrap_or(""))
        .trim()
        .to_owned();
    if provider.is_empty() {
        if enabled {
            return Err(err_at(
                "llm_classifier.classifier_provider",
                "is required when the classifier is enabled".into(),
            ));
        }
    } else {
        check_id("llm_classifier.classifier_provider", &provider)?;
    }
    let fallback_on_timeout = raw
        .fallback_on_timeout
        .map(|s| x(&s).trim().to_owned())
        .filter(|s| !s.is_empty());
    if let Some(id) = &fallback_on_timeout {
        check_id("llm_classifier.fallback_on_timeout", id)?;
    }
    let mut category_routing: Vec<(String, String)> = Vec::new();
    for (label, target) in raw.category_routing.0 {
        let label = label.trim().to_uppercase();
        let target = x(&target).trim().to_owned();
        let key = format!("llm_classifier.category_routing.{label}");
        if label.is_empty() || label.chars().any(char::is_whitespace) {
            return Err(err_at(&key, "a label is one word".into()));
        }
        if category_routing.iter().any(|(l, _)| *l == label) {
            return Err(err_at(&key, format!("label `{label}` is listed twice")));
        }
        check_id(&key, &target)?;
        category_routing.push((label, target));
    }
    let timeout_ms = raw
        .timeout_ms
        .unwrap_or(defaults.timeout.as_millis() as u64);
    if timeout_ms == 0 {
        return Err(err_at(
            "llm_classifier.timeout_ms",
            "must be at least 1".into(),
        ));
    }
    let max_tokens = raw.max_classify_tokens.unwrap_or(defaults.max_tokens);
    if max_tokens == 0 {
        return Err(err_at(
            "llm_classifier.max_classify_tokens",
            "must be at least 1".into(),
        ));
    }
    let prompt = raw.prompt.unwrap_or(defaults.prompt);
    if !prompt.contains("{last_user_message}") {
        warnings.push(format!(
            "{}: llm_classifier.prompt has no `{{last_user_message}}`: the classifier will not see the request",
            path.display()
        ));
    }
    if enabled && category_routing.is_empty() {
        warnings.push(format!(
            "{}: llm_classifier.category_routing is empty: no answer of the classifier is a known label",
            path.display()
        ));
    }
    let cache_ttl = match raw.cache_ttl_s {
        Some(s) if !(s.is_finite() && s >= 0.0) => {
            return Err(err_at(
                "llm_classifier.cache_ttl_s",
                "must be a number of seconds, 0 or more".into(),
            ))
        }
        Some(s) => Duration::from_secs_f64(s),
        None => defaults.cache_ttl,
    };
    Ok(ClassifierConfig {
        enabled,
        provider,
        max_tokens,
        timeout: Duration::from_millis(timeout_ms),
        fallback_on_timeout,
        prompt,
        category_routing,
        cache_entries: raw.cache_entries.unwrap_or(defaults.cache_entries),
        cache_ttl,
    })
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// serde_yaml_ng appends " at line N column M"; the error already carries the line.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// A YAML mapping that keeps its keys in file order.
#[derive(Debug)]
struct OrderedMap<V>(Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(String, V)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    if out.iter().any(|(seen, _)| *seen == k) {
                        return Err(serde::de::Error::custom(format!("duplicate key `{k}`")));
                    }
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_any(V_(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests;

/// `DEEPSEEK_API_KEY` from `${DEEPSEEK_API_KEY}` or `${DEEPSEEK_API_KEY:-}`.
pub fn env_var_name(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("${")?.strip_suffix('}')?;
    let name = inner.split([':', '-']).next()?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(name)
}
