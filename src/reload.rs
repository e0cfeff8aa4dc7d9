//! Hot reload: rules and config are re-read, checked and swapped in while the server runs.
//!
//! A `notify` watcher on the rules directory and on the config file's directory (the
//! directories, not the files: editors save by rename and Kubernetes swaps a `..data`
//! symlink) feeds a debounced task; SIGHUP and `POST /admin/reload` force a reload. The work
//! (reading, parsing, compiling) runs on a blocking thread; the result is one new
//! [`Snapshot`] stored with a single `ArcSwap::store`. Requests in flight keep the snapshot
//! they loaded. A broken edit never replaces a working table: the error is logged and shown
//! in `/health`, and the old table keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::{BoxFuture, FutureExt};
use notify::{EventKind, RecursiveMode, Watcher};

use crate::app::{EnvSource, Overrides};
use crate::config::Config;
use crate::providers::ProviderSet;
use crate::rules;
use crate::state::{AppState, Reload, ReloadReport, Snapshot};

/// How long a burst of file events is allowed to settle before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Re-reads config and rules and swaps them into the server's state.
#[derive(Debug)]
pub struct Reloader {
    state: Weak<AppState>,
    config_path: PathBuf,
    rules_dir: PathBuf,
    env: EnvSource,
    overrides: Overrides,
    /// One reload at a time; requests never take this lock.
    busy: Mutex<()>,
}

impl Reloader {
    pub fn new(
        state: &Arc<AppState>,
        config_path: PathBuf,
        rules_dir: PathBuf,
        env: EnvSource,
        overrides: Overrides,
    ) -> Arc<Reloader> {
        let reloader = Arc::new(Reloader {
            state: Arc::downgrade(state),
            config_path,
            rules_dir,
            env,
            overrides,
            busy: Mutex::new(()),
        });
        let _ = state.reloader.set(Arc::clone(&reloader) as Arc<dyn Reload>);
        reloader
    }

