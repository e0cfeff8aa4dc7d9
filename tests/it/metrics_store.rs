//! The metrics store: batching, flush, shutdown, dropping when full, reopening, retention, errors.

use crate::support::metrics as metrics_support;

use std::time::{Duration, Instant};

use clawgate::metrics::{Metrics, MetricsError, Window, MAX_BATCH, QUEUE_CAPACITY};
use metrics_support::*;

#[test]
fn flush_commits_every_recorded_event_in_batches() {
    let (_dir, _path, m) = store(0);
    let t = now();
    // More than one batch holds, sent in waves that each fit in the queue.
    let total = MAX_BATCH + MAX_BATCH / 2;
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent < total {
        while m.counters().queue_depth > 0 {
            assert!(
                Instant::now() < deadline,
                "the writer stopped taking events"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        for _ in 0..(QUEUE_CAPACITY / 2).min(total - sent) {
            m.record(ok(t - sent as u64, "deepseek-chat"));
            sent += 1;
        }
    }
    m.flush();
    let c = m.counters();
    assert_eq!((c.written, c.dropped, c.queue_depth), (total as u64, 0, 0));
    assert!(
        c.batches >= 2 && c.batches < 100,
        "events are committed in batches of at most {MAX_BATCH}, got {} batches",
        c.batches
    );
    assert_eq!(
        m.stats(Window::All)["totals"]["total_requests"],
        total as u64
    );
}

#[test]
fn a_lone_event_is_committed_within_a_batch_window_without_flush() {
    let (_dir, _path, m) = store(0);
    m.record(ok(now(), "deepseek-chat"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.counters().written == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(m.counters().written, 1);
}

#[test]
fn shutdown_drains_the_queue_and_reopening_keeps_the_data() {
    let (_dir, path, m) = store(0);
    let t = now();
    for i in 0..3_000 {
        m.record(ok(t - i, "gemini-flash"));
    }
    m.shutdown();
    m.shutdown(); // twice is fine
    m.record(ok(t, "late")); // after shutdown: dropped, counted, no panic
    assert_eq!(m.counters().dropped, 1);
    drop(m);

    let m = Metrics::open(&path, 0).expect("reopen");
    assert_eq!(m.stats(Window::All)["totals"]["total_requests"], 3_000);
    let newest_id = m.recent(1)["requests"][0]["id"].as_u64().unwrap_or(0);
    m.record(ok(t + 1, "deepseek-chat"));
    m.flush();
    let after = m.recent(1)["requests"][0]["id"].as_u64().unwrap_or(0);
    assert!(
        after > newest_id,
        "ids keep growing across restarts ({newest_id} then {after})"
    );
}

#[test]
fn dropping_the_last_handle_commits_what_was_queued() {
    let (_dir, path, m) = store(0);
    let copy = m.clone();
    for _ in 0..100 {
        copy.record(ok(now(), "deepseek-chat"));
    }
    drop(copy);
    drop(m);
    let m = Metrics::open(&path, 0).expect("reopen right away");
    assert_eq!(m.stats(Window::All)["totals"]["total_requests"], 100);
}

#[test]
fn a_steady_load_of_more_events_per_batch_window_than_the_queue_holds_loses_none() {
    let (_dir, _path, m) = store(0);
    let t = now();
    // 20,000 events a second for 0.75 s, all inside the writer's first batch window (and one
    // batch): half as much again as the queue holds, so the writer must drain the queue in the
    // middle of its window, not only when it commits.
    let (burst, bursts) = (1_000, 15);
    assert!(burst * bursts >= QUEUE_CAPACITY * 3 / 2 && burst * bursts <= MAX_BATCH);
    for b in 0..bursts {
        for i in 0..burst {
            m.record(ok(t - (b * burst + i) as u64, "deepseek-chat"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    m.flush();
    let c = m.counters();
    assert_eq!(
        (c.written, c.dropped),
        ((burst * bursts) as u64, 0),
        "no event is dropped while the load stays within what the writer can commit"
    );
}

#[test]
fn record_never_blocks_when_the_queue_is_full_it_drops_and_counts() {
    let (_dir, _path, m) = store(0);
    let n = (QUEUE_CAPACITY * 20) as u64;
    let t = now();
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let start = Instant::now();
        m.record(ok(t - i % 1000, "deepseek-chat"));
        slowest = slowest.max(start.elapsed());
    }
    m.flush();
    let c = m.counters();
    assert!(
        c.dropped > 0,
        "{n} events in a tight loop must overflow a {QUEUE_CAPACITY}-slot queue"
    );
    assert_eq!(
        c.written + c.dropped,
        n,
        "every event is either written or counted as dropped"
    );
    assert_eq!(c.queue_depth, 0);
    // A blocked send would wait for a commit with fsync; a generous bound that a wait would break.
    assert!(
        slowest < Duration::from_millis(250),
        "slowest record took {slowest:?}"
    );
    assert!(m.render("").contains(&format!(
        "clawgate_metrics_events_dropped_total {}",
        c.dropped
    )));
    // The live counters saw every request, dropped or not.
    assert!(m.render("").contains(&format!(
        "clawgate_requests_total{{provider=\"deepseek-chat\",layer=\"heuristic\",rule=\"tool-use\",status=\"200\"}} {n}"
    )));
}

#[test]
fn retention_prunes_rows_and_rollups_older_than_the_limit() {
    let (_dir, path, m) = store(1);
    let t = now();
    m.record(ok(t - 3 * DAY, "old-provider"));
    m.record(ok(t - 2 * DAY, "old-provider"));
    m.record(ok(t - MIN, "deepseek-chat"));
    m.flush();
    m.prune();
    let s = m.stats(Window::All);
    assert_eq!(s["totals"]["total_requests"], 1);
    assert_eq!(s["providers"].as_array().map(Vec::len), Some(1));
    assert_eq!(s["daily"].as_array().map(Vec::len), Some(1));
    assert_eq!(m.recent(10)["requests"].as_array().map(Vec::len), Some(1));
    m.shutdown();
    drop(m);

    // Rows kept forever (retention 0) are pruned at the next start with a retention set.
    let m = Metrics::open(&path, 0).expect("reopen");
    m.record(ok(t - 5 * DAY, "old-provider"));
    m.shutdown();
    drop(m);
    let m = Metrics::open(&path, 1).expect("reopen with retention");
    m.flush();
    assert_eq!(m.stats(Window::All)["totals"]["total_requests"], 1);
}

#[test]
fn an_unwritable_path_is_a_clear_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let path = file.join("sub").join("clawgate.db");
    let err = Metrics::open(&path, 90).expect_err("a file is in the way");
    assert!(matches!(err, MetricsError::CreateDir { .. }));
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    // A directory where the database file should be.
    let err = Metrics::open(dir.path(), 90).expect_err("a directory is not a database");
    assert!(matches!(err, MetricsError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn a_database_open_in_another_handle_is_reported_in_use() {
    let (_dir, path, _m) = store(0);
    let err = Metrics::open(&path, 0).expect_err("second open");
    assert!(matches!(err, MetricsError::InUse { .. }), "{err:?}");
    assert!(err.to_string().contains("in another process"), "{err}");
    assert!(matches!(
        Metrics::open_for_reading(&path),
        Err(MetricsError::InUse { .. })
    ));
}

#[test]
fn the_parent_directory_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("var/lib/clawgate/clawgate.db");
    let m = Metrics::open(&path, 90).expect("open creates directories");
    assert!(path.exists());
    assert_eq!(m.path(), Some(path.as_path()));
}

#[test]
fn a_disabled_store_keeps_nothing_but_still_counts_for_prometheus() {
    let m = Metrics::disabled();
    m.record(ok(now(), "deepseek-chat"));
    m.flush();
    m.shutdown();
    let s = m.stats(Window::H24);
    assert_eq!(s["totals"], serde_json::json!({}));
    assert_eq!(s["providers"], serde_json::json!([]));
    assert_eq!(m.recent(50), serde_json::json!({"requests": []}));
    assert!(m.render("").contains("clawgate_metrics_enabled 0"));
    assert!(m.render("").contains("provider=\"deepseek-chat\""));
}
