//! Leader election on a real etcd: one leader at a time, a successor once the leader is gone,
//! and a former leader's fenced writes refused.

use std::time::{Duration, Instant};

use canopy_store::election::{Election, ElectionConfig, Role};
use canopy_store::{EtcdStore, Precondition, Store, StoreError};
use tokio::sync::watch;

use crate::etcd_cluster::EtcdCluster;
use crate::etcd_store;

const TTL: Duration = Duration::from_secs(2);

/// Waits until `pick` accepts the role, failing the test after `within`.
async fn role_where(
    role: &mut watch::Receiver<Role>,
    within: Duration,
    what: &str,
    pick: impl Fn(&Role) -> bool,
) -> Role {
    let waited = tokio::time::timeout(within, role.wait_for(|r| pick(r)))
        .await
        .map(|seen| seen.map(|seen| seen.clone()));
    match waited {
        Ok(Ok(seen)) => seen,
        Ok(Err(_)) => panic!("election ended while waiting for {what}"),
        Err(_) => panic!("no {what} within {within:?}; role {:?}", *role.borrow()),
    }
}

fn start(store: &EtcdStore, id: &str) -> Election {
    Election::start(store.clone(), ElectionConfig::new(id).ttl(TTL))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_a_successor_when_it_resigns() {
    let cluster = EtcdCluster::start(1);
    let store = etcd_store(&cluster).await;
    let a = start(&store, "http://a");
    let mut a_role = a.role();
    role_where(
        &mut a_role,
        Duration::from_secs(5),
        "leader a",
        Role::is_leader,
    )
    .await;
    let b = start(&store, "http://b");
    let mut b_role = b.role();
    let seen = role_where(
        &mut b_role,
        Duration::from_secs(5),
        "b following a",
        |r| matches!(r, Role::Follower { leader: Some(l) } if l == "http://a"),
    )
    .await;
    assert!(!seen.is_leader());
    assert!(a_role.borrow().is_leader(), "a leads while b follows");
    assert_eq!(
        store.get("/ha/leader").await.unwrap().unwrap().value,
        b"http://a"
    );

    let resigned = Instant::now();
    a.resign().await;
    role_where(
        &mut b_role,
        Duration::from_secs(5),
        "leader b",
        Role::is_leader,
    )
    .await;
    // Resigning revokes the lease: b does not wait for it to expire.
    assert!(resigned.elapsed() < TTL, "took {:?}", resigned.elapsed());
    b.resign().await;
    assert_eq!(store.get("/ha/leader").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_key_vanishes_stops_and_its_writes_are_fenced() {
    let cluster = EtcdCluster::start(1);
    let store = etcd_store(&cluster).await;
    let a = start(&store, "http://a");
    let mut a_role = a.role();
    let Role::Leader { fence } = role_where(
        &mut a_role,
        Duration::from_secs(5),
        "leader a",
        Role::is_leader,
    )
    .await
    else {
        unreachable!()
    };
    let as_leader = store.with_fence(fence.clone());
    as_leader
        .put("/apps/web", b"a's".to_vec(), Precondition::None)
        .await
        .unwrap();

    // What an expired lease does: the key is deleted behind the leader's back. It stops at
    // once and campaigns again, under a new key revision.
    store
        .delete("/ha/leader", Precondition::None)
        .await
        .unwrap();
    role_where(
        &mut a_role,
        Duration::from_secs(5),
        "a stepping down",
        |r| !r.is_leader(),
    )
    .await;
    let Role::Leader { fence: next } = role_where(
        &mut a_role,
        Duration::from_secs(5),
        "a leading again",
        Role::is_leader,
    )
    .await
    else {
        unreachable!()
    };
    assert_ne!(next, fence);
    let err = as_leader
        .put("/apps/web", b"stale".to_vec(), Precondition::None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced(_)), "{err:?}");
    assert_eq!(store.get("/apps/web").await.unwrap().unwrap().value, b"a's");
    a.resign().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_reach_etcd_stops_within_its_term() {
    let mut cluster = EtcdCluster::start(1);
    let store = etcd_store(&cluster).await;
    let a = start(&store, "http://a");
    let mut a_role = a.role();
    role_where(
        &mut a_role,
        Duration::from_secs(5),
        "leader a",
        Role::is_leader,
    )
    .await;
    let cut = Instant::now();
    cluster.kill(0);
    role_where(
        &mut a_role,
        TTL + Duration::from_secs(1),
        "a stepping down",
        |r| !r.is_leader(),
    )
    .await;
    // Before its lease could have expired on etcd.
    assert!(cut.elapsed() < TTL, "stopped after {:?}", cut.elapsed());
    drop(a);
}
