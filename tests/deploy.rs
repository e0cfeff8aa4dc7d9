//! The ways operators run ClawGate: helper scripts, systemd unit, container image, Kubernetes
//! manifests, compose file, example configs and the OpenClaw provider example.
//!
//! Tools that may be missing here (shellcheck, systemd-analyze, a Docker engine) make their test
//! print why it was skipped; with `CLAWGATE_REQUIRE_DEPLOY_TOOLS=1` (CI) a missing shellcheck or
//! systemd-analyze fails instead.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clawgate::config::Config;
use clawgate::request::ChatRequest;
use clawgate::router::Layer;
use http::HeaderMap;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

const SCRIPTS: [&str; 9] = [
    "install",
    "start",
    "stop",
    "restart",
    "status",
    "logs",
    "health",
    "update",
    "uninstall",
];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn tools_required() -> bool {
    std::env::var("CLAWGATE_REQUIRE_DEPLOY_TOOLS").is_ok_and(|v| v == "1")
}

/// Whether `cmd args` runs and succeeds.
fn runs(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A required tool is missing: fail in CI, else say why the test is skipped.
fn missing_tool(tool: &str, what: &str) {
    if tools_required() {
        panic!("{tool} is not installed but CLAWGATE_REQUIRE_DEPLOY_TOOLS=1: install it (.ci/run does)");
    }
    eprintln!("SKIPPED: {what}: `{tool}` is not installed (set CLAWGATE_REQUIRE_DEPLOY_TOOLS=1 to make this an error)");
}

fn yaml_docs(path: &str) -> Vec<Yaml> {
    use serde::Deserialize;
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_one(path: &str) -> Yaml {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{path} should hold exactly one document");
    docs.remove(0)
}

fn get<'a>(v: &'a Yaml, path: &str) -> &'a Yaml {
    path.split('.')
        .fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        })
}

fn str_at<'a>(v: &'a Yaml, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} should be a string, is {:?}", get(v, path)))
}

/// `${VAR}` lookup with every API key set (so every provider loads) and nothing else, so
/// `${X:-default}` values keep their defaults.
fn all_keys(name: &str) -> Option<String> {
    name.ends_with("_API_KEY").then(|| "dummy-key".to_owned())
}

/// The stock config with every API key set, so that every provider loads.
fn stock_config_all_keys() -> Config {
    Config::from_str(&read("config.yaml"), &repo("config.yaml"), &all_keys)
        .expect("the stock config.yaml loads")
}

// ---------------------------------------------------------------------------------------------
// helper scripts

#[test]
fn every_helper_script_exists_is_executable_and_strict() {
    use std::os::unix::fs::PermissionsExt;
    for name in SCRIPTS {
        let path = format!("deploy/scripts/{name}");
        let meta = std::fs::metadata(repo(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            meta.permissions().mode() & 0o111 != 0,
            "{path} is not executable"
        );
        let text = read(&path);
        assert!(
            text.starts_with("#!/usr/bin/env bash\n"),
            "{path}: bash shebang"
        );
        assert!(
            text.contains("set -euo pipefail"),
            "{path}: set -euo pipefail"
        );
        assert!(text.contains("--help"), "{path}: has --help");
    }
}

#[test]
fn every_helper_script_prints_help_and_rejects_unknown_arguments() {
    for name in SCRIPTS {
        let script = repo(&format!("deploy/scripts/{name}"));
        let out = Command::new(&script).arg("--help").output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} --help exits 0");
        assert!(
            stdout.contains("Usage:"),
            "{name} --help prints usage:\n{stdout}"
        );

        let out = Command::new(&script).arg("--bogus").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} --bogus fails");
        assert!(
            stderr.contains("unknown argument: --bogus"),
            "{name} --bogus says why:\n{stderr}"
        );
    }
}

