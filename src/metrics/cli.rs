//! placeholder
use super::stats::Window;
use std::path::Path;
/// A running server to ask.
#[derive(Debug, Clone)]
pub struct RemoteServer {
    pub base_url: String,
    pub api_key: Option<String>,
}
pub fn stats_cmd(
    _db: &Path,
    _json: bool,
    _recent: Option<usize>,
    _daily: bool,
    _window: Window,
    _out: &mut dyn std::io::Write,
) -> i32 {
    0
}
pub fn stats_cmd_with(
    _db: &Path,
    _server: &RemoteServer,
    _json: bool,
    _recent: Option<usize>,
    _daily: bool,
    _window: Window,
    _out: &mut dyn std::io::Write,
) -> i32 {
    0
}
