//! Canopy's state store.
//!
//! [`Store`] is a small etcd-like key-value interface: a store-wide [`Revision`] bumped once per
//! committed write, per-key create/mod revisions and versions, compare-and-swap preconditions,
//! all-or-nothing transactions and prefix watches that replay retained history before following
//! live writes. [`RedbStore`] is the embedded, single-file backend; with the `etcd` feature,
//! `EtcdStore` keeps the same state on an etcd cluster shared by several root replicas, and
//! `election` elects their leader (a feature because etcd-client's build needs `protoc`).
//!
//! [`StoreExt`] adds JSON (de)serialisation on top of any store, including `Arc<dyn Store>`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

mod codec;
#[cfg(feature = "etcd")]
pub mod election;
#[cfg(feature = "etcd")]
mod etcd_store;
#[cfg(feature = "etcd")]
mod etcd_watch;
mod redb_store;
mod watch;

#[cfg(feature = "etcd")]
pub use etcd_store::{EtcdOptions, EtcdStore, Fence};
pub use redb_store::{RedbOptions, RedbStore};

/// Store-wide revision: strictly increasing, bumped once per committed write or transaction.
/// `0` means "nothing written yet".
pub type Revision = u64;

/// A key with its value and bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created the key (reset when it is deleted and re-created).
    pub create_revision: Revision,
    /// Revision of the latest write to the key.
    pub mod_revision: Revision,
    /// Number of writes since the key was (re-)created; `1` after the first put.
    pub version: u64,
}

/// Condition a write checks against the key's state before the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// No condition.
    None,
    /// The key must not exist.
    Absent,
    /// The key must exist with exactly this `mod_revision` (compare-and-swap).
    ModRevision(Revision),
}

impl fmt::Display for Precondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Precondition::None => f.write_str("anything"),
            Precondition::Absent => f.write_str("absent"),
            Precondition::ModRevision(r) => write!(f, "mod_revision {r}"),
        }
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        precondition: Precondition,
    },
    Delete {
        key: String,
        precondition: Precondition,
    },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }

    pub fn precondition(&self) -> Precondition {
        match self {
            Op::Put { precondition, .. } | Op::Delete { precondition, .. } => *precondition,
        }
    }
}

/// A change observed by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was created or updated; `entry.mod_revision` is the event's revision.
    Put { entry: Entry },
    /// The key was deleted at `revision`.
    Delete { key: String, revision: Revision },
}

impl WatchEvent {
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { entry } => entry.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put { entry } => &entry.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }
}

/// Errors of every store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A precondition did not hold; nothing was written.
    #[error("conflict on key {key:?}: expected {expected}, found {}", describe_found(*.found))]
    Conflict {
        key: String,
        expected: Precondition,
        /// `mod_revision` of the key at the time of the check; `None` if it was absent.
        found: Option<Revision>,
    },
    /// The watch history no longer reaches back to `requested`; re-list and watch from the
    /// listing's revision. `oldest` is the smallest `after` a watch currently accepts.
    #[error("revision {requested} is compacted; oldest watchable revision is {oldest}")]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    /// The request is malformed (empty key, the same key twice in one transaction, ...).
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// A stored value could not be (de)serialised by [`StoreExt`].
    #[error("cannot (de)serialise the value of {key:?}: {source}")]
    Codec {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// The storage backend failed; the write may or may not have been applied.
    #[error("store backend: {0}")]
    Backend(String),
    /// The store was shut down.
    #[error("store is closed")]
    Closed,
    /// A fenced write of a leader that is no longer the leader; nothing was written.
    #[error("not the leader any more: {0}")]
    Fenced(String),
}

fn describe_found(found: Option<Revision>) -> String {
    match found {
        Some(r) => format!("mod_revision {r}"),
        None => "absent".to_owned(),
    }
}

impl StoreError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    pub fn is_compacted(&self) -> bool {
        matches!(self, StoreError::Compacted { .. })
    }
}

/// Stream of watch events; ends after an `Err` (for example [`StoreError::Compacted`] when the
/// watcher fell behind the retained history, or [`StoreError::Closed`]).
pub type WatchStream = Pin<Box<dyn futures::Stream<Item = Result<WatchEvent, StoreError>> + Send>>;

/// When a write must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before the call returns (fsynced): for accepted desired state.
    Immediate,
    /// Within a short delay, or with the next immediate write: for observations that a crash
    /// may lose because they are learned again (a child's hello repeats its full state).
    /// Readers and watchers see the write at once either way.
    Deferred,
}