#[test]
fn helper_scripts_pass_shellcheck() {
    if !runs("shellcheck", &["--version"]) {
        return missing_tool("shellcheck", "shellcheck of deploy/scripts");
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("deploy/scripts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() > SCRIPTS.len(), "scripts plus common.sh");
    let out = Command::new("shellcheck")
        .current_dir(repo("deploy/scripts"))
        .args(["--external-sources", "--severity=style"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shellcheck found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `clawgate` server on a free port, in a temporary directory, with no keys.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .current_dir(dir.path())
        .arg("--port")
        .arg("0")
        .arg("--db")
        .arg(dir.path().join("x.db"))
        .arg("--config")
        .arg(repo("config.yaml"))
        .arg("--rules")
        .arg(repo("rules"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("clawgate starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap();
                    return Server {
                        url: format!("http://{addr}"),
                        child,
                        _dir: dir,
                    };
                }
                seen.push(line);
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("clawgate did not start; it said:\n{}", seen.join("\n"));
            }
        }
    }
}

fn health_script(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(repo("deploy/scripts/health"));
    cmd.args(args)
        .env_remove("CLAWGATE_URL")
        .env_remove("CLAWGATE_PORT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn health_script_succeeds_against_a_running_server_and_fails_against_a_closed_port() {
    if !runs("curl", &["--version"]) {
        return missing_tool("curl", "the health script end-to-end test");
    }
    let server = start_server();

    let out = health_script(&["--url", &server.url], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "health --url {} exits 0; stderr:\n{}",
        server.url,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("\"status\""),
        "prints the /health JSON:\n{stdout}"
    );

    // The URL from the environment works as well as --url.
    let out = health_script(&["--quiet"], &[("CLAWGATE_URL", &server.url)]);
    assert!(
        out.status.success(),
        "CLAWGATE_URL={} health exits 0",
        server.url
    );
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "--quiet prints nothing"
    );

    // No keys here: status is no_providers, which --strict reports as exit 2.
    let out = health_script(&["--strict", "--url", &server.url], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--strict with no providers exits 2"
    );

    // A port nothing listens on: a port we held and released.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = health_script(&["--port", &closed.to_string()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "closed port exits 1:\n{stderr}");
    assert!(stderr.contains("not answering"), "says why:\n{stderr}");
}

// ---------------------------------------------------------------------------------------------
// systemd

#[test]
fn systemd_unit_runs_the_binary_as_clawgate_with_hardening_and_sighup_reload() {
    let unit = read("deploy/systemd/clawgate.service");
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "User=clawgate",
        "Group=clawgate",
        "WorkingDirectory=/opt/clawgate",
        "EnvironmentFile=-/etc/clawgate/clawgate.env",
        "StateDirectory=clawgate",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "WantedBy=multi-user.target",
    ] {
        assert!(has(line), "the unit has `{line}`");
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    assert!(exec.starts_with("/usr/local/bin/clawgate serve"), "{exec}");
    assert!(
        exec.contains("--db /var/lib/clawgate/clawgate.db"),
        "{exec}"
    );
    // install puts the binary where the unit expects it.
    let install = read("deploy/scripts/common.sh");
    assert!(install.contains("CLAWGATE_BIN=\"${CLAWGATE_BIN:-/usr/local/bin/clawgate}\""));
    assert!(install.contains("CLAWGATE_HOME=\"${CLAWGATE_HOME:-/opt/clawgate}\""));
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    if !runs("systemd-analyze", &["--version"]) {
        return missing_tool("systemd-analyze", "systemd-analyze verify of the unit");
    }
    // verify checks that ExecStart exists: point it at the binary cargo just built.
    let dir = tempfile::tempdir().unwrap();
    let unit = read("deploy/systemd/clawgate.service")
        .replace("/usr/local/bin/clawgate", env!("CARGO_BIN_EXE_clawgate"));
    let path = dir.path().join("clawgate.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lines about other units on this machine are not ours.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("clawgate.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );

    // The hardening keeps the exposure score low ("OK"); informational where --offline is
    // not supported (systemd < 250).
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=30"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = text.lines().find(|l| l.contains("Overall exposure level")) {
        let score: f64 = line
            .split(':')
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
        assert!(score <= 3.0, "exposure {score} should stay <= 3.0:\n{text}");
    } else {
        eprintln!(
            "SKIPPED: systemd-analyze security --offline gave no score (systemd too old?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// container image

#[test]
fn dockerfile_is_multi_stage_non_root_with_healthcheck_volume_and_port() {
    let text = read("Dockerfile");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let from = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert!(from >= 2, "multi-stage: {from} FROM lines");
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    let user = user.split(':').next().unwrap().trim();
    assert!(
        user != "root" && user != "0",
        "final USER is not root: {user}"
    );
    assert!(lines.iter().any(|l| l.starts_with("HEALTHCHECK ")));
    assert!(text.contains("/health"), "the HEALTHCHECK asks /health");
    assert!(lines.contains(&"EXPOSE 8090"));
    assert!(text.contains("VOLUME [\"/data\"]"));
    assert!(text.contains("CLAWGATE_DB_PATH=/data/clawgate.db"));
    assert!(
        text.contains("\"--host\", \"0.0.0.0\""),
        "listens beyond the container's loopback"
    );
    // What the build copies is not excluded by .dockerignore.
    let ignore = read(".dockerignore");
    for needed in [
        "src",
        "grammar",
        "benches",
        "rules",
        "config.yaml",
        "Cargo.lock",
    ] {
        assert!(
            !ignore.lines().any(|l| l.trim_end_matches('/') == needed),
            ".dockerignore must not exclude {needed}"
        );
    }
}

#[test]
fn docker_image_builds_where_a_docker_engine_answers() {
    if !runs("docker", &["info"]) {
        eprintln!("SKIPPED: docker build: no Docker engine answers `docker info` on this machine");
        return;
    }
    let out = Command::new("docker")
        .current_dir(repo(""))
        .args(["build", "-t", "clawgate:deploy-test", "."])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compose_file_publishes_8090_with_a_data_volume() {
    let doc = yaml_one("compose.yaml");
    let svc = get(&doc, "services.clawgate");
    assert!(svc.is_mapping(), "services.clawgate");
    let ports: Vec<&str> = get(svc, "ports")
        .as_sequence()
        .expect("ports")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(ports.iter().any(|p| p.ends_with(":8090")), "{ports:?}");
    let volumes: Vec<&str> = get(svc, "volumes")
        .as_sequence()
        .expect("volumes")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(volumes.iter().any(|v| v.ends_with(":/data")), "{volumes:?}");
    assert!(get(&doc, "volumes.clawgate-data").is_null() || get(&doc, "volumes").is_mapping());
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

const K8S: [&str; 6] = [
    "deploy/kubernetes/deployment.yaml",
    "deploy/kubernetes/service.yaml",
    "deploy/kubernetes/configmap-rules.yaml",
    "deploy/kubernetes/configmap-config.yaml",
    "deploy/kubernetes/secret.example.yaml",
    "deploy/kubernetes/kustomization.yaml",
];

#[test]
fn every_kubernetes_manifest_parses_and_has_the_expected_kind() {
    let mut listed: Vec<String> = std::fs::read_dir(repo("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .map(|n| format!("deploy/kubernetes/{n}"))
        .collect();
    listed.sort();
    let mut expected: Vec<String> = K8S.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected, "every manifest is checked here");

    let kinds = [
        ("deployment.yaml", "apps/v1", "Deployment"),
        ("service.yaml", "v1", "Service"),
        ("configmap-rules.yaml", "v1", "ConfigMap"),
        ("configmap-config.yaml", "v1", "ConfigMap"),
        ("secret.example.yaml", "v1", "Secret"),
        (
            "kustomization.yaml",
            "kustomize.config.k8s.io/v1beta1",
            "Kustomization",
        ),
    ];
    for (file, api, kind) in kinds {
        let doc = yaml_one(&format!("deploy/kubernetes/{file}"));
        assert_eq!(str_at(&doc, "apiVersion"), api, "{file}");
        assert_eq!(str_at(&doc, "kind"), kind, "{file}");
    }

    // kustomization lists files that exist, and never the example Secret.
    let kustomization = yaml_one("deploy/kubernetes/kustomization.yaml");
    for r in get(&kustomization, "resources").as_sequence().unwrap() {
        let r = r.as_str().unwrap();
        assert!(
            repo("deploy/kubernetes").join(r).is_file(),
            "resource {r} exists"
        );
        assert_ne!(
            r, "secret.example.yaml",
            "placeholder keys must not be applied"
        );
    }
}

#[test]
fn kubernetes_deployment_probes_health_runs_non_root_read_only_and_is_scraped() {
    let d = yaml_one("deploy/kubernetes/deployment.yaml");
    assert_eq!(get(&d, "spec.replicas").as_u64(), Some(2));
    let labels = get(&d, "spec.selector.matchLabels");
    assert_eq!(get(&d, "spec.template.metadata.labels"), labels);

    let ann = get(&d, "spec.template.metadata.annotations");
    assert_eq!(ann["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(ann["prometheus.io/path"].as_str(), Some("/metrics"));
    assert_eq!(ann["prometheus.io/port"].as_str(), Some("8090"));

    let pod = get(&d, "spec.template.spec");
    assert_eq!(
        get(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    let c = get(pod, "containers.0");
    let args: Vec<&str> = get(c, "args")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let arg_after = |flag: &str| {
        args.iter()
            .position(|a| *a == flag)
            .map(|i| args[i + 1])
            .unwrap_or_else(|| panic!("args have {flag}: {args:?}"))
    };
    assert_eq!(arg_after("--host"), "0.0.0.0");
    assert_eq!(arg_after("--port"), "8090");
    assert_eq!(get(c, "ports.0.containerPort").as_u64(), Some(8090));
    let port_name = str_at(c, "ports.0.name");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            str_at(c, &format!("{probe}.httpGet.path")),
            "/health",
            "{probe}"
        );
        let port = get(c, &format!("{probe}.httpGet.port"));
        assert!(
            port.as_str() == Some(port_name) || port.as_u64() == Some(8090),
            "{probe} port {port:?}"
        );
    }
    assert!(get(c, "resources.requests").is_mapping());
    assert!(get(c, "resources.limits.memory").as_str().is_some());
    assert_eq!(
        get(c, "securityContext.readOnlyRootFilesystem").as_bool(),
        Some(true)
    );
    assert_eq!(
        get(c, "securityContext.allowPrivilegeEscalation").as_bool(),
        Some(false)
    );

    // Every path ClawGate reads or writes is a mounted volume, and the DB is on a writable one.
    let volumes = get(pod, "volumes").as_sequence().unwrap();
    let mounts = get(c, "volumeMounts").as_sequence().unwrap();
    let mount_of = |path: &str| {
        mounts
            .iter()
            .find(|m| path.starts_with(str_at(m, "mountPath")))
            .unwrap_or_else(|| panic!("{path} is on a mounted volume"))
    };
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| str_at(v, "name") == name)
            .unwrap_or_else(|| panic!("volume {name}"))
    };
    let db = mount_of(arg_after("--db"));
    assert_ne!(
        db["readOnly"].as_bool(),
        Some(true),
        "the DB volume is writable"
    );
    let db_volume = volume(str_at(db, "name"));
    assert!(db_volume["emptyDir"].is_mapping() || db_volume["persistentVolumeClaim"].is_mapping());
    // Rules and config: whole ConfigMaps as directories (subPath mounts never update).
    for (flag, cm) in [
        ("--rules", "clawgate-rules"),
        ("--config", "clawgate-config"),
    ] {
        let m = mount_of(arg_after(flag));
        assert!(m["subPath"].is_null(), "{flag} must not use subPath");
        assert_eq!(str_at(volume(str_at(m, "name")), "configMap.name"), cm);
    }
    let secret = get(c, "envFrom.0.secretRef.name").as_str();
    let example = yaml_one("deploy/kubernetes/secret.example.yaml");
    assert_eq!(secret, Some(str_at(&example, "metadata.name")));

    let s = yaml_one("deploy/kubernetes/service.yaml");
    assert_eq!(get(&s, "spec.selector"), labels);
    assert_eq!(get(&s, "spec.ports.0.port").as_u64(), Some(8090));
    assert_eq!(get(&s, "spec.ports.0.targetPort").as_str(), Some(port_name));
}

#[test]
fn kubernetes_configmaps_hold_exactly_the_stock_rules_and_config() {
    let rules = yaml_one("deploy/kubernetes/configmap-rules.yaml");
    let data = get(&rules, "data").as_mapping().expect("data");
    let mut stock: Vec<String> = std::fs::read_dir(repo("rules"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rules"))
        .collect();
    stock.sort();
    let mut keys: Vec<String> = data
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    assert_eq!(keys, stock, "one key per rules/*.rules");
    for name in &stock {
        assert_eq!(
            data[name.as_str()].as_str(),
            Some(read(&format!("rules/{name}")).as_str()),
            "configmap-rules.yaml's {name} differs from rules/{name}: regenerate it"
        );
    }
    let config = yaml_one("deploy/kubernetes/configmap-config.yaml");
    assert_eq!(
        get(&config, "data")["config.yaml"].as_str(),
        Some(read("config.yaml").as_str()),
        "configmap-config.yaml differs from config.yaml: regenerate it"
    );
}

// ---------------------------------------------------------------------------------------------
// example configs and OpenClaw

#[test]
fn every_example_config_loads_with_its_rules() {
    let mut found = 0;
    for entry in std::fs::read_dir(repo("examples")).unwrap() {
        let dir = entry.unwrap().path();
        let config_path = dir.join("config.yaml");
        if !config_path.is_file() {
            continue;
        }
        found += 1;
        let text = std::fs::read_to_string(&config_path).unwrap();
        // With every variable set, every provider loads; with none, loading still succeeds.
        let cfg = Config::from_str(&text, &config_path, &all_keys)
            .unwrap_or_else(|e| panic!("{} does not load: {e}", config_path.display()));
        assert!(!cfg.providers.is_empty(), "{}", config_path.display());
        assert_eq!(
            cfg.loaded_providers().count(),
            cfg.providers.len(),
            "{}: every provider loads when its key is set",
            config_path.display()
        );
        Config::from_str(&text, &config_path, &|_| None)
            .unwrap_or_else(|e| panic!("{} without keys: {e}", config_path.display()));
        let rules = dir.join("rules");
        if rules.is_dir() {
            clawgate::rules::load_dir(&rules, &cfg).unwrap_or_else(|e| {
                panic!(
                    "{} does not load with {}: {e:?}",
                    rules.display(),
                    config_path.display()
                )
            });
        }
    }
    assert!(found >= 3, "ollama, vllm and claude examples");

    let claude = read("examples/claude/config.yaml");
    let cfg = Config::from_str(&claude, &repo("examples/claude/config.yaml"), &all_keys).unwrap();
    for p in &cfg.providers {
        let backend = format!("{:?}", p.backend).to_lowercase();
        assert!(backend.contains("anthropic"), "{}: backend {backend}", p.id);
        assert_eq!(p.base_url, "https://api.anthropic.com/v1", "{}", p.id);
    }
    assert!(claude.contains("https://api.anthropic.com/v1"));
}

/// The model ids an OpenClaw config makes OpenClaw send (`clawgate/<id>` references and the
/// provider's model list) and the alias each `clawgate/<id>` carries.
fn openclaw_models(doc: &Json) -> (Vec<String>, Vec<(String, String)>) {
    let provider = &doc["models"]["providers"]["clawgate"];
    let mut ids: Vec<String> = provider["models"]
        .as_array()
        .expect("models.providers.clawgate.models")
        .iter()
        .map(|m| m["id"].as_str().expect("model id").to_owned())
        .collect();
    let mut aliases = Vec::new();
    let defaults = &doc["agents"]["defaults"];
    let mut refs: Vec<&str> = Vec::new();
    for key in ["model", "imageModel"] {
        if let Some(p) = defaults[key]["primary"].as_str() {
            refs.push(p);
        }
        for f in defaults[key]["fallbacks"].as_array().into_iter().flatten() {
            refs.push(f.as_str().unwrap());
        }
    }
    for key in ["heartbeat", "subagents"] {
        if let Some(m) = defaults[key]["model"].as_str() {
            refs.push(m);
        }
    }
    for (name, v) in defaults["models"].as_object().into_iter().flatten() {
        refs.push(name);
        if let Some(alias) = v["alias"].as_str() {
            let id = name.strip_prefix("clawgate/").unwrap_or(name);
            aliases.push((alias.to_owned(), id.to_owned()));
        }
    }
    for r in refs {
        let id = r
            .strip_prefix("clawgate/")
            .unwrap_or_else(|| panic!("{r} should use the clawgate provider"));
        assert!(
            ids.iter().any(|i| i == id),
            "{r} is in the provider's model list"
        );
        ids.push(id.to_owned());
    }
    ids.sort();
    ids.dedup();
    (ids, aliases)
}

fn decide(table: &clawgate::router::RouteTable, model: &str) -> clawgate::router::Decision {
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Summarise the attached notes in three bullet points."}],
        "stream": true,
    })
    .to_string();
    table.decide(
        &ChatRequest::parse(body.as_bytes()).unwrap(),
        &HeaderMap::new(),
    )
}

#[test]
fn openclaw_example_is_valid_json_and_names_only_models_clawgate_serves() {
    let text = read("examples/openclaw/openclaw.json");
    let doc: Json = serde_json::from_str(&text).expect("openclaw.json is valid JSON");
    let provider = &doc["models"]["providers"]["clawgate"];
    assert_eq!(provider["baseUrl"], "http://127.0.0.1:8090/v1");
    assert_eq!(provider["api"], "openai-completions");

    let cfg = stock_config_all_keys();
    let loaded: Vec<&str> = cfg.loaded_providers().map(|p| p.id.as_str()).collect();
    let table = clawgate::rules::load_dir(&repo("rules"), &cfg)
        .expect("the stock rules load")
        .table;

    let (ids, aliases) = openclaw_models(&doc);
    for id in [
        "auto",
        "deepseek-chat",
        "deepseek-reasoner",
        "gemini-flash-lite",
        "gemini-flash",
        "openrouter-fallback",
    ] {
        assert!(ids.iter().any(|i| i == id), "openclaw.json offers {id}");
    }
    for id in &ids {
        if loaded.contains(&id.as_str()) {
            continue; // sent straight to that provider (layer direct)
        }
        let d = decide(&table, id);
        assert!(
            d.layer != Layer::Fallback && &*d.rule != "no-match",
            "model {id} is neither a provider nor routed by the rules: {d:?}"
        );
        if id != "auto" {
            assert_eq!(
                d.layer,
                Layer::Static,
                "alias {id} is routed by a static rule: {d:?}"
            );
        }
    }

    // The aliases OpenClaw users type; each also works as a bare model id through the stock
    // rules, and lands on the provider its OpenClaw entry names.
    let mut names: Vec<&str> = aliases.iter().map(|(a, _)| a.as_str()).collect();
    names.sort();
    assert_eq!(names, ["auto", "ds", "flash", "lite", "or", "r1"]);
    for (alias, id) in &aliases {
        let d = decide(&table, alias);
        assert!(d.layer != Layer::Fallback, "alias {alias} is routed: {d:?}");
        if alias != "auto" {
            assert_eq!(d.layer, Layer::Static, "alias {alias}: {d:?}");
            assert_eq!(
                d.targets.first().map(|t| t.as_ref()),
                Some(id.as_str()),
                "alias {alias} as a model id goes where clawgate/{id} does"
            );
        }
    }
}
