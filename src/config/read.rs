//! Reading `config.yaml`: the YAML into its raw shape, then each section validated and
//! `${VAR}` references expanded, one function per section. Errors name the key and line;
//! unknown keys are warnings.

use std::path::Path;
use std::time::Duration;

use super::env::expand;
use super::{
    classifier_config, locate, strip_location, valid_id, AffinityConfig, Backend, Capabilities,
    ClassifierConfig, Config, ConfigError, HealthConfig, MetricsConfig, ProviderConfig, RawConfig,
    RawProvider, ServerConfig, Timeouts,
};

pub(super) struct Reader<'a> {
    source: &'a str,
    path: &'a Path,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    warnings: Vec<String>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(
        source: &'a str,
        path: &'a Path,
        lookup: &'a dyn Fn(&str) -> Option<String>,
    ) -> Self {
        Reader {
            source,
            path,
            lookup,
            warnings: Vec::new(),
        }
    }

    /// An error at `key`, with its line when the key can be found in the file.
    fn err(&self, key: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.path.to_owned(),
            line: locate::line_of(self.source, key),
            key: key.to_owned(),
            message,
        }
    }

    /// `s` with `${VAR}` references expanded.
    fn x(&self, s: &str) -> String {
        expand(s, self.lookup)
    }

    fn warn_unknown(&mut self, key: &str, hint: &str) {
        self.warnings.push(format!(
            "{}: ignoring unknown key `{key}`{hint}",
            self.path.display()
        ));
    }

    pub(super) fn config(mut self) -> Result<Config, ConfigError> {
        let raw = self.raw()?;
        self.unknown_keys(&raw);
        let server = self.server(&raw.server)?;
        let metrics = self.metrics(&raw.metrics)?;
        let health = self.health(&raw.health)?;
        let affinity = self.affinity(&raw.affinity)?;
        let mut providers = Vec::new();
        let mut skipped = Vec::new();
        for (id, p) in raw.providers.0 {
            let (provider, has_key) = self.provider(id, p)?;
            if !has_key {
                skipped.push(provider.id.clone());
            }
            providers.push(provider);
        }
        let fallback_chain = self.fallback_chain(&raw.fallback_chain, &providers)?;
        let classifier = match raw.llm_classifier {
            Some(c) => {
                let x = |s: &str| self.x(s);
                let err_at = |key: &str, message: String| self.err(key, message);
                let mut warnings = Vec::new();
                let c = classifier_config(c, &providers, &x, &err_at, self.path, &mut warnings)?;
                self.warnings.extend(warnings);
                c
            }
            None => ClassifierConfig::default(),
        };
        Ok(Config {
            path: self.path.to_owned(),
            server,
            providers,
            skipped,
            fallback_chain,
            metrics,
            health,
            classifier,
            affinity,
            warnings: self.warnings,
        })
    }

    /// The YAML in its raw shape; a type error names the key path and line.
    fn raw(&self) -> Result<RawConfig, ConfigError> {
        if self.source.trim().is_empty() {
            return Err(self.err("(file)", "config file is empty".into()));
        }
        let de = serde_yaml_ng::Deserializer::from_str(self.source);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.location().map(|l| l.line());
            let message = strip_location(&inner.to_string());
            // serde_yaml_ng may already start its message with the key path (or, for an
            // unknown field, with its parent's).
            let message = match message.split_once(": ") {
                Some((head, rest))
                    if key == head
                        || key
                            .strip_prefix(head)
                            .is_some_and(|r| r.starts_with(['.', '['])) =>
                {
                    rest.to_owned()
                }
                _ => message,
            };
            ConfigError {
                file: self.path.to_owned(),
                line: line.or_else(|| locate::line_of(self.source, &key)),
                key: if key == "." { "(file)".into() } else { key },
                message,
            }
        })
    }

    /// A warning per unknown key, with a hint for the original ClawGate's keys.
    fn unknown_keys(&mut self, raw: &RawConfig) {
        for key in raw.unknown.keys() {
            let hint = match key.as_str() {
                "static_rules" | "heuristic_rules" => {
                    " (routing now lives in rules/*.rules; `clawgate import-config` converts it)"
                }
                "prompt_caching" => " (cache usage is recorded automatically)",
                _ => "",
            };
            self.warn_unknown(key, hint);
        }
        for (section, unknown) in [
            ("server", &raw.server.unknown),
            ("health", &raw.health.unknown),
            ("metrics", &raw.metrics.unknown),
            ("affinity", &raw.affinity.unknown),
        ] {
            for key in unknown.keys() {
                // The original ClawGate's keys that have no meaning here, silently.
                if !matches!(
                    (section, key.as_str()),
                    ("health", "check_interval_seconds" | "timeout_seconds")
                        | ("metrics", "log_requests" | "log_routing_decisions")
                ) {
                    self.warn_unknown(&format!("{section}.{key}"), "");
                }
            }
        }
    }

    fn server(&self, raw: &ServerConfig) -> Result<ServerConfig, ConfigError> {
        let mut server = raw.clone();
        server.host = self.x(&server.host);
        server.log_level = self.x(&server.log_level);
        server.api_key = self.x(&server.api_key);
        server.admin_key = self.x(&server.admin_key);
        if server.max_body_mb <= 0.0 || !server.max_body_mb.is_finite() {
            return Err(self.err("server.max_body_mb", "must be a positive number".into()));
        }
        Ok(server)
    }

    fn metrics(&self, raw: &MetricsConfig) -> Result<MetricsConfig, ConfigError> {
        let mut metrics = raw.clone();
        metrics.db_path = self.x(&metrics.db_path);
        metrics.on_error = self.x(&metrics.on_error);
        if !matches!(metrics.on_error.as_str(), "fail" | "disable") {
            return Err(self.err(
                "metrics.on_error",
                format!("must be `fail` or `disable`, got `{}`", metrics.on_error),
            ));
        }
        Ok(metrics)
    }

    fn health(&self, raw: &HealthConfig) -> Result<HealthConfig, ConfigError> {
        if raw.consecutive_failures_before_skip == 0 {
            return Err(self.err(
                "health.consecutive_failures_before_skip",
                "must be at least 1".into(),
            ));
        }
        Ok(raw.clone())
    }

    fn affinity(&self, raw: &AffinityConfig) -> Result<AffinityConfig, ConfigError> {
        if raw.max_entries == 0 {
            return Err(self.err(
                "affinity.max_entries",
                "must be at least 1 (set `enabled: false` to turn sticky routing off)".into(),
            ));
        }
        if raw.ttl_s == 0 {
            return Err(self.err("affinity.ttl_s", "must be at least 1 second".into()));
        }
        Ok(raw.clone())
    }

    /// One `providers.ID` entry, and whether it has a key (an empty key skips the provider;
    /// `api_key: none` is a provider that needs none).
    fn provider(
        &mut self,
        id: String,
        p: RawProvider,
    ) -> Result<(ProviderConfig, bool), ConfigError> {
        let key = |field: &str| format!("providers.{id}.{field}");
        if !valid_id(&id) {
            return Err(self.err(
                &format!("providers.{id}"),
                "provider ids may contain only letters, digits, '-', '_', '.' and '/'".into(),
            ));
        }
        for field in p.unknown.keys() {
            self.warn_unknown(&key(field), "");
        }
        let backend_name = self.x(p.backend.as_deref().unwrap_or("openai-compat"));
        let backend = Backend::parse(&backend_name).ok_or_else(|| {
            self.err(
                &key("backend"),
                format!(
                    "unknown backend `{backend_name}`; expected one of: {}",
                    Backend::NAMES.join(", ")
                ),
            )
        })?;
        let api_key = self.x(p.api_key.as_deref().unwrap_or(""));
        let api_key = api_key.trim();
        let base_url = self.base_url(&key("base_url"), p.base_url.as_deref())?;
        let model = self.x(p.model.as_deref().unwrap_or("")).trim().to_owned();
        if model.is_empty() {
            return Err(self.err(
                &key("model"),
                "is required (the upstream model name)".into(),
            ));
        }
        let timeouts = self.timeouts(&key("timeout"), p.timeout.unwrap_or_default())?;
        let capabilities =
            self.capabilities(&key("capabilities"), p.capabilities.unwrap_or_default())?;
        let mut headers = Vec::new();
        for (name, value) in p.headers.map(|h| h.0).unwrap_or_default() {
            let at = key(&format!("headers.{name}"));
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(self.err(&at, "is not a valid header name".into()));
            }
            let value = self.x(&value);
            if http::HeaderValue::from_str(&value).is_err() {
                return Err(self.err(&at, "is not a valid header value".into()));
            }
            headers.push((name, value));
        }
        let provider = ProviderConfig {
            api_key: if api_key.eq_ignore_ascii_case("none") || api_key.is_empty() {
                None
            } else {
                Some(api_key.to_owned())
            },
            api_key_source: p.api_key.clone().unwrap_or_default(),
            backend,
            base_url,
            model,
            max_tokens: p.max_tokens,
            tier: self.x(p.tier.as_deref().unwrap_or("default")),
            pricing: p.pricing.unwrap_or_default(),
            timeouts,
            headers,
            capabilities,
            embedding_model: p
                .embedding_model
                .as_deref()
                .map(|m| self.x(m).trim().to_owned())
                .filter(|m| !m.is_empty()),
            id,
        };
        Ok((provider, !api_key.is_empty()))
    }

    /// An http(s) URL with a host, without a trailing slash.
    fn base_url(&self, key: &str, raw: Option<&str>) -> Result<String, ConfigError> {
        let base_url = self.x(raw.unwrap_or(""));
        let base_url = base_url.trim().trim_end_matches('/').to_owned();
        match url::Url::parse(&base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(base_url),
            Ok(u) => Err(self.err(
                key,
                format!(
                    "`{base_url}` must be an http:// or https:// URL (got scheme `{}`)",
                    u.scheme()
                ),
            )),
            Err(_) if base_url.is_empty() => Err(self.err(key, "is required".into())),
            Err(e) => Err(self.err(key, format!("`{base_url}` is not a valid URL: {e}"))),
        }
    }

    /// A provider's timeouts: positive seconds; first byte and idle default to `read_s`.
    fn timeouts(&self, key: &str, t: super::RawTimeouts) -> Result<Timeouts, ConfigError> {
        let secs = |v: Option<f64>, field: &str, default: f64| -> Result<Duration, ConfigError> {
            let v = v.unwrap_or(default);
            if !(v.is_finite() && v > 0.0) {
                return Err(self.err(
                    &format!("{key}.{field}"),
                    "must be a positive number of seconds".into(),
                ));
            }
            Ok(Duration::from_secs_f64(v))
        };
        let read = secs(t.read_s, "read_s", 120.0)?;
        Ok(Timeouts {
            connect: secs(t.connect_s, "connect_s", 10.0)?,
            read,
            first_byte: secs(t.first_byte_s, "first_byte_s", read.as_secs_f64())?,
            idle: secs(t.idle_s, "idle_s", read.as_secs_f64())?,
        })
    }

    /// A provider's capabilities: token counts are positive (an absent one is unknown).
    fn capabilities(&self, key: &str, c: Capabilities) -> Result<Capabilities, ConfigError> {
        for (field, value) in [
            ("context_window", c.context_window),
            ("max_output", c.max_output),
        ] {
            if value == Some(0) {
                return Err(self.err(
                    &format!("{key}.{field}"),
                    "must be a positive number of tokens (leave it out when unknown)".into(),
                ));
            }
        }
        Ok(c)
    }

    /// Known provider ids, in order, without repeats.
    fn fallback_chain(
        &self,
        raw: &[String],
        providers: &[ProviderConfig],
    ) -> Result<Vec<String>, ConfigError> {
        let mut chain = Vec::new();
        for (i, id) in raw.iter().enumerate() {
            let id = self.x(id);
            if !providers.iter().any(|p| p.id == id) {
                let hint =
                    crate::suggest::did_you_mean(&id, providers.iter().map(|p| p.id.as_str()))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                return Err(self.err(
                    &format!("fallback_chain[{i}]"),
                    format!("names unknown provider `{id}`{hint}"),
                ));
            }
            if !chain.contains(&id) {
                chain.push(id);
            }
        }
        Ok(chain)
    }
}
