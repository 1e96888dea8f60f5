//! The embedded backend: one redb file.
//!
//! Tables: `kv` (key → encoded record), `meta` (revision, compaction point, event count, file
//! format) and `events` ((revision, index) → encoded event), the watch history.
//!
//! Writes go to one dedicated writer thread, which drains whatever requests are queued and
//! commits them in one redb transaction (group commit: one fsync for many writers), each request
//! still getting its own revision. Reads run on tokio's blocking pool against redb snapshots and
//! never wait for the writer.

use std::fmt::Display;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Weak, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use redb::backends::FileBackend;
use redb::{
    BackendError, Database, ReadableDatabase, ReadableTable, StorageBackend, Table, TableDefinition,
};
use tokio::sync::{broadcast, oneshot};

use crate::codec::{self, Meta};
use crate::watch::{self, Batch, History, Page};
use crate::{
    Durability, Entry, Op, Precondition, Revision, Store, StoreError, WatchEvent, WatchStream,
};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const EVENTS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("events");

const META_FORMAT: &str = "format";
const META_REVISION: &str = "revision";
/// Every event with a revision up to this one has been dropped from the log.
const META_COMPACTED: &str = "compact_revision";
const META_EVENT_COUNT: &str = "event_count";
const FORMAT: u64 = 1;

/// Upper bounds that keep a single request from failing a whole commit group inside redb.
pub const MAX_KEY_LEN: usize = 64 * 1024;
pub const MAX_VALUE_LEN: usize = 1 << 30;

/// Requests committed together at most.
const MAX_GROUP: usize = 256;

/// Tuning of a [`RedbStore`].
#[derive(Debug, Clone)]
pub struct RedbOptions {
    history_limit: u64,
    broadcast_capacity: usize,
    page_events: usize,
    cache_size: Option<usize>,
    on_sync: Option<SyncHook>,
}

/// Called after each fsync of the store file returned successfully.
#[derive(Clone)]
struct SyncHook(Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for SyncHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncHook")
    }
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            history_limit: 10_000,
            broadcast_capacity: 1024,
            page_events: 1024,
            cache_size: None,
            on_sync: None,
        }
    }
}

impl RedbOptions {
    /// Watch events kept in the log (default 10,000). Older revisions are compacted away, and a
    /// watch from before them answers [`StoreError::Compacted`]. The newest revision is always
    /// kept whole, and revisions are only ever dropped whole.
    pub fn history_limit(mut self, events: u64) -> Self {
        self.history_limit = events;
        self
    }

    /// Revisions buffered for live watchers (default 1024); a watcher further behind re-reads
    /// the log.
    pub fn broadcast_capacity(mut self, revisions: usize) -> Self {
        self.broadcast_capacity = revisions.max(1);
        self
    }

    /// Log events a watcher reads per step while catching up (default 1024).
    pub fn page_events(mut self, events: usize) -> Self {
        self.page_events = events.max(1);
        self
    }

    /// redb's page cache (default: redb's own, 1 GiB at most).
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size = Some(bytes);
        self
    }

    /// Calls `hook` after every completed fsync of the store file: lets tests (and metrics)
    /// see when data reached the disk, which a crash test on the page cache cannot.
    pub fn on_sync(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_sync = Some(SyncHook(Arc::new(hook)));
        self
    }
}

/// [`Store`] on a redb file. Every acknowledged write is committed with immediate durability.
///
/// Dropping it waits for the writer thread to finish the commit in flight; live watch streams
/// then end with [`StoreError::Closed`].
pub struct RedbStore {
    db: Arc<Database>,
    writes: Option<mpsc::Sender<WriteRequest>>,
    writer: Option<thread::JoinHandle<()>>,
    events: broadcast::Sender<Arc<Batch>>,
    page_events: usize,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

struct WriteRequest {
    ops: Vec<Op>,
    durable: bool,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// A deferred write reaches the disk at most this long after its commit.
const DEFERRED_FLUSH: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Applied(Revision),
    /// Nothing changed; the store's current revision.
    Unchanged(Revision),
}

impl RedbStore {
    /// Opens (or creates, with its parent directories) the store file, with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        Self::open_with(path, RedbOptions::default())
    }

