//! The `clawgate` command: `serve` (the default), `check`, `route --explain`, `import-config`.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use clawgate::app::{EnvSource, Overrides};
use clawgate::cli::{self as cmd, Format};
use clawgate::reload::Reloader;
use clawgate::state::Reload;

#[derive(Parser)]
#[command(
    name = "clawgate",
    version,
    about = "A local, OpenAI-compatible LLM router"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the router (the default).
    Serve(ServeArgs),
    /// Check the rules (and run rules/tests/*.yaml) without starting a server.
    Check {
        #[command(flatten)]
        files: Files,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show where a request would be routed, and why. No network unless --classify.
    Route {
        /// Print the trace of every rule before the winner (always on; kept for clarity).
        #[arg(long)]
        explain: bool,
        #[command(flatten)]
        files: Files,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// When the request reaches the classifier layer, really ask the classifier (one call
        /// to `llm_classifier.classifier_provider`); without it, no network is used.
        #[arg(long)]
        classify: bool,
        /// Route as a follow-up turn whose conversation was last answered by PROVIDER (by
        /// rule RULE): what `previous_provider`, `previous_rule` and `route previous` read.
        #[arg(long, value_name = "PROVIDER[:RULE]")]
        previous: Option<String>,
        /// A chat-completion request body (or `-` for standard input).
        request: PathBuf,
    },
    /// Show request counts, tokens, cost and latency from the metrics database (works while
    /// the server runs: it then asks the server).
    Stats {
        #[command(flatten)]
        files: Files,
        /// The metrics database (default: metrics.db_path from the config).
        #[arg(long, env = "CLAWGATE_DB_PATH")]
        db: Option<PathBuf>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Also list the N most recent requests.
        #[arg(long)]
        recent: Option<usize>,
        /// Show the daily breakdown and a monthly projection.
        #[arg(long)]
        daily: bool,
        /// 1h, 24h, 7d, 30d or all.
        #[arg(long, default_value = "all")]
        window: String,
    },
    /// Convert an original ClawGate config's routing sections into a .rules file (stdout).
    ImportConfig {
        /// The original config.yaml.
        old_config: PathBuf,
    },
}

#[derive(Args, Clone)]
struct Files {
    /// The config file.
    #[arg(long, env = "CLAWGATE_CONFIG", default_value = "config.yaml")]
    config: PathBuf,
    /// The rules directory.
    #[arg(long, env = "CLAWGATE_RULES_DIR", default_value = "rules")]
    rules: PathBuf,
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    files: Files,
    /// Address to listen on (overrides server.host).
    #[arg(long, env = "CLAWGATE_HOST")]
    host: Option<String>,
    /// Port to listen on (overrides server.port; 0 picks a free one).
    #[arg(long, env = "CLAWGATE_PORT")]
    port: Option<u16>,
    /// The metrics database (overrides metrics.db_path).
    #[arg(long, env = "CLAWGATE_DB_PATH")]
    db: Option<PathBuf>,
}

fn main() -> ExitCode {
    // .env first (real environment variables win over it), so clap sees CLAWGATE_* from it.
    let env = match EnvSource::load_dotenv(Path::new(".env")) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse();
    let code = match cli.command {
        None => return serve(cli.serve, env),
        Some(Command::Serve(args)) => return serve(args, env),
        Some(Command::Check { files, format }) => {
            cmd::check_cmd(&files.config, &files.rules, format, &mut std::io::stdout())
        }
        Some(Command::Route {
            explain: _,
            files,
            format,
            classify,
            previous,
            request,
        }) => {
            let mut body = Vec::new();
            let read = if request.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut body).map(|_| ())
            } else {
                std::fs::read(&request).map(|b| body = b)
            };
            if let Err(e) = read {
                eprintln!("error: cannot read {}: {e}", request.display());
                return ExitCode::from(2);
            }
            cmd::route_explain_cmd(
                &files.config,
                &files.rules,
                format,
                &body,
                cmd::ExplainOptions {
                    classify,
                    previous: previous
                        .as_deref()
                        .and_then(cmd::ExplainOptions::parse_previous),
                },
                &mut std::io::stdout(),
            )
        }
        Some(Command::ImportConfig { old_config }) => {
            cmd::import_config_cmd(&old_config, &mut std::io::stdout())
        }
        Some(Command::Stats {
            files,
            db,
            json,
            recent,
            daily,
            window,
        }) => stats(&files, db, json, recent, daily, &window, &env),
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn stats(
    files: &Files,
    db: Option<PathBuf>,
    json: bool,
    recent: Option<usize>,
    daily: bool,
    window: &str,
    env: &EnvSource,
) -> i32 {
    let window = match clawgate::metrics::Window::from_query(Some(window)) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let config = clawgate::app::load_config(&files.config, env, &Overrides::default()).ok();
    let db = db
        .or_else(|| config.as_ref().map(|c| PathBuf::from(&c.metrics.db_path)))
        .unwrap_or_else(|| PathBuf::from(clawgate::config::DEFAULT_DB_PATH));
    let server = match &config {
        Some(c) => {
            let host = match c.server.host.as_str() {
                "0.0.0.0" | "::" | "[::]" => "127.0.0.1".to_owned(),
                h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
                h => h.to_owned(),
            };
            clawgate::cli::RemoteServer {
                base_url: format!("http://{host}:{}", c.server.port),
                api_key: Some(c.server.api_key.clone()).filter(|k| !k.is_empty()),
            }
        }
        None => clawgate::cli::RemoteServer::from_env(),
    };
    clawgate::cli::stats_cmd_with(
        &db,
        &server,
        json,
        recent,
        daily,
        window,
        &mut std::io::stdout(),
    )
}

