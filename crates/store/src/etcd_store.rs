//! The replicated backend: an etcd v3 cluster (several root replicas share it).
//!
//! Revisions: etcd's store-wide revision starts at 1 for an empty keyspace and is bumped once
//! per committed write, like Canopy's, which starts at 0. A Canopy revision is therefore the
//! etcd revision minus one (`create_revision`, `mod_revision`, header revisions alike): on an
//! etcd that only Canopy writes to, both backends answer the same numbers. Writes by anyone
//! else to the same etcd (the leader election's keys included, which live under `/ha/` for
//! that reason, so that a watch on `/` sees them) advance it too: revisions stay strictly
//! increasing but may skip, which the trait allows.
//!
//! Preconditions become etcd compares in one etcd `Txn` (`Absent`: `create_revision == 0`,
//! `ModRevision(r)`: `mod_revision == r + 1`); the failure branch reads every key of the
//! request, so a conflict names the first failing op as the redb backend does. Every write is
//! committed by etcd's raft (fsynced on a quorum) before it answers: `Durability::Deferred`
//! writes at once.
//!
//! A [`Fence`] adds one compare to every write: the leader key must still be the one this
//! replica created. A leader whose lease expired (paused, partitioned) then cannot write.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse,
};

use crate::etcd_watch;
use crate::{Entry, Op, Precondition, Revision, Store, StoreError, WatchStream};

/// Entries per range request of a listing (each page is read at the listing's revision).
const LIST_PAGE: i64 = 1000;
/// Between attempts of a request no member took (times the attempt).
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Where and how to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    endpoints: Vec<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl EtcdOptions {
    /// Parses `etcd://HOST:PORT[,HOST:PORT...]` (plaintext gRPC; TLS to etcd is planned).
    pub fn from_url(url: &str) -> Result<EtcdOptions, StoreError> {
        let rest = url.strip_prefix("etcd://").ok_or_else(|| {
            StoreError::InvalidArgument(format!(
                "store URL {url:?}: expected etcd://HOST:PORT[,HOST:PORT...]"
            ))
        })?;
        let mut endpoints = Vec::new();
        for member in rest.split(',') {
            let member = member.trim().trim_end_matches('/');
            let valid = member
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid || member.contains('/') {
                return Err(StoreError::InvalidArgument(format!(
                    "store URL {url:?}: member {member:?} is not HOST:PORT"
                )));
            }
            endpoints.push(format!("http://{member}"));
        }
        Ok(EtcdOptions::new(endpoints))
    }

    /// Endpoints as `http://HOST:PORT`.
    pub fn new(endpoints: Vec<String>) -> EtcdOptions {
        EtcdOptions {
            endpoints,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
        }
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub fn request_timeout(mut self, timeout: Duration) -> EtcdOptions {
        self.request_timeout = timeout;
        self
    }
}

/// The condition a leader's writes carry: `key` still exists with this etcd create revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub key: String,
    /// etcd's create revision of the leader key (not shifted to Canopy's numbering).
    pub create_revision: i64,
}

/// A [`Store`] on an etcd cluster. Cheap to clone (one shared gRPC channel).
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    endpoints: Arc<str>,
    /// Attempts after the first for a request that found no member to connect to.
    retries: u32,
    fence: Option<Fence>,
    /// Dropped with the last clone of the store: its watch streams then end with `Closed`.
    open: Arc<tokio::sync::watch::Sender<()>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("fence", &self.fence)
            .finish()
    }
}

impl EtcdStore {
    /// Connects and checks that etcd answers.
    pub async fn connect(options: EtcdOptions) -> Result<EtcdStore, StoreError> {
        let endpoints: Arc<str> = options.endpoints.join(",").into();
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_timeout(options.request_timeout)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let client = Client::connect(&options.endpoints, Some(connect))
            .await
            .map_err(|e| backend(&endpoints, e))?;
        let store = EtcdStore {
            client,
            retries: u32::try_from(options.endpoints.len() * 2).unwrap_or(u32::MAX),
            endpoints,
            fence: None,
            open: Arc::new(tokio::sync::watch::Sender::new(())),
        };
        store.revision().await?;
        Ok(store)
    }