    /// Opens (or creates) the store file. Blocks briefly: call it at start-up.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: RedbOptions,
    ) -> Result<RedbStore, StoreError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Backend(format!("create directory {}: {e}", parent.display()))
            })?;
        }
        let mut builder = Database::builder();
        if let Some(bytes) = options.cache_size {
            builder.set_cache_size(bytes);
        }
        // What `Builder::create` does, with the file behind our backend so syncs are observable.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::Backend(format!("open {}: {e}", path.display())))?;
        let backend = FileBackend::new(file)
            .map_err(|e| StoreError::Backend(format!("open {}: {e}", path.display())))?;
        let db = builder
            .create_with_backend(ObservedFile {
                inner: backend,
                on_sync: options.on_sync.clone(),
            })
            .map_err(|e| StoreError::Backend(format!("open {}: {e}", path.display())))?;
        init(&db)?;
        let db = Arc::new(db);

        let (events, _) = broadcast::channel(options.broadcast_capacity);
        let (writes, queue) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            events: events.clone(),
            history_limit: options.history_limit,
        };
        let writer = thread::Builder::new()
            .name("canopy-store-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| StoreError::Backend(format!("spawn writer thread: {e}")))?;
        Ok(RedbStore {
            db,
            writes: Some(writes),
            writer: Some(writer),
            events,
            page_events: options.page_events,
        })
    }

    async fn write(&self, ops: Vec<Op>) -> Result<Outcome, StoreError> {
        self.write_with(ops, true).await
    }

    async fn write_with(&self, ops: Vec<Op>, durable: bool) -> Result<Outcome, StoreError> {
        validate(&ops)?;
        let (reply, answer) = oneshot::channel();
        let writes = self.writes.as_ref().ok_or(StoreError::Closed)?;
        writes
            .send(WriteRequest {
                ops,
                durable,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        read_with(self.db.clone(), f).await
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the queue stops the writer; joining it releases the file before we return,
        // so the same path can be reopened right away.
        drop(self.writes.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("store writer thread panicked");
        }
    }
}

#[async_trait::async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let key = key.to_owned();
        self.read(move |db| {
            let txn = db.begin_read().backend()?;
            let kv = txn.open_table(KV).backend()?;
            match kv.get(key.as_str()).backend()? {
                Some(raw) => Ok(Some(codec::decode_record(&key, raw.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<Entry>, Revision), StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |db| {
            let txn = db.begin_read().backend()?;
            let revision = meta_value(&txn.open_table(META).backend()?, META_REVISION)?;
            let kv = txn.open_table(KV).backend()?;
            let mut entries = Vec::new();
            for item in kv.range(prefix.as_str()..).backend()? {
                let (key, raw) = item.backend()?;
                let key = key.value();
                if !key.starts_with(prefix.as_str()) {
                    break;
                }
                entries.push(codec::decode_record(key, raw.value())?);
            }
            Ok((entries, revision))
        })
        .await
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        precondition: Precondition,
    ) -> Result<Revision, StoreError> {
        let op = Op::Put {
            key: key.to_owned(),
            value,
            precondition,
        };
        match self.write(vec![op]).await? {
            Outcome::Applied(revision) => Ok(revision),
            Outcome::Unchanged(_) => Err(StoreError::Backend("put was not applied".into())),
        }
    }

    async fn delete(
        &self,
        key: &str,
        precondition: Precondition,
    ) -> Result<Option<Revision>, StoreError> {
        let op = Op::Delete {
            key: key.to_owned(),
            precondition,
        };
        match self.write(vec![op]).await? {
            Outcome::Applied(revision) => Ok(Some(revision)),
            Outcome::Unchanged(_) => Ok(None),
        }
    }

    async fn txn(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        self.txn_with(ops, Durability::Immediate).await
    }

    async fn txn_with(&self, ops: Vec<Op>, durability: Durability) -> Result<Revision, StoreError> {
        match self
            .write_with(ops, durability == Durability::Immediate)
            .await?
        {
            Outcome::Applied(revision) | Outcome::Unchanged(revision) => Ok(revision),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        // Subscribe before the history is read: see the watch module.
        let rx = self.events.subscribe();
        let log = LogReader {
            db: Arc::downgrade(&self.db),
            page_events: self.page_events,
        };
        watch::start(log, rx, prefix.to_owned(), after).await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.read(|db| {
            let txn = db.begin_read().backend()?;
            meta_value(&txn.open_table(META).backend()?, META_REVISION)
        })
        .await
    }
}

async fn read_with<T, F>(db: Arc<Database>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
}

/// Reads the event log for watchers. Holds the database weakly so that a forgotten watch stream
/// does not keep the file open after the store is dropped.
struct LogReader {
    db: Weak<Database>,
    page_events: usize,
}

impl History for LogReader {
    async fn page(&self, prefix: &str, after: Revision) -> Result<Page, StoreError> {
        let db = self.db.upgrade().ok_or(StoreError::Closed)?;
        let prefix = prefix.to_owned();
        let limit = self.page_events;
        read_with(db, move |db| read_page(db, &prefix, after, limit)).await
    }
}

fn read_page(
    db: &Database,
    prefix: &str,
    after: Revision,
    limit: usize,
) -> Result<Page, StoreError> {
    let txn = db.begin_read().backend()?;
    let meta = txn.open_table(META).backend()?;
    let compacted = meta_value(&meta, META_COMPACTED)?;
    let current = meta_value(&meta, META_REVISION)?;
    if after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            oldest: compacted,
        });
    }
    let mut page = Page {
        events: Vec::new(),
        through: current.max(after),
        more: false,
    };
    let Some(first) = after.checked_add(1) else {
        return Ok(page);
    };
    let log = txn.open_table(EVENTS).backend()?;
    let mut last = after;
    for (scanned, item) in log.range((first, 0u32)..).backend()?.enumerate() {
        let (id, raw) = item.backend()?;
        let (revision, _) = id.value();
        // Cut only between revisions, so that `through` is exact.
        if scanned >= limit && revision != last {
            page.through = last;
            page.more = true;
            break;
        }
        last = revision;
        let raw = raw.value();
        if codec::event_key(raw)?.starts_with(prefix) {
            page.events.push(codec::decode_event(revision, raw)?);
        }
    }
    Ok(page)
}

/// Creates the tables so that readers never meet a missing one, and checks the file format.
fn init(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().backend()?;
    {
        let mut meta = txn.open_table(META).backend()?;
        let format = meta.get(META_FORMAT).backend()?.map(|v| v.value());
        match format {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(StoreError::Backend(format!(
                    "store file format {other} is not supported (expected {FORMAT})"
                )));
            }
            None => {
                meta.insert(META_FORMAT, FORMAT).backend()?;
            }
        }
        txn.open_table(KV).backend()?;
        txn.open_table(EVENTS).backend()?;
    }
    txn.commit().backend()
}

