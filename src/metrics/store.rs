//! The redb store: [`Metrics`] (a cheap `Clone` handle), the writer thread, batching and retention.
//!
//! Tables: `events` (key `ts_ms << 64 | id`, so time ranges and "newest first" are key ranges;
//! value: [`RequestEvent`]'s binary encoding), `strings` (the texts events refer to, see
//! [`strings`](super::strings)), `rollup_minute` and `rollup_hour` (see
//! [`rollup`](super::rollup)), and `meta` (the next event id). A file from before `strings`
//! existed opens as it is: the table is created, and its version-1 events are still read. Each
//! batch is one write transaction with quick-repair on, so a killed process loses at most the
//! batch in flight and the database reopens without a full scan.

// redb::Error is large (160 bytes); it only travels on cold failure paths, and boxing it would
// lose `?` across redb's several error types.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, DatabaseError, ReadableTable, TableDefinition};
use serde::Serialize;

use super::event::RequestEvent;
use super::live::Live;
use super::rollup::{full_key, Agg, BatchRollups, HOUR_MS, MINUTE_MS};
use super::strings::{Interner, STRINGS};
use crate::util::lock;

/// Events queued between the request path and the writer; past this, events are dropped.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Most events committed in one write transaction.
pub const MAX_BATCH: usize = 16_384;
/// How long the writer waits to fill a batch after its first event. A commit has a fixed cost
/// (allocator state for quick repair, an fsync) of a few milliseconds whatever its size, so
/// fewer, larger batches cost the machine far less: at 1,000 req/s a 100 ms window spent about
/// 50 µs of writer CPU per request, a one-second window a fraction of that.
pub const BATCH_WINDOW: Duration = Duration::from_secs(1);
/// Queue depth at which a sender wakes the writer in the middle of its batch window, so that the
/// queue is drained long before it fills (at 100,000 req/s the other half lasts 50 ms). Below
/// it, the writer sleeps through its window: at a steady load it wakes a few times a second,
/// not on every event, and a request never pays for a wake-up.
const WAKE_DEPTH: u64 = QUEUE_CAPACITY as u64 / 2;
/// Batch capacity kept between batches; a burst's larger buffer is given back after it.
const BATCH_KEEP: usize = 1_024;
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);
/// Rows deleted per retention transaction, so pruning never stalls the writer for long.
const PRUNE_CHUNK: usize = 20_000;
/// redb's page cache (its default is 1 GiB). Inserts append at the end of the tree and stats read
/// the small per-minute rollups, so a few MB serve both; every MB here is resident memory.
const CACHE_BYTES: usize = 8 << 20;
const DAY_MS: u64 = 86_400_000;
/// How long per-minute rollups are kept: they only serve the ragged ends of the `1h` and `24h`
/// windows (longer windows start on a clock hour and read hourly rollups), and at low traffic
/// there is about one minute row per event, so keeping them for months would double the file.
pub const MINUTE_ROLLUP_KEEP_MS: u64 = 48 * 3_600_000;

pub(crate) const EVENTS: TableDefinition<u128, &[u8]> = TableDefinition::new("events");
pub(crate) const ROLLUP_MINUTE: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("rollup_minute");
pub(crate) const ROLLUP_HOUR: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rollup_hour");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_ID: &str = "next_event_id";

pub(crate) fn event_key(ts_ms: u64, id: u64) -> u128 {
    (u128::from(ts_ms) << 64) | u128::from(id)
}

pub(crate) fn event_key_parts(key: u128) -> (u64, u64) {
    ((key >> 64) as u64, key as u64)
}

/// Why the metrics database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot create the directory {dir} for the metrics database {path}: {source}")]
    CreateDir {
        path: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the metrics database {path}: {source} (is it a writable file in a writable directory? set --db / CLAWGATE_DB_PATH / metrics.db_path)")]
    Open {
        path: PathBuf,
        source: DatabaseError,
    },
    #[error("the metrics database {path} is open in another process (a running clawgate server?)")]
    InUse { path: PathBuf },
    #[error("the metrics database {path} was not found")]
    NotFound { path: PathBuf },
    #[error("metrics database {path}: {source}")]
    Storage {
        path: PathBuf,
        source: Box<redb::Error>,
    },
    #[error("cannot start the metrics writer thread: {0}")]
    Thread(std::io::Error),
}

