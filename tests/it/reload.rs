//! Hot reload over real TCP: rules and config edited while the server runs.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{chat_body, config_yaml, Gate, MockUpstream, P};

async fn upstreams() -> (MockUpstream, MockUpstream) {
    (
        MockUpstream::start("alpha").await,
        MockUpstream::start("beta").await,
    )
}

fn config(a: &MockUpstream, b: &MockUpstream) -> String {
    support::alpha_beta_config(a, b)
}

const BASE_RULES: &str = "layer static {\n  rule to-beta when model == \"pick-beta\" route beta\n}\ndefault route alpha\n";

/// A directory with config.yaml and rules/10-base.rules, and a gate watching it.
async fn watched(a: &MockUpstream, b: &MockUpstream) -> Gate {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config(a, b)).unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/10-base.rules"), BASE_RULES).unwrap();
    Gate::start_watching(dir).await
}

fn rules_dir(gate: &Gate) -> std::path::PathBuf {
    gate.dir.path().join("rules")
}

async fn rule_for(gate: &Gate, model: &str) -> String {
    let resp = gate.chat(&chat_body(model, "hello", false)).await;
    assert_eq!(resp.status(), 200);
    resp.headers()["x-clawgate-rule"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Poll until `model` is routed by `rule`, for at most `within`.
async fn wait_for_rule(gate: &Gate, model: &str, rule: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if rule_for(gate, model).await == rule {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "`{model}` still not routed by `{rule}` after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn health(gate: &Gate) -> Value {
    gate.get_json("/health").await
}

#[tokio::test]
async fn a_new_rule_file_changes_routing_within_two_seconds() {
    let (a, b) = upstreams().await;
    let gate = watched(&a, &b).await;
    assert_eq!(rule_for(&gate, "special").await, "default");
    let generation = health(&gate).await["rules"]["generation"].as_u64().unwrap();
    std::fs::write(
        rules_dir(&gate).join("05-special.rules"),
        "layer static {\n  rule special when model == \"special\" route beta\n}\n",
    )
    .unwrap();
    wait_for_rule(&gate, "special", "special", Duration::from_secs(2)).await;
    let h = health(&gate).await;
    assert!(h["rules"]["generation"].as_u64().unwrap() > generation);
    assert_eq!(h["rules"]["files"], 2);
    assert_eq!(h["rules"]["last_error"], Value::Null);
    gate.stop().await;
}

#[tokio::test]
async fn an_edit_saved_by_atomic_rename_is_picked_up() {
    let (a, b) = upstreams().await;
    let gate = watched(&a, &b).await;
    let dir = rules_dir(&gate);
    let tmp = dir.join(".10-base.rules.tmp");
    std::fs::write(&tmp, BASE_RULES.replace("to-beta", "renamed-rule")).unwrap();
    std::fs::rename(&tmp, dir.join("10-base.rules")).unwrap();
    wait_for_rule(&gate, "pick-beta", "renamed-rule", Duration::from_secs(2)).await;
    gate.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_configmap_style_symlink_swap_is_picked_up() {
    let (a, b) = upstreams().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config(&a, &b)).unwrap();
    // rules/..v1/10-base.rules, rules/..data -> ..v1, rules/10-base.rules -> ..data/10-base.rules
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("..v1")).unwrap();
    std::fs::write(rules.join("..v1/10-base.rules"), BASE_RULES).unwrap();
    std::os::unix::fs::symlink("..v1", rules.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/10-base.rules", rules.join("10-base.rules")).unwrap();
    let gate = Gate::start_watching(dir).await;
    assert_eq!(rule_for(&gate, "pick-beta").await, "to-beta");
    // Kubernetes: write ..v2, point a temporary link at it, rename it over ..data.
    std::fs::create_dir_all(rules.join("..v2")).unwrap();
    std::fs::write(
        rules.join("..v2/10-base.rules"),
        BASE_RULES.replace("to-beta", "from-configmap"),
    )
    .unwrap();
    std::os::unix::fs::symlink("..v2", rules.join("..data_tmp")).unwrap();
    std::fs::rename(rules.join("..data_tmp"), rules.join("..data")).unwrap();
    wait_for_rule(&gate, "pick-beta", "from-configmap", Duration::from_secs(2)).await;
    gate.stop().await;
}

#[tokio::test]
async fn a_broken_edit_keeps_the_old_rules_serving_and_shows_in_health_until_fixed() {
    let (a, b) = upstreams().await;
    let gate = watched(&a, &b).await;
    let file = rules_dir(&gate).join("10-base.rules");
    std::fs::write(&file, "layer static {\n  rule to-beta when model == \"pick-beta\" route bta\n}\ndefault route alpha\n").unwrap();
    let started = Instant::now();
    let error = loop {
        let h = health(&gate).await;
        if let Some(e) = h["rules"]["last_error"].as_str() {
            break e.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the broken edit was not reported"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(error.contains("10-base.rules:2:"), "{error}");
    assert!(
        error.contains("beta"),
        "a did-you-mean should name beta: {error}"
    );
    // Still routed by the old table.
    assert_eq!(rule_for(&gate, "pick-beta").await, "to-beta");
    std::fs::write(&file, BASE_RULES.replace("to-beta", "fixed")).unwrap();
    wait_for_rule(&gate, "pick-beta", "fixed", Duration::from_secs(2)).await;
    assert_eq!(health(&gate).await["rules"]["last_error"], Value::Null);
    gate.stop().await;
}

#[tokio::test]
async fn deleting_a_rule_file_removes_its_rules() {
    let (a, b) = upstreams().await;
    let gate = watched(&a, &b).await;
    let extra = rules_dir(&gate).join("05-extra.rules");
    std::fs::write(
        &extra,
        "layer static {\n  rule extra when model == \"x\" route beta\n}\n",
    )
    .unwrap();
    wait_for_rule(&gate, "x", "extra", Duration::from_secs(2)).await;
    std::fs::remove_file(&extra).unwrap();
    wait_for_rule(&gate, "x", "default", Duration::from_secs(2)).await;
    gate.stop().await;
}

#[tokio::test]
async fn editor_swap_files_do_not_trigger_a_reload() {
    let (a, b) = upstreams().await;
    let gate = watched(&a, &b).await;
    let before = health(&gate).await["rules"]["generation"].as_u64().unwrap();
    let dir = rules_dir(&gate);
    std::fs::write(dir.join(".10-base.rules.swp"), "garbage").unwrap();
    std::fs::write(dir.join("10-base.rules~"), "garbage").unwrap();
    std::fs::write(dir.join(".#10-base.rules"), "garbage").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let h = health(&gate).await;
    assert_eq!(h["rules"]["generation"].as_u64().unwrap(), before);
    assert_eq!(h["rules"]["last_error"], Value::Null);
    gate.stop().await;
}

#[tokio::test]
async fn admin_reload_forces_a_reload_from_loopback() {
    let (a, b) = upstreams().await;
    let gate = watched(&a, &b).await;
    let before = health(&gate).await["rules"]["generation"].as_u64().unwrap();
    let resp = Gate::client()
        .post(format!("{}/admin/reload", gate.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["rules_error"], Value::Null);
    assert!(report["rules_generation"].as_u64().unwrap() > before);
    // How long it took: the compile and swap, within the whole reload.
    let compile_ms = report["compile_ms"].as_f64().unwrap();
    assert!(compile_ms > 0.0 && compile_ms <= report["took_ms"].as_f64().unwrap());
    gate.stop().await;
}

#[tokio::test]
async fn admin_reload_requires_the_admin_key_when_one_is_set() {
    let (a, b) = upstreams().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&a, &b).replace(
        "  log_level: debug\n",
        "  log_level: debug\n  admin_key: reload-secret\n",
    );
    std::fs::write(dir.path().join("config.yaml"), cfg).unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/10-base.rules"), BASE_RULES).unwrap();
    let gate = Gate::start_watching(dir).await;
    let url = format!("{}/admin/reload", gate.url);
    assert_eq!(
        Gate::client().post(&url).send().await.unwrap().status(),
        403
    );
    assert_eq!(
        Gate::client()
            .post(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        Gate::client()
            .post(&url)
            .bearer_auth("reload-secret")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    gate.stop().await;
}

#[tokio::test]
async fn a_provider_added_to_the_config_appears_in_models_and_old_ones_keep_their_health() {
    let (a, b) = upstreams().await;
    let gate = watched(&a, &b).await;
    // Give alpha some history.
    a.script([support::Behavior::Status(500, serde_json::json!({}))]);
    gate.chat(&chat_body("alpha", "hi", false)).await;
    assert_eq!(
        health(&gate).await["providers"]["alpha"]["consecutive_failures"],
        1
    );
    let c = MockUpstream::start("gamma").await;
    let cfg = config_yaml(
        &[
            P {
                id: "alpha",
                base_url: a.base_url(),
                extra: "",
            },
            P {
                id: "beta",
                base_url: b.base_url(),
                extra: "",
            },
            P {
                id: "gamma",
                base_url: c.base_url(),
                extra: "",
            },
        ],
        &["alpha", "beta", "gamma"],
        "",
    );
    std::fs::write(gate.dir.path().join("config.yaml"), cfg).unwrap();
    let started = Instant::now();
    loop {
        let models = gate.get_json("/v1/models").await;
        let ids: Vec<String> = models["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        if ids.contains(&"gamma".to_owned()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "gamma never appeared: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let resp = gate.chat(&chat_body("gamma", "hi", false)).await;
    assert_eq!(resp.headers()["x-clawgate-provider"], "gamma");
    let h = health(&gate).await;
    assert_eq!(
        h["providers"]["alpha"]["consecutive_failures"], 1,
        "unchanged providers keep their health"
    );
    assert!(h["config"]["generation"].as_u64().unwrap() >= 2);
    gate.stop().await;
}

#[tokio::test]
async fn a_broken_config_edit_keeps_the_old_config_serving() {
    let (a, b) = upstreams().await;
    let gate = watched(&a, &b).await;
    let path = gate.dir.path().join("config.yaml");
    std::fs::write(
        &path,
        config(&a, &b).replace("backend: openai-compat", "backend: carrier-pigeon"),
    )
    .unwrap();
    let started = Instant::now();
    let error = loop {
        if let Some(e) = health(&gate).await["config"]["last_error"].as_str() {
            break e.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the broken config was not reported"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(
        error.contains("config.yaml:") && error.contains("carrier-pigeon"),
        "{error}"
    );
    assert_eq!(
        gate.chat(&chat_body("alpha", "hi", false)).await.status(),
        200
    );
    std::fs::write(&path, config(&a, &b)).unwrap();
    let started = Instant::now();
    while !health(&gate).await["config"]["last_error"].is_null() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the fixed config did not clear the error"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    gate.stop().await;
}

/// Writes rule version `i`: good versions name their rule `v<i>`, broken ones do not parse.
fn write_version(dir: &Path, i: usize, good: bool) {
    let text = if good {
        format!("layer static {{\n  rule v{i} when model == \"load\" route alpha\n}}\ndefault route alpha\n")
    } else {
        format!("layer static {{\n  rule v{i} when model == \"load\" route\n")
    };
    std::fs::write(dir.join("10-base.rules"), text).unwrap();
}

#[tokio::test]
async fn continuous_traffic_sees_no_failure_across_100_rule_rewrites() {
    let (a, b) = upstreams().await;
    let gate = watched(&a, &b).await;
    let dir = rules_dir(&gate);
    write_version(&dir, 0, true);
    wait_for_rule(&gate, "load", "v0", Duration::from_secs(2)).await;

    let url = format!("{}/v1/chat/completions", gate.url);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client_stop = stop.clone();
    let client = tokio::spawn(async move {
        let http = Gate::client();
        let mut seen: Vec<(u16, String)> = Vec::new();
        while !client_stop.load(std::sync::atomic::Ordering::Relaxed) {
            let resp = http
                .post(&url)
                .json(&chat_body("load", "hi", false))
                .send()
                .await
                .unwrap();
            let rule = resp
                .headers()
                .get("x-clawgate-rule")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            seen.push((resp.status().as_u16(), rule));
        }
        seen
    });
    let mut good = vec![0usize];
    for i in 1..=100 {
        let is_good = i % 3 != 0;
        write_version(&dir, i, is_good);
        if is_good {
            good.push(i);
        }
        let pause = if i % 10 == 0 { 300 } else { 30 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    write_version(&dir, 101, true);
    good.push(101);
    wait_for_rule(&gate, "load", "v101", Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = client.await.unwrap();
    assert!(seen.len() > 50, "only {} requests were made", seen.len());
    let failed = seen.iter().filter(|(s, _)| *s != 200).count();
    assert_eq!(failed, 0, "requests failed during reloads");
    // Every answer came from a table that was valid, and versions only move forward.
    let mut last = 0;
    for (_, rule) in &seen {
        let v: usize = rule
            .strip_prefix('v')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected rule {rule}"));
        assert!(good.contains(&v), "rule v{v} comes from a broken version");
        assert!(v >= last, "routing went back from v{last} to v{v}");
        last = v;
    }
    let distinct: std::collections::BTreeSet<&String> = seen.iter().map(|(_, r)| r).collect();
    assert!(
        distinct.len() >= 5,
        "the rules were barely reloaded under load: {distinct:?}"
    );
    gate.stop().await;
}
