//! Durability at the file boundary.
//!
//! A SIGKILL keeps the page cache, so the crash test passes even if nothing is ever fsynced;
//! cutting power cannot be done here (no device-mapper on this kernel for dm-flakey or
//! dm-log-writes). So these tests watch the fsyncs themselves: `RedbOptions::on_sync` reports
//! every completed `sync_data` of the store file, the call that makes redb's commits durable.
//!
//! What they prove: an immediate write returns only after an fsync of the file completed
//! since the call began (nothing else was pending, so it is the write's own commit), and a
//! deferred write gets one within the promised 200 ms, also while more deferred writes keep
//! coming. What they cannot prove: that the disk honours the fsync.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canopy_store::{Durability, Op, Precondition, RedbOptions, Store};

use crate::temp_store_with;

/// The promise of `Durability::Deferred` (the store's flush interval).
const DEFERRED_PROMISE: Duration = Duration::from_millis(200);
/// On top of the promise: the flush's own fsync and a loaded 2-core machine's scheduling. A
/// flush that only happens on the next immediate write, or at close, still fails by far.
const SLACK: Duration = Duration::from_millis(800);

#[derive(Clone, Default)]
struct Syncs(Arc<Mutex<Vec<Instant>>>);

impl Syncs {
    fn options(&self) -> RedbOptions {
        let syncs = self.clone();
        RedbOptions::default().on_sync(move || syncs.0.lock().unwrap().push(Instant::now()))
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The first fsync after `since`, waiting for it until `deadline`.
    async fn first_after(&self, since: Instant, deadline: Instant) -> Option<Instant> {
        loop {
            let found = self.0.lock().unwrap().iter().copied().find(|t| *t > since);
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn put(key: &str) -> Op {
    Op::Put {
        key: key.to_owned(),
        value: b"v".to_vec(),
        precondition: Precondition::None,
    }
}

#[tokio::test]
async fn immediate_writes_are_fsynced_before_they_return() {
    let syncs = Syncs::default();
    let (_dir, store) = temp_store_with(syncs.options());
    assert!(syncs.count() > 0, "opening the store commits durably");

    let before = syncs.count();
    store
        .put("/a", b"1".to_vec(), Precondition::None)
        .await
        .unwrap();
    assert!(syncs.count() > before, "put returned before an fsync");

    let before = syncs.count();
    store.txn(vec![put("/b"), put("/c")]).await.unwrap();
    assert!(syncs.count() > before, "txn returned before an fsync");

    let before = syncs.count();
    store
        .txn_with(vec![put("/d")], Durability::Immediate)
        .await
        .unwrap();
    assert!(
        syncs.count() > before,
        "immediate txn_with returned before an fsync"
    );

    let before = syncs.count();
    store.delete("/a", Precondition::None).await.unwrap();
    assert!(syncs.count() > before, "delete returned before an fsync");

    // An immediate write also makes a deferred one before it durable ("or with the next
    // immediate write"): the next one must not wait for the timer.
    store
        .txn_with(vec![put("/e")], Durability::Deferred)
        .await
        .unwrap();
    let before = syncs.count();
    store.txn(vec![put("/f")]).await.unwrap();
    assert!(
        syncs.count() > before,
        "immediate write after a deferred one"
    );
}

#[tokio::test]
async fn a_deferred_write_is_fsynced_within_200ms() {
    let syncs = Syncs::default();
    let (_dir, store) = temp_store_with(syncs.options());
    let called = Instant::now();
    store
        .txn_with(vec![put("/deferred")], Durability::Deferred)
        .await
        .unwrap();
    let returned = Instant::now();
    let synced = syncs
        .first_after(called, returned + DEFERRED_PROMISE + SLACK)
        .await
        .expect("a deferred write was never fsynced");
    eprintln!(
        "deferred write fsynced {:?} after it returned",
        synced.saturating_duration_since(returned)
    );
    // The flush waits for the interval: the write itself did not wait for an fsync.
    assert!(
        synced.duration_since(called) >= DEFERRED_PROMISE - Duration::from_millis(10),
        "a deferred write was fsynced at once ({:?}): it is not deferred",
        synced.duration_since(called)
    );
}

#[tokio::test]
async fn a_steady_stream_of_deferred_writes_is_fsynced_within_200ms() {
    let syncs = Syncs::default();
    let (_dir, store) = temp_store_with(syncs.options());
    // A write every 50 ms, for longer than the promise plus the slack: each new write must
    // not push the flush of the ones before it further out.
    let first = Instant::now();
    let mut i = 0;
    while first.elapsed() < DEFERRED_PROMISE + SLACK + Duration::from_millis(500) {
        store
            .txn_with(vec![put(&format!("/stream/{i}"))], Durability::Deferred)
            .await
            .unwrap();
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let synced = syncs
        .first_after(first, first + DEFERRED_PROMISE + SLACK)
        .await;
    let synced = synced.filter(|t| t.duration_since(first) <= DEFERRED_PROMISE + SLACK);
    assert!(
        synced.is_some(),
        "{i} deferred writes over {:?}: the first was not fsynced within {:?}",
        first.elapsed(),
        DEFERRED_PROMISE + SLACK
    );
}