/// Counters about the store itself (also rendered by `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriterCounters {
    /// Events committed to the database.
    pub written: u64,
    /// Events dropped because the queue was full or the writer had stopped.
    pub dropped: u64,
    /// Write transactions committed.
    pub batches: u64,
    /// Batches whose commit failed (their events are lost).
    pub write_errors: u64,
    /// Events waiting for the writer.
    pub queue_depth: u64,
    /// Stored rows that could not be decoded and were skipped by readers.
    pub corrupt_rows: u64,
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    batches: AtomicU64,
    write_errors: AtomicU64,
    queued: AtomicU64,
    corrupt: AtomicU64,
}

enum Msg {
    Event(Box<RequestEvent>),
    Flush(SyncSender<()>),
    Prune(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

struct Shared {
    db: Option<Arc<Database>>,
    path: Option<PathBuf>,
    tx: Option<SyncSender<Msg>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The writer thread, to wake it for a flush, a shutdown or a half-full queue.
    waker: Option<std::thread::Thread>,
    counters: Arc<Counters>,
    /// The `/metrics` counters, one shard per serving thread (by [`crate::slot`]) so that
    /// threads recording at once do not wait for each other; merged when read.
    live: Box<[Mutex<Live>]>,
}

/// Live counter shards: enough for one per serving thread on most machines; threads beyond
/// share.
const LIVE_SHARDS: usize = 16;

fn live_shards() -> Box<[Mutex<Live>]> {
    (0..LIVE_SHARDS).map(|_| Mutex::default()).collect()
}

/// The metrics store: a cheap `Clone` handle shared by the server, the dispatcher and readers.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("path", &self.inner.path)
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

fn open_db(path: &Path, create: bool) -> Result<Database, MetricsError> {
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    // The v3 file format is the one redb 3.x reads, so a later upgrade needs no migration.
    builder.create_with_file_format_v3(true);
    let db = if create {
        builder.create(path)
    } else {
        builder.open(path)
    };
    db.map_err(|e| match e {
        DatabaseError::DatabaseAlreadyOpen => MetricsError::InUse {
            path: path.to_owned(),
        },
        source => MetricsError::Open {
            path: path.to_owned(),
            source,
        },
    })
}

impl Metrics {
    /// Opens (or creates) the database at `path`, creating its directory, and starts the writer.
    /// `retention_days` = 0 keeps everything.
    pub fn open(path: &Path, retention_days: u32) -> Result<Metrics, MetricsError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| MetricsError::CreateDir {
                path: path.to_owned(),
                dir: dir.to_owned(),
                source,
            })?;
        }
        let db = Arc::new(open_db(path, true)?);
        let storage = |source: redb::Error| MetricsError::Storage {
            path: path.to_owned(),
            source: Box::new(source),
        };
        let (next_id, strings) = init_tables(&db).map_err(storage)?;

        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            db: db.clone(),
            rx,
            counters: counters.clone(),
            next_id,
            strings,
            retention_ms: u64::from(retention_days) * DAY_MS,
            // Prune once at start-up.
            prune_pending: true,
            last_prune: Instant::now(),
        };
        let handle = std::thread::Builder::new()
            .name("clawgate-metrics".into())
            .spawn(move || {
                yield_to_requests();
                writer.run()
            })
            .map_err(MetricsError::Thread)?;
        Ok(Metrics {
            inner: Arc::new(Shared {
                db: Some(db),
                path: Some(path.to_owned()),
                tx: Some(tx),
                waker: Some(handle.thread().clone()),
                writer: Mutex::new(Some(handle)),
                counters,
                live: live_shards(),
            }),
        })
    }

    /// Opens an existing database for reading only (no writer thread; `record` does nothing).
    /// Fails with [`MetricsError::InUse`] while a server has it open: redb allows one process.
    pub fn open_for_reading(path: &Path) -> Result<Metrics, MetricsError> {
        if !path.exists() {
            return Err(MetricsError::NotFound {
                path: path.to_owned(),
            });
        }
        let db = open_db(path, false)?;
        init_tables(&db)
            .map(drop)
            .map_err(|source| MetricsError::Storage {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        Ok(Metrics::with_db(Some(Arc::new(db)), Some(path.to_owned())))
    }

    /// A store that keeps nothing on disk: `record` only feeds the `/metrics` counters, and stats
    /// are empty (`{}` totals and `[]` lists, as the original did with metrics disabled).
    pub fn disabled() -> Metrics {
        Metrics::with_db(None, None)
    }

    fn with_db(db: Option<Arc<Database>>, path: Option<PathBuf>) -> Metrics {
        Metrics {
            inner: Arc::new(Shared {
                db,
                path,
                tx: None,
                waker: None,
                writer: Mutex::new(None),
                counters: Arc::new(Counters::default()),
                live: live_shards(),
            }),
        }
    }

    /// Records one request. Never blocks and never waits for the disk: the event goes to a
    /// bounded queue; when the queue is full it is dropped and counted.
    pub fn record(&self, ev: RequestEvent) {
        lock(crate::slot::pick(&self.inner.live)).observe(&ev);
        let Some(tx) = &self.inner.tx else { return };
        let c = &self.inner.counters;
        // Counted before sending so the writer's decrement can never run first.
        let depth = c.queued.fetch_add(1, Relaxed) + 1;
        if tx.try_send(Msg::Event(Box::new(ev))).is_err() {
            c.queued.fetch_sub(1, Relaxed);
            c.dropped.fetch_add(1, Relaxed);
        } else if depth == WAKE_DEPTH {
            self.inner.wake_writer();
        }
    }

    /// Waits until every event recorded before this call is committed.
    pub fn flush(&self) {
        self.ask_writer(Msg::Flush);
    }

    /// Deletes rows older than the retention now (the writer also does this hourly).
    pub fn prune(&self) {
        self.ask_writer(Msg::Prune);
    }

    /// Commits everything queued and stops the writer, closing the database file. Later
    /// `record` calls are dropped (and counted). Safe to call more than once.
    pub fn shutdown(&self) {
        self.ask_writer(Msg::Shutdown);
        if let Some(handle) = lock(&self.inner.writer).take() {
            if handle.join().is_err() {
                tracing::error!("the metrics writer thread panicked");
            }
        }
    }

    fn ask_writer(&self, make: fn(SyncSender<()>) -> Msg) {
        let Some(tx) = &self.inner.tx else { return };
        let (ack, done) = sync_channel(1);
        // Both fail only when the writer has stopped, and then there is nothing to wait for.
        if tx.send(make(ack)).is_ok() {
            self.inner.wake_writer();
            let _ = done.recv();
        }
    }

    /// Whether events are kept on disk.
    pub fn is_enabled(&self) -> bool {
        self.inner.db.is_some()
    }

    /// The database file, when enabled.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    pub fn counters(&self) -> WriterCounters {
        let c = &self.inner.counters;
        WriterCounters {
            written: c.written.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            batches: c.batches.load(Relaxed),
            write_errors: c.write_errors.load(Relaxed),
            queue_depth: c.queued.load(Relaxed),
            corrupt_rows: c.corrupt.load(Relaxed),
        }
    }

    pub(crate) fn db(&self) -> Option<&Database> {
        self.inner.db.as_deref()
    }

    /// The live counters of every serving thread, merged.
    pub(crate) fn live(&self) -> Live {
        let mut all = Live::default();
        for shard in &self.inner.live {
            all.merge(&lock(shard));
        }
        all
    }

    pub(crate) fn count_corrupt(&self) {
        self.inner.counters.corrupt.fetch_add(1, Relaxed);
        tracing::warn!("skipped a metrics row that could not be decoded");
    }
}