/// The state store interface, independent of the backend.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError>;

    /// Every entry whose key starts with prefix, in key order, and the revision the listing
    /// reflects (for list-then-watch without gaps).
    async fn list(&self, prefix: &str) -> Result<(Vec<Entry>, Revision), StoreError>;

    /// Returns the revision of the write.
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        precondition: Precondition,
    ) -> Result<Revision, StoreError>;

    /// Ok(None) when the key was absent (and the precondition allowed that); then nothing is
    /// written and the revision is not bumped.
    async fn delete(
        &self,
        key: &str,
        precondition: Precondition,
    ) -> Result<Option<Revision>, StoreError>;

    /// All or nothing: every precondition is checked first (against the state before the txn);
    /// any failure → Conflict and nothing written. One revision for the whole txn; each op
    /// appears as its own WatchEvent with that revision. A key may appear only once per txn.
    /// A txn that changes nothing (no ops, or only deletes of absent keys) returns the current
    /// revision without bumping it.
    async fn txn(&self, ops: Vec<Op>) -> Result<Revision, StoreError>;

    /// [`Store::txn`] with a chosen durability; backends that cannot defer write at once.
    async fn txn_with(&self, ops: Vec<Op>, durability: Durability) -> Result<Revision, StoreError> {
        let _ = durability;
        self.txn(ops).await
    }

    /// Events on keys under prefix with revision > after, in revision order: first the retained
    /// history, then live, without gaps or duplicates. Err(Compacted) if `after` is older than
    /// the retained history (then the caller re-lists).
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;

    async fn revision(&self) -> Result<Revision, StoreError>;
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> Store for Arc<S> {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        (**self).get(key).await
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<Entry>, Revision), StoreError> {
        (**self).list(prefix).await
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        precondition: Precondition,
    ) -> Result<Revision, StoreError> {
        (**self).put(key, value, precondition).await
    }

    async fn delete(
        &self,
        key: &str,
        precondition: Precondition,
    ) -> Result<Option<Revision>, StoreError> {
        (**self).delete(key, precondition).await
    }

    async fn txn(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        (**self).txn(ops).await
    }

    async fn txn_with(&self, ops: Vec<Op>, durability: Durability) -> Result<Revision, StoreError> {
        (**self).txn_with(ops, durability).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        (**self).watch(prefix, after).await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        (**self).revision().await
    }
}

/// Decoded entries as (key, value, mod_revision), in key order.
pub type JsonItems<T> = Vec<(String, T, Revision)>;

/// JSON helpers on any [`Store`] (also `Arc<dyn Store>` and `&dyn Store`).
pub trait StoreExt: Store {
    /// The value decoded as `T` and its `mod_revision`.
    fn get_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(T, Revision)>, StoreError>> + Send;

    /// Every entry under prefix as (key, value, mod_revision), in key order, and the revision
    /// the listing reflects.
    fn list_json<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<(JsonItems<T>, Revision), StoreError>> + Send;

    fn put_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        precondition: Precondition,
    ) -> impl Future<Output = Result<Revision, StoreError>> + Send;
}

impl<S: Store + ?Sized> StoreExt for S {
    async fn get_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, Revision)>, StoreError> {
        match self.get(key).await? {
            Some(entry) => Ok(Some((decode_json(&entry)?, entry.mod_revision))),
            None => Ok(None),
        }
    }

    async fn list_json<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<(JsonItems<T>, Revision), StoreError> {
        let (entries, revision) = self.list(prefix).await?;
        let items = entries
            .into_iter()
            .map(|entry| {
                let value = decode_json(&entry)?;
                Ok((entry.key, value, entry.mod_revision))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((items, revision))
    }

    fn put_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        precondition: Precondition,
    ) -> impl Future<Output = Result<Revision, StoreError>> + Send {
        // Serialise before the future so that it does not borrow `value` (T need not be Sync).
        let encoded = serde_json::to_vec(value).map_err(|source| StoreError::Codec {
            key: key.to_owned(),
            source,
        });
        async move { self.put(key, encoded?, precondition).await }
    }
}

/// Decodes an entry's value as JSON.
pub fn decode_json<T: DeserializeOwned>(entry: &Entry) -> Result<T, StoreError> {
    serde_json::from_slice(&entry.value).map_err(|source| StoreError::Codec {
        key: entry.key.clone(),
        source,
    })
}
