//! The I/O shell of the election: a lease, the leader key created under it, its renewals and a
//! watch on the key. Decisions are [`Term`]'s.

use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::watch;
use tokio::time::Instant;

use super::term::{Action, Term};
use super::{ElectionConfig, Role};
use crate::{EtcdStore, Fence, StoreError};

/// Runs campaigns until `stop` flips to true, publishing the replica's role on `role`.
pub(super) async fn run(
    store: EtcdStore,
    config: ElectionConfig,
    role: watch::Sender<Role>,
    mut stop: watch::Receiver<bool>,
) {
    let mut term = Term::new(config.ttl);
    loop {
        if *stop.borrow() {
            return;
        }
        let round = campaign(&store, &config, &mut term, &role, &mut stop);
        if let Err(e) = round.await {
            tracing::warn!(error = %e, "leader election round failed; campaigning again");
            role.send_replace(Role::Follower { leader: None });
            // Bounded by the stop signal, so a shutdown never waits for the back-off.
            let _ = tokio::time::timeout(config.ttl / 4, stop.changed()).await;
        }
    }
}

/// One round: wins and leads until the term ends, or follows until the key is free.
async fn campaign(
    store: &EtcdStore,
    config: &ElectionConfig,
    term: &mut Term,
    role: &watch::Sender<Role>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let sent = Instant::now();
    let ttl = ttl_seconds(config.ttl);
    let lease = store
        .call(|mut c| async move { c.lease_grant(ttl, None).await })
        .await?
        .id();
    let key = config.key.as_str();
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            config.id.as_str(),
            Some(PutOptions::new().with_lease(lease)),
        )])
        .or_else([TxnOp::get(key, None)]);
    let answer = store
        .call(|mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await?;
    let revision = answer.header().map_or(0, |h| h.revision());
    if !answer.succeeded() {
        // Someone else leads: follow until the key goes, then try again.
        revoke(store, lease).await;
        let leader = answer.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(get) => get
                .kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
            _ => None,
        });
        role.send_replace(Role::Follower { leader });
        return follow(store, key, revision, role, stop).await;
    }
    let fence = Fence {
        key: key.to_owned(),
        create_revision: revision,
    };
    if let Some(Action::StartActing(fence)) = term.won(fence, sent.into_std()) {
        tracing::info!(id = %config.id, "won the leader election");
        role.send_replace(Role::Leader { fence });
    }
    let outcome = lead(store, term, lease, key, revision, stop).await;
    role.send_replace(Role::Follower { leader: None });
    // Whatever ended the term, let etcd know at once (another replica then wins sooner).
    revoke(store, lease).await;
    outcome
}

/// Renews the lease and watches the key until the term ends.
async fn lead(
    store: &EtcdStore,
    term: &mut Term,
    lease: i64,
    key: &str,
    created: i64,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let (mut keeper, mut renewals) = store
        .call(|mut c| async move { c.lease_keep_alive(lease).await })
        .await?;
    let mut changes = watch_key(store, key, created + 1).await?;
    let mut renew = tokio::time::interval(term.renew_every());
    let mut sent = Instant::now();
    loop {
        let deadline = term.deadline().map_or_else(Instant::now, Instant::from_std);
        let action = tokio::select! {
            _ = stop.changed() => {
                term.key_lost();
                tracing::info!("resigning as leader");
                return Ok(());
            }
            _ = tokio::time::sleep_until(deadline) => term.tick(Instant::now().into_std()),
            _ = renew.tick() => {
                sent = Instant::now();
                if let Err(e) = keeper.keep_alive().await {
                    tracing::warn!(error = %e, "lease renewal not sent");
                }
                None
            }
            answer = renewals.message() => match answer {
                Ok(Some(answer)) => {
                    let ttl = u64::try_from(answer.ttl()).ok().map(Duration::from_secs);
                    term.renewed(sent.into_std(), ttl, Instant::now().into_std())
                }
                // The stream broke: the term runs out by its deadline unless a new one is won.
                Ok(None) | Err(_) => term.key_lost(),
            },
            change = changes.message() => match change {
                Ok(Some(message)) => {
                    let lost = message.canceled() || message.events().iter().any(|e| {
                        e.event_type() == EventType::Delete
                            || e.kv().is_some_and(|kv| kv.create_revision() != created)
                    });
                    if lost { term.key_lost() } else { None }
                }
                Ok(None) | Err(_) => term.key_lost(),
            },
        };
        if action == Some(Action::StopActing) {
            tracing::warn!("leader term ended; stopped acting as leader");
            return Ok(());
        }
    }
}

/// Waits until the leader key is deleted (its lease expired or its holder resigned).
async fn follow(
    store: &EtcdStore,
    key: &str,
    seen: i64,
    role: &watch::Sender<Role>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let mut changes = watch_key(store, key, seen + 1).await?;
    loop {
        let message = tokio::select! {
            _ = stop.changed() => return Ok(()),
            message = changes.message() => message.map_err(|e| store.fail(e))?,
        };
        let Some(message) = message else {
            return Err(StoreError::Backend("etcd ended the leader watch".into()));
        };
        for event in message.events() {
            match event.event_type() {
                EventType::Delete => return Ok(()),
                EventType::Put => {
                    let leader = event
                        .kv()
                        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
                    role.send_replace(Role::Follower { leader });
                }
            }
        }
    }
}

async fn revoke(store: &EtcdStore, lease: i64) {
    if let Err(e) = store
        .call(|mut c| async move { c.lease_revoke(lease).await })
        .await
    {
        tracing::debug!(error = %e, "lease not revoked; it expires by itself");
    }
}

async fn watch_key(
    store: &EtcdStore,
    key: &str,
    from: i64,
) -> Result<etcd_client::WatchStream, StoreError> {
    let options = WatchOptions::new().with_start_revision(from);
    store
        .call(|mut c| {
            let options = options.clone();
            async move { c.watch(key, Some(options)).await }
        })
        .await
}

/// etcd leases count whole seconds: round up, at least one.
fn ttl_seconds(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis().div_ceil(1000).max(1)).unwrap_or(i64::MAX)
}