impl Shared {
    /// Cut the writer's sleep short: it looks at the queue now rather than at the end of its
    /// batch window (a wake-up that finds it busy makes its next sleep return at once).
    fn wake_writer(&self) {
        if let Some(writer) = &self.waker {
            writer.unpark();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: let the writer commit what is queued and close the file, so the
        // same path can be opened again right away.
        if let Some(tx) = self.tx.take() {
            let (ack, done) = sync_channel(1);
            if tx.send(Msg::Shutdown(ack)).is_ok() {
                self.wake_writer();
                let _ = done.recv();
            }
        }
        if let Some(handle) = lock(&self.writer).take() {
            let _ = handle.join();
        }
    }
}

/// Creates the tables if needed; returns the next event id and the string dictionary.
fn init_tables(db: &Database) -> Result<(u64, Interner), redb::Error> {
    let txn = db.begin_write()?;
    let found = {
        txn.open_table(EVENTS)?;
        txn.open_table(ROLLUP_MINUTE)?;
        txn.open_table(ROLLUP_HOUR)?;
        let strings = Interner::load(&txn.open_table(STRINGS)?)?;
        let meta = txn.open_table(META)?;
        let id = meta.get(NEXT_ID)?.map(|g| g.value()).unwrap_or(1);
        (id, strings)
    };
    txn.commit()?;
    Ok(found)
}

struct Writer {
    db: Arc<Database>,
    rx: Receiver<Msg>,
    counters: Arc<Counters>,
    next_id: u64,
    strings: Interner,
    /// 0 = keep everything.
    retention_ms: u64,
    prune_pending: bool,
    last_prune: Instant,
}

impl Writer {
    fn run(mut self) {
        let mut batch: Vec<RequestEvent> = Vec::with_capacity(BATCH_KEEP);
        loop {
            let first = match self.rx.recv_timeout(self.idle_wait()) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => {
                    self.prune_step(false);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut round = Round::default();
            round.take(first, &mut batch, &self.counters);
            // Fill the batch until it is full, the window has passed, or someone waits on a flush.
            // Sleep instead of blocking on the channel: a sender would pay for a wake-up (a
            // syscall) whenever the receiver is parked on it. Senders wake this thread only for
            // a flush, a shutdown or a half-full queue (`WAKE_DEPTH`).
            let deadline = Instant::now() + BATCH_WINDOW;
            loop {
                while round.acks.is_empty() && batch.len() < MAX_BATCH {
                    match self.rx.try_recv() {
                        Ok(msg) => round.take(msg, &mut batch, &self.counters),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            round.stop = true;
                            break;
                        }
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if round.stop
                    || !round.acks.is_empty()
                    || batch.len() >= MAX_BATCH
                    || left.is_zero()
                {
                    break;
                }
                std::thread::park_timeout(left);
            }
            if !batch.is_empty() {
                self.commit(&batch);
                batch.clear();
                batch.shrink_to(BATCH_KEEP);
            }
            if round.prune {
                self.prune_all();
            } else {
                self.prune_step(false);
            }
            for ack in round.acks {
                let _ = ack.send(());
            }
            if round.stop {
                return;
            }
        }
    }

    fn idle_wait(&self) -> Duration {
        if self.prune_pending {
            Duration::from_millis(10)
        } else {
            PRUNE_EVERY
                .saturating_sub(self.last_prune.elapsed())
                .max(Duration::from_secs(1))
        }
    }

    fn commit(&mut self, batch: &[RequestEvent]) {
        match write_batch(&self.db, batch, self.next_id, &mut self.strings) {
            Ok(next) => {
                self.strings.commit();
                self.next_id = next;
                self.counters.written.fetch_add(batch.len() as u64, Relaxed);
                self.counters.batches.fetch_add(1, Relaxed);
            }
            Err(e) => {
                self.strings.rollback();
                self.counters.write_errors.fetch_add(1, Relaxed);
                tracing::error!(events = batch.len(), error = %e, "metrics batch could not be written; its events are lost");
            }
        }
    }

    /// One retention chunk when pruning is due (or `force`d); sets `prune_pending` while more remain.
    fn prune_step(&mut self, force: bool) {
        if !force && !self.prune_pending && self.last_prune.elapsed() < PRUNE_EVERY {
            return;
        }
        let now = RequestEvent::now_ms();
        let cutoff = (self.retention_ms > 0).then(|| now.saturating_sub(self.retention_ms));
        let minute_cutoff = cutoff
            .unwrap_or(0)
            .max(now.saturating_sub(MINUTE_ROLLUP_KEEP_MS));
        match prune_chunk(&self.db, cutoff, minute_cutoff) {
            Ok(more) => self.prune_pending = more,
            Err(e) => {
                self.prune_pending = false;
                self.counters.write_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "metrics retention pruning failed");
            }
        }
        self.last_prune = Instant::now();
    }

    fn prune_all(&mut self) {
        self.prune_step(true);
        while self.prune_pending {
            self.prune_step(true);
        }
    }
}

/// What one round of the writer loop was asked to do besides writing events.
#[derive(Default)]
struct Round {
    acks: Vec<SyncSender<()>>,
    prune: bool,
    stop: bool,
}

impl Round {
    fn take(&mut self, msg: Msg, batch: &mut Vec<RequestEvent>, counters: &Counters) {
        match msg {
            Msg::Event(ev) => {
                counters.queued.fetch_sub(1, Relaxed);
                batch.push(*ev);
            }
            Msg::Flush(ack) => self.acks.push(ack),
            Msg::Prune(ack) => {
                self.prune = true;
                self.acks.push(ack);
            }
            Msg::Shutdown(ack) => {
                self.stop = true;
                self.acks.push(ack);
            }
        }
    }
}

/// Writes one batch and its rollups in one transaction; returns the next event id.
fn write_batch(
    db: &Database,
    batch: &[RequestEvent],
    mut next_id: u64,
    interner: &mut Interner,
) -> Result<u64, redb::Error> {
    let mut txn = db.begin_write()?;
    // Two-phase commit with the allocator state saved: a crash loses at most this batch and the
    // next open does not have to walk the whole file.
    txn.set_quick_repair(true);
    {
        let mut events = txn.open_table(EVENTS)?;
        let mut strings = txn.open_table(STRINGS)?;
        let mut buf = Vec::with_capacity(256);
        for ev in batch {
            buf.clear();
            ev.encode(&mut buf, &mut |out, s| interner.put(&mut strings, out, s))?;
            events.insert(event_key(ev.ts_ms, next_id), buf.as_slice())?;
            next_id += 1;
        }
        txn.open_table(META)?.insert(NEXT_ID, next_id)?;

        let rollups = BatchRollups::of(batch);
        for (def, rows) in [
            (ROLLUP_MINUTE, &rollups.minute),
            (ROLLUP_HOUR, &rollups.hour),
        ] {
            let mut table = txn.open_table(def)?;
            for (key, add) in rows {
                let mut row = match table.get(key.as_slice())? {
                    Some(old) => Agg::decode(old.value()).unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "replacing a corrupt metrics rollup row");
                        Agg::default()
                    }),
                    None => Agg::default(),
                };
                row.merge(add);
                buf.clear();
                row.encode(&mut buf);
                table.insert(key.as_slice(), buf.as_slice())?;
            }
        }
    }
    txn.commit()?;
    Ok(next_id)
}

