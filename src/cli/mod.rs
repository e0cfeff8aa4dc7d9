//! The `clawgate` subcommands other than `serve`: `check`, `route --explain` and
//! `import-config` ([`rules`], with rule tests in [`ruletest`] and the original config's
//! conversion in [`import`]) and `stats` ([`stats`]). Each writes to a `Write` and returns
//! the process exit code, so `main.rs` only parses arguments.

pub mod import;
pub mod rules;
pub mod ruletest;
pub mod stats;

pub use rules::{check_cmd, import_config_cmd, route_explain_cmd, ExplainOptions};
pub use stats::{stats_cmd, stats_cmd_with, RemoteServer};

/// Output format of the commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Exit codes: as DESIGN.md specifies for `check`.
pub const EXIT_OK: i32 = 0;
pub const EXIT_ERRORS: i32 = 1;
pub const EXIT_CANNOT_RUN: i32 = 2;
