//! Integration tests of the store: one conformance suite run against both backends (redb on
//! real files in temporary directories, etcd as a real `etcd` process on loopback), and the
//! tests of what only one backend has (redb's files and history limits, etcd's members).

mod basic;
mod crash;
mod durability;
mod election;
mod etcd;
#[path = "../support/etcd.rs"]
pub mod etcd_cluster;
mod model;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use canopy_store::{
    EtcdOptions, EtcdStore, Op, Precondition, RedbOptions, RedbStore, Store, StoreError,
    WatchEvent, WatchStream,
};
use futures::StreamExt;

/// The backend a conformance test body runs against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Redb,
    /// A fresh single-member etcd per test: revisions start at 0 as with redb.
    Etcd,
}

/// Keeps a backend's files or processes alive for as long as the test holds it.
pub struct Guard(#[allow(dead_code)] Box<dyn std::any::Any + Send>);

impl Backend {
    pub async fn open(self) -> (Guard, Arc<dyn Store>) {
        match self {
            Backend::Redb => {
                let (dir, store) = temp_store();
                (Guard(Box::new(dir)), Arc::new(store))
            }
            Backend::Etcd => {
                let cluster = etcd_cluster::EtcdCluster::start(1);
                let store = etcd_store(&cluster).await;
                (Guard(Box::new(cluster)), Arc::new(store))
            }
        }
    }
}

pub async fn etcd_store(cluster: &etcd_cluster::EtcdCluster) -> EtcdStore {
    EtcdStore::connect(EtcdOptions::new(cluster.endpoints()))
        .await
        .expect("connect to the test etcd")
}

/// Runs each named body, an `async fn(Backend)` of the invoking module, once per backend:
/// as `MODULE::redb::NAME` and `MODULE::etcd::NAME`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod redb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Redb).await
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Etcd).await
                }
            )*
        }
    };
}

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