/// Deletes up to [`PRUNE_CHUNK`] rows of each table older than `cutoff_ms` (events and hourly
/// rollups; `None` keeps them) or `minute_cutoff_ms` (minute rollups); true if more remain.
fn prune_chunk(
    db: &Database,
    cutoff_ms: Option<u64>,
    minute_cutoff_ms: u64,
) -> Result<bool, redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    let mut more = false;
    {
        let mut events = txn.open_table(EVENTS)?;
        let old: Vec<u128> = events
            .range(..event_key(cutoff_ms.unwrap_or(0), 0))?
            .take(PRUNE_CHUNK)
            .map(|r| r.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?;
        more |= old.len() == PRUNE_CHUNK;
        for k in old {
            events.remove(k)?;
        }
        // A rollup row is removed once its whole minute or hour is older than the cutoff.
        for (def, cutoff) in [
            (ROLLUP_MINUTE, minute_cutoff_ms / MINUTE_MS),
            (ROLLUP_HOUR, cutoff_ms.unwrap_or(0) / HOUR_MS),
        ] {
            let mut table = txn.open_table(def)?;
            let bound = full_key(cutoff, &[]);
            let old: Vec<Vec<u8>> = table
                .range(..bound.as_slice())?
                .take(PRUNE_CHUNK)
                .map(|r| r.map(|(k, _)| k.value().to_vec()))
                .collect::<Result<_, _>>()?;
            more |= old.len() == PRUNE_CHUNK;
            for k in old {
                table.remove(k.as_slice())?;
            }
        }
    }
    txn.commit()?;
    Ok(more)
}

