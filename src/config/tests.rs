use std::path::Path;

use super::*;

fn load(src: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_str(src, Path::new("config.yaml"), &move |name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}

const STOCK: &str = include_str!("../../config.yaml");

#[test]
fn stock_config_loads_with_no_keys_and_skips_every_provider() {
    let cfg = load(STOCK, &[]).unwrap();
    let ids: Vec<_> = cfg.providers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "deepseek-chat",
            "deepseek-reasoner",
            "gemini-flash-lite",
            "gemini-flash",
            "openrouter-fallback"
        ]
    );
    assert_eq!(cfg.loaded_providers().count(), 0);
    assert_eq!(cfg.skipped.len(), 5);
    assert_eq!(
        cfg.fallback_chain,
        [
            "deepseek-chat",
            "deepseek-reasoner",
            "gemini-flash",
            "openrouter-fallback"
        ]
    );
    assert_eq!(cfg.server.port, 8090);
    assert_eq!(cfg.server.host, "127.0.0.1");
    assert_eq!(cfg.metrics.db_path, "/var/lib/clawgate/clawgate.db");
    assert_eq!(cfg.affinity, AffinityConfig::default());
    assert!(cfg.affinity.enabled);
    assert_eq!(
        (cfg.affinity.max_entries, cfg.affinity.ttl_s),
        (100_000, 3600)
    );
}

#[test]
fn stock_config_keeps_the_original_models_and_prices() {
    let cfg = load(
        STOCK,
        &[("DEEPSEEK_API_KEY", "sk-x"), ("GEMINI_API_KEY", "g")],
    )
    .unwrap();
    let p = |id: &str| cfg.providers.iter().find(|p| p.id == id).unwrap().clone();
    let chat = p("deepseek-chat");
    assert_eq!(chat.base_url, "https://api.deepseek.com/v1");
    assert_eq!(chat.model, "deepseek-chat");
    assert_eq!(
        chat.pricing,
        Pricing {
            input: 0.27,
            output: 1.10,
            cache_read: Some(0.07)
        }
    );
    assert_eq!(p("deepseek-reasoner").pricing.output, 2.19);
    assert_eq!(p("gemini-flash-lite").model, "gemini-2.5-flash-lite");
    assert_eq!(p("gemini-flash-lite").backend, Backend::GoogleGenai);
    assert_eq!(p("gemini-flash").model, "gemini-2.5-flash");
    assert_eq!(p("openrouter-fallback").model, "deepseek/deepseek-chat");
    assert_eq!(cfg.loaded_providers().count(), 4);
    assert_eq!(cfg.skipped, ["openrouter-fallback"]);
}

#[test]
fn base_url_defaults_and_overrides_expand() {
    let cfg = load(
        STOCK,
        &[
            ("DEEPSEEK_API_KEY", "k"),
            ("DEEPSEEK_BASE_URL", "http://127.0.0.1:9/v1/"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.providers[0].base_url, "http://127.0.0.1:9/v1");
    let cfg = load(STOCK, &[("CLAWGATE_DB_PATH", "/tmp/x.db")]).unwrap();
    assert_eq!(cfg.metrics.db_path, "/tmp/x.db");
}

#[test]
fn timeouts_are_per_provider_with_stream_defaults_from_read() {
    let src = "providers:\n  a:\n    base_url: http://127.0.0.1:1\n    api_key: k\n    model: m\n    timeout: {connect_s: 2, read_s: 30, idle_s: 5}\n";
    let cfg = load(src, &[]).unwrap();
    let t = cfg.providers[0].timeouts;
    assert_eq!(t.connect, Duration::from_secs(2));
    assert_eq!(t.read, Duration::from_secs(30));
    assert_eq!(t.first_byte, Duration::from_secs(30));
    assert_eq!(t.idle, Duration::from_secs(5));
}

#[test]
fn local_backend_may_declare_no_key() {
    let src = "providers:\n  ollama:\n    base_url: http://127.0.0.1:11434/v1\n    api_key: none\n    model: llama3\n";
    let cfg = load(src, &[]).unwrap();
    assert_eq!(cfg.loaded_providers().count(), 1);
    assert_eq!(cfg.providers[0].api_key, None);
}

#[test]
fn config_errors_name_file_line_and_key() {
    let cases: &[(&str, &str, Option<usize>, &str)] = &[
        (
            "providers:\n  a:\n    backend: carrier-pigeon\n    base_url: http://x\n    api_key: k\n    model: m\n",
            "providers.a.backend",
            Some(3),
            "unknown backend",
        ),
        (
            "providers:\n  a:\n    base_url: not a url\n    api_key: k\n    model: m\n",
            "providers.a.base_url",
            Some(3),
            "not a valid URL",
        ),
        (
            "providers:\n  a:\n    base_url: ftp://x\n    api_key: k\n    model: m\n",
            "providers.a.base_url",
            Some(3),
            "http",
        ),
        (
            "providers:\n  deepseek-chat:\n    base_url: http://x\n    api_key: k\n    model: m\nfallback_chain:\n  - deepseek-caht\n",
            "fallback_chain[0]",
            Some(7),
            "did you mean `deepseek-chat`",
        ),
        ("server:\n  port: lots\n", "server.port", Some(2), "invalid"),
        ("server: [\n", "server", Some(1), "sequence"),
        (
            "providers:\n  a:\n    base_url: http://x\n    api_key: k\n",
            "providers.a.model",
            Some(2),
            "required",
        ),
    ];
    for (src, key, line, needle) in cases {
        let err = load(src, &[]).unwrap_err();
        assert_eq!(&err.key, key, "{src}");
        assert_eq!(err.line, *line, "{src}: {err}");
        assert!(err.message.contains(needle), "{src}: {err}");
        assert!(err.to_string().starts_with("config.yaml:"), "{err}");
    }
}

#[test]
fn original_routing_sections_are_accepted_with_a_warning() {
    let src = "static_rules:\n  enabled: true\nheuristic_rules: {}\nproviders: {}\n";
    let cfg = load(src, &[]).unwrap();
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.contains("static_rules") && w.contains("import-config")));
}

