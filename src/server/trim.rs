//! Handing memory freed after a burst back to the operating system.
//!
//! The C allocator keeps freed memory for reuse, so after a burst (a thousand concurrent
//! streams, a load test, a few 60 KB bodies on every connection) the process can sit at
//! several times its idle RSS for hours. Once no request has arrived for a second after some
//! were served, `malloc_trim` returns the free pages. It never runs while requests keep
//! arriving, so it costs nothing under load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the server must go without a new request before free memory is returned.
const QUIET: Duration = Duration::from_secs(1);

/// Requests seen so far (only compared between ticks, so relaxed ordering is enough).
#[derive(Debug, Default)]
pub struct Activity(AtomicU64);

impl Activity {
    pub fn note(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Trim after every quiet second that follows activity, until the task is aborted.
pub fn spawn(activity: Arc<Activity>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(QUIET);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut seen, mut trimmed) = (0, 0);
        loop {
            tick.tick().await;
            let now = activity.0.load(Ordering::Relaxed);
            if now == seen && now != trimmed {
                let _ = tokio::task::spawn_blocking(release_free_memory).await;
                trimmed = now;
            }
            seen = now;
        }
    })
}

/// Return the allocator's free pages to the system.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers
    // and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