    /// The same store whose every write also requires `fence` to hold.
    pub fn with_fence(&self, fence: Fence) -> EtcdStore {
        EtcdStore {
            fence: Some(fence),
            ..self.clone()
        }
    }

    /// The etcd client, for the leader election on the same cluster.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn endpoints(&self) -> &str {
        &self.endpoints
    }

    pub(crate) fn fail(&self, e: etcd_client::Error) -> StoreError {
        backend(&self.endpoints, e)
    }

    /// Runs one request, again on another member while the one picked refuses connections:
    /// such a request never reached etcd, so repeating it cannot apply it twice. (The
    /// client's balancer keeps a dead member among its choices.)
    pub(crate) async fn call<T, F, Fut>(&self, request: F) -> Result<T, StoreError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut attempt = 0;
        loop {
            match request(self.client.clone()).await {
                Ok(answer) => return Ok(answer),
                Err(e) if attempt < self.retries && never_sent(&e) => {
                    attempt += 1;
                    tokio::time::sleep(RETRY_PAUSE * attempt).await;
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Drops the history up to `revision` (Canopy numbering), as an operator's compaction:
    /// afterwards a watch accepts `after >= revision`, as with redb's retained history.
    pub async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let revision = to_etcd(revision);
        self.call(|mut c| async move { c.compact(revision, None).await })
            .await?;
        Ok(())
    }

    /// Runs `ops` as one etcd txn; the revision and the success branch's responses.
    async fn apply(&self, ops: Vec<Op>) -> Result<(Revision, Vec<TxnOpResponse>), StoreError> {
        crate::redb_store::validate(&ops)?;
        let mut compares = Vec::new();
        let mut reads = Vec::new();
        for op in &ops {
            match op.precondition() {
                Precondition::None => {}
                Precondition::Absent => {
                    compares.push(Compare::create_revision(op.key(), CompareOp::Equal, 0))
                }
                Precondition::ModRevision(r) => compares.push(Compare::mod_revision(
                    op.key(),
                    CompareOp::Equal,
                    to_etcd(r),
                )),
            }
            reads.push(TxnOp::get(op.key(), None));
        }
        if let Some(fence) = &self.fence {
            compares.push(Compare::create_revision(
                fence.key.as_str(),
                CompareOp::Equal,
                fence.create_revision,
            ));
            reads.push(TxnOp::get(fence.key.as_str(), None));
        }
        let preconditions: Vec<(String, Precondition)> = ops
            .iter()
            .map(|op| (op.key().to_owned(), op.precondition()))
            .collect();
        let writes: Vec<TxnOp> = ops
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value, .. } => TxnOp::put(key, value, None),
                Op::Delete { key, .. } => TxnOp::delete(key, None),
            })
            .collect();
        let txn = Txn::new().when(compares).and_then(writes).or_else(reads);
        let response = self
            .call(|mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        let revision = header_revision(response.header());
        if response.succeeded() {
            return Ok((revision, response.op_responses()));
        }
        Err(self.conflict(&preconditions, response.op_responses()))
    }

    /// Which precondition failed, from the failure branch's reads (in op order).
    fn conflict(
        &self,
        preconditions: &[(String, Precondition)],
        reads: Vec<TxnOpResponse>,
    ) -> StoreError {
        let mut reads = reads.into_iter().map(|read| match read {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        });
        for (key, precondition) in preconditions {
            let found = reads.next().flatten().map(to_canopy);
            let holds = match precondition {
                Precondition::None => true,
                Precondition::Absent => found.is_none(),
                Precondition::ModRevision(r) => found == Some(*r),
            };
            if !holds {
                return StoreError::Conflict {
                    key: key.clone(),
                    expected: *precondition,
                    found,
                };
            }
        }
        match &self.fence {
            Some(fence) => StoreError::Fenced(format!(
                "leader key {:?} is no longer the one created at etcd revision {}",
                fence.key, fence.create_revision
            )),
            None => StoreError::Backend(format!(
                "etcd ({}) refused a transaction whose conditions held",
                self.endpoints
            )),
        }
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        if key.is_empty() {
            return Ok(None);
        }
        let response = self
            .call(|mut c| async move { c.get(key, None).await })
            .await?;
        response.kvs().first().map(entry).transpose()
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<Entry>, Revision), StoreError> {
        let (start, end) = prefix_range(prefix);
        let mut entries = Vec::new();
        let mut from = start;
        let mut at = 0i64;
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE);
            if at != 0 {
                // Later pages read the first page's snapshot: one consistent listing.
                options = options.with_revision(at);
            }
            let response = self
                .call(|mut c| {
                    let (from, options) = (from.clone(), options.clone());
                    async move { c.get(from, Some(options)).await }
                })
                .await?;
            if at == 0 {
                at = response.header().map_or(0, |h| h.revision());
            }
            for kv in response.kvs() {
                entries.push(entry(kv)?);
            }
            match response.kvs().last() {
                Some(last) if response.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok((entries, to_canopy(at)))
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
        Ok(self.apply(vec![op]).await?.0)
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
        let (revision, responses) = self.apply(vec![op]).await?;
        let deleted = responses
            .iter()
            .any(|r| matches!(r, TxnOpResponse::Delete(d) if d.deleted() > 0));
        Ok(deleted.then_some(revision))
    }

    async fn txn(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        Ok(self.apply(ops).await?.0)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        etcd_watch::start(self, prefix, after, self.open.subscribe()).await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        // A count-only read of one key: the answer's header carries the store revision.
        let response = self
            .call(
                |mut c| async move { c.get("/", Some(GetOptions::new().with_count_only())).await },
            )
            .await?;
        Ok(header_revision(response.header()))
    }
}