/// Rejects requests that are invalid whatever the state, before they reach the writer.
pub(crate) fn validate(ops: &[Op]) -> Result<(), StoreError> {
    let mut keys = std::collections::HashSet::with_capacity(ops.len());
    for op in ops {
        let key = op.key();
        if key.is_empty() {
            return Err(StoreError::InvalidArgument("empty key".into()));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(StoreError::InvalidArgument(format!(
                "key of {} bytes exceeds {MAX_KEY_LEN}",
                key.len()
            )));
        }
        if let Op::Put { value, .. } = op
            && value.len() > MAX_VALUE_LEN
        {
            return Err(StoreError::InvalidArgument(format!(
                "value of {key:?} has {} bytes, more than {MAX_VALUE_LEN}",
                value.len()
            )));
        }
        if !keys.insert(key) {
            return Err(StoreError::InvalidArgument(format!(
                "key {key:?} appears more than once in the transaction"
            )));
        }
    }
    Ok(())
}

struct Writer {
    db: Arc<Database>,
    events: broadcast::Sender<Arc<Batch>>,
    history_limit: u64,
}

/// What a group commit left on disk.
enum Committed {
    Nothing,
    Durably,
    Deferred,
}

/// Result of applying one request inside the group's transaction.
enum Applied {
    Conflict(StoreError),
    Unchanged,
    Events(Vec<WatchEvent>),
}

