//! Watch streams of the etcd backend: one etcd watch per stream, from the revision after
//! `after`. etcd replays its retained history and follows live writes itself, without gaps, in
//! revision order and, within a txn, in op order.
//!
//! Compaction: etcd reports a watch from before its compaction revision `C` only on the stream,
//! a moment after it acknowledged the watch. To answer `Compacted` from [`crate::Store::watch`]
//! itself, as the redb backend does, a read just before the start revision probes the history
//! first; when etcd refuses it as compacted, a watch from revision 1 learns `C` from its
//! cancellation. A watch is accepted from etcd revision `C + 1` on (see [`compacted`]).

use std::collections::VecDeque;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions, WatchResponse};
use tokio::sync::watch;

use crate::etcd_store::{EtcdStore, entry, prefix_range, to_canopy, to_etcd};
use crate::{Revision, StoreError, WatchEvent, WatchStream};

/// How long etcd may take to acknowledge a watch or report its compaction.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

pub(crate) async fn start(
    store: &EtcdStore,
    prefix: &str,
    after: Revision,
    closed: watch::Receiver<()>,
) -> Result<WatchStream, StoreError> {
    let (key, end) = prefix_range(prefix);
    let start_revision = to_etcd(after) + 1;
    let options = WatchOptions::new()
        .with_range(end)
        .with_start_revision(start_revision);
    let mut stream = store
        .call(|c| {
            let (key, options) = (key.clone(), options.clone());
            async move { c.watch_client().watch(key, Some(options)).await }
        })
        .await?;
    let created = next_message(store, &mut stream).await?;
    if created.compact_revision() != 0 {
        return Err(compacted(after, created.compact_revision()));
    }
    if !created.created() || created.canceled() {
        return Err(StoreError::Backend(format!(
            "etcd ({}) refused the watch: {}",
            store.endpoints(),
            created.cancel_reason()
        )));
    }
    let current = created.header().map_or(0, |h| h.revision());
    if start_revision <= current + 1 && history_is_compacted(store, start_revision - 1).await? {
        return Err(compacted(after, compaction_revision(store).await?));
    }
    let follower = Follower {
        stream,
        pending: VecDeque::new(),
        last: after,
        closed,
        endpoints: store.endpoints().to_owned(),
        done: false,
    };
    Ok(Box::pin(futures::stream::unfold(follower, Follower::next)))
}

async fn next_message(
    store: &EtcdStore,
    stream: &mut etcd_client::WatchStream,
) -> Result<WatchResponse, StoreError> {
    match tokio::time::timeout(ANSWER_WITHIN, stream.message()).await {
        Ok(Ok(Some(message))) => Ok(message),
        Ok(Ok(None)) => Err(StoreError::Backend(format!(
            "etcd ({}) closed the watch stream",
            store.endpoints()
        ))),
        Ok(Err(e)) => Err(store.fail(e)),
        Err(_) => Err(StoreError::Backend(format!(
            "etcd ({}) did not answer a watch within {ANSWER_WITHIN:?}",
            store.endpoints()
        ))),
    }
}

/// Whether etcd refuses a read at `revision` (at least 1) as compacted.
async fn history_is_compacted(store: &EtcdStore, revision: i64) -> Result<bool, StoreError> {
    let probe = GetOptions::new()
        .with_count_only()
        .with_revision(revision.max(1));
    let answer = store
        .call(|mut c| {
            let probe = probe.clone();
            async move { c.get("/", Some(probe)).await }
        })
        .await;
    match answer {
        Ok(_) => Ok(false),
        Err(StoreError::Backend(message)) if message.contains("compacted") => Ok(true),
        Err(e) => Err(e),
    }
}

/// etcd's compaction revision, as the cancellation of a watch from revision 1 reports it.
async fn compaction_revision(store: &EtcdStore) -> Result<i64, StoreError> {
    let options = WatchOptions::new().with_start_revision(1);
    let mut stream = store
        .call(|c| {
            let options = options.clone();
            async move { c.watch_client().watch("/", Some(options)).await }
        })
        .await?;
    loop {
        let message = next_message(store, &mut stream).await?;
        if message.compact_revision() != 0 {
            return Ok(message.compact_revision());
        }
    }
}

/// etcd keeps revision `C` itself after a compaction at `C`, but not a deletion at `C`: the
/// first event a watch may ask for is `C + 1`, so the oldest `after` is Canopy's number of `C`.
fn compacted(requested: Revision, compact_revision: i64) -> StoreError {
    StoreError::Compacted {
        requested,
        oldest: to_canopy(compact_revision),
    }
}

struct Follower {
    stream: etcd_client::WatchStream,
    pending: VecDeque<WatchEvent>,
    /// Highest revision delivered (or the watch's `after`).
    last: Revision,
    /// Fails once every clone of the store is gone.
    closed: watch::Receiver<()>,
    endpoints: String,
    done: bool,
}

impl Follower {
    async fn next(mut self) -> Option<(Result<WatchEvent, StoreError>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if self.done {
                return None;
            }
            let message = tokio::select! {
                biased;
                message = self.stream.message() => message,
                _ = self.closed.changed() => return Some((Err(self.fail(StoreError::Closed)), self)),
            };
            let message = match message {
                Ok(Some(message)) => message,
                Ok(None) => {
                    let e = StoreError::Backend(format!(
                        "etcd ({}) ended the watch stream",
                        self.endpoints
                    ));
                    return Some((Err(self.fail(e)), self));
                }
                Err(e) => {
                    let e = StoreError::Backend(format!("etcd ({}): {e}", self.endpoints));
                    return Some((Err(self.fail(e)), self));
                }
            };
            if message.compact_revision() != 0 {
                let e = compacted(self.last, message.compact_revision());
                return Some((Err(self.fail(e)), self));
            }
            if message.canceled() {
                let e = StoreError::Backend(format!(
                    "etcd ({}) cancelled the watch: {}",
                    self.endpoints,
                    message.cancel_reason()
                ));
                return Some((Err(self.fail(e)), self));
            }
            for event in message.events() {
                let Some(kv) = event.kv() else { continue };
                let converted = match event.event_type() {
                    EventType::Put => match entry(kv) {
                        Ok(entry) => WatchEvent::Put { entry },
                        Err(e) => return Some((Err(self.fail(e)), self)),
                    },
                    EventType::Delete => WatchEvent::Delete {
                        key: String::from_utf8_lossy(kv.key()).into_owned(),
                        revision: to_canopy(kv.mod_revision()),
                    },
                };
                self.last = self.last.max(converted.revision());
                self.pending.push_back(converted);
            }
        }
    }

    fn fail(&mut self, e: StoreError) -> StoreError {
        self.done = true;
        e
    }
}
