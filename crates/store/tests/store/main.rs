//! Integration tests of the redb backend on real files in temporary directories.

mod basic;
mod crash;
mod durability;
mod model;
mod watch;

use std::time::Duration;

use canopy_store::{
    Op, Precondition, RedbOptions, RedbStore, Store, StoreError, WatchEvent, WatchStream,
};
use futures::StreamExt;

pub fn temp_store() -> (tempfile::TempDir, RedbStore) {
    temp_store_with(RedbOptions::default())
}

pub fn temp_store_with(options: RedbOptions) -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RedbStore::open_with(dir.path().join("store.redb"), options).expect("open store");
    (dir, store)
}

/// The next item of a watch stream; a watch that goes quiet is a test failure, not a hang.
pub async fn next_item(stream: &mut WatchStream) -> Option<Result<WatchEvent, StoreError>> {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("watch stream stalled")
}

pub async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    next_item(stream)
        .await
        .expect("watch stream ended")
        .expect("watch stream failed")
}

/// Asserts the stream has nothing else queued: a fresh write under `key` must come next.
pub async fn assert_drained(store: &impl Store, stream: &mut WatchStream, key: &str) {
    assert_all_drained(store, &mut [stream], &[key]).await;
}

/// Writes `keys` in one txn; each stream's next event must belong to it, so nothing older was
/// still queued (events come in revision order). Give each stream a key under its prefix.
pub async fn assert_all_drained(
    store: &impl Store,
    streams: &mut [&mut WatchStream],
    keys: &[&str],
) {
    let ops = keys
        .iter()
        .map(|key| Op::Put {
            key: (*key).to_owned(),
            value: b"sentinel".to_vec(),
            precondition: Precondition::None,
        })
        .collect();
    let revision = store.txn(ops).await.expect("sentinel txn");
    for stream in streams {
        let event = next_event(stream).await;
        assert_eq!(
            event.revision(),
            revision,
            "unexpected extra event {event:?}"
        );
    }
}