    /// Reload on this thread (file I/O and compilation: not for the async runtime).
    pub fn reload_blocking(&self, force: bool) -> ReloadReport {
        let _busy = crate::util::lock(&self.busy);
        let started = Instant::now();
        let Some(state) = self.state.upgrade() else {
            return ReloadReport::default();
        };
        let old = state.snapshot.load_full();
        let now = SystemTime::now();

        // Config: rebuilt when its text changed (or forced); an error keeps the old one.
        let mut config = Arc::clone(&old.config);
        let mut providers = Arc::clone(&old.providers);
        let mut config_status = old.config_status.clone();
        let mut config_changed = false;
        match std::fs::read(&self.config_path) {
            Err(e) => {
                config_status.last_error = Some(format!(
                    "{}: cannot read config file: {e}",
                    self.config_path.display()
                ));
            }
            Ok(text) => {
                let hash = crate::util::fnv1a(&text);
                if force || hash != config_status.attempted_hash {
                    config_status.attempted_hash = hash;
                    match self.build_config(&text, &old) {
                        Ok((new_config, new_providers)) => {
                            state.affinity.configure(&new_config.affinity);
                            config = Arc::new(new_config);
                            providers = Arc::new(new_providers);
                            config_changed = true;
                            config_status.generation += 1;
                            config_status.loaded_at = now;
                            config_status.last_error = None;
                        }
                        Err(message) => config_status.last_error = Some(message),
                    }
                }
            }
        }

        // Rules: rebuilt when the files changed, the config changed, or forced.
        let mut routes = Arc::clone(&old.routes);
        let mut rules_status = old.rules.clone();
        let mut rules_changed = false;
        let mut compile_started = None;
        match read_rules_settled(&self.rules_dir) {
            Err(e) => rules_status.last_error = Some(e.to_string()),
            Ok((sources, files, hash)) => {
                if force || config_changed || hash != rules_status.attempted_hash {
                    rules_status.attempted_hash = hash;
                    compile_started = Some(Instant::now());
                    let (table, diagnostics) =
                        rules::build(&sources, &files, &rules::Providers::from_config(&config));
                    let report = rules::Report {
                        sources,
                        diagnostics,
                        root: Some(self.rules_dir.clone()),
                    };
                    match table {
                        Some(table) if !report.has_errors() => {
                            crate::app::log_warnings(&report);
                            rules_status.generation += 1;
                            rules_status.loaded_at = now;
                            rules_status.files = table.info().files;
                            rules_status.rules = table.rule_count();
                            rules_status.hash = table.info().hash.clone();
                            rules_status.last_error = None;
                            routes = Arc::new(table);
                            rules_changed = true;
                        }
                        _ => {
                            rules_status.last_error =
                                Some(rules::LoadError::Invalid(report).to_string());
                        }
                    }
                }
            }
        }

        let errors_changed = rules_status.last_error != old.rules.last_error
            || config_status.last_error != old.config_status.last_error;
        if let Some(e) = &config_status.last_error {
            if config_status.last_error != old.config_status.last_error {
                tracing::error!("config not reloaded, the previous config keeps serving: {e}");
            }
        }
        if let Some(e) = &rules_status.last_error {
            if rules_status.last_error != old.rules.last_error {
                tracing::error!("rules not reloaded, the previous rules keep serving: {e}");
            }
        }
        let changed = config_changed || rules_changed;
        let report = ReloadReport {
            changed,
            rules_generation: rules_status.generation,
            config_generation: config_status.generation,
            rules_error: rules_status.last_error.clone(),
            config_error: config_status.last_error.clone(),
            took_ms: 0.0,
            compile_ms: 0.0,
        };
        if changed
            || errors_changed
            || rules_status.attempted_hash != old.rules.attempted_hash
            || config_status.attempted_hash != old.config_status.attempted_hash
        {
            state.snapshot.store(Arc::new(Snapshot {
                config,
                providers,
                routes,
                rules: rules_status,
                config_status,
            }));
        }
        let took_ms = started.elapsed().as_secs_f64() * 1000.0;
        let compile_ms = compile_started.map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0);
        if changed {
            tracing::info!(
                rules_generation = report.rules_generation,
                config_generation = report.config_generation,
                took_ms,
                "reloaded"
            );
        }
        ReloadReport {
            took_ms,
            compile_ms,
            ..report
        }
    }

    fn build_config(&self, text: &[u8], old: &Snapshot) -> Result<(Config, ProviderSet), String> {
        let text = std::str::from_utf8(text)
            .map_err(|_| format!("{}: the file is not UTF-8", self.config_path.display()))?;
        let mut config = Config::from_str(text, &self.config_path, &|name| self.env.lookup(name))
            .map_err(|e| e.to_string())?;
        self.overrides.apply(&mut config);
        if config.server.host != old.config.server.host
            || config.server.port != old.config.server.port
        {
            tracing::warn!(
                "server.host / server.port changed: restart ClawGate to listen on the new address"
            );
        }
        if config.server.threads != old.config.server.threads {
            tracing::warn!("server.threads changed: restart ClawGate to use the new thread count");
        }
        crate::app::log_config(&config);
        let providers =
            ProviderSet::build(&config, Some(&old.providers)).map_err(|e| e.to_string())?;
        Ok((config, providers))
    }

    /// Watch the rules directory and the config file's directory; reload after each burst of
    /// relevant changes. The watcher lives as long as the returned guard.
    pub fn watch(self: &Arc<Self>) -> notify::Result<WatchGuard> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let config_dir = parent_dir(&self.config_path);
        let config_name = self.config_path.file_name().map(|n| n.to_owned());
        let rules_dir = self.rules_dir.clone();
        // Resolved once: events arrive for every file in these directories (the metrics
        // database may live next to the config and change every second), and resolving a
        // path for each would cost a system call per path component.
        let filter_rules_dir = WatchedDir::new(&rules_dir);
        let filter_config_dir = WatchedDir::new(&config_dir);
        let one_dir = filter_config_dir.is_same(&filter_rules_dir);
        let mut watcher = notify::recommended_watcher(
            move |res: notify::Result<notify::Event>| {
                let Ok(event) = res else { return };
                if matches!(event.kind, EventKind::Access(a) if !matches!(a, notify::event::AccessKind::Close(notify::event::AccessMode::Write)))
                {
                    return;
                }
                let relevant = event.paths.iter().any(|p| {
                    let Some(name) = p.file_name() else {
                        return true;
                    };
                    let name = name.to_string_lossy();
                    if is_editor_temp(&name) {
                        return false;
                    }
                    let dir = parent_dir(p);
                    let (in_rules, in_config) = locate(&dir, &filter_rules_dir, &filter_config_dir);
                    if in_rules {
                        return true;
                    }
                    in_config
                        && (config_name
                            .as_deref()
                            .is_some_and(|c| c == p.file_name().unwrap_or_default())
                            || name == ".env"
                            || name.starts_with(".."))
                });
                if relevant {
                    let _ = tx.send(());
                }
            },
        )?;
        watcher.watch(&rules_dir, RecursiveMode::NonRecursive)?;
        if !one_dir {
            watcher.watch(&config_dir, RecursiveMode::NonRecursive)?;
        }
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            while rx.recv().await.is_some() {
                // Let the burst settle, then take everything that arrived meanwhile.
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
                Arc::clone(&this).reload(false).await;
            }
        });
        Ok(WatchGuard {
            _watcher: watcher,
            task,
        })
    }
}