fn serve(args: ServeArgs, env: EnvSource) -> ExitCode {
    let overrides = Overrides {
        host: args.host,
        port: args.port,
        db: args.db.map(|d| d.display().to_string()),
    };
    let config = match clawgate::app::load_config(&args.files.config, &env, &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.server.log_level);
    // This thread's runtime runs reloads and signal handling and serves as thread 0;
    // `serve_threads` starts one more single-threaded runtime per extra core.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        clawgate::app::log_config(&config);
        let addr = format!("{}:{}", config.server.host, config.server.port);
        let grace = Duration::from_secs_f64(config.server.shutdown_grace_s.max(0.0));
        let threads = config.server.serving_threads();
        let rules_dir = args.files.rules.clone();
        let state = match clawgate::app::build_state(config, &rules_dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let reloader = Reloader::new(&state, args.files.config.clone(), rules_dir, env, overrides);
        let _watch = match reloader.watch() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("cannot watch for changes ({e}); reload with SIGHUP or POST /admin/reload");
                None
            }
        };
        spawn_sighup(Arc::clone(&reloader));
        let stop = shutdown_signal();
        let listener = match bind(&addr).await {
            Ok(l) => l,
            Err(msg) => {
                eprintln!("error: {msg}");
                return ExitCode::from(1);
            }
        };
        let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
        let (loaded, rules) = {
            let s = state.snapshot.load();
            (s.providers.len(), s.rules.rules)
        };
        tracing::info!(
            "ClawGate {} listening on http://{local} ({loaded} providers loaded, {rules} rules)",
            env!("CARGO_PKG_VERSION")
        );
        if loaded == 0 {
            tracing::warn!("no providers are loaded: set DEEPSEEK_API_KEY, GEMINI_API_KEY or OPENROUTER_API_KEY in .env; requests get 503 until then");
        }
        let metrics = state.metrics.clone();
        let served = clawgate::server::serve_threads(state, listener, threads, grace, stop).await;
        if let Err(e) = served {
            eprintln!("error: cannot serve on {local}: {e}");
            return ExitCode::from(1);
        }
        // Commit what is still queued before exiting.
        let _ = tokio::task::spawn_blocking(move || metrics.shutdown()).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// SIGHUP forces a reload of config and rules. The handler is installed before this returns:
/// SIGHUP's default action ends the process.
fn spawn_sighup(reloader: Arc<Reloader>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot handle SIGHUP; reload with POST /admin/reload");
            return;
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP received: reloading");
                Arc::clone(&reloader).reload(true).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = reloader;
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener, String> {
    let parsed: Vec<SocketAddr> = match tokio::net::lookup_host(addr).await {
        Ok(a) => a.collect(),
        Err(e) => return Err(format!("cannot resolve listen address {addr}: {e}")),
    };
    let mut last = None;
    for a in parsed {
        match tokio::net::TcpListener::bind(a).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some((a, e)),
        }
    }
    Err(match last {
        Some((a, e)) if e.kind() == std::io::ErrorKind::AddrInUse => {
            format!("cannot listen on {a}: the port is in use (another ClawGate? choose one with --port or CLAWGATE_PORT)")
        }
        Some((a, e)) => format!("cannot listen on {a}: {e}"),
        None => format!("listen address {addr} resolved to nothing"),
    })
}

/// SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is called, not when the
/// future is first polled, so a signal sent right after start-up is a graceful stop rather than
/// the default action (an abrupt exit).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match handlers {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("SIGTERM received"),
                        _ = int.recv() => tracing::info!("SIGINT received"),
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Log filter: `RUST_LOG` when set (`target=level` pairs, e.g. `clawgate=debug,hyper=info`),
/// else `log_level` for ClawGate and `warn` for its libraries. A `Targets` filter rather than
/// an `EnvFilter`: the latter's span and field matching enables a regex feature that, unified
/// into the `regex` crate the rules use, makes every rule regex compile to a full DFA (twice
/// the compile time of a 1,000-rule set with 100 regexes).
fn init_logging(level: &str) {
    let parse = |s: &str| s.parse::<Targets>().ok();
    let rust_log = std::env::var("RUST_LOG").ok();
    let from_env = rust_log.as_deref().and_then(parse);
    let unreadable = rust_log.is_some() && from_env.is_none();
    let filter = from_env
        .or_else(|| parse(&format!("clawgate={level},warn")))
        .or_else(|| parse("clawgate=info,warn"))
        .unwrap_or_default();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(ansi)
                .with_writer(std::io::stderr),
        )
        .with(filter)
        .init();
    if unreadable {
        tracing::warn!(
            "RUST_LOG is not a list of target=level pairs (e.g. clawgate=debug,warn); using log_level"
        );
    }
}
