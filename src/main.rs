//! The `clawgate` command: `serve` (the default), `check`, `route --explain`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use clawgate::config::Config;

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
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// The config file.
    #[arg(
        long,
        env = "CLAWGATE_CONFIG",
        default_value = "config.yaml",
        global = true
    )]
    config: PathBuf,
    /// The rules directory.
    #[arg(
        long,
        env = "CLAWGATE_RULES_DIR",
        default_value = "rules",
        global = true
    )]
    rules: PathBuf,
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
    // .env first; real environment variables win over it.
    let dotenv = dotenvy::dotenv();
    let cli = Cli::parse();
    if let Err(e) = &dotenv {
        if !e.not_found() {
            eprintln!("error: .env: {e}");
            return ExitCode::from(2);
        }
    }
    match cli.command {
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let mut config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(host) = args.host {
        config.server.host = host;
    }
    if let Some(port) = args.port {
        config.server.port = port;
    }
    if let Some(db) = args.db {
        config.metrics.db_path = db.display().to_string();
    }
    init_logging(&config.server.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
        let state = match clawgate::app::build_state(config, &args.rules) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let listener = match bind(&addr).await {
            Ok(l) => l,
            Err(msg) => {
                eprintln!("error: {msg}");
                return ExitCode::from(1);
            }
        };
        let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
        let loaded = state.snapshot.load().providers.len();
        tracing::info!("ClawGate {} listening on http://{local} ({loaded} providers loaded)", env!("CARGO_PKG_VERSION"));
        if loaded == 0 {
            tracing::warn!("no providers are loaded: set DEEPSEEK_API_KEY, GEMINI_API_KEY or OPENROUTER_API_KEY in .env; requests get 503 until then");
        }
        clawgate::server::serve(state, listener, grace, shutdown_signal()).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
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

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
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
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_logging(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("clawgate={level},warn")))
        .unwrap_or_else(|_| EnvFilter::new("clawgate=info,warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}