/// A connection that could not be made: the request was not sent.
fn never_sent(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => {
            status.code() == tonic::Code::Unavailable && status.message().contains("connect")
        }
        etcd_client::Error::TransportError(_) => true,
        _ => false,
    }
}

pub(crate) fn backend(endpoints: &str, e: etcd_client::Error) -> StoreError {
    StoreError::Backend(format!("etcd ({endpoints}): {e}"))
}

/// Canopy's revision of an etcd revision (see the module comment).
pub(crate) fn to_canopy(etcd: i64) -> Revision {
    u64::try_from(etcd.saturating_sub(1)).unwrap_or(0)
}

pub(crate) fn to_etcd(canopy: Revision) -> i64 {
    i64::try_from(canopy).unwrap_or(i64::MAX - 1) + 1
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    to_canopy(header.map_or(0, |h| h.revision()))
}

pub(crate) fn entry(kv: &KeyValue) -> Result<Entry, StoreError> {
    let key = kv
        .key_str()
        .map_err(|_| StoreError::Backend("etcd holds a key that is not UTF-8".into()))?;
    Ok(Entry {
        key: key.to_owned(),
        value: kv.value().to_vec(),
        create_revision: to_canopy(kv.create_revision()),
        mod_revision: to_canopy(kv.mod_revision()),
        version: u64::try_from(kv.version()).unwrap_or(0),
    })
}

/// etcd's [start, end) range of a plain string prefix; `""` is the whole keyspace.
pub(crate) fn prefix_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    if prefix.is_empty() {
        // Key "\0" with range end "\0": every key.
        return (vec![0], vec![0]);
    }
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (prefix.as_bytes().to_vec(), end);
        }
    }
    (prefix.as_bytes().to_vec(), vec![0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_every_member() {
        let options = EtcdOptions::from_url("etcd://127.0.0.1:2379,10.0.0.2:2380").unwrap();
        assert_eq!(
            options.endpoints(),
            ["http://127.0.0.1:2379", "http://10.0.0.2:2380"]
        );
        for bad in [
            "http://a:1",
            "etcd://",
            "etcd://host",
            "etcd://host:port",
            "etcd://a:1,",
            "etcd://a:1/x",
        ] {
            let err = EtcdOptions::from_url(bad).unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidArgument(_)),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn revisions_shift_by_one() {
        assert_eq!(to_canopy(1), 0);
        assert_eq!(to_canopy(0), 0);
        assert_eq!(to_canopy(8), 7);
        assert_eq!(to_etcd(7), 8);
        assert_eq!(to_etcd(0), 1);
    }

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_range(""), (vec![0], vec![0]));
        assert_eq!(prefix_range("/a"), (b"/a".to_vec(), b"/b".to_vec()));
        let (start, end) = prefix_range("a\u{7f}");
        assert_eq!(
            (start.as_slice(), end.as_slice()),
            (&b"a\x7f"[..], &b"a\x80"[..])
        );
    }
}