impl Reload for Reloader {
    /// Reload on a blocking thread (file I/O and compilation stay off the async runtime).
    fn reload(self: Arc<Self>, force: bool) -> BoxFuture<'static, ReloadReport> {
        async move {
            match tokio::task::spawn_blocking(move || self.reload_blocking(force)).await {
                Ok(report) => report,
                Err(e) => ReloadReport {
                    rules_error: Some(format!("reload failed: {e}")),
                    ..ReloadReport::default()
                },
            }
        }
        .boxed()
    }
}

/// How long the rule files must stay unchanged before they are compiled.
const SETTLE: Duration = Duration::from_millis(20);

/// Read the rule files until two reads agree, so that a file caught halfway through being
/// written (an editor that truncates and rewrites in place) is not compiled: a truncated
/// file can be a valid, empty rule set.
fn read_rules_settled(
    dir: &Path,
) -> Result<(rules::SourceMap, Vec<rules::ast::FileId>, String), rules::LoadError> {
    let (mut sources, mut files) = rules::read_dir(dir)?;
    let mut hash = rules::content_hash(&sources, &files);
    // An empty file is most likely one caught between truncation and write; a writer that
    // was descheduled in between can leave it empty for two reads in a row, so give empty
    // files longer (up to the 0.5 s limit) before believing them.
    let has_empty = |s: &rules::SourceMap| s.files().iter().any(|f| f.text.trim().is_empty());
    let mut agreed = 0;
    for _ in 0..25 {
        std::thread::sleep(SETTLE);
        let (again_sources, again_files) = rules::read_dir(dir)?;
        let again = rules::content_hash(&again_sources, &again_files);
        if again == hash {
            agreed += 1;
            if agreed >= 5 || !has_empty(&sources) {
                break;
            }
            continue;
        }
        agreed = 0;
        (sources, files, hash) = (again_sources, again_files, again);
    }
    Ok((sources, files, hash))
}

/// Keeps the file watcher running; dropping it stops watching.
pub struct WatchGuard {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Swap files and backups that editors write next to the real file.
fn is_editor_temp(name: &str) -> bool {
    name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".swo")
        || name.starts_with(".#")
        || name == "4913"
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// A watched directory, as given and as resolved when the watch began.
struct WatchedDir {
    given: PathBuf,
    resolved: Option<PathBuf>,
}

impl WatchedDir {
    fn new(dir: &Path) -> WatchedDir {
        WatchedDir {
            given: dir.to_owned(),
            resolved: dir.canonicalize().ok(),
        }
    }

    fn is(&self, dir: &Path) -> bool {
        dir == self.given || self.resolved.as_deref() == Some(dir)
    }

    fn is_resolved(&self, resolved: &Option<PathBuf>) -> bool {
        resolved.is_some() && *resolved == self.resolved
    }

    /// Whether both name one directory: the same path, or the same path once resolved.
    fn is_same(&self, other: &WatchedDir) -> bool {
        self.given == other.given || self.is_resolved(&other.resolved)
    }
}

/// Whether `dir` (an event path's directory) is the rules directory, the config directory, or
/// both. The watcher reports paths under the path it was given, so this resolves `dir` only on
/// a platform that reports them otherwise.
fn locate(dir: &Path, rules: &WatchedDir, config: &WatchedDir) -> (bool, bool) {
    let (in_rules, in_config) = (rules.is(dir), config.is(dir));
    if in_rules || in_config {
        return (in_rules, in_config);
    }
    let resolved = dir.canonicalize().ok();
    (rules.is_resolved(&resolved), config.is_resolved(&resolved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_placed_in_the_rules_or_config_directory_however_the_path_is_spelled() {
        let root = tempfile::tempdir().unwrap();
        let rules = root.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        let (rules_w, config_w) = (WatchedDir::new(&rules), WatchedDir::new(root.path()));
        assert_eq!(locate(&rules, &rules_w, &config_w), (true, false));
        assert_eq!(locate(root.path(), &rules_w, &config_w), (false, true));
        assert_eq!(
            locate(&root.path().join("elsewhere"), &rules_w, &config_w),
            (false, false)
        );
        // A platform that reports resolved paths, or a watch through a link, still matches.
        #[cfg(unix)]
        {
            let link = root.path().join("rules-link");
            std::os::unix::fs::symlink(&rules, &link).unwrap();
            let via_link = WatchedDir::new(&link);
            assert_eq!(locate(&rules, &via_link, &config_w), (true, false));
            assert_eq!(locate(&link, &rules_w, &config_w), (true, false));
        }
    }
}