impl Writer {
    fn run(self, queue: mpsc::Receiver<WriteRequest>) {
        // When the oldest deferred commit not yet on disk is due. A deadline, not a quiet
        // period: a steady stream of deferred writes must not put the flush off forever.
        let mut flush_due: Option<Instant> = None;
        loop {
            if let Some(due) = flush_due
                && Instant::now() >= due
            {
                flush_due = (!self.flush()).then(|| Instant::now() + DEFERRED_FLUSH);
                continue;
            }
            let first = match flush_due {
                Some(due) => {
                    match queue.recv_timeout(due.saturating_duration_since(Instant::now())) {
                        Ok(request) => request,
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match queue.recv() {
                    Ok(request) => request,
                    Err(_) => break,
                },
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(request) => group.push(request),
                    Err(_) => break,
                }
            }
            let durable = group.iter().any(|r| r.durable);
            match self.commit_group(group, durable) {
                Committed::Durably => flush_due = None,
                Committed::Deferred => {
                    flush_due.get_or_insert_with(|| Instant::now() + DEFERRED_FLUSH);
                }
                Committed::Nothing => {}
            }
        }
        if flush_due.is_some() {
            self.flush();
        }
        tracing::debug!("store writer stopped");
    }

    /// Makes every deferred commit durable (an empty immediate commit); true when it did.
    fn flush(&self) -> bool {
        let result = self
            .db
            .begin_write()
            .backend()
            .and_then(|txn| txn.commit().backend());
        if let Err(e) = &result {
            tracing::warn!(error = %e, "store flush failed; retrying");
        }
        result.is_ok()
    }

    fn commit_group(&self, group: Vec<WriteRequest>, durable: bool) -> Committed {
        let (ops, replies): (Vec<_>, Vec<_>) = group.into_iter().map(|r| (r.ops, r.reply)).unzip();
        match self.apply_group(ops, durable) {
            Ok((outcomes, batches)) => {
                let batches_empty = batches.is_empty();
                // Publish only after the commit, in revision order: watchers rely on both.
                for batch in batches {
                    // No receivers is fine.
                    let _ = self.events.send(batch);
                }
                let wrote = !batches_empty;
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
                match (wrote, durable) {
                    (false, _) => Committed::Nothing,
                    (true, true) => Committed::Durably,
                    (true, false) => Committed::Deferred,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "store commit failed");
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Backend(message.clone())));
                }
                Committed::Nothing
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn apply_group(
        &self,
        group: Vec<Vec<Op>>,
        durable: bool,
    ) -> Result<(Vec<Result<Outcome, StoreError>>, Vec<Arc<Batch>>), StoreError> {
        let mut txn = self.db.begin_write().backend()?;
        if !durable {
            txn.set_durability(redb::Durability::None)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
        }
        let mut outcomes = Vec::with_capacity(group.len());
        let mut batches = Vec::new();
        {
            let mut kv = txn.open_table(KV).backend()?;
            let mut meta = txn.open_table(META).backend()?;
            let mut log = txn.open_table(EVENTS).backend()?;
            let mut revision = meta_value(&meta, META_REVISION)?;
            let mut count = meta_value(&meta, META_EVENT_COUNT)?;
            for ops in group {
                let next = revision
                    .checked_add(1)
                    .ok_or_else(|| StoreError::Backend("revision overflow".into()))?;
                match apply_ops(&mut kv, next, ops)? {
                    Applied::Conflict(e) => outcomes.push(Err(e)),
                    Applied::Unchanged => outcomes.push(Ok(Outcome::Unchanged(revision))),
                    Applied::Events(events) => {
                        revision = next;
                        for (index, event) in events.iter().enumerate() {
                            let index = u32::try_from(index).map_err(|_| {
                                StoreError::InvalidArgument("too many ops in one txn".into())
                            })?;
                            log.insert((revision, index), codec::encode_event(event).as_slice())
                                .backend()?;
                        }
                        count += events.len() as u64;
                        batches.push(Arc::new(Batch { revision, events }));
                        outcomes.push(Ok(Outcome::Applied(revision)));
                    }
                }
            }
            if !batches.is_empty() {
                count = compact(&mut log, &mut meta, count, self.history_limit, revision)?;
                meta.insert(META_REVISION, revision).backend()?;
                meta.insert(META_EVENT_COUNT, count).backend()?;
            }
        }
        if batches.is_empty() {
            // Nothing to make durable: skip the fsync.
            txn.abort().backend()?;
        } else {
            txn.commit().backend()?;
        }
        Ok((outcomes, batches))
    }
}

/// Checks every precondition against the state before the request, then applies all ops.
fn apply_ops(
    kv: &mut Table<&str, &[u8]>,
    revision: Revision,
    ops: Vec<Op>,
) -> Result<Applied, StoreError> {
    let mut current = Vec::with_capacity(ops.len());
    for op in &ops {
        let meta = match kv.get(op.key()).backend()? {
            Some(raw) => Some(codec::decode_meta(raw.value())?),
            None => None,
        };
        let found = meta.map(|m| m.mod_revision);
        let holds = match op.precondition() {
            Precondition::None => true,
            Precondition::Absent => found.is_none(),
            Precondition::ModRevision(expected) => found == Some(expected),
        };
        if !holds {
            return Ok(Applied::Conflict(StoreError::Conflict {
                key: op.key().to_owned(),
                expected: op.precondition(),
                found,
            }));
        }
        current.push(meta);
    }

    let mut events = Vec::with_capacity(ops.len());
    // Keys are unique within a request (validated), so `current` is still accurate here.
    for (op, meta) in ops.into_iter().zip(current) {
        match op {
            Op::Put { key, value, .. } => {
                let meta = match meta {
                    Some(m) => Meta {
                        create_revision: m.create_revision,
                        mod_revision: revision,
                        version: m.version + 1,
                    },
                    None => Meta {
                        create_revision: revision,
                        mod_revision: revision,
                        version: 1,
                    },
                };
                kv.insert(key.as_str(), codec::encode_record(meta, &value).as_slice())
                    .backend()?;
                events.push(WatchEvent::Put {
                    entry: Entry {
                        key,
                        value,
                        create_revision: meta.create_revision,
                        mod_revision: meta.mod_revision,
                        version: meta.version,
                    },
                });
            }
            Op::Delete { key, .. } => {
                if meta.is_some() {
                    kv.remove(key.as_str()).backend()?;
                    events.push(WatchEvent::Delete { key, revision });
                }
            }
        }
    }
    Ok(if events.is_empty() {
        Applied::Unchanged
    } else {
        Applied::Events(events)
    })
}

/// Drops the oldest whole revisions while the log holds more than `limit` events, never the
/// newest revision. Returns the new event count.
fn compact(
    log: &mut Table<(u64, u32), &[u8]>,
    meta: &mut Table<&str, u64>,
    mut count: u64,
    limit: u64,
    newest: Revision,
) -> Result<u64, StoreError> {
    if count <= limit {
        return Ok(count);
    }
    let mut compacted = meta_value(meta, META_COMPACTED)?;
    loop {
        let oldest = match log.first().backend()? {
            Some((id, _)) => id.value().0,
            None => break,
        };
        if oldest >= newest || (count <= limit && oldest > compacted) {
            break;
        }
        log.pop_first().backend()?;
        count = count.saturating_sub(1);
        compacted = compacted.max(oldest);
    }
    meta.insert(META_COMPACTED, compacted).backend()?;
    Ok(count)
}

fn meta_value(meta: &impl ReadableTable<&'static str, u64>, key: &str) -> Result<u64, StoreError> {
    Ok(meta.get(key).backend()?.map(|v| v.value()).unwrap_or(0))
}

/// redb's file backend, reporting each completed `sync_data` to the hook.
#[derive(Debug)]
struct ObservedFile {
    inner: FileBackend,
    on_sync: Option<SyncHook>,
}

impl StorageBackend for ObservedFile {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.inner.sync_data()?;
        if let Some(hook) = &self.on_sync {
            (hook.0)();
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.inner.close()
    }

    // The locks keep a second process off the file: forwarded, or redb would run without them.
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

/// Maps any backend error into [`StoreError::Backend`], keeping redb out of the public types.
trait OrBackend<T> {
    fn backend(self) -> Result<T, StoreError>;
}

impl<T, E: Display> OrBackend<T> for Result<T, E> {
    fn backend(self) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Backend(e.to_string()))
    }
}