#[test]
fn affinity_is_on_by_default_bounded_and_validated() {
    let cfg = load("providers: {}\n", &[]).unwrap();
    assert_eq!(cfg.affinity, AffinityConfig::default());
    let cfg = load(
        "affinity:\n  enabled: false\n  max_entries: 10\n  ttl_s: 60\n  ttl: 5\n",
        &[],
    )
    .unwrap();
    assert!(!cfg.affinity.enabled);
    assert_eq!((cfg.affinity.max_entries, cfg.affinity.ttl_s), (10, 60));
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.contains("unknown key `affinity.ttl`")),
        "{:?}",
        cfg.warnings
    );
    let cases: &[(&str, &str, usize, &str)] = &[
        (
            "affinity:\n  max_entries: 0\n",
            "affinity.max_entries",
            2,
            "at least 1",
        ),
        ("affinity:\n  ttl_s: 0\n", "affinity.ttl_s", 2, "at least 1"),
        ("affinity:\n  ttl_s: 1.5\n", "affinity.ttl_s", 2, "invalid"),
        (
            "affinity:\n  enabled: sometimes\n",
            "affinity.enabled",
            2,
            "invalid",
        ),
    ];
    for (src, key, line, needle) in cases {
        let err = load(src, &[]).unwrap_err();
        assert_eq!(&err.key, key, "{src}");
        assert_eq!(err.line, Some(*line), "{src}: {err}");
        assert!(err.message.contains(needle), "{src}: {err}");
    }
}

#[test]
fn stock_providers_declare_their_capabilities() {
    let cfg = load(STOCK, &[]).unwrap();
    let caps = |id: &str| {
        cfg.providers
            .iter()
            .find(|p| p.id == id)
            .unwrap()
            .capabilities
    };
    let c = |context_window, max_output, vision, tools, reasoning| Capabilities {
        context_window: Some(context_window),
        max_output: Some(max_output),
        vision: Some(vision),
        tools: Some(tools),
        reasoning: Some(reasoning),
    };
    assert_eq!(caps("deepseek-chat"), c(128_000, 8192, false, true, false));
    assert_eq!(
        caps("deepseek-reasoner"),
        c(128_000, 65_536, false, true, true)
    );
    assert_eq!(
        caps("gemini-flash-lite"),
        c(1_048_576, 65_536, true, true, true)
    );
    assert_eq!(caps("gemini-flash"), c(1_048_576, 65_536, true, true, true));
    assert_eq!(
        caps("openrouter-fallback"),
        c(128_000, 8192, false, true, false)
    );
}

#[test]
fn capabilities_are_optional_field_by_field() {
    let provider = |caps: &str| {
        format!("providers:\n  a:\n    base_url: http://127.0.0.1:1\n    api_key: k\n    model: m\n{caps}")
    };
    let cfg = load(&provider(""), &[]).unwrap();
    assert!(cfg.providers[0].capabilities.is_unknown());
    let cfg = load(
        &provider(
            "    capabilities:\n      vision: false\n      context_window: 32k_is_not_a_number\n",
        ),
        &[],
    );
    assert!(cfg.is_err(), "a token count is an integer");
    let cfg = load(
        &provider("    capabilities: { vision: false, context_window: 32768 }\n"),
        &[],
    )
    .unwrap();
    assert_eq!(
        cfg.providers[0].capabilities,
        Capabilities {
            context_window: Some(32768),
            vision: Some(false),
            ..Capabilities::default()
        }
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn capability_errors_name_the_key_and_line() {
    let provider = |caps: &str| {
        format!("providers:\n  a:\n    base_url: http://127.0.0.1:1\n    api_key: k\n    model: m\n    capabilities:\n{caps}")
    };
    let cases: &[(&str, &str, &str)] = &[
        (
            "      context_window: 0\n",
            "providers.a.capabilities.context_window",
            "positive",
        ),
        (
            "      max_output: 0\n",
            "providers.a.capabilities.max_output",
            "positive",
        ),
        (
            "      context_window: -5\n",
            "providers.a.capabilities.context_window",
            "expected u64",
        ),
        (
            "      vison: false\n",
            "providers.a.capabilities.vison",
            "unknown field `vison`, expected one of",
        ),
        (
            "      vision: sometimes\n",
            "providers.a.capabilities.vision",
            "invalid type",
        ),
    ];
    for (caps, key, needle) in cases {
        let err = load(&provider(caps), &[]).unwrap_err();
        assert_eq!(&err.key, key, "{caps}: {err}");
        assert_eq!(err.line, Some(7), "{caps}: {err}");
        assert!(err.message.contains(needle), "{caps}: {err}");
    }
}
