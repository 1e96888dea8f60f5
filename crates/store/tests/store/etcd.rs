//! What only the etcd backend has: etcd's own compaction, members that die, fenced writes.

use std::time::{Duration, Instant};

use canopy_store::{EtcdOptions, EtcdStore, Fence, Precondition, Store, StoreError};

use crate::etcd_cluster::EtcdCluster;
use crate::{assert_drained, etcd_store, next_event, next_item};

async fn put(store: &impl Store, key: &str, value: &str) -> u64 {
    store
        .put(key, value.as_bytes().to_vec(), Precondition::None)
        .await
        .unwrap()
}

#[tokio::test]
async fn compaction_is_answered_as_compacted() {
    let cluster = EtcdCluster::start(1);
    let store = etcd_store(&cluster).await;
    for i in 1..=20 {
        put(&store, &format!("/c/{i}"), "v").await;
    }
    store.compact(15).await.unwrap();
    for after in [0, 10, 14] {
        match store.watch("/c/", after).await {
            Err(StoreError::Compacted { requested, oldest }) => {
                assert_eq!((requested, oldest), (after, 15))
            }
            Err(other) => panic!("expected Compacted, got {other:?}"),
            Ok(_) => panic!("expected Compacted for {after}"),
        }
    }
    let mut watch = store.watch("/c/", 15).await.unwrap();
    for expected in 16..=20 {
        assert_eq!(next_event(&mut watch).await.revision(), expected);
    }
    assert_drained(&store, &mut watch, "/c/sentinel").await;
    // Listing is not affected: the current state survives compaction.
    assert_eq!(store.list("/c/").await.unwrap().0.len(), 21);
}

#[tokio::test]
async fn watch_ends_with_closed_when_the_store_is_dropped() {
    let cluster = EtcdCluster::start(1);
    let store = etcd_store(&cluster).await;
    let mut watch = store.watch("", 0).await.unwrap();
    put(&store, "/a", "1").await;
    assert_eq!(next_event(&mut watch).await.key(), "/a");
    drop(store);
    assert!(matches!(
        next_item(&mut watch).await,
        Some(Err(StoreError::Closed))
    ));
    assert!(next_item(&mut watch).await.is_none());
}

#[tokio::test]
async fn an_unreachable_etcd_is_a_clear_error() {
    let cluster = EtcdCluster::start(1);
    let endpoints = cluster.endpoints();
    drop(cluster);
    let err = EtcdStore::connect(
        EtcdOptions::new(endpoints.clone()).request_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    match &err {
        StoreError::Backend(message) => assert!(
            message.contains(&endpoints[0].replace("http://", "")),
            "the error names the endpoints: {message}"
        ),
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn fenced_writes_fail_once_the_leader_key_changed() {
    let cluster = EtcdCluster::start(1);
    let store = etcd_store(&cluster).await;
    let won = store
        .put("/ha/leader", b"a".to_vec(), Precondition::Absent)
        .await
        .unwrap();
    let leader = store.get("/ha/leader").await.unwrap().unwrap();
    let fence = Fence {
        key: "/ha/leader".into(),
        create_revision: leader.create_revision as i64 + 1,
    };
    assert_eq!(leader.create_revision, won);
    let fenced = store.with_fence(fence);
    put(&fenced, "/apps/x", "from a").await;

    // Another replica takes over: the key is deleted (lease expiry) and created again.
    store
        .delete("/ha/leader", Precondition::None)
        .await
        .unwrap();
    store
        .put("/ha/leader", b"b".to_vec(), Precondition::Absent)
        .await
        .unwrap();
    let err = fenced
        .put("/apps/x", b"late".to_vec(), Precondition::None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced(_)), "{err:?}");
    let err = fenced
        .txn(vec![canopy_store::Op::Delete {
            key: "/apps/x".into(),
            precondition: Precondition::None,
        }])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced(_)), "{err:?}");
    assert_eq!(
        store.get("/apps/x").await.unwrap().unwrap().value,
        b"from a"
    );
    // A precondition that fails is still reported as the conflict it is.
    let err = fenced
        .put("/apps/x", b"x".to_vec(), Precondition::Absent)
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
}

/// Retries `op` until it succeeds or `within` passes: the client moves off a dead member.
async fn eventually<T, F, Fut>(within: Duration, mut op: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let start = Instant::now();
    loop {
        match op().await {
            Ok(value) => return (value, start.elapsed()),
            Err(e) if start.elapsed() < within => {
                eprintln!("retrying after {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("still failing after {within:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_survives_one_dead_member_of_three() {
    let mut cluster = EtcdCluster::start(3);
    let store = EtcdStore::connect(
        EtcdOptions::new(cluster.endpoints()).request_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let before = put(&store, "/k/before", "1").await;
    let mut watch = store.watch("/k/", 0).await.unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), before);

    cluster.kill(0);
    // Each write is tried once per round; every member but the dead one answers.
    let mut last = before;
    for i in 0..20 {
        let key = format!("/k/after/{i}");
        let (revision, took) = eventually(Duration::from_secs(10), || {
            let store = store.clone();
            let key = key.clone();
            async move {
                store
                    .put(&key, b"v".to_vec(), Precondition::Absent)
                    .await
                    .or_else(|e| match e {
                        // A retried write whose first attempt did land.
                        StoreError::Conflict { found: Some(r), .. } => Ok(r),
                        other => Err(other),
                    })
            }
        })
        .await;
        assert!(took < Duration::from_secs(10));
        assert!(revision > last);
        last = revision;
    }
    let (entries, _) = store.list("/k/after/").await.unwrap();
    assert_eq!(entries.len(), 20);

    // The watch either kept going or ended with an error; resumed from its last revision it
    // misses nothing.
    let mut seen = vec![before];
    let mut resume_from = before;
    while seen.len() < 21 {
        match tokio::time::timeout(
            Duration::from_secs(20),
            futures::StreamExt::next(&mut watch),
        )
        .await
        .expect("watch stalled")
        {
            Some(Ok(event)) => {
                resume_from = event.revision();
                seen.push(event.revision());
            }
            Some(Err(_)) | None => {
                let (stream, _) = eventually(Duration::from_secs(10), || {
                    let store = store.clone();
                    async move { store.watch("/k/", resume_from).await }
                })
                .await;
                watch = stream;
            }
        }
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(*seen.last().unwrap(), last);
    assert!(matches!(
        store.get("/k/before").await.unwrap(),
        Some(entry) if entry.value == b"1"
    ));

    // Without a quorum a write fails, with an error that names the store; it recovers when
    // the members return.
    cluster.kill(1);
    let err = store
        .put("/k/no-quorum", b"v".to_vec(), Precondition::None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.starts_with("etcd (")),
        "{err:?}"
    );
    cluster.restart(0);
    cluster.restart(1);
    eventually(Duration::from_secs(20), || {
        let store = store.clone();
        async move {
            store
                .put("/k/quorum-again", b"v".to_vec(), Precondition::None)
                .await
        }
    })
    .await;
}