/// Lower the calling thread's scheduling priority, so that on a busy machine the threads
/// serving requests run first and batches are written in the gaps: nothing waits for a
/// batch, but a request delayed behind one shows in tail latency.
fn yield_to_requests() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: gettid takes nothing; setpriority with PRIO_PROCESS and a thread id changes
    // only that thread's nice value (a Linux property of per-thread scheduling).
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn event(ts_ms: u64, provider: &str, rule: &str) -> RequestEvent {
        RequestEvent {
            ts_ms,
            provider: Some(provider.into()),
            upstream_model: Some(format!("{provider}-model")),
            layer: "static".into(),
            rule: rule.into(),
            ..crate::metrics::event::routed_sample()
        }
    }

    fn recent_rows(m: &Metrics) -> Vec<Value> {
        m.recent(10)["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn a_file_from_before_the_string_dictionary_opens_and_keeps_its_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        let now = RequestEvent::now_ms();
        let old = event(now - 1_000, "deepseek-chat", "heartbeat");
        {
            // What an earlier release left: a version-1 event and no `strings` table.
            let db = open_db(&path, true).expect("create");
            let txn = db.begin_write().expect("txn");
            {
                let mut events = txn.open_table(EVENTS).expect("events");
                let mut buf = Vec::new();
                old.encode_v1(&mut buf);
                events
                    .insert(event_key(old.ts_ms, 1), buf.as_slice())
                    .expect("insert");
                txn.open_table(META)
                    .expect("meta")
                    .insert(NEXT_ID, 2)
                    .expect("next id");
            }
            txn.commit().expect("commit");
        }
        let m = Metrics::open(&path, 0).expect("an old file opens");
        let new = event(now, "gemini-flash", "explicit-flash");
        m.record(new.clone());
        m.flush();
        let check = |m: &Metrics| {
            let rows = recent_rows(m);
            assert_eq!(rows.len(), 2, "{rows:?}");
            for (row, ev, id) in [(&rows[0], &new, 2), (&rows[1], &old, 1)] {
                assert_eq!(row["id"], id);
                assert_eq!(row["provider"], ev.provider.clone().unwrap_or_default());
                assert_eq!(row["model"], ev.upstream_model.clone().unwrap_or_default());
                assert_eq!(row["rule_name"], ev.rule);
                assert_eq!(row["attempts"][0]["error"], "HTTP 429");
                assert_eq!(row["latency_ms"], 812.5);
                assert_eq!(row["ttfb_ms"], 120.3);
                assert_eq!(row["cost_usd"], 0.000_484);
                assert_eq!(row["timestamp"], ev.ts_ms as f64 / 1e3);
            }
            assert_eq!(m.counters().corrupt_rows, 0);
        };
        check(&m);
        drop(m);
        check(&Metrics::open_for_reading(&path).expect("reopens"));
    }

    #[test]
    fn texts_are_stored_once_and_ids_are_never_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let m = Metrics::open(&path, 0).expect("open");
        let now = RequestEvent::now_ms();
        let long = "x".repeat(super::super::strings::MAX_INTERNED_BYTES + 1);
        for i in 0..100 {
            let mut ev = event(now + i, "deepseek-chat", "heartbeat");
            ev.requested_model = long.clone();
            m.record(ev);
        }
        m.flush();
        let db = m.db().expect("enabled");
        let txn = db.begin_read().expect("read");
        let strings = txn.open_table(STRINGS).expect("strings");
        let texts: Vec<String> = strings
            .iter()
            .expect("iter")
            .map(|r| r.map(|(_, v)| v.value().to_owned()).expect("row"))
            .collect();
        let mut sorted = texts.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), texts.len(), "{texts:?}");
        for t in [
            "deepseek-chat",
            "deepseek-chat-model",
            "static",
            "heartbeat",
        ] {
            assert!(texts.iter().any(|s| s == t), "{t}: {texts:?}");
        }
        assert!(!texts.contains(&long), "long texts stay inline");
        assert_eq!(recent_rows(&m)[0]["requested_model"], long.as_str());

        drop(strings);
        drop(txn);
        m.shutdown();
        drop(m);

        let db = open_db(&path, false).expect("reopen");
        let next = texts.len() as u8 + 1;
        let write = db.begin_write().expect("write");
        let mut interner =
            Interner::load(&write.open_table(STRINGS).expect("strings")).expect("load");
        {
            let mut table = write.open_table(STRINGS).expect("strings");
            let mut out = Vec::new();
            interner.put(&mut table, &mut out, "fresh").expect("put");
            interner.put(&mut table, &mut out, "fresh").expect("put");
            interner
                .put(&mut table, &mut out, "heartbeat")
                .expect("put");
            assert_eq!(out.len(), 3);
            assert_eq!(out[..2], [next, next]);
        }
        drop(write); // aborted
        interner.rollback();
        let write = db.begin_write().expect("write");
        {
            let mut table = write.open_table(STRINGS).expect("strings");
            let mut out = Vec::new();
            interner.put(&mut table, &mut out, "other").expect("put");
            assert_eq!(
                out,
                [next + 1],
                "the aborted batch's id is not given out again"
            );
        }
    }
}
